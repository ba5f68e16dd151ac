//! Images from a registry: a real `docker-registry` on loopback holds the fixture image, pushed
//! by the test and removed from the engine, so the daemon has to pull it. Pull on first need (one
//! pull for concurrent first callers, progress in `STATUS=`), failures naming the image and the
//! registry's answer, digest pinning, and `mcpctl server pull`.

use std::os::unix::net::UnixDatagram;
use std::sync::{Arc, Mutex};

use mcp_gateway_tests::{
    Daemon, Registry, Start, build_named, build_unique, fixture_image, image_present,
    require_docker,
};
use serde_json::json;

/// Adds server `name` running `image`, identifying itself as `name`.
fn add_server(daemon: &Daemon, name: &str, image: &str) {
    let identity = format!("MCP_FIXTURE_NAME={name}");
    daemon.ctl_ok(&["server", "add", name, "--image", image, "--env", &identity]);
}

/// `mcpctl server pull SERVER` fails with exit 5, naming `image` and the registry's `answer`.
fn assert_pull_fails(daemon: &Daemon, server: &str, image: &str, answer: &str) {
    let pull = daemon.ctl(&["server", "pull", server]);
    let stderr = String::from_utf8_lossy(&pull.stderr);
    assert_eq!(pull.status.code(), Some(5), "{pull:?}");
    assert!(
        stderr.contains(&format!("cannot pull image {image}")) && stderr.contains(answer),
        "{stderr}"
    );
}

/// A fake service manager: a thread reads the daemon's `NOTIFY_SOCKET` messages as they come,
/// as systemd does (a full socket queue would block the daemon's sender).
struct Manager {
    messages: Arc<Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
    path: String,
}

impl Manager {
    fn bind() -> Manager {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let socket = UnixDatagram::bind(&path).unwrap();
        let messages = Arc::new(Mutex::new(Vec::new()));
        let received = Arc::clone(&messages);
        // The thread ends with the test binary; the socket's file goes with the directory.
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = socket.recv(&mut buf) {
                let message = String::from_utf8_lossy(&buf[..n]).into_owned();
                received.lock().unwrap().push(message);
            }
        });
        Manager {
            messages,
            path: path.display().to_string(),
            _dir: dir,
        }
    }

    /// Every message received so far.
    fn messages(&self) -> Vec<String> {
        self.messages.lock().unwrap().clone()
    }
}

/// Two servers of one profile on the same missing image, started concurrently by one listing:
/// one pull serves both, `server ls` and the daemon's `STATUS=` say how far it is, and the calls
/// work. The image has a layer of its own (16 MiB of random data), so the pull downloads it.
#[test]
fn a_missing_image_is_pulled_once_on_first_need() {
    if !require_docker() {
        return;
    }
    let registry = Registry::start();
    let image = format!("{}/fixture:first-need", registry.host());
    build_unique(fixture_image(), 16, &image);
    registry.push(&image, &image);
    assert!(
        !image_present(&image),
        "the push left {image} in the engine"
    );

    let manager = Manager::bind();
    // The pull count is read from the daemon's info lines, whatever RUST_LOG the test has.
    let daemon = Daemon::start_capturing_stderr(
        Start::Bound,
        &[("NOTIFY_SOCKET", &manager.path), ("RUST_LOG", "info")],
    );
    add_server(&daemon, "alpha", &image);
    add_server(&daemon, "beta", &image);
    let (tools, seen) = std::thread::scope(|scope| {
        let listing = scope.spawn(|| daemon.ctl_ok(&["tools", "ls"]));
        let mut seen = Vec::new();
        while !listing.is_finished() {
            let servers: serde_json::Value =
                serde_json::from_str(&daemon.ctl_ok(&["--json", "server", "ls"])).unwrap();
            seen.extend(
                servers["servers"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|server| !server["pulling"].is_null())
                    .map(|server| server["pulling"].clone()),
            );
        }
        (listing.join().unwrap(), seen)
    });
    assert!(
        seen.iter().any(|pull| pull["image"] == image.as_str()),
        "server ls never showed the pull: {seen:?}"
    );
    assert!(
        tools.contains("alpha__whoami") && tools.contains("beta__whoami"),
        "{tools}"
    );
    assert_eq!(
        daemon.ctl_ok(&["tools", "call", "beta__whoami"]).trim(),
        "beta"
    );
    assert!(image_present(&image), "{image} was not pulled");
    assert_eq!(daemon.containers().len(), 2);

    let log = daemon.log();
    let pulls = log.matches(&format!("pulling image {image}")).count();
    assert_eq!(pulls, 1, "concurrent first callers share one pull: {log}");
    assert!(log.contains(&format!("pulled image {image}")), "{log}");
    let statuses: Vec<String> = manager
        .messages()
        .into_iter()
        .filter_map(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("STATUS=").map(str::to_owned))
        })
        .collect();
    let pulling = statuses
        .iter()
        .position(|s| *s == format!("pulling {image}"))
        .unwrap_or_else(|| panic!("no pulling status in {statuses:?}"));
    let percent = |s: &String| {
        s.strip_prefix(&format!("pulling {image} "))
            .and_then(|rest| rest.strip_suffix('%'))
            .and_then(|n| n.parse::<u8>().ok())
    };
    let shares: Vec<u8> = statuses[pulling..].iter().filter_map(percent).collect();
    assert!(
        shares.len() >= 2 && shares.windows(2).all(|w| w[0] <= w[1]) && shares.last() == Some(&100),
        "the status shows the download growing to 100%: {statuses:?}"
    );
    assert!(
        statuses[pulling..]
            .iter()
            .any(|s| s.starts_with("ready; engine: ")),
        "the status goes back to ready after the pull: {statuses:?}"
    );

    // The next start of a present image pulls nothing.
    daemon.ctl_ok(&["server", "restart", "alpha"]);
    assert_eq!(
        daemon.ctl_ok(&["tools", "call", "alpha__whoami"]).trim(),
        "alpha"
    );
    assert_eq!(
        daemon
            .log()
            .matches(&format!("pulling image {image}"))
            .count(),
        1
    );
}

