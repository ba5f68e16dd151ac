//! Scenarios that start containers: the walking skeleton's promises, from socket activation to
//! cleanup.

use std::time::Duration;

use mcp_gateway_tests::{
    Daemon, Start, client_report, first_text, fixture_image, require_docker, wait_for,
};
use serde_json::{Value, json};

fn tool_names(report: &Value, step: usize) -> Vec<String> {
    report["steps"][step]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("no tools in {report}"))
        .iter()
        .map(|tool| tool["name"].as_str().unwrap().to_owned())
        .collect()
}

fn call(name: &str, arguments: Value) -> Value {
    json!({"op": "call_tool", "name": name, "arguments": arguments})
}

/// Two fixture servers in the active profile, reached through a socket-activated daemon by the
/// Python SDK over mcp-shim: one merged list with colliding names prefixed, calls routed to the
/// right container, and two concurrent clients each getting their own answers.
#[test]
fn python_clients_see_one_server_made_of_two_containers() {
    if !require_docker() {
        return;
    }
    let mut daemon = Daemon::start(Start::SocketActivated);
    daemon.add_fixture("alpha");
    daemon.add_fixture("beta");
    daemon.ctl_ok(&[
        "profile", "create", "duo", "--server", "alpha", "--server", "beta",
    ]);
    daemon.ctl_ok(&["profile", "use", "duo"]);

    let steps = json!([
        {"op": "list_tools"},
        call("alpha__whoami", json!({})),
        call("beta__whoami", json!({})),
        call("alpha_info", json!({})),
        call("beta__echo", json!({"text": "hello through the gateway"})),
        call("beta__add", json!({"a": 2, "b": 40})),
        {"op": "ping"},
    ]);
    let report = daemon.python_run(&steps, &[]);
    assert_eq!(report["initialize"]["serverInfo"]["name"], "mcp-gateway");
    let names = tool_names(&report, 0);
    for expected in [
        "alpha__echo",
        "alpha__whoami",
        "alpha_info",
        "beta__echo",
        "beta__whoami",
        "beta_info",
    ] {
        assert!(
            names.contains(&expected.to_owned()),
            "{expected} missing from {names:?}"
        );
    }
    assert!(
        !names.contains(&"echo".to_owned()),
        "colliding names must be prefixed: {names:?}"
    );
    assert_eq!(first_text(&report["steps"][1]), "alpha");
    assert_eq!(first_text(&report["steps"][2]), "beta");
    assert_eq!(first_text(&report["steps"][3]), r#"{"server":"alpha"}"#);
    assert_eq!(first_text(&report["steps"][4]), "hello through the gateway");
    assert_eq!(
        report["steps"][5]["structuredContent"],
        json!({"sum": 42}),
        "{}",
        report["steps"][5]
    );
    assert!(
        report["steps"][6].get("error").is_none(),
        "ping failed: {}",
        report["steps"][6]
    );
    assert_eq!(
        daemon.containers().len(),
        2,
        "one shared container per server"
    );

    // Two clients at once on the same shared containers, each with overlapping slow calls.
    let clients: Vec<_> = ["one", "two"]
        .iter()
        .map(|who| {
            let steps = json!([{"op": "concurrent", "steps": [
                call("alpha__sleep", json!({"ms": 300})),
                call("alpha__echo", json!({"text": format!("{who}-a")})),
                call("beta__echo", json!({"text": format!("{who}-b")})),
            ]}]);
            (who, daemon.python_client(&steps, &["--client", who]))
        })
        .collect();
    for (who, child) in clients {
        let report = client_report(child);
        let results = &report["steps"][0];
        assert_eq!(first_text(&results[0]), "slept 300");
        assert_eq!(first_text(&results[1]), format!("{who}-a"));
        assert_eq!(first_text(&results[2]), format!("{who}-b"));
    }
    assert_eq!(
        daemon.containers().len(),
        2,
        "sessions share the containers"
    );

    assert!(daemon.stop(), "the daemon exits cleanly on SIGTERM");
    assert_eq!(
        daemon.containers(),
        Vec::<String>::new(),
        "no container survives the daemon"
    );
}

/// The CLI contract of the walking skeleton, against a running daemon.
#[test]
fn mcpctl_manages_servers_profiles_and_tools() {
    if !require_docker() {
        return;
    }
    let daemon = Daemon::start(Start::Bound);
    assert!(
        daemon
            .ctl_ok(&["status"])
            .contains("active profile:  default")
    );
    daemon.add_fixture("alpha");
    assert!(daemon.ctl_ok(&["server", "ls"]).contains(fixture_image()));

    // The implicit default profile holds every catalog server.
    assert!(
        daemon
            .ctl_ok(&["profile", "show", "default"])
            .contains("servers:  alpha")
    );
    let tools = daemon.ctl_ok(&["tools", "ls"]);
    assert!(tools.lines().any(|l| l.starts_with("echo ")), "{tools}");
    assert_eq!(
        daemon
            .ctl_ok(&["tools", "call", "echo", "text=hi there"])
            .trim(),
        "hi there"
    );
    assert_eq!(
        daemon
            .ctl_ok(&["tools", "call", "add", "a=1", "b=2"])
            .lines()
            .next(),
        Some("3")
    );

    daemon.ctl_ok(&["profile", "create", "solo", "--server", "alpha"]);
    daemon.ctl_ok(&["profile", "use", "solo"]);
    let profiles = daemon.ctl_ok(&["profile", "ls"]);
    assert!(
        profiles.lines().any(|l| l.starts_with("* solo")),
        "{profiles}"
    );
    let listed: Value =
        serde_json::from_str(&daemon.ctl_ok(&["--json", "tools", "ls", "--profile", "solo"]))
            .unwrap();
    assert_eq!(listed["profile"], "solo");
    let servers = daemon.ctl_ok(&["server", "ls"]);
    assert!(
        servers
            .lines()
            .any(|l| l.trim_start().starts_with("solo") && l.contains("running")),
        "{servers}"
    );
    let status = daemon.ctl_ok(&["status"]);
    assert!(
        status.contains("active profile:  solo") && status.contains("containers:      "),
        "{status}"
    );

    // Errors: unknown names are exit 3, invalid configuration exit 4, each with a message.
    let missing = daemon.ctl(&["profile", "use", "nope"]);
    assert_eq!(missing.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("nope"));
    let invalid = daemon.ctl(&["profile", "create", "bad", "--server", "ghost"]);
    assert_eq!(invalid.status.code(), Some(4));
    assert_eq!(
        daemon.ctl(&["tools", "call", "no_such_tool"]).status.code(),
        Some(3)
    );

    // A server that dies mid-call fails that call at once (exit 6, naming the server), and a
    // call after the first backoff (1 s; see pool.rs) gets a fresh container in its place.
    let before = daemon.containers().len();
    let crash = daemon.ctl(&["tools", "call", "crash"]);
    assert_eq!(crash.status.code(), Some(6), "{crash:?}");
    assert!(
        String::from_utf8_lossy(&crash.stderr).contains("server \"alpha\" exited"),
        "{crash:?}"
    );
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(daemon.ctl_ok(&["tools", "call", "whoami"]).trim(), "alpha");
    wait_for(Duration::from_secs(10), || {
        daemon.containers().len() == before
    });
}

/// Containers of an earlier daemon of the same scope are removed at start; containers of a daemon
/// killed with SIGKILL do not outlive it.
#[test]
fn leftover_containers_are_reconciled() {
    if !require_docker() {
        return;
    }
    let mut daemon = Daemon::start(Start::Bound);
    daemon.add_fixture("alpha");
    daemon.ctl_ok(&["tools", "ls"]);
    assert_eq!(daemon.containers().len(), 1);
    daemon.kill();
    // The engine closes the dead daemon's attach streams; the server sees end of input and exits,
    // and the container removes itself.
    wait_for(Duration::from_secs(20), || daemon.containers().is_empty());

    // A labelled container that did not go away (say, the engine kept it) is removed at start.
    let scope = format!("io.mcp-gateway.scope={}", daemon.socket.display());
    let uid = nix::unistd::geteuid().as_raw().to_string();
    let run = std::process::Command::new("docker")
        .args([
            "run",
            "-d",
            "-i",
            "--network",
            "none",
            "--label",
            "io.mcp-gateway.managed=true",
        ])
        .args([
            "--label",
            &format!("io.mcp-gateway.uid={uid}"),
            "--label",
            &scope,
        ])
        .args([
            "--label",
            "io.mcp-gateway.instance=crashed",
            fixture_image(),
        ])
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(daemon.containers().len(), 1);
    daemon.relaunch(Start::Bound);
    wait_for(Duration::from_secs(20), || daemon.containers().is_empty());
}

/// `DOCKER_HOST` names the engine: here the real socket under another path (a symbolic link in
/// the test's directory). With `DOCKER_HOST` pointing nowhere the engine is unreachable
/// (`wire.rs`), so reaching it here is the variable at work.
#[test]
fn docker_host_names_the_engine_socket() {
    if !require_docker() {
        return;
    }
    let real = std::env::var("DOCKER_HOST")
        .ok()
        .and_then(|host| host.strip_prefix("unix://").map(str::to_owned))
        .unwrap_or_else(|| "/var/run/docker.sock".to_owned());
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("engine.sock");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let host = format!("unix://{}", link.display());
    let daemon = Daemon::start_with_env(Start::Bound, &[("DOCKER_HOST", &host)]);
    let status = daemon.ctl_ok(&["status"]);
    assert!(
        status.contains("engine:          ") && !status.contains("unreachable"),
        "{status}"
    );
    daemon.add_fixture("alpha");
    assert_eq!(daemon.ctl_ok(&["tools", "call", "whoami"]).trim(), "alpha");
    assert_eq!(daemon.containers().len(), 1);
}
