//! MCP fidelity through the gateway (issue 3): every legacy-era feature of the fixture server
//! reaches real clients through `mcp-shim` as if the client talked to the server alone — with the
//! Python SDK for what a client application does, and raw JSON lines for ids, tokens and timing.

use std::time::Duration;

use mcp_gateway_tests::{Daemon, RawClient, Start, first_text, require_docker};
use serde_json::{Value, json};

/// A socket-activated daemon serving `alpha` and `beta` (both the fixture, speaking the two legacy
/// revisions: 2025-11-25 and 2025-06-18) in the active profile `duo`, with list pages of
/// `page_size` items so that the gateway's own cursors are exercised.
pub(crate) fn duo(page_size: usize) -> Daemon {
    duo_with(page_size, &[])
}

pub(crate) fn duo_with(page_size: usize, env: &[(&str, &str)]) -> Daemon {
    let size = page_size.to_string();
    let mut env = env.to_vec();
    env.push(("MCP_GATEWAY_LIST_PAGE_SIZE", &size));
    let daemon = Daemon::start_with_env(Start::SocketActivated, &env);
    daemon.add_fixture_with_env("alpha", &["MCP_FIXTURE_PROTOCOL=2025-11-25"]);
    daemon.add_fixture_with_env("beta", &["MCP_FIXTURE_PROTOCOL=2025-06-18"]);
    daemon.ctl_ok(&[
        "profile", "create", "duo", "--server", "alpha", "--server", "beta",
    ]);
    daemon.ctl_ok(&["profile", "use", "duo"]);
    daemon
}

fn call(name: &str, arguments: Value) -> Value {
    json!({"op": "call_tool", "name": name, "arguments": arguments})
}

fn keys(list: &Value, key: &str) -> Vec<String> {
    list["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no items in {list}"))
        .iter()
        .map(|item| item[key].as_str().unwrap().to_owned())
        .collect()
}

fn notifications<'a>(report: &'a Value, method: &str) -> Vec<&'a Value> {
    report["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["method"] == method)
        .collect()
}

/// Every list merged across both servers (each server pages at 2, the gateway at 3), colliding
/// names prefixed, shared URIs rewritten, and each kind of request routed back by what it names.
#[test]
fn lists_merge_across_servers_and_requests_route_back() {
    if !require_docker() {
        return;
    }
    let daemon = duo(3);
    let steps = json!([
        {"op": "list", "kind": "tools"},
        {"op": "list", "kind": "prompts"},
        {"op": "list", "kind": "resources"},
        {"op": "list", "kind": "templates"},
        {"op": "get_prompt", "name": "beta__greet", "arguments": {"name": "Ann"}},
        {"op": "get_prompt", "name": "alpha_prompt"},
        {"op": "read_resource", "uri": "mcp-gateway://beta/fixture://shared/readme"},
        {"op": "read_resource", "uri": "fixture://alpha/info"},
        {"op": "read_resource", "uri": "fixture://beta/items/7"},
        {"op": "read_resource", "uri": "fixture://nowhere/x"},
        {"op": "complete", "ref": {"type": "ref/prompt", "name": "alpha__greet"},
         "argument": {"name": "name", "value": "al"}},
        {"op": "complete", "ref": {"type": "ref/resource", "uri": "fixture://beta/items/{id}"},
         "argument": {"name": "id", "value": ""}},
        call("beta__add", json!({"a": 1, "b": 2})),
        {"op": "read_resource", "uri": "mcp-gateway://beta/fixture://shared/notes/rust"},
    ]);
    let report = daemon.python_run(&steps, &[]);
    assert_eq!(report["initialize"]["protocolVersion"], "2025-11-25");
    let steps = &report["steps"];

    let tools = keys(&steps[0], "name");
    assert!(steps[0]["pages"].as_u64().unwrap() > 1, "{}", steps[0]);
    for name in [
        "alpha__echo",
        "beta__echo",
        "alpha_info",
        "beta_info",
        "alpha__progress",
    ] {
        assert!(
            tools.contains(&name.to_owned()),
            "{name} missing from {tools:?}"
        );
    }
    let mut unique = tools.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), tools.len(), "a name appears twice: {tools:?}");

    let prompts = keys(&steps[1], "name");
    for name in ["alpha__greet", "beta__greet", "alpha_prompt", "beta_prompt"] {
        assert!(
            prompts.contains(&name.to_owned()),
            "{name} missing from {prompts:?}"
        );
    }
    let resources = keys(&steps[2], "uri");
    for uri in [
        "mcp-gateway://alpha/fixture://shared/readme",
        "mcp-gateway://beta/fixture://shared/readme",
        "fixture://alpha/info",
        "fixture://beta/counter",
    ] {
        assert!(
            resources.contains(&uri.to_owned()),
            "{uri} missing from {resources:?}"
        );
    }
    assert!(!resources.contains(&"fixture://shared/readme".to_owned()));
    let templates = keys(&steps[3], "uriTemplate");
    for template in [
        "fixture://alpha/items/{id}",
        "fixture://beta/items/{id}",
        "mcp-gateway://alpha/fixture://shared/notes/{topic}",
        "mcp-gateway://beta/fixture://shared/notes/{topic}",
    ] {
        assert!(
            templates.contains(&template.to_owned()),
            "{template} missing from {templates:?}"
        );
    }

    assert_eq!(
        steps[4]["messages"][0]["content"]["text"], "Hello, Ann!",
        "{}",
        steps[4]
    );
    assert!(
        steps[5]["messages"][0]["content"]["text"]
            .as_str()
            .unwrap()
            .contains("alpha")
    );
    assert_eq!(
        steps[6]["contents"][0]["text"], "readme of beta",
        "{}",
        steps[6]
    );
    assert_eq!(
        steps[6]["contents"][0]["uri"],
        "mcp-gateway://beta/fixture://shared/readme"
    );
    assert_eq!(steps[7]["contents"][0]["uri"], "fixture://alpha/info");
    assert_eq!(
        steps[8]["contents"][0]["text"], "item 7 of beta",
        "{}",
        steps[8]
    );
    assert_eq!(steps[9]["error"]["code"], -32002, "{}", steps[9]);
    assert_eq!(
        steps[10]["completion"]["values"],
        json!(["alice", "albert"])
    );
    assert_eq!(steps[11]["completion"]["values"], json!(["1", "2", "3"]));
    assert_eq!(steps[12]["structuredContent"], json!({"sum": 3}));
    assert_eq!(
        steps[13]["contents"][0]["text"], "note on rust from beta",
        "{}",
        steps[13]
    );
    assert_eq!(
        steps[13]["contents"][0]["uri"],
        "mcp-gateway://beta/fixture://shared/notes/rust"
    );
}

