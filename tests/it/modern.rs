//! The 2026-07-28 protocol downstream (issue 4): a modern client over `mcp-shim` is served
//! statelessly by the same gateway, over legacy servers, beside legacy clients.

use std::time::Duration;

use mcp_gateway_tests::{Daemon, RawClient, first_text, require_docker};
use serde_json::{Value, json};

const VERSION: &str = "2026-07-28";

/// The two legacy fixtures of the fidelity tests, with the daemon's default list pages.
fn daemon() -> Daemon {
    crate::fidelity::duo(500)
}

/// The `_meta` every modern request carries.
fn meta() -> Value {
    json!({
        "io.modelcontextprotocol/protocolVersion": VERSION,
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "raw-modern", "version": "0"},
    })
}

fn ask(client: &mut RawClient, id: i64, method: &str, mut params: Value) -> Value {
    params["_meta"] = meta();
    client.request(json!(id), method, params);
    client.response(&json!(id))
}

/// The SDK's modern `Client` lists, calls, reads and completes through the gateway at the same
/// time as a legacy client uses the same containers.
#[test]
fn a_modern_python_client_and_a_legacy_one_share_the_servers() {
    if !require_docker() {
        return;
    }
    let daemon = daemon();
    let steps = json!([
        {"op": "list", "kind": "tools"},
        {"op": "call_tool", "name": "beta__echo", "arguments": {"text": "modern"}},
        {"op": "call_tool", "name": "alpha__add", "arguments": {"a": 20, "b": 22}},
        {"op": "list", "kind": "prompts"},
        {"op": "get_prompt", "name": "alpha__greet", "arguments": {"name": "Mo"}},
        {"op": "read_resource", "uri": "fixture://beta/items/3"},
        {"op": "read_resource", "uri": "fixture://nowhere/x"},
        {"op": "complete", "ref": {"type": "ref/prompt", "name": "beta__greet"},
         "argument": {"name": "name", "value": "b"}},
    ]);
    let legacy = daemon.python_client(
        &json!([{"op": "call_tool", "name": "alpha__echo", "arguments": {"text": "legacy"}}]),
        &[],
    );
    let report = daemon.python_run_with(&steps, &["--mode", VERSION], &[]);
    let legacy = mcp_gateway_tests::client_report(legacy);
    assert_eq!(first_text(&legacy["steps"][0]), "legacy");

    assert_eq!(report["initialize"]["protocolVersion"], VERSION);
    let steps = &report["steps"];
    let tools: Vec<&str> = steps[0]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(
        tools.contains(&"alpha__echo") && tools.contains(&"beta_info"),
        "{tools:?}"
    );
    assert_eq!(first_text(&steps[1]), "modern");
    assert_eq!(steps[2]["structuredContent"], json!({"sum": 42}));
    assert!(
        steps[3]["items"].as_array().unwrap().len() >= 4,
        "{}",
        steps[3]
    );
    assert_eq!(steps[4]["messages"][0]["content"]["text"], "Hello, Mo!");
    assert_eq!(steps[5]["contents"][0]["text"], "item 3 of beta");
    assert_eq!(steps[6]["error"]["code"], -32602, "{}", steps[6]);
    assert_eq!(steps[7]["completion"]["values"], json!(["bob"]));
}

