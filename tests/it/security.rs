//! Security through the gateway (issue 7): secrets in tool arguments are blocked by default with
//! an error that names the rule and never the secret; the gateway's own stored secrets count.
//! Every call is in the audit log.

use mcp_gateway_tests::{Daemon, Start, first_text, require_docker};
use serde_json::json;

#[test]
fn a_secret_in_tool_arguments_is_blocked_by_rule_name() {
    if !require_docker() {
        return;
    }
    let daemon = Daemon::start(Start::SocketActivated);
    daemon.add_fixture("alpha");
    // Assembled at run time so the repository holds no literal key.
    let key = format!("AKIA{}", "Z".repeat(16));
    let steps = json!([
        {"op": "call_tool", "name": "echo", "arguments": {"text": format!("my key is {key}")}},
        {"op": "call_tool", "name": "echo", "arguments": {"text": "nothing to see"}},
    ]);
    let report = daemon.python_run(&steps, &[]);
    let blocked = &report["steps"][0]["error"];
    assert_eq!(blocked["code"], -32602, "{}", report["steps"][0]);
    let message = blocked["message"].as_str().unwrap();
    assert!(message.contains("aws-access-key-id"), "{message}");
    assert!(
        !message.contains(&key),
        "the error repeats the secret: {message}"
    );
    assert_eq!(first_text(&report["steps"][1]), "nothing to see");
}

#[test]
fn a_stored_secret_is_recognised_in_arguments() {
    if !require_docker() {
        return;
    }
    let daemon = Daemon::start(Start::SocketActivated);
    daemon.add_fixture("alpha");
    let value = "plain-words-but-stored-as-secret";
    let output = daemon.ctl_with_input(&["secret", "set", "MY_TOKEN"], value.as_bytes());
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let steps = json!([
        {"op": "call_tool", "name": "echo", "arguments": {"text": format!("token {value}")}},
    ]);
    let report = daemon.python_run(&steps, &[]);
    let message = report["steps"][0]["error"]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("{report}"));
    assert!(message.contains("stored-secret"), "{message}");
    assert!(!message.contains(value), "{message}");
}

/// Every call is in the audit log, with its client, server, outcome and the rules it tripped,
/// never the secret; `mcpctl calls -f` streams new calls as they happen.
#[test]
fn calls_are_audited_and_followed() {
    if !require_docker() {
        return;
    }
    let daemon = Daemon::start(Start::SocketActivated);
    daemon.add_fixture("alpha");
    let mut follower = std::process::Command::new(mcp_gateway_tests::bin("mcpctl"))
        .args(["--json", "calls", "--follow", "--limit", "0"])
        .envs(daemon.env())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let key = format!("AKIA{}", "Y".repeat(16));
    let steps = json!([
        {"op": "call_tool", "name": "echo", "arguments": {"text": "audited"}},
        {"op": "call_tool", "name": "echo", "arguments": {"text": key}},
        {"op": "call_tool", "name": "nope", "arguments": {}},
    ]);
    daemon.python_run(&steps, &["--client", "auditor"]);

    let out = daemon.ctl_ok(&["--json", "calls"]);
    let calls: serde_json::Value = serde_json::from_str(&out).unwrap();
    let calls = calls["calls"].as_array().unwrap();
    assert_eq!(calls.len(), 3, "{calls:?}");
    assert_eq!(calls[0]["client"], "auditor");
    assert_eq!(calls[0]["server"], "alpha");
    assert_eq!(calls[0]["name"], "echo");
    assert_eq!(calls[0]["outcome"], "ok");
    assert_eq!(calls[1]["outcome"], "blocked");
    assert_eq!(calls[1]["secrets"], json!(["aws-access-key-id"]));
    assert_eq!(calls[2]["outcome"], "error");
    assert_eq!(calls[2]["server"], "");
    let log =
        std::fs::read_to_string(daemon.dir.path().join("state/mcp-gateway/audit.jsonl")).unwrap();
    assert!(!log.contains(&key), "the audit log holds the secret");
    assert!(
        daemon
            .ctl_ok(&["calls", "--server", "nobody"])
            .trim()
            .is_empty()
    );
    let alpha: serde_json::Value =
        serde_json::from_str(&daemon.ctl_ok(&["--json", "calls", "--server", "alpha"])).unwrap();
    let alpha = alpha["calls"].as_array().unwrap();
    let routed = calls.iter().filter(|c| c["server"] == "alpha").count();
    assert!(routed >= 1 && alpha.len() == routed, "{alpha:?}");
    assert!(alpha.iter().all(|c| c["server"] == "alpha"), "{alpha:?}");

    let mut lines =
        std::io::BufRead::lines(std::io::BufReader::new(follower.stdout.take().unwrap()));
    let first: serde_json::Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(first["calls"], json!([]), "the history was asked empty");
    let streamed: Vec<serde_json::Value> = (0..3)
        .map(|_| serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap())
        .collect();
    assert_eq!(streamed[0]["calls"][0]["outcome"], "ok");
    assert_eq!(streamed[2]["calls"][0]["name"], "nope");
    follower.kill().unwrap();
    follower.wait().unwrap();
}