/// Sampling, elicitation (form and URL) and roots asked by a server during a call reach the
/// client that made the call; a client that declared none of them is never asked, and the
/// server's request fails instead.
#[test]
fn server_requests_reach_the_calling_client_only_if_it_can_answer() {
    if !require_docker() {
        return;
    }
    let daemon = duo(100);
    let steps = json!([
        call("alpha__sample", json!({"prompt": "hi"})),
        call("alpha__elicit", json!({"mode": "form"})),
        call("alpha__elicit", json!({"mode": "url"})),
        call("beta__roots", json!({})),
    ]);
    let report =
        daemon.python_run_with(&steps, &["--callbacks", "sampling,elicitation,roots"], &[]);
    let steps = &report["steps"];
    assert_eq!(first_text(&steps[0]), "sampled: hi", "{}", steps[0]);
    let form: Value = serde_json::from_str(first_text(&steps[1])).unwrap();
    assert_eq!(form["action"], "accept");
    assert_eq!(form["content"], json!({"name": "tester"}));
    let url: Value = serde_json::from_str(first_text(&steps[2])).unwrap();
    assert_eq!(url["action"], "accept");
    let roots: Value = serde_json::from_str(first_text(&steps[3])).unwrap();
    assert_eq!(roots, json!(["file:///work/a", "file:///work/b"]));

    let bare = daemon.python_run(
        &json!([call("alpha__sample", json!({"prompt": "hi"}))]),
        &[],
    );
    let refused = &bare["steps"][0];
    assert_eq!(refused["isError"], true, "{refused}");
    assert!(first_text(refused).contains("sampling"), "{refused}");
}

/// Progress for the client's token, logs with the server's name above the client's level, and a
/// server's list change announced once and visible in the next list.
#[test]
fn progress_logs_and_list_changes_reach_the_client() {
    if !require_docker() {
        return;
    }
    let daemon = duo(100);
    let steps = json!([
        {"op": "call_tool", "name": "alpha__progress", "arguments": {"steps": 3}, "progress": true},
        {"op": "set_level", "level": "warning"},
        call("alpha__log", json!({"level": "info", "message": "quiet"})),
        call("alpha__log", json!({"level": "error", "message": "boom"})),
        call("alpha__change", json!({"what": "tools"})),
        {"op": "sleep", "ms": 1000},
        {"op": "list", "kind": "tools"},
    ]);
    let report = daemon.python_run(&steps, &[]);
    let steps = &report["steps"];
    let progress = steps[0]["progress"].as_array().unwrap();
    assert_eq!(progress.len(), 3, "{}", steps[0]);
    assert_eq!(progress[2]["progress"], 3.0);
    assert_eq!(progress[2]["total"], 3.0);
    assert_eq!(first_text(&steps[2]), "filtered");
    let logs = notifications(&report, "notifications/message");
    assert_eq!(logs.len(), 1, "{logs:?}");
    assert_eq!(logs[0]["params"]["logger"], "alpha");
    assert_eq!(logs[0]["params"]["level"], "error");
    assert_eq!(logs[0]["params"]["data"], "boom");
    let changed = notifications(&report, "notifications/tools/list_changed");
    assert_eq!(changed.len(), 1, "{:?}", report["notifications"]);
    assert!(keys(&steps[6], "name").contains(&"added_1".to_owned()));
}

