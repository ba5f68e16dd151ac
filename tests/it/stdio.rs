//! How a container server's stdio reaches the daemon: over the daemon's socket through the
//! launcher by default, over the engine's attach stream when asked or when the launcher is
//! unusable; calls work the same either way.

use std::process::Command;

use mcp_gateway_tests::{Daemon, Start, bin, first_text, require_docker, static_launcher};
use serde_json::{Value, json};

/// Calls the fixture server `alpha`'s echo through the Python SDK and checks the answer.
fn echo_through(daemon: &Daemon) {
    let steps = json!([
        {"op": "call_tool", "name": "echo", "arguments": {"text": "which way"}},
    ]);
    let report = daemon.python_run(&steps, &[]);
    assert_eq!(first_text(&report["steps"][0]), "which way", "{report}");
}

/// Checks that the daemon's log and `mcpctl status` both say servers' stdio goes over `road`.
fn says_road(daemon: &Daemon, road: &str) {
    let said = format!("servers' stdio over {road}");
    let log = daemon.log();
    assert!(log.contains(&said), "{log}");
    let status = daemon.ctl_ok(&["status"]);
    assert!(status.contains(&format!("; {said}")), "{status}");
}

/// The program the daemon's one container runs and its arguments, as the engine reports them.
fn container_command(daemon: &Daemon) -> (String, Vec<String>) {
    let containers = daemon.containers();
    assert_eq!(containers.len(), 1, "{containers:?}");
    let output = Command::new("docker")
        .args(["inspect", "--format", "{{json .Path}} {{json .Args}}"])
        .arg(&containers[0])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    let (path, args) = text.trim().split_once(' ').expect("path and args");
    let args: Value = serde_json::from_str(args).unwrap();
    let args = args.as_array().unwrap().iter();
    (
        serde_json::from_str(path).unwrap(),
        args.map(|a| a.as_str().unwrap().to_owned()).collect(),
    )
}

#[test]
fn a_servers_stdio_goes_over_the_launchers_socket() {
    if !require_docker() {
        return;
    }
    assert!(
        static_launcher().exists(),
        "{} is missing: build it with bash launcher/build-static.sh",
        static_launcher().display()
    );
    let daemon = Daemon::start_capturing_stderr(Start::SocketActivated, &[]);
    daemon.add_fixture("alpha");
    echo_through(&daemon);

    assert_eq!(
        container_command(&daemon),
        (
            "/.mcp-gateway/launcher".to_owned(),
            vec![
                "/.mcp-gateway/stdio.sock".to_owned(),
                "/mcp-fixture".to_owned()
            ]
        )
    );
    says_road(&daemon, "the daemon's sockets");
    // The launcher connected rather than falling back, and stderr still reaches the server's log
    // over the attach stream.
    let server_log = daemon.ctl_ok(&["server", "logs", "alpha"]);
    assert!(server_log.contains("alpha ready"), "{server_log}");
    assert!(!server_log.contains("mcp-launcher"), "{server_log}");
    // Each socket's file is gone once its launcher connected.
    let runtime = daemon.dir.path().join("run");
    let sockets: Vec<_> = std::fs::read_dir(&runtime)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.to_string_lossy().contains("mcp-gateway-stdio."))
        .collect();
    assert_eq!(sockets.len(), 1, "{sockets:?}");
    assert_eq!(std::fs::read_dir(&sockets[0]).unwrap().count(), 0);
}

#[test]
fn with_server_stdio_attach_calls_go_over_the_attach_stream() {
    if !require_docker() {
        return;
    }
    let daemon = Daemon::start_capturing_stderr(
        Start::SocketActivated,
        &[("MCP_GATEWAY_SERVER_STDIO", "attach")],
    );
    daemon.add_fixture("alpha");
    echo_through(&daemon);
    assert_eq!(
        container_command(&daemon),
        ("/mcp-fixture".to_owned(), vec![])
    );
    says_road(&daemon, "the attach stream");
}

/// The workspace's own build of the launcher links the host's libc, which most images lack: the
/// daemon says so and keeps to the attach stream rather than start containers that cannot run.
#[test]
fn a_dynamically_linked_launcher_leaves_stdio_on_the_attach_stream() {
    if !require_docker() {
        return;
    }
    let dynamic = bin("mcp-launcher");
    let daemon = Daemon::start_capturing_stderr(
        Start::SocketActivated,
        &[("MCP_GATEWAY_LAUNCHER", dynamic.to_str().unwrap())],
    );
    daemon.add_fixture("alpha");
    echo_through(&daemon);
    assert_eq!(container_command(&daemon).0, "/mcp-fixture");
    let log = daemon.log();
    assert!(
        log.contains(&format!(
            "servers' stdio goes over the engine's attach stream: {} is not a statically linked",
            dynamic.display()
        )),
        "{log}"
    );
}
