//! 2026-07-28 servers behind the gateway (issue 4): their `input_required` answers reach legacy
//! clients as real requests and modern clients as sealed `input_required` results, their errors
//! arrive in each client's era's codes, and each request tells them what its client can answer.

use mcp_gateway_tests::{Daemon, RawClient, Start, first_text, require_docker};
use serde_json::{Value, json};

const VERSION: &str = "2026-07-28";

/// A daemon whose active profile `mixed` holds `alpha` (the fixture pinned to 2025-11-25, a
/// legacy-only server) and `gamma` (the fixture as rmcp makes it, dual-era, so the gateway
/// speaks 2026-07-28 to it).
pub(crate) fn mixed(env: &[(&str, &str)]) -> Daemon {
    let daemon = Daemon::start_capturing_stderr(Start::SocketActivated, env);
    daemon.add_fixture_with_env("alpha", &["MCP_FIXTURE_PROTOCOL=2025-11-25"]);
    daemon.add_fixture("gamma");
    daemon.ctl_ok(&[
        "profile", "create", "mixed", "--server", "alpha", "--server", "gamma",
    ]);
    daemon.ctl_ok(&["profile", "use", "mixed"]);
    daemon
}

fn ask_all() -> Value {
    json!({"op": "call_tool", "name": "gamma__ask",
           "arguments": {"needs": ["sampling", "elicitation", "roots"]}})
}

/// What the fixture's `ask` returns when the SDK's callbacks answered all three rounds.
fn answered_all(result: &Value) {
    let answers: Value =
        serde_json::from_str(first_text(result)).unwrap_or_else(|err| panic!("{err}: {result}"));
    assert_eq!(
        answers[0]["content"]["text"], "sampled: round 0",
        "{answers}"
    );
    assert_eq!(answers[0]["role"], "assistant", "{answers}");
    assert_eq!(
        answers[1],
        json!({"action": "accept", "content": {"name": "tester"}})
    );
    let roots: Vec<&str> = answers[2]["roots"]
        .as_array()
        .unwrap_or_else(|| panic!("no roots in {answers}"))
        .iter()
        .map(|root| root["uri"].as_str().unwrap())
        .collect();
    assert_eq!(roots, ["file:///work/a", "file:///work/b"]);
}

/// A modern server's `input_required` rounds reach a legacy `ClientSession` as sampling,
/// elicitation and roots requests, answered by its callbacks, and the gateway retries until the
/// server completes (the answers of earlier rounds come back only if the server's
/// `requestState` was echoed). A client that declared nothing is not asked: the server hears
/// no capability and refuses with `-32021`. More than ten rounds end the call. The same calls
/// from the modern `Client` get the server's `input_required` relayed, sealed, and complete too.
#[test]
fn a_modern_servers_input_required_reaches_both_kinds_of_clients() {
    if !require_docker() {
        return;
    }
    let daemon = mixed(&[]);
    let callbacks = ["--callbacks", "sampling,elicitation,roots"];
    let eleven = json!({"op": "call_tool", "name": "gamma__ask",
                        "arguments": {"needs": vec!["roots"; 11]}});
    let legacy = daemon.python_run_with(&json!([ask_all(), eleven]), &callbacks, &[]);
    answered_all(&legacy["steps"][0]);
    let too_many = &legacy["steps"][1]["error"];
    assert_eq!(too_many["code"], -32603, "{}", legacy["steps"][1]);
    assert!(
        too_many["message"].as_str().unwrap().contains("10 rounds"),
        "{too_many}"
    );

    let bare = daemon.python_run(&json!([ask_all()]), &[]);
    assert_eq!(
        bare["steps"][0]["error"]["code"], -32021,
        "{}",
        bare["steps"][0]
    );

    let modern = daemon.python_run_with(
        &json!([ask_all()]),
        &["--mode", VERSION, callbacks[0], callbacks[1]],
        &[],
    );
    answered_all(&modern["steps"][0]);
}

pub(crate) fn modern_meta(capabilities: Value) -> Value {
    json!({
        "io.modelcontextprotocol/protocolVersion": VERSION,
        "io.modelcontextprotocol/clientCapabilities": capabilities,
        "io.modelcontextprotocol/clientInfo": {"name": "raw-modern", "version": "0"},
    })
}

fn initialize(client: &mut RawClient, capabilities: Value) {
    client.request(
        json!(0),
        "initialize",
        json!({"protocolVersion": "2025-11-25", "capabilities": capabilities,
               "clientInfo": {"name": "raw-legacy", "version": "0"}}),
    );
    assert!(client.response(&json!(0))["result"].is_object());
    client.notify("notifications/initialized", json!({}));
}