fn tool_call(client: &mut RawClient, id: Value, name: &str, arguments: Value) -> Value {
    client.request(
        id.clone(),
        "tools/call",
        json!({"name": name, "arguments": arguments}),
    );
    client.response(&id)
}

fn text_of(response: &Value) -> &str {
    first_text(&response["result"])
}

/// Two raw clients on the same shared server use the same request id and the same progress
/// token at once: each gets its own answer and only its own progress, under its own token.
/// `_meta` keys travel to the server unchanged.
#[test]
fn ids_and_progress_tokens_are_mapped_per_client() {
    if !require_docker() {
        return;
    }
    let daemon = duo(100);
    let mut one = daemon.raw_client(&[]);
    let mut two = daemon.raw_client(&[]);
    for client in [&mut one, &mut two] {
        let init = client.initialize("2025-06-18", json!({}));
        assert_eq!(init["protocolVersion"], "2025-06-18");
    }
    for (client, steps) in [(&mut one, 2), (&mut two, 4)] {
        client.request(
            json!(1),
            "tools/call",
            json!({"name": "alpha__progress", "arguments": {"steps": steps, "delay_ms": 50},
                   "_meta": {"progressToken": "tok"}}),
        );
    }
    for (client, steps) in [(&mut one, 2), (&mut two, 4)] {
        let answer = client.response(&json!(1));
        assert_eq!(text_of(&answer), format!("done {steps}"));
        let progress: Vec<&Value> = client
            .seen
            .iter()
            .filter(|m| m["method"] == "notifications/progress")
            .collect();
        assert_eq!(progress.len(), steps, "{:?}", client.seen);
        for note in progress {
            assert_eq!(note["params"]["progressToken"], "tok");
            assert_eq!(note["params"]["total"], steps);
        }
    }
    let meta = json!({"vendor.example/trace": {"id": [1, 2.5, "x"]}, "plain": true});
    one.request(
        json!("m"),
        "tools/call",
        json!({"name": "alpha__meta", "arguments": {}, "_meta": meta}),
    );
    let echoed: Value = serde_json::from_str(text_of(&one.response(&json!("m")))).unwrap();
    assert_eq!(echoed, meta);
}

/// A cancelled call gets no answer and frees the session; an oversized line is answered with an
/// error under its own id; the session keeps working after both.
#[test]
fn cancellation_and_oversized_lines_leave_the_session_working() {
    if !require_docker() {
        return;
    }
    let daemon = duo(100);
    let mut client = daemon.raw_client(&[]);
    client.initialize("2025-11-25", json!({}));
    client.request(
        json!(9),
        "tools/call",
        json!({"name": "alpha__sleep", "arguments": {"ms": 3000}}),
    );
    std::thread::sleep(Duration::from_millis(300));
    client.notify(
        "notifications/cancelled",
        json!({"requestId": 9, "reason": "changed my mind"}),
    );
    let huge = format!(
        "{{\"jsonrpc\":\"2.0\",\"id\":11,\"method\":\"tools/call\",\"params\":{{\"name\":\"alpha__echo\",\"arguments\":{{\"text\":\"{}\"}}}}}}",
        "x".repeat(17 << 20)
    );
    client.send_line(&huge);
    let oversized = client.response(&json!(11));
    assert_eq!(oversized["error"]["code"], -32600, "{oversized}");
    assert_eq!(
        text_of(&tool_call(
            &mut client,
            json!(12),
            "beta__echo",
            json!({"text": "still here"})
        )),
        "still here"
    );
    let late = client.wait(Duration::from_secs(4), |m| m["id"] == json!(9));
    assert!(late.is_none(), "a cancelled request was answered: {late:?}");
}

