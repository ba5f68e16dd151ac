//! Wire-level behaviour that needs no container: the hello, the shim handing its stdio over or
//! relaying it, bad input on an MCP session, and a daemon whose engine is unreachable. Raw JSON
//! lines go through the real `mcp-shim`.

use std::io::{BufRead, BufReader, Write};
use std::process::Command;
use std::time::Duration;

use mcp_gateway_tests::{Daemon, Start, bin, first_text, require_docker, wait_for};
use serde_json::{Value, json};

/// Sends `lines` through `mcp-shim` and returns every line the daemon answered with.
fn exchange(daemon: &Daemon, lines: &[&str]) -> Vec<Value> {
    let mut shim = daemon.shim(&[]);
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

/// What the shim's descriptor `fd` refers to, as `/proc` shows it (`pipe:[...]`, `/dev/null`).
fn descriptor(pid: u32, fd: u32) -> String {
    let target = std::fs::read_link(format!("/proc/{pid}/fd/{fd}")).unwrap();
    target.display().to_string()
}

/// A client on pipes (as every AI client starts its servers) gets its stdin and stdout handed to
/// the daemon: the shim is left holding `/dev/null`. With `--relay` the shim keeps its pipes and
/// copies. Either way the session is the same to the client, and ends cleanly when it closes
/// its input.
#[test]
fn a_piped_client_hands_its_stdio_over_and_a_relayed_one_is_answered_alike() {
    let daemon = no_engine();
    for (args, handed_over) in [(&[][..], true), (&["--relay"][..], false)] {
        let mut client = daemon.raw_client(args);
        let init = client.initialize("2025-11-25", json!({}));
        assert_eq!(init["protocolVersion"], "2025-11-25", "{args:?}");
        client.request(json!(1), "ping", json!({}));
        assert_eq!(client.response(&json!(1))["result"], json!({}), "{args:?}");
        let pid = client.pid();
        if handed_over {
            // The shim releases its copies right after sending them.
            wait_for(Duration::from_secs(10), || {
                (0..2).all(|fd| descriptor(pid, fd) == "/dev/null")
            });
        } else {
            for fd in [0, 1] {
                let target = descriptor(pid, fd);
                assert!(
                    target.starts_with("pipe:"),
                    "fd {fd} of a relay is {target}"
                );
            }
        }
        assert!(client.close().success(), "{args:?}");
    }
}

/// A client on socket pairs (Node starts its children so, and with them most AI clients) has both
/// handed over too. An answer many times the socket's buffer waits for room as the client reads
/// and arrives whole; closing the client's end of stdin ends the session with its stdout closed.
#[test]
fn a_client_on_socket_pairs_hands_them_over() {
    use std::os::unix::net::UnixStream;
    if !require_docker() {
        return;
    }
    let daemon = Daemon::start(Start::Bound);
    daemon.add_fixture("alpha");
    let (mut requests, stdin) = UnixStream::pair().unwrap();
    let (answers, stdout) = UnixStream::pair().unwrap();
    let mut shim = Command::new(bin("mcp-shim"))
        .envs(daemon.env())
        .stdin(std::os::fd::OwnedFd::from(stdin))
        .stdout(std::os::fd::OwnedFd::from(stdout))
        .spawn()
        .unwrap();
    let mut answers = BufReader::new(answers);
    let mut exchange = |request: Value| -> Value {
        writeln!(requests, "{request}").unwrap();
        let mut line = String::new();
        answers.read_line(&mut line).unwrap();
        serde_json::from_str(&line).unwrap()
    };
    let init = exchange(
        json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "sockets", "version": "0"}}}),
    );
    assert_eq!(init["result"]["protocolVersion"], "2025-11-25", "{init}");
    wait_for(Duration::from_secs(10), || {
        (0..2).all(|fd| descriptor(shim.id(), fd) == "/dev/null")
    });
    let text = "x".repeat(4 << 20);
    let echoed = exchange(json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "echo", "arguments": {"text": text}}}));
    assert!(
        first_text(&echoed["result"]) == text,
        "the large answer came back changed"
    );
    let ping = exchange(json!({"jsonrpc": "2.0", "id": 2, "method": "ping"}));
    assert_eq!(ping["result"], json!({}), "{ping}");
    requests.shutdown(std::net::Shutdown::Write).unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut answers, &mut rest).unwrap();
    assert_eq!(rest, "", "answers after the end of input");
    assert!(shim.wait().unwrap().success());
}

/// Stdio that cannot be handed over (here a file as stdin) is relayed as before.
#[test]
fn a_shim_reading_its_requests_from_a_file_relays_them() {
    let daemon = no_engine();
    let mut requests = tempfile::tempfile().unwrap();
    let lines = [
        r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"file","version":"0"}}}"#,
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
        r#"{"jsonrpc":"2.0","id":2,"method":"ping"}"#,
    ];
    writeln!(requests, "{}", lines.join("\n")).unwrap();
    std::io::Seek::rewind(&mut requests).unwrap();
    let output = Command::new(bin("mcp-shim"))
        .envs(daemon.env())
        .stdin(requests)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let answers: Vec<Value> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(answers.len(), 2, "{answers:?}");
    assert_eq!(answers[0]["result"]["protocolVersion"], "2025-06-18");
    assert_eq!(answers[1], json!({"jsonrpc": "2.0", "id": 2, "result": {}}));
}

/// A handed-over session whose shim is killed while its client's pipes stay open: the session
/// ends and the client reads the end of its stdout, as from a server process that died.
#[test]
fn a_killed_shim_ends_its_handed_over_session() {
    let daemon = no_engine();
    let mut shim = daemon.shim(&[]);
    let mut stdin = shim.stdin.take().unwrap();
    let stdout = shim.stdout.take().unwrap();
    let (lines_tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let _ = lines_tx.send(line.ok());
        }
        let _ = lines_tx.send(None);
    });
    writeln!(stdin, r#"{{"jsonrpc":"2.0","id":1,"method":"ping"}}"#).unwrap();
    let answer = lines.recv_timeout(Duration::from_secs(30)).unwrap();
    assert_eq!(
        answer.as_deref(),
        Some(r#"{"jsonrpc":"2.0","id":1,"result":{}}"#)
    );
    assert_eq!(daemon.sessions(), 1);

    shim.kill().unwrap();
    shim.wait().unwrap();
    let end = lines.recv_timeout(Duration::from_secs(20));
    assert_eq!(
        end,
        Ok(None),
        "the client's stdout did not end with its shim"
    );
    wait_for(Duration::from_secs(20), || daemon.sessions() == 0);
    drop(stdin);
}
