//! What one 2026-07-28 request declares for itself (issue 4): its log level (forwarded to
//! modern servers, turned into the shared level of legacy ones, and the only way its client hears
//! log messages), its capabilities (which decide, per request, whether a legacy server's request
//! may reach the client), and its answers in `inputResponses` (screened for secrets like
//! arguments, blocked or redacted).

use std::time::Duration;

use mcp_gateway_tests::{RawClient, first_text, require_docker};
use serde_json::{Value, json};

use crate::modern_servers::{mixed, modern_meta};

fn with_level(level: &str) -> Value {
    let mut meta = modern_meta(json!({}));
    meta["io.modelcontextprotocol/logLevel"] = json!(level);
    meta
}

fn call(client: &mut RawClient, id: i64, name: &str, arguments: Value, meta: Value) -> Value {
    client.request(
        json!(id),
        "tools/call",
        json!({"name": name, "arguments": arguments, "_meta": meta}),
    );
    client.response(&json!(id))
}

fn is_log(message: &Value, text: &str) -> bool {
    message["method"] == "notifications/message" && message["params"]["data"] == text
}

/// A modern client's `io.modelcontextprotocol/logLevel` reaches a modern server as it is and
/// makes a legacy server log at that level; the client hears log messages at or above it while
/// such a request is in flight, with the server's name as logger, and none for a request that
/// did not ask. A legacy client beside it keeps hearing what its own level lets through.
#[test]
fn a_modern_clients_log_level_governs_what_it_hears_from_both_eras() {
    if !require_docker() {
        return;
    }
    let daemon = mixed(&[]);
    let mut legacy = daemon.raw_client(&[]);
    legacy.initialize("2025-11-25", json!({}));
    let mut modern = daemon.raw_client(&[]);

    let seen = call(
        &mut modern,
        1,
        "gamma__meta",
        json!({}),
        with_level("warning"),
    );
    let seen: Value = serde_json::from_str(first_text(&seen["result"])).unwrap();
    assert_eq!(
        seen["io.modelcontextprotocol/logLevel"], "warning",
        "{seen}"
    );

    for (id, server) in [(2, "gamma"), (3, "alpha")] {
        let tool = format!("{server}__log");
        let loud = format!("{server} error");
        let answer = call(
            &mut modern,
            id,
            &tool,
            json!({"level": "error", "message": loud}),
            with_level("warning"),
        );
        assert_eq!(first_text(&answer["result"]), "logged", "{answer}");
        let heard = modern
            .wait(Duration::from_secs(5), |m| is_log(m, &loud))
            .unwrap_or_else(|| panic!("{server}'s log did not reach the modern client"));
        assert_eq!(heard["params"]["logger"], server, "{heard}");
        assert_eq!(heard["params"]["level"], "error");
        assert!(
            legacy
                .wait(Duration::from_secs(5), |m| is_log(m, &loud))
                .is_some(),
            "the legacy client (no level set) missed {loud}"
        );
    }

    // The legacy server now logs at warning for everyone; the modern server logs what it is
    // asked, and the gateway keeps what is below the request's level from the client.
    let quiet = call(
        &mut modern,
        4,
        "alpha__log",
        json!({"level": "info", "message": "alpha info"}),
        with_level("warning"),
    );
    assert_eq!(first_text(&quiet["result"]), "filtered", "{quiet}");
    let below = call(
        &mut modern,
        5,
        "gamma__log",
        json!({"level": "info", "message": "gamma info"}),
        with_level("warning"),
    );
    assert_eq!(first_text(&below["result"]), "logged", "{below}");
    let unasked = call(
        &mut modern,
        6,
        "gamma__log",
        json!({"level": "error", "message": "gamma unasked"}),
        modern_meta(json!({})),
    );
    assert_eq!(first_text(&unasked["result"]), "logged", "{unasked}");
    assert!(
        legacy
            .wait(Duration::from_secs(5), |m| is_log(m, "gamma unasked"))
            .is_some()
    );
    for text in ["gamma info", "gamma unasked"] {
        assert!(
            modern
                .wait(Duration::from_millis(300), |m| is_log(m, text))
                .is_none(),
            "the modern client heard {text:?}"
        );
    }
}