/// Two clients subscribe to the same resource: the server hears of the first subscription and
/// of the last unsubscription only; an update reaches subscribers and nobody else.
#[test]
fn subscriptions_are_counted_across_sessions() {
    if !require_docker() {
        return;
    }
    let daemon = duo(100);
    let uri = "fixture://alpha/counter";
    let mut one = daemon.raw_client(&[]);
    let mut two = daemon.raw_client(&[]);
    let mut other = daemon.raw_client(&[]);
    for client in [&mut one, &mut two, &mut other] {
        client.initialize("2025-11-25", json!({}));
    }
    let subscribed = |client: &mut RawClient, id: i64| -> Vec<String> {
        serde_json::from_str(text_of(&tool_call(
            client,
            json!(id),
            "alpha__subscriptions",
            json!({}),
        )))
        .unwrap()
    };
    for client in [&mut one, &mut two] {
        client.request(json!("s"), "resources/subscribe", json!({"uri": uri}));
        assert!(client.response(&json!("s")).get("result").is_some());
    }
    assert_eq!(subscribed(&mut other, 1), [uri]);
    tool_call(&mut other, json!(2), "alpha__bump", json!({}));
    for client in [&mut one, &mut two] {
        let update = client
            .wait(Duration::from_secs(10), |m| {
                m["method"] == "notifications/resources/updated"
            })
            .expect("subscribers hear of updates");
        assert_eq!(update["params"]["uri"], uri);
    }
    assert!(
        other
            .wait(Duration::from_millis(500), |m| m["method"]
                == "notifications/resources/updated")
            .is_none()
    );

    one.request(json!("u"), "resources/unsubscribe", json!({"uri": uri}));
    one.response(&json!("u"));
    assert_eq!(subscribed(&mut other, 3), [uri], "one subscriber is left");
    drop(two);
    let mut left = Vec::new();
    mcp_gateway_tests::wait_for(Duration::from_secs(10), || {
        left = subscribed(&mut other, 4);
        left.is_empty()
    });
}

/// A profile's allow-list hides tools from lists (so a hidden tool no longer causes a prefix)
/// and refuses calls to them.
#[test]
fn allow_lists_hide_tools_and_refuse_their_calls() {
    if !require_docker() {
        return;
    }
    let daemon = duo(100);
    daemon.ctl_ok(&[
        "profile",
        "tools",
        "duo",
        "--allow",
        "alpha.echo",
        "--allow",
        "beta.*",
    ]);
    assert!(
        daemon
            .ctl_ok(&["profile", "show", "duo"])
            .contains("alpha.echo, beta.*")
    );
    let steps = json!([
        {"op": "list", "kind": "tools"},
        call("whoami", json!({})),
        call("alpha__echo", json!({"text": "allowed"})),
        call("alpha_info", json!({})),
    ]);
    let report = daemon.python_run(&steps, &[]);
    let steps = &report["steps"];
    let tools = keys(&steps[0], "name");
    assert!(tools.contains(&"whoami".to_owned()), "{tools:?}");
    assert!(tools.contains(&"alpha__echo".to_owned()) && tools.contains(&"beta__echo".to_owned()));
    assert!(
        !tools
            .iter()
            .any(|t| t.starts_with("alpha") && t != "alpha__echo"),
        "{tools:?}"
    );
    assert_eq!(first_text(&steps[1]), "beta");
    assert_eq!(first_text(&steps[2]), "allowed");
    assert_eq!(steps[3]["error"]["code"], -32602, "{}", steps[3]);
}

/// A server that never answers costs its caller a timeout error, and nobody else anything.
#[test]
fn a_silent_server_times_out_without_holding_up_other_sessions() {
    if !require_docker() {
        return;
    }
    let daemon = duo_with(100, &[("MCP_GATEWAY_REQUEST_TIMEOUT", "2")]);
    let mut stuck = daemon.raw_client(&[]);
    let mut other = daemon.raw_client(&[]);
    stuck.initialize("2025-11-25", json!({}));
    other.initialize("2025-06-18", json!({}));
    assert_eq!(
        text_of(&tool_call(
            &mut other,
            json!(0),
            "alpha__echo",
            json!({"text": "warm"})
        )),
        "warm"
    );
    stuck.request(
        json!(1),
        "tools/call",
        json!({"name": "alpha__sleep", "arguments": {"ms": 60000}}),
    );
    let started = std::time::Instant::now();
    for id in 1..=5 {
        let answer = tool_call(
            &mut other,
            json!(id),
            "alpha__echo",
            json!({"text": "meanwhile"}),
        );
        assert_eq!(text_of(&answer), "meanwhile");
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the other session waited"
    );
    let timed_out = stuck.response(&json!(1));
    assert_eq!(timed_out["error"]["code"], -32603, "{timed_out}");
    let message = timed_out["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("alpha") && message.contains("2 s"),
        "{message}"
    );
}
