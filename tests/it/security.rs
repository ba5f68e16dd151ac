//! Security through the gateway (issue 7): secrets in tool arguments are blocked by default with
//! an error that names the rule and never the secret; the gateway's own stored secrets count.

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