/// The SDK's modern `Client` asking for warnings on every request hears both eras' servers' log
/// messages at that level and above, and not those below.
#[test]
fn the_python_sdks_modern_client_hears_logs_at_its_level() {
    if !require_docker() {
        return;
    }
    let daemon = mixed(&[]);
    let log = |server: &str, level: &str| {
        json!({"op": "call_tool", "name": format!("{server}__log"),
               "arguments": {"level": level, "message": format!("{server} {level}")}})
    };
    let report = daemon.python_run_with(
        &json!([
            log("alpha", "error"),
            log("gamma", "critical"),
            log("gamma", "info"),
            {"op": "sleep", "ms": 300},
        ]),
        &["--mode", "2026-07-28", "--log-level", "warning"],
        &[],
    );
    let heard: Vec<&str> = report["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["method"] == "notifications/message")
        .map(|n| n["params"]["data"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(heard, ["alpha error", "gamma critical"], "{report}");
}

/// Two concurrent requests of one modern client, one declaring sampling and one not: a legacy
/// server's sampling request during the first becomes that call's `input_required`, and the
/// second completes untouched; the other way round, the call that did not declare sampling is
/// refused it even though its neighbour, sent later, declared it. (Capabilities kept per
/// session from the latest request got both wrong.)
#[test]
fn capabilities_hold_for_the_request_that_declared_them() {
    if !require_docker() {
        return;
    }
    let daemon = mixed(&[]);
    let mut modern = daemon.raw_client(&[]);
    let sampling = modern_meta(json!({"sampling": {}}));
    let bare = modern_meta(json!({}));
    let sample = json!({"name": "alpha__sample", "arguments": {"prompt": "p", "delay_ms": 700}});
    // On the modern server, so that the legacy one's request can only be about the sample.
    let sleep = json!({"name": "gamma__sleep", "arguments": {"ms": 1500}});
    let with = |mut params: Value, meta: &Value| {
        params["_meta"] = meta.clone();
        params
    };

    modern.request(json!(1), "tools/call", with(sample.clone(), &sampling));
    modern.request(json!(2), "tools/call", with(sleep.clone(), &bare));
    let asked = modern.response(&json!(1));
    assert_eq!(asked["result"]["resultType"], "input_required", "{asked}");
    let request = asked["result"]["inputRequests"]
        .as_object()
        .unwrap()
        .values()
        .next()
        .unwrap();
    assert_eq!(request["method"], "sampling/createMessage", "{asked}");
    let slept = modern.response(&json!(2));
    assert_eq!(first_text(&slept["result"]), "slept 1500", "{slept}");
    assert_eq!(slept["result"]["resultType"], "complete");
    // The parked sample is finished, so that the server's next request has one call to go to.
    let key = asked["result"]["inputRequests"]
        .as_object()
        .unwrap()
        .keys()
        .next()
        .unwrap()
        .clone();
    let mut retry = with(sample.clone(), &sampling);
    retry["requestState"] = asked["result"]["requestState"].clone();
    retry["inputResponses"] = json!({key: {"role": "assistant", "model": "m",
        "content": {"type": "text", "text": "answered"}}});
    modern.request(json!(5), "tools/call", retry);
    let done = modern.response(&json!(5));
    assert_eq!(first_text(&done["result"]), "answered", "{done}");

    modern.request(json!(3), "tools/call", with(sample, &bare));
    modern.request(json!(4), "tools/call", with(sleep, &sampling));
    let refused = modern.response(&json!(3));
    assert_eq!(refused["result"]["isError"], true, "{refused}");
    assert!(
        first_text(&refused["result"]).contains("sampling/createMessage"),
        "{refused}"
    );
    let slept = modern.response(&json!(4));
    assert_eq!(first_text(&slept["result"]), "slept 1500", "{slept}");
}

/// A token in a modern client's answer to an elicitation is blocked like one in arguments,
/// whichever era asked: for a legacy server's parked request the retry fails naming the rule and
/// the server is refused the answer; for a modern server's `input_required` the retry never
/// reaches it. The audit log names the rule, never the token.
#[test]
fn secrets_in_input_responses_are_blocked_by_rule_name() {
    if !require_docker() {
        return;
    }
    let daemon = mixed(&[]);
    // Assembled at run time so the repository holds no literal token.
    let token = format!("ghp_{}", "Q".repeat(36));
    let answer = json!({"action": "accept", "content": {"name": format!("I am {token}")}});
    let mut modern = daemon.raw_client(&[]);
    let meta = modern_meta(json!({"elicitation": {"form": {}}}));

    let elicit = json!({"name": "alpha__elicit", "arguments": {"mode": "form"}, "_meta": meta});
    modern.request(json!(1), "tools/call", elicit.clone());
    let asked = modern.response(&json!(1));
    let result = &asked["result"];
    assert_eq!(result["resultType"], "input_required", "{asked}");
    let key = result["inputRequests"]
        .as_object()
        .unwrap()
        .keys()
        .next()
        .unwrap();
    let mut retry = elicit.clone();
    retry["requestState"] = result["requestState"].clone();
    retry["inputResponses"] = json!({key.as_str(): answer});
    modern.request(json!(2), "tools/call", retry);

    let ask = json!({"name": "gamma__ask", "arguments": {"needs": ["elicitation"]}, "_meta": meta});
    modern.request(json!(3), "tools/call", ask.clone());
    let parked = modern.response(&json!(2));
    let asked = modern.response(&json!(3));
    let mut retry = ask;
    retry["requestState"] = asked["result"]["requestState"].clone();
    retry["inputResponses"] = json!({"round-0": answer});
    modern.request(json!(4), "tools/call", retry);
    let relayed = modern.response(&json!(4));

    for (blocked, name) in [(&parked, "alpha__elicit"), (&relayed, "gamma__ask")] {
        assert_eq!(blocked["error"]["code"], -32602, "{name}: {blocked}");
        let message = blocked["error"]["message"].as_str().unwrap();
        assert!(message.contains("github-token"), "{message}");
        assert!(
            !message.contains(&token),
            "the error repeats the token: {message}"
        );
    }

    // The audit log is written behind the calls.
    let blocked = |calls: &Value, name: &str| {
        calls["calls"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name && c["outcome"] == "blocked")
            .cloned()
    };
    let mut calls = Value::Null;
    mcp_gateway_tests::wait_for(Duration::from_secs(10), || {
        calls = serde_json::from_str(&daemon.ctl_ok(&["--json", "calls"])).unwrap();
        ["alpha__elicit", "gamma__ask"]
            .iter()
            .all(|name| blocked(&calls, name).is_some())
    });
    assert!(
        !calls.to_string().contains(&token),
        "the audit log holds the token: {calls}"
    );
    for name in ["alpha__elicit", "gamma__ask"] {
        let hit = blocked(&calls, name).unwrap_or_else(|| panic!("no blocked record of {name}"));
        assert_eq!(hit["secrets"], json!(["github-token"]), "{hit}");
    }
}

/// With `scan = "redact"`, the same answers reach both servers with the token replaced, and the
/// audit log records the rule for each.
#[test]
fn secrets_in_input_responses_are_redacted_when_the_profile_says() {
    if !require_docker() {
        return;
    }
    let daemon = mixed(&[]);
    let profiles = daemon.dir.path().join("config/mcp-gateway/profiles.toml");
    let text = std::fs::read_to_string(&profiles).unwrap();
    assert!(text.contains("[profiles.mixed]\n"), "{text}");
    let text = text.replace(
        "[profiles.mixed]\n",
        "[profiles.mixed]\nscan = \"redact\"\n",
    );
    std::fs::write(&profiles, text).unwrap();
    daemon.ctl_ok(&["reload"]);

    let token = format!("ghp_{}", "R".repeat(36));
    let answer = json!({"action": "accept", "content": {"name": format!("I am {token}")}});
    let redacted = "I am [REDACTED:github-token]";
    let mut modern = daemon.raw_client(&[]);
    let meta = modern_meta(json!({"elicitation": {"form": {}}}));

    let elicit = json!({"name": "alpha__elicit", "arguments": {"mode": "form"}, "_meta": meta});
    modern.request(json!(1), "tools/call", elicit.clone());
    let asked = modern.response(&json!(1));
    let key = asked["result"]["inputRequests"]
        .as_object()
        .unwrap_or_else(|| panic!("{asked}"))
        .keys()
        .next()
        .unwrap()
        .clone();
    let mut retry = elicit;
    retry["requestState"] = asked["result"]["requestState"].clone();
    retry["inputResponses"] = json!({key: answer});
    modern.request(json!(2), "tools/call", retry);
    let done = modern.response(&json!(2));
    let seen: Value = serde_json::from_str(first_text(&done["result"])).unwrap();
    assert_eq!(seen["content"]["name"], redacted, "{done}");

    let ask = json!({"name": "gamma__ask", "arguments": {"needs": ["elicitation"]}, "_meta": meta});
    modern.request(json!(3), "tools/call", ask.clone());
    let asked = modern.response(&json!(3));
    let mut retry = ask;
    retry["requestState"] = asked["result"]["requestState"].clone();
    retry["inputResponses"] = json!({"round-0": answer});
    modern.request(json!(4), "tools/call", retry);
    let done = modern.response(&json!(4));
    let seen: Value = serde_json::from_str(first_text(&done["result"])).unwrap();
    assert_eq!(seen[0]["content"]["name"], redacted, "{done}");

    let mut calls = Value::Null;
    let redacting = |calls: &Value, name: &str| {
        calls["calls"].as_array().unwrap().iter().any(|c| {
            c["name"] == name && c["outcome"] == "ok" && c["secrets"] == json!(["github-token"])
        })
    };
    mcp_gateway_tests::wait_for(Duration::from_secs(10), || {
        calls = serde_json::from_str(&daemon.ctl_ok(&["--json", "calls"])).unwrap();
        redacting(&calls, "alpha__elicit") && redacting(&calls, "gamma__ask")
    });
    assert!(!calls.to_string().contains(&token), "{calls}");
}