/// Raw 2026-07-28 requests: `server/discover`, version and `_meta` errors, the modern result
/// shape, legacy-only methods refused, and the protocol keys kept from a legacy server while
/// the client's other `_meta` keys reach it.
#[test]
fn modern_requests_are_checked_and_answered_in_their_own_shape() {
    if !require_docker() {
        return;
    }
    let daemon = daemon();
    let mut client = daemon.raw_client(&[]);

    let discover = ask(&mut client, 1, "server/discover", json!({}));
    let result = &discover["result"];
    assert_eq!(result["resultType"], "complete", "{discover}");
    assert!(
        result["supportedVersions"]
            .as_array()
            .unwrap()
            .contains(&json!(VERSION))
    );
    assert!(result["capabilities"]["tools"].is_object());
    assert_eq!(result["ttlMs"], 0);
    assert_eq!(
        result["_meta"]["io.modelcontextprotocol/serverInfo"]["name"],
        "mcp-gateway"
    );

    let mut old = meta();
    old["io.modelcontextprotocol/protocolVersion"] = json!("2099-01-01");
    client.request(json!(2), "tools/list", json!({"_meta": old}));
    let wrong = client.response(&json!(2));
    assert_eq!(wrong["error"]["code"], -32022, "{wrong}");
    assert_eq!(wrong["error"]["data"]["supported"], json!([VERSION]));

    let mut partial = meta();
    partial
        .as_object_mut()
        .unwrap()
        .remove("io.modelcontextprotocol/clientCapabilities");
    client.request(json!(3), "tools/list", json!({"_meta": partial}));
    assert_eq!(client.response(&json!(3))["error"]["code"], -32602);

    let list = ask(&mut client, 4, "tools/list", json!({}));
    assert_eq!(list["result"]["resultType"], "complete");
    assert_eq!(list["result"]["cacheScope"], "private");
    assert!(list["result"]["tools"].as_array().unwrap().len() > 10);

    let mut with_vendor_meta = json!({"name": "alpha__meta", "arguments": {}});
    with_vendor_meta["_meta"] = meta();
    with_vendor_meta["_meta"]["vendor.example/trace"] = json!("t-9");
    client.request(json!(5), "tools/call", with_vendor_meta);
    let answer = client.response(&json!(5));
    assert_eq!(answer["result"]["resultType"], "complete", "{answer}");
    let seen: Value = serde_json::from_str(first_text(&answer["result"])).unwrap();
    assert_eq!(seen, json!({"vendor.example/trace": "t-9"}));

    for (id, method) in [
        (6, "ping"),
        (7, "logging/setLevel"),
        (8, "resources/subscribe"),
    ] {
        let refused = ask(
            &mut client,
            id,
            method,
            json!({"level": "info", "uri": "fixture://alpha/counter"}),
        );
        assert_eq!(refused["error"]["code"], -32601, "{method}: {refused}");
    }
}

/// `subscriptions/listen`: the acknowledgement first, then list changes and resource updates
/// tagged with the listen request's id; cancelling the listen ends the server subscription.
#[test]
fn listen_streams_carry_tagged_changes_and_updates() {
    if !require_docker() {
        return;
    }
    let daemon = daemon();
    let mut client = daemon.raw_client(&[]);
    let uri = "fixture://alpha/counter";
    client.request(
        json!("listen-1"),
        "subscriptions/listen",
        json!({"_meta": meta(), "notifications": {"toolsListChanged": true, "resourceSubscriptions": [uri, "fixture://nowhere/x"]}}),
    );
    let tagged = |m: &Value| {
        m["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"] == json!("listen-1")
    };
    let ack = client
        .wait(Duration::from_secs(20), |m| {
            m["method"] == "notifications/subscriptions/acknowledged"
        })
        .expect("an acknowledgement");
    assert!(tagged(&ack), "{ack}");
    assert_eq!(
        ack["params"]["notifications"],
        json!({"toolsListChanged": true, "resourceSubscriptions": [uri]})
    );

    let mut other = daemon.raw_client(&[]);
    let subscriptions = ask(
        &mut other,
        1,
        "tools/call",
        json!({"name": "alpha__subscriptions", "arguments": {}}),
    );
    assert_eq!(first_text(&subscriptions["result"]), format!("[\"{uri}\"]"));
    ask(
        &mut other,
        2,
        "tools/call",
        json!({"name": "alpha__bump", "arguments": {}}),
    );
    let updated = client
        .wait(Duration::from_secs(10), |m| {
            m["method"] == "notifications/resources/updated"
        })
        .expect("the update");
    assert!(
        tagged(&updated) && updated["params"]["uri"] == uri,
        "{updated}"
    );
    ask(
        &mut other,
        3,
        "tools/call",
        json!({"name": "alpha__change", "arguments": {"what": "tools"}}),
    );
    let changed = client
        .wait(Duration::from_secs(10), |m| {
            m["method"] == "notifications/tools/list_changed"
        })
        .expect("the list change");
    assert!(tagged(&changed), "{changed}");

    client.notify("notifications/cancelled", json!({"requestId": "listen-1"}));
    let mut left = String::new();
    mcp_gateway_tests::wait_for(Duration::from_secs(10), || {
        let answer = ask(
            &mut other,
            4,
            "tools/call",
            json!({"name": "alpha__subscriptions", "arguments": {}}),
        );
        left = first_text(&answer["result"]).to_owned();
        left == "[]"
    });
    assert!(
        client
            .wait(Duration::from_millis(300), |m| m["id"] == json!("listen-1"))
            .is_none()
    );
}

