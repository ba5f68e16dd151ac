//! The daemon's life under systemd: stopped with SIGTERM while a client waits for an answer. A
//! client killed while it waits for one, with its shim or without it.

use std::io::{BufRead, BufReader, Write};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use mcp_gateway_tests::{Daemon, Start, require_docker, wait_for};
use serde_json::json;

/// `Settings::drain_timeout`: how long sessions get at shutdown before they are cut.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// SIGTERM (what `systemctl --user stop` sends) during a `tools/call`: the client gets an error
/// saying the gateway is shutting down, not silence; the daemon exits 0 within the drain
/// timeout; no container is left.
#[test]
fn sigterm_during_a_call_answers_the_client_and_leaves_nothing_behind() {
    if !require_docker() {
        return;
    }
    let mut daemon = Daemon::start(Start::SocketActivated);
    daemon.add_fixture("slow");
    let steps = json!([
        {"op": "call_tool", "name": "sleep", "arguments": {"ms": 4000}},
    ]);
    let client = daemon.python_client(&steps, &["--client", "lifecycle"]);
    // The session's `initialize` starts the container and the call waits for that start, so a
    // moment after the container exists the call is in flight.
    wait_for(Duration::from_secs(30), || !daemon.containers().is_empty());
    std::thread::sleep(Duration::from_millis(500));

    let sent = Instant::now();
    let (done, stopped) = mpsc::channel();
    let stopper = std::thread::spawn(move || {
        let clean = daemon.stop();
        let _ = done.send(clean);
        daemon
    });
    let clean = stopped
        .recv_timeout(DRAIN_TIMEOUT)
        .unwrap_or_else(|_| panic!("the daemon did not exit within {DRAIN_TIMEOUT:?} of SIGTERM"));
    let elapsed = sent.elapsed();
    let daemon = stopper.join().unwrap();
    assert!(clean, "the daemon exits 0 on SIGTERM");

    let output = client.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the client did not finish its run: {stderr}"
    );
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let result = &report["steps"][0];
    assert_eq!(result["error"]["code"], -32603, "{result}");
    assert!(
        result["error"]["message"]
            .as_str()
            .is_some_and(|message| message.contains("shutting down")),
        "the call did not learn why it ended: {result}"
    );
    eprintln!("SIGTERM during a call: exit after {elapsed:?}, the client got {result}");

    wait_for(Duration::from_secs(10), || daemon.containers().is_empty());
}

/// A client killed during a call (SIGKILL: its end of the socket closes both ways at once, with
/// no clean end of input first): the server hears `notifications/cancelled` for the call right
/// away, not at the request timeout, and the session is gone from `mcpctl status`. The hostile
/// fixture's `silent` tool never answers and reports each cancellation on stderr.
#[test]
fn a_client_killed_mid_call_has_its_call_cancelled_upstream() {
    if !require_docker() {
        return;
    }
    let daemon = Daemon::start(Start::Bound);
    daemon.add_fixture_with_env("quiet", &["MCP_FIXTURE_HOSTILE=1"]);
    let logs = || daemon.ctl_ok(&["server", "logs", "quiet"]);
    let mut client = daemon.raw_client(&["--client", "doomed"]);
    client.initialize("2025-11-25", json!({}));
    client.request(
        json!(1),
        "tools/call",
        json!({"name": "silent", "arguments": {}}),
    );
    wait_for(Duration::from_secs(60), || logs().contains("silent "));
    assert_eq!(daemon.sessions(), 1);
    assert!(!logs().contains("cancelled"), "{}", logs());

    drop(client);
    let killed = Instant::now();
    // Well inside the 120 s request timeout, which is what used to end such a call.
    wait_for(Duration::from_secs(20), || logs().contains("cancelled "));
    eprintln!(
        "the server heard the cancellation {:?} after the client was killed",
        killed.elapsed()
    );
    wait_for(Duration::from_secs(20), || daemon.sessions() == 0);
}

/// A client that dies while the shim it started lives on (its pipes close; the shim, having
/// handed them to the daemon, holds none): the daemon notices on the stdout it was given, so the
/// server hears the cancellation at once, the session ends, and the shim exits cleanly.
#[test]
fn a_client_gone_while_its_shim_lives_has_its_call_cancelled_upstream() {
    if !require_docker() {
        return;
    }
    let daemon = Daemon::start(Start::Bound);
    daemon.add_fixture_with_env("quiet", &["MCP_FIXTURE_HOSTILE=1"]);
    let logs = || daemon.ctl_ok(&["server", "logs", "quiet"]);
    let mut shim = daemon.shim(&[]);
    let mut stdin = shim.stdin.take().unwrap();
    let mut stdout = BufReader::new(shim.stdout.take().unwrap());
    for line in [
        r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"gone","version":"0"}}}"#,
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"silent","arguments":{}}}"#,
    ] {
        writeln!(stdin, "{line}").unwrap();
    }
    let mut answer = String::new();
    stdout.read_line(&mut answer).unwrap();
    assert!(answer.contains(r#""id":0"#), "{answer}");
    wait_for(Duration::from_secs(60), || logs().contains("silent "));
    assert!(!logs().contains("cancelled"), "{}", logs());

    drop((stdin, stdout));
    wait_for(Duration::from_secs(20), || logs().contains("cancelled "));
    wait_for(Duration::from_secs(20), || daemon.sessions() == 0);
    wait_for(Duration::from_secs(20), || {
        shim.try_wait()
            .unwrap()
            .is_some_and(|status| status.success())
    });
}