/// A tag the registry does not have, and a registry that does not answer: the call fails with the
/// image and the registry's answer (exit 6 from `mcpctl`, `-32603` over MCP), `server pull` with
/// exit 5, and no container is left.
#[test]
fn pull_failures_name_the_image_and_the_registry_answer() {
    if !require_docker() {
        return;
    }
    let registry = Registry::start();
    let missing = format!("{}/fixture:no-such-tag", registry.host());
    let daemon = Daemon::start(Start::Bound);
    add_server(&daemon, "ghost", &missing);

    let call = daemon.ctl(&["tools", "call", "echo", "text=x"]);
    let stderr = String::from_utf8_lossy(&call.stderr);
    assert_eq!(call.status.code(), Some(6), "{call:?}");
    assert!(
        stderr.contains(&format!("cannot pull image {missing}"))
            && stderr.contains("manifest unknown"),
        "{stderr}"
    );

    let mut client = daemon.raw_client(&[]);
    client.initialize("2025-11-25", json!({}));
    client.request(
        json!(7),
        "tools/call",
        json!({"name": "echo", "arguments": {"text": "x"}}),
    );
    let answer = client.response(&json!(7));
    assert_eq!(answer["error"]["code"], -32603, "{answer}");
    let message = answer["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(&missing) && message.contains("manifest unknown"),
        "{answer}"
    );
    client.close();

    assert_pull_fails(&daemon, "ghost", &missing, "manifest unknown");

    // Port 1 on loopback: nothing listens there.
    let unreachable = "127.0.0.1:1/fixture:any";
    add_server(&daemon, "far", unreachable);
    assert_pull_fails(&daemon, "far", unreachable, "connection refused");
    assert_eq!(
        daemon.ctl(&["server", "pull", "nope"]).status.code(),
        Some(3)
    );
    assert!(
        daemon.containers().is_empty(),
        "a failed pull left a container"
    );
}

/// An image pinned by digest is pulled by that digest and recorded under it; a digest the
/// registry does not have is an error naming the image and the registry's answer.
#[test]
fn images_pinned_by_digest_are_verified() {
    if !require_docker() {
        return;
    }
    let registry = Registry::start();
    let tagged = format!("{}/pinned:v1", registry.host());
    let digest = registry.push(fixture_image(), &tagged);
    let pinned = format!("{}/pinned@{digest}", registry.host());
    let daemon = Daemon::start(Start::Bound);
    add_server(&daemon, "pinned", &pinned);
    assert_eq!(daemon.ctl_ok(&["tools", "call", "whoami"]).trim(), "pinned");
    let digests = mcp_gateway_tests::docker_cli(&[
        "image",
        "inspect",
        "--format",
        "{{json .RepoDigests}}",
        &pinned,
    ]);
    assert!(digests.contains(&pinned), "{digests}");

    let other = format!("{}/pinned@sha256:{}", registry.host(), "0".repeat(64));
    add_server(&daemon, "wrong", &other);
    assert_pull_fails(&daemon, "wrong", &other, "manifest unknown");
}

/// `mcpctl server pull` fetches what the tag names now and prints its progress; the running
/// container keeps its image, and the next start uses the new one.
#[test]
fn server_pull_refreshes_the_image_for_the_next_start() {
    if !require_docker() {
        return;
    }
    let registry = Registry::start();
    let image = format!("{}/fresh:v", registry.host());
    build_named(fixture_image(), "first", &image);
    registry.push(&image, &image);
    let daemon = Daemon::start(Start::Bound);
    daemon.ctl_ok(&["server", "add", "fresh", "--image", &image]);
    assert_eq!(daemon.ctl_ok(&["tools", "call", "whoami"]).trim(), "first");

    // The same tag gets other content, pushed under the registry's other name so the engine's
    // copy under `image` stays the first.
    let alias = format!("{}/fresh:v", registry.alias());
    build_named(fixture_image(), "second", &alias);
    registry.push(&alias, &alias);
    daemon.ctl_ok(&["server", "restart", "fresh"]);
    assert_eq!(
        daemon.ctl_ok(&["tools", "call", "whoami"]).trim(),
        "first",
        "a present image is not pulled again on its own"
    );

    let pulled = daemon.ctl_ok(&["server", "pull", "fresh"]);
    assert!(
        pulled
            .lines()
            .any(|l| l.starts_with(&format!("pulling {image}"))),
        "{pulled}"
    );
    assert!(
        pulled
            .lines()
            .last()
            .is_some_and(|l| l.starts_with(&format!("pulled {image}"))),
        "{pulled}"
    );
    assert_eq!(
        daemon.ctl_ok(&["tools", "call", "whoami"]).trim(),
        "first",
        "the running container keeps its image"
    );
    daemon.ctl_ok(&["server", "restart", "fresh"]);
    assert_eq!(daemon.ctl_ok(&["tools", "call", "whoami"]).trim(), "second");

    let json = daemon.ctl_ok(&["--json", "server", "pull", "fresh"]);
    let last: serde_json::Value =
        serde_json::from_str(json.lines().last().unwrap_or_default()).unwrap();
    assert_eq!(last["type"], "done", "{json}");
}
