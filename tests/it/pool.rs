//! The container pool against a real engine (issue 9): a crashing server restarted after a
//! backoff, a server failing at start reported with its stderr, limits, network and mounts as
//! `docker inspect` shows them, refused mounts, and idle containers removed.

use std::process::Command;
use std::time::{Duration, Instant};

use mcp_gateway_tests::{Daemon, Start, fixture_image, require_docker, wait_for};
use serde_json::Value;

/// The pool's view of `server`'s container in the default profile.
fn container(daemon: &Daemon, server: &str) -> Value {
    let entry = daemon.server_entry(server);
    entry["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["profile"] == "default")
        .unwrap_or_else(|| panic!("no default-profile container in {entry}"))
        .clone()
}

fn inspect(id: &str) -> Value {
    let output = Command::new("docker")
        .args(["inspect", id])
        .output()
        .expect("docker inspect");
    assert!(output.status.success(), "docker inspect {id} failed");
    serde_json::from_slice::<Value>(&output.stdout).unwrap()[0].clone()
}

/// Processes inside a container, as the engine lists them.
fn processes(id: &str) -> usize {
    let output = Command::new("docker")
        .args(["top", id])
        .output()
        .expect("docker top");
    assert!(output.status.success(), "docker top {id} failed");
    // The first line is the header.
    String::from_utf8_lossy(&output.stdout).lines().count() - 1
}

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn a_crashing_server_is_restarted_after_a_backoff() {
    if !require_docker() {
        return;
    }
    let daemon = Daemon::start(Start::Bound);
    daemon.add_fixture("alpha");
    assert!(daemon.containers().is_empty());
    daemon.ctl_ok(&["tools", "call", "echo", "text=before"]);
    let first = container(&daemon, "alpha");
    assert_eq!(first["state"], "running", "{first}");
    let first_id = first["id"].as_str().unwrap().to_owned();
    assert_eq!(daemon.containers(), std::slice::from_ref(&first_id));
    let processes_before = processes(&first_id);

    // The call in flight when the server dies fails at once, not after the request timeout.
    let started = Instant::now();
    let crash = daemon.ctl(&["tools", "call", "crash"]);
    assert_eq!(crash.status.code(), Some(6), "{}", stderr(&crash));
    assert!(started.elapsed() < Duration::from_secs(10));

    // During the backoff a call fails at once, saying when the server starts again and why.
    let refused = daemon.ctl(&["tools", "call", "echo", "text=during"]);
    assert_eq!(refused.status.code(), Some(6), "{}", stderr(&refused));
    let message = stderr(&refused);
    assert!(
        message.contains("will be started again in") && message.contains("exited"),
        "{message}"
    );
    wait_for(Duration::from_secs(5), || {
        container(&daemon, "alpha")["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("exited with status 3"))
    });
    let backoff = container(&daemon, "alpha");
    assert!(
        backoff["state"] == "backoff" || backoff["state"] == "stopped",
        "{backoff}"
    );
    assert!(daemon.containers().len() <= 1);

    // After the backoff (1 s for a first failure) the next call starts a new container.
    std::thread::sleep(Duration::from_millis(1200));
    let echoed = daemon.ctl_ok(&["tools", "call", "echo", "text=after"]);
    assert!(echoed.contains("after"), "{echoed}");
    let second = container(&daemon, "alpha");
    assert_eq!(second["state"], "running", "{second}");
    assert_eq!(second["restarts"], 1, "{second}");
    let second_id = second["id"].as_str().unwrap().to_owned();
    assert_ne!(second_id, first_id);
    wait_for(Duration::from_secs(10), || {
        daemon.containers() == [second_id.clone()]
    });
    assert_eq!(processes(&second_id), processes_before);
}

#[test]
fn a_server_failing_at_start_is_reported_with_its_stderr() {
    if !require_docker() {
        return;
    }
    let daemon = Daemon::start(Start::Bound);
    daemon.add_fixture_with_env("broken", &["MCP_FIXTURE_PAGE_SIZE=lots"]);
    let call = daemon.ctl(&["tools", "call", "echo", "text=x"]);
    assert_eq!(call.status.code(), Some(6), "{}", stderr(&call));
    assert!(stderr(&call).contains("mcp-fixture:"), "{}", stderr(&call));

    let broken = container(&daemon, "broken");
    assert_eq!(broken["state"], "backoff", "{broken}");
    assert!(broken["retry_in_secs"].as_u64().is_some(), "{broken}");
    let error = broken["last_error"].as_str().unwrap();
    assert!(
        error.contains("mcp-fixture:") && error.contains("MCP_FIXTURE_PAGE_SIZE"),
        "{error}"
    );
    let text = daemon.ctl_ok(&["server", "ls"]);
    assert!(
        text.contains("backoff") && text.contains("mcp-fixture:"),
        "{text}"
    );
    wait_for(Duration::from_secs(10), || daemon.containers().is_empty());
}

#[test]
fn limits_network_and_mounts_reach_the_engine_and_dangerous_mounts_are_refused() {
    if !require_docker() {
        return;
    }
    let mut daemon = Daemon::start(Start::Bound);
    daemon.stop();
    let config = daemon.dir.path().join("config/mcp-gateway");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(
        config.join("config.toml"),
        "[defaults]\nmemory = \"128m\"\npids = 100\n",
    )
    .unwrap();
    daemon.relaunch(Start::Bound);

    let data = daemon.dir.path().join("data");
    let scratch = daemon.dir.path().join("scratch");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::create_dir_all(&scratch).unwrap();
    let read_only = format!("{}:/data", data.display());
    let writable = format!("{}:/scratch:rw", scratch.display());
    daemon.ctl_ok(&[
        "server",
        "add",
        "alpha",
        "--image",
        fixture_image(),
        "--env",
        "MCP_FIXTURE_NAME=alpha",
        "--memory",
        "300m",
        "--cpus",
        "0.5",
        "--pids",
        "64",
        "--mount",
        &read_only,
        "--mount",
        &writable,
    ]);
    daemon.ctl_ok(&[
        "server",
        "add",
        "beta",
        "--image",
        fixture_image(),
        "--env",
        "MCP_FIXTURE_NAME=beta",
        "--network",
    ]);
    daemon.ctl_ok(&["tools", "call", "alpha__whoami"]);
    daemon.ctl_ok(&["tools", "call", "beta__whoami"]);

    let alpha = inspect(container(&daemon, "alpha")["id"].as_str().unwrap());
    let host = &alpha["HostConfig"];
    assert_eq!(host["Memory"], 300 << 20, "{host}");
    assert_eq!(host["NanoCpus"], 500_000_000_i64, "{host}");
    assert_eq!(host["PidsLimit"], 64, "{host}");
    assert_eq!(host["NetworkMode"], "none", "{host}");
    assert_eq!(host["CapDrop"], serde_json::json!(["ALL"]), "{host}");
    assert_eq!(
        host["SecurityOpt"],
        serde_json::json!(["no-new-privileges"]),
        "{host}"
    );
    assert_eq!(host["Init"], true, "{host}");
    let mounts = alpha["Mounts"].as_array().unwrap();
    let rw = |target: &str| {
        mounts
            .iter()
            .find(|m| m["Destination"] == target)
            .unwrap_or_else(|| panic!("{target} not mounted: {mounts:?}"))["RW"]
            .clone()
    };
    assert_eq!(rw("/data"), false);
    assert_eq!(rw("/scratch"), true);

    // beta takes config.toml's defaults and the engine's default network.
    let beta = inspect(container(&daemon, "beta")["id"].as_str().unwrap());
    let host = &beta["HostConfig"];
    assert_eq!(host["Memory"], 128 << 20, "{host}");
    assert_eq!(host["PidsLimit"], 100, "{host}");
    assert_eq!(host["NanoCpus"], 1_000_000_000_i64, "{host}");
    assert_ne!(host["NetworkMode"], "none", "{host}");
    assert_eq!(host["CapDrop"], serde_json::json!(["ALL"]), "{host}");

    let shown = daemon.server_entry("alpha");
    assert_eq!(shown["run"]["memory"], "300m", "{shown}");
    assert_eq!(shown["run"]["mounts"][1]["writable"], true, "{shown}");

    // Dangerous mounts are refused as invalid configuration, and nothing is written.
    let home = daemon.dir.path().join("home");
    std::fs::create_dir_all(home.join(".ssh")).unwrap();
    for (mount, reason) in [
        ("/:/host".to_owned(), "root of the file system"),
        (format!("{}:/home", home.display()), "home directory"),
        (
            format!("{}/.ssh:/keys", home.display()),
            "credential folder",
        ),
        (
            format!("{}/.aws/credentials:/c", home.display()),
            "credential folder",
        ),
        (
            "/var/run/docker.sock:/var/run/docker.sock".to_owned(),
            "engine's socket",
        ),
        ("/run:/run".to_owned(), "engine's socket"),
    ] {
        let refused = daemon.ctl(&[
            "server",
            "add",
            "evil",
            "--image",
            fixture_image(),
            "--mount",
            &mount,
        ]);
        assert_eq!(
            refused.status.code(),
            Some(4),
            "{mount}: {}",
            stderr(&refused)
        );
        assert!(
            stderr(&refused).contains(reason),
            "{mount}: {}",
            stderr(&refused)
        );
    }
    let bad_network = daemon.ctl(&[
        "server",
        "add",
        "evil",
        "--image",
        fixture_image(),
        "--network",
        "host",
    ]);
    assert_eq!(
        bad_network.status.code(),
        Some(4),
        "{}",
        stderr(&bad_network)
    );
    let servers: Value = serde_json::from_str(&daemon.ctl_ok(&["--json", "server", "ls"])).unwrap();
    assert_eq!(servers["servers"].as_array().unwrap().len(), 2, "{servers}");
    assert_eq!(daemon.containers().len(), 2);
}

#[test]
fn idle_containers_are_removed_and_started_again_on_need() {
    if !require_docker() {
        return;
    }
    let mut daemon = Daemon::start(Start::Bound);
    daemon.stop();
    let config = daemon.dir.path().join("config/mcp-gateway");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(config.join("config.toml"), "[defaults]\nidle_timeout = 2\n").unwrap();
    daemon.relaunch(Start::Bound);
    daemon.add_fixture("alpha");
    daemon.ctl_ok(&[
        "server",
        "add",
        "keeper",
        "--image",
        fixture_image(),
        "--env",
        "MCP_FIXTURE_NAME=keeper",
        "--idle-timeout",
        "0",
    ]);
    daemon.ctl_ok(&["tools", "call", "alpha__whoami"]);
    daemon.ctl_ok(&["tools", "call", "keeper__whoami"]);
    assert_eq!(daemon.containers().len(), 2);
    let keeper = container(&daemon, "keeper")["id"].clone();

    // alpha (the default 2 s) goes; keeper (0: never) stays.
    wait_for(Duration::from_secs(15), || daemon.containers().len() == 1);
    let alpha = container(&daemon, "alpha");
    assert_eq!(alpha["state"], "stopped", "{alpha}");
    assert!(alpha["last_error"].is_null(), "{alpha}");
    assert_eq!(container(&daemon, "keeper")["id"], keeper);

    let answer = daemon.ctl_ok(&["tools", "call", "alpha__whoami"]);
    assert!(answer.contains("alpha"), "{answer}");
    assert_eq!(container(&daemon, "alpha")["state"], "running");
    assert_eq!(daemon.containers().len(), 2);
}