/// A server that answers `server/discover` is spoken to in 2026-07-28: legacy and modern
/// clients both use it, and its list changes (from the gateway's listen stream on it) reach a
/// legacy client as `list_changed`.
#[test]
fn a_modern_server_serves_both_kinds_of_clients() {
    if !require_docker() {
        return;
    }
    let daemon = crate::modern_servers::mixed(&[]);
    let steps = json!([
        {"op": "call_tool", "name": "gamma__echo", "arguments": {"text": "from legacy"}},
        {"op": "call_tool", "name": "gamma__change", "arguments": {"what": "tools"}},
        {"op": "sleep", "ms": 1000},
        {"op": "list", "kind": "tools"},
        {"op": "call_tool", "name": "alpha__echo", "arguments": {"text": "old server"}},
    ]);
    let report = daemon.python_run(&steps, &[]);
    assert_eq!(first_text(&report["steps"][0]), "from legacy");
    let changes = report["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["method"] == "notifications/tools/list_changed")
        .count();
    assert_eq!(changes, 1, "{}\n{}", report["notifications"], daemon.log());
    let tools = report["steps"][3]["items"].to_string();
    assert!(tools.contains("\"added_1\""), "{tools}");
    assert_eq!(first_text(&report["steps"][4]), "old server");

    let modern = daemon.python_run_with(
        &json!([{"op": "call_tool", "name": "gamma__echo", "arguments": {"text": "from modern"}}]),
        &["--mode", VERSION],
        &[],
    );
    assert_eq!(first_text(&modern["steps"][0]), "from modern");
    let servers: Value = serde_json::from_str(&daemon.ctl_ok(&["--json", "server", "ls"])).unwrap();
    let era = |name: &str| {
        let server = servers["servers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .unwrap();
        server["containers"][0]["era"].clone()
    };
    assert_eq!(era("gamma"), "2026-07-28", "{servers}");
    assert_eq!(era("alpha"), "legacy", "{servers}");
    assert!(
        daemon
            .ctl_ok(&["server", "ls"])
            .contains("speaks 2026-07-28")
    );
    let log = daemon.log();
    assert!(
        log.contains("speaks 2026-07-28 profile=\"mixed\" server=\"gamma\""),
        "{log}"
    );
    assert!(
        log.contains("speaks legacy profile=\"mixed\" server=\"alpha\""),
        "{log}"
    );
}

/// A legacy server's sampling, elicitation and roots requests during a modern client's call come
/// back to that client as `input_required`; the SDK answers them with its callbacks and retries,
/// and the parked server request gets the answer. A tampered `requestState` is refused.
#[test]
fn legacy_server_requests_reach_a_modern_client_as_input_required() {
    if !require_docker() {
        return;
    }
    let daemon = daemon();
    let steps = json!([
        {"op": "call_tool", "name": "alpha__sample", "arguments": {"prompt": "hi"}},
        {"op": "call_tool", "name": "alpha__elicit", "arguments": {"mode": "form"}},
        {"op": "call_tool", "name": "beta__roots", "arguments": {}},
    ]);
    let report = daemon.python_run_with(
        &steps,
        &[
            "--mode",
            VERSION,
            "--callbacks",
            "sampling,elicitation,roots",
        ],
        &[],
    );
    let steps = &report["steps"];
    assert_eq!(first_text(&steps[0]), "sampled: hi", "{}", steps[0]);
    let form: Value = serde_json::from_str(first_text(&steps[1])).unwrap();
    assert_eq!(form["content"], json!({"name": "tester"}), "{form}");
    let roots: Value = serde_json::from_str(first_text(&steps[2])).unwrap();
    assert_eq!(roots, json!(["file:///work/a", "file:///work/b"]));

    let mut client = daemon.raw_client(&[]);
    let mut meta = meta();
    meta["io.modelcontextprotocol/clientCapabilities"] = json!({"sampling": {}});
    client.request(
        json!(1),
        "tools/call",
        json!({"name": "alpha__sample", "arguments": {"prompt": "x"}, "_meta": meta}),
    );
    let asked = client.response(&json!(1));
    let result = &asked["result"];
    assert_eq!(result["resultType"], "input_required", "{asked}");
    let request = result["inputRequests"]
        .as_object()
        .unwrap()
        .values()
        .next()
        .unwrap()
        .clone();
    assert_eq!(request["method"], "sampling/createMessage");
    let state = result["requestState"].as_str().unwrap();
    let mut tampered = state.to_owned().into_bytes();
    tampered[3] ^= 1;
    let tampered = String::from_utf8(tampered).unwrap();
    client.request(
        json!(2),
        "tools/call",
        json!({"name": "alpha__sample", "arguments": {"prompt": "x"}, "_meta": meta,
               "requestState": tampered, "inputResponses": {}}),
    );
    let refused = client.response(&json!(2));
    assert_eq!(refused["error"]["code"], -32602, "{refused}");
    let key = result["inputRequests"]
        .as_object()
        .unwrap()
        .keys()
        .next()
        .unwrap()
        .clone();
    client.request(
        json!(3),
        "tools/call",
        json!({"name": "alpha__sample", "arguments": {"prompt": "x"}, "_meta": meta,
               "requestState": state,
               "inputResponses": {key: {"role": "assistant", "content": {"type": "text", "text": "raw answer"}, "model": "m"}}}),
    );
    let done = client.response(&json!(3));
    assert_eq!(first_text(&done["result"]), "raw answer", "{done}");
    assert_eq!(done["result"]["resultType"], "complete");
}

/// A `requestState` kept past the daemon's `MCP_GATEWAY_INPUT_TTL` is refused as expired.
#[test]
fn an_expired_request_state_is_refused() {
    if !require_docker() {
        return;
    }
    let daemon = crate::fidelity::duo_with(500, &[("MCP_GATEWAY_INPUT_TTL", "1")]);
    let mut client = daemon.raw_client(&[]);
    let mut meta = meta();
    meta["io.modelcontextprotocol/clientCapabilities"] = json!({"sampling": {}});
    let call = json!({"name": "alpha__sample", "arguments": {"prompt": "late"}, "_meta": meta});
    client.request(json!(1), "tools/call", call.clone());
    let asked = client.response(&json!(1));
    let state = asked["result"]["requestState"]
        .as_str()
        .unwrap_or_else(|| panic!("no requestState in {asked}"))
        .to_owned();
    // States are stamped to the second: past one second and the next, the state is stale.
    std::thread::sleep(Duration::from_secs(3));
    let mut retry = call;
    retry["requestState"] = json!(state);
    retry["inputResponses"] = json!({});
    client.request(json!(2), "tools/call", retry);
    let refused = client.response(&json!(2));
    assert_eq!(refused["error"]["code"], -32602, "{refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("expired"),
        "{refused}"
    );
}
