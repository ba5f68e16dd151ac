//! Wire-level behaviour that needs no container: the hello, bad input on an MCP session, and a
//! daemon whose engine is unreachable. Raw JSON lines go through the real `mcp-shim`.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use mcp_gateway_tests::{Daemon, Start, bin};
use serde_json::{Value, json};

/// Sends `lines` through `mcp-shim` and returns every line the daemon answered with.
fn exchange(daemon: &Daemon, lines: &[&str]) -> Vec<Value> {
    let mut shim = Command::new(bin("mcp-shim"))
        .envs(daemon.env())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = shim.stdin.take().unwrap();
    for line in lines {
        stdin.write_all(line.as_bytes()).unwrap();
        stdin.write_all(b"\n").unwrap();
    }
    drop(stdin);
    let answers = BufReader::new(shim.stdout.take().unwrap())
        .lines()
        .map(|line| serde_json::from_str(&line.unwrap()).unwrap())
        .collect();
    assert!(shim.wait().unwrap().success());
    answers
}

fn no_engine() -> Daemon {
    Daemon::start_with_env(
        Start::SocketActivated,
        &[("DOCKER_HOST", "unix:///nonexistent/docker.sock")],
    )
}

#[test]
fn bad_lines_get_json_rpc_errors_and_the_session_goes_on() {
    let daemon = no_engine();
    let answers = exchange(
        &daemon,
        &[
            "this is not json",
            r#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#,
            r#"{"jsonrpc":"2.0","id":2,"method":"no/such/method"}"#,
            r#"{"jsonrpc":"2.0","id":"three"}"#,
            r#"{"jsonrpc":"2.0","id":4,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"0"}}}"#,
            r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
            r#"{"jsonrpc":"2.0","id":5,"method":"ping"}"#,
            r#"{"jsonrpc":"2.0","id":6,"method":"tools/list"}"#,
        ],
    );
    let by_id = |id: Value| {
        answers
            .iter()
            .find(|a| a["id"] == id)
            .unwrap_or_else(|| panic!("no answer for {id} in {answers:?}"))
    };
    let code = |answer: &Value| answer["error"]["code"].as_i64();
    assert!(
        answers
            .iter()
            .any(|a| a["id"].is_null() && code(a) == Some(-32700)),
        "{answers:?}"
    );
    assert!(
        answers
            .iter()
            .any(|a| a["id"].is_null() && code(a) == Some(-32600)),
        "{answers:?}"
    );
    assert_eq!(code(by_id(json!(2))), Some(-32601));
    assert_eq!(code(by_id(json!("three"))), Some(-32600));
    assert_eq!(by_id(json!(4))["result"]["protocolVersion"], "2025-06-18");
    assert_eq!(by_id(json!(5))["result"], json!({}));
    // The implicit default profile is empty: no server, so no container is needed to list it.
    assert_eq!(by_id(json!(6))["result"], json!({"tools": []}));
    assert_eq!(
        answers.len(),
        7,
        "every line but the notification is answered"
    );
}

#[test]
fn without_an_engine_the_daemon_still_answers_and_fails_calls_clearly() {
    let daemon = no_engine();
    let status = daemon.ctl_ok(&["status"]);
    assert!(
        status.contains("engine:          unreachable: "),
        "{status}"
    );
    daemon.ctl_ok(&[
        "server",
        "add",
        "alpha",
        "--image",
        "mcp-gateway-fixture:test",
    ]);
    let call = daemon.ctl(&["tools", "call", "echo", "text=x"]);
    assert_eq!(call.status.code(), Some(6), "{call:?}");
    assert!(
        String::from_utf8_lossy(&call.stderr).contains("unreachable"),
        "{call:?}"
    );
    let answers = exchange(
        &daemon,
        &[
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{}}}"#,
        ],
    );
    assert_eq!(answers[0]["error"]["code"], -32603, "{answers:?}");
    let message = answers[0]["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("alpha: container engine unreachable"),
        "{answers:?}"
    );
}

#[test]
fn a_session_for_an_unknown_profile_is_refused_with_a_message() {
    let daemon = no_engine();
    let output = Command::new(bin("mcp-shim"))
        .args(["--profile", "nope"])
        .envs(daemon.env())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(76));
    assert!(String::from_utf8_lossy(&output.stderr).contains("no profile named \"nope\""));
    assert!(
        output.stdout.is_empty(),
        "the shim writes nothing to stdout on its own"
    );
}