/// On the wire: a legacy client gets a real `roots/list` under a gateway id and its answer
/// completes the call; a modern client gets `input_required` whose `requestState` is the
/// gateway's (not the server's), refused when tampered with or replayed to another tool's
/// server, and accepted with the server's own key for the answer.
#[test]
fn input_required_of_a_modern_server_on_the_wire() {
    if !require_docker() {
        return;
    }
    let daemon = mixed(&[]);
    let mut legacy = daemon.raw_client(&[]);
    initialize(&mut legacy, json!({"roots": {}}));
    legacy.request(
        json!(1),
        "tools/call",
        json!({"name": "gamma__ask", "arguments": {"needs": ["roots"]}}),
    );
    let asked = legacy
        .wait(mcp_gateway_tests::ANSWER_TIMEOUT, |m| {
            m["method"] == "roots/list"
        })
        .expect("a roots/list request");
    let roots = json!({"roots": [{"uri": "file:///raw"}]});
    legacy.send(&json!({"jsonrpc": "2.0", "id": asked["id"], "result": roots}));
    let done = legacy.response(&json!(1));
    let answers: Value = serde_json::from_str(first_text(&done["result"])).unwrap();
    assert_eq!(answers, json!([roots]), "{done}");

    let mut modern = daemon.raw_client(&[]);
    let meta = modern_meta(json!({"roots": {}}));
    let call = |extra: Value| {
        let mut params =
            json!({"name": "gamma__ask", "arguments": {"needs": ["roots"]}, "_meta": meta});
        params
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        params
    };
    modern.request(json!(1), "tools/call", call(json!({})));
    let first = modern.response(&json!(1));
    let result = &first["result"];
    assert_eq!(result["resultType"], "input_required", "{first}");
    assert_eq!(result["inputRequests"]["round-0"]["method"], "roots/list");
    let state = result["requestState"].as_str().unwrap().to_owned();
    // The fixture's own state is the JSON of its answers so far; the client sees only the
    // gateway's seal around it.
    assert_ne!(state, "[]");

    let mut tampered = state.clone().into_bytes();
    tampered[5] ^= 1;
    let tampered = String::from_utf8(tampered).unwrap();
    let answer = json!({"round-0": roots});
    modern.request(
        json!(2),
        "tools/call",
        call(json!({"requestState": tampered, "inputResponses": answer})),
    );
    assert_eq!(modern.response(&json!(2))["error"]["code"], -32602);

    // The state names gamma: a retry of alpha's tool (a legacy server) with it is refused.
    let mut elsewhere = call(json!({"requestState": state, "inputResponses": answer}));
    elsewhere["name"] = json!("alpha__echo");
    elsewhere["arguments"] = json!({"text": "x"});
    modern.request(json!(3), "tools/call", elsewhere);
    let refused = modern.response(&json!(3));
    assert_eq!(refused["error"]["code"], -32602, "{refused}");

    modern.request(
        json!(4),
        "tools/call",
        call(json!({"requestState": state, "inputResponses": answer})),
    );
    let done = modern.response(&json!(4));
    assert_eq!(done["result"]["resultType"], "complete", "{done}");
    let answers: Value = serde_json::from_str(first_text(&done["result"])).unwrap();
    assert_eq!(answers, json!([roots]));
}

/// A modern server's resource-not-found (`-32602`) is `-32002` for a legacy client and stays
/// `-32602` for a modern one; a legacy server's `-32002` is `-32602` for a modern client. Each
/// request to the modern server declares what its client can answer and, for a legacy client
/// that set one with `logging/setLevel`, its log level.
#[test]
fn errors_capabilities_and_log_levels_cross_between_eras() {
    if !require_docker() {
        return;
    }
    let daemon = mixed(&[]);
    let missing_modern = "mcp-gateway://gamma/fixture://gamma/added/99";
    let missing_legacy = "mcp-gateway://alpha/fixture://alpha/added/99";
    let steps = json!([
        {"op": "read_resource", "uri": missing_modern},
        {"op": "read_resource", "uri": missing_legacy},
        {"op": "set_level", "level": "warning"},
        {"op": "call_tool", "name": "gamma__meta", "arguments": {}},
    ]);
    let legacy = daemon.python_run_with(&steps, &["--callbacks", "sampling,roots"], &[]);
    let steps = &legacy["steps"];
    assert_eq!(steps[0]["error"]["code"], -32002, "{}", steps[0]);
    assert_eq!(steps[1]["error"]["code"], -32002, "{}", steps[1]);
    let seen: Value = serde_json::from_str(first_text(&steps[3])).unwrap();
    assert_eq!(
        seen["io.modelcontextprotocol/clientCapabilities"],
        json!({"sampling": {}, "roots": {"listChanged": true}}),
        "{seen}"
    );
    assert_eq!(
        seen["io.modelcontextprotocol/logLevel"], "warning",
        "{seen}"
    );

    let mut modern = daemon.raw_client(&[]);
    for (id, uri) in [(1, missing_modern), (2, missing_legacy)] {
        modern.request(
            json!(id),
            "resources/read",
            json!({"uri": uri, "_meta": modern_meta(json!({}))}),
        );
        let answer = modern.response(&json!(id));
        assert_eq!(answer["error"]["code"], -32602, "{uri}: {answer}");
    }
    modern.request(
        json!(3),
        "tools/call",
        json!({"name": "gamma__meta", "arguments": {},
               "_meta": modern_meta(json!({"elicitation": {"form": {}}, "extensions": {"x.y/z": {}}}))}),
    );
    let answer = modern.response(&json!(3));
    let seen: Value = serde_json::from_str(first_text(&answer["result"])).unwrap();
    assert_eq!(
        seen["io.modelcontextprotocol/clientCapabilities"],
        json!({"elicitation": {"form": {}}}),
        "{seen}"
    );
    assert!(
        seen.get("io.modelcontextprotocol/logLevel").is_none(),
        "{seen}"
    );
}
