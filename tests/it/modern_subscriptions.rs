//! Resource subscriptions on a 2026-07-28 server (issue 4), which has no `resources/subscribe`:
//! the gateway holds a `subscriptions/listen` stream naming the resource on it for as long as any
//! client subscribes, legacy clients with `resources/subscribe` and modern ones with their own
//! listen streams, and relays the server's updates to each in its own form.

use std::time::Duration;

use mcp_gateway_tests::{Daemon, RawClient, first_text, require_docker};
use serde_json::{Value, json};

use crate::modern_servers::{mixed, modern_meta};

const COUNTER: &str = "fixture://gamma/counter";

/// What the modern fixture says is watched: URIs subscribed or named by an open listen stream.
fn watched(client: &mut RawClient, id: i64) -> Value {
    client.request(
        json!(id),
        "tools/call",
        json!({"name": "gamma__subscriptions", "arguments": {}, "_meta": modern_meta(json!({}))}),
    );
    let answer = client.response(&json!(id));
    serde_json::from_str(first_text(&answer["result"])).unwrap_or_else(|e| panic!("{e}: {answer}"))
}

/// Waits until the modern fixture watches exactly `expected`.
fn settles_on(client: &mut RawClient, expected: Value) {
    let mut seen = Value::Null;
    for id in 100.. {
        seen = watched(client, id);
        if seen == expected || id > 150 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(seen, expected);
}

fn bump(client: &mut RawClient, id: i64) -> String {
    client.request(
        json!(id),
        "tools/call",
        json!({"name": "gamma__bump", "arguments": {}, "_meta": modern_meta(json!({}))}),
    );
    first_text(&client.response(&json!(id))["result"]).to_owned()
}

/// The SDK's legacy `ClientSession` subscribes to a modern server's resource and hears its
/// update as a plain `notifications/resources/updated`; the SDK's modern `Client` does the same
/// with a listen stream. The server sees one listen stream per subscribed resource, gone after
/// the last unsubscribe.
#[test]
fn both_eras_of_the_python_sdk_hear_a_modern_servers_updates() {
    if !require_docker() {
        return;
    }
    let daemon = mixed(&[]);
    let legacy = daemon.python_run(
        &json!([
            {"op": "subscribe", "uri": COUNTER},
            {"op": "call_tool", "name": "gamma__subscriptions", "arguments": {}},
            {"op": "call_tool", "name": "gamma__bump", "arguments": {}},
            {"op": "sleep", "ms": 500},
            {"op": "unsubscribe", "uri": COUNTER},
        ]),
        &[],
    );
    let steps = &legacy["steps"];
    assert_eq!(steps[0], json!({}), "{legacy}");
    assert_eq!(first_text(&steps[1]), format!("[\"{COUNTER}\"]"));
    assert_eq!(first_text(&steps[2]), "counter 1 subscribed true");
    let updates: Vec<&Value> = legacy["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["method"] == "notifications/resources/updated")
        .collect();
    assert_eq!(updates.len(), 1, "{}", legacy["notifications"]);
    // The gateway's own listen stream on the server is not the client's business.
    assert_eq!(
        updates[0]["params"],
        json!({"uri": COUNTER}),
        "{}",
        updates[0]
    );
    let mut raw = daemon.raw_client(&[]);
    settles_on(&mut raw, json!([]));

    let modern = daemon.python_run_with(
        &json!([{"op": "listen", "uris": [COUNTER, "fixture://gamma/nothing"], "events": 1, "steps": [
            {"op": "call_tool", "name": "gamma__bump", "arguments": {}},
        ]}]),
        &["--mode", "2026-07-28"],
        &[],
    );
    let listened = &modern["steps"][0];
    assert_eq!(listened["honored"], json!([COUNTER]), "{modern}");
    assert_eq!(
        first_text(&listened["steps"][0]),
        "counter 2 subscribed true"
    );
    assert_eq!(
        listened["events"],
        json!([{"type": "ResourceUpdated", "uri": COUNTER}])
    );
    settles_on(&mut raw, json!([]));
}

/// On the wire: two clients subscribed to one resource of a modern server share one upstream
/// listen stream; each hears updates in its own form (the legacy one plainly, the modern one
/// tagged with its own listen id); the stream stays while one subscriber is left and is
/// cancelled on the server with the last one. A resource the server does not accept is
/// refused to a legacy client and left out of a modern client's acknowledgement.
#[test]
fn one_upstream_listen_serves_every_subscriber_until_the_last_leaves() {
    if !require_docker() {
        return;
    }
    let daemon: Daemon = mixed(&[]);
    let mut legacy = daemon.raw_client(&[]);
    legacy.initialize("2025-11-25", json!({}));
    legacy.request(json!(1), "resources/subscribe", json!({"uri": COUNTER}));
    assert_eq!(legacy.response(&json!(1))["result"], json!({}));
    legacy.request(
        json!(2),
        "resources/subscribe",
        json!({"uri": "mcp-gateway://gamma/fixture://gamma/nothing"}),
    );
    let refused = legacy.response(&json!(2));
    assert_eq!(refused["error"]["code"], -32002, "{refused}");

    let mut modern = daemon.raw_client(&[]);
    modern.request(
        json!("watch"),
        "subscriptions/listen",
        json!({"_meta": modern_meta(json!({})), "notifications": {"resourceSubscriptions": [COUNTER, "fixture://gamma/nothing"]}}),
    );
    let ack = modern
        .wait(Duration::from_secs(20), |m| {
            m["method"] == "notifications/subscriptions/acknowledged"
        })
        .expect("an acknowledgement");
    assert_eq!(
        ack["params"]["notifications"],
        json!({"resourceSubscriptions": [COUNTER]}),
        "{ack}"
    );

    let mut other = daemon.raw_client(&[]);
    assert_eq!(watched(&mut other, 1), json!([COUNTER]));
    assert_eq!(bump(&mut other, 2), "counter 1 subscribed true");
    let plain = legacy
        .wait(Duration::from_secs(10), |m| {
            m["method"] == "notifications/resources/updated"
        })
        .expect("the legacy client's update");
    assert_eq!(plain["params"], json!({"uri": COUNTER}), "{plain}");
    let tagged = modern
        .wait(Duration::from_secs(10), |m| {
            m["method"] == "notifications/resources/updated"
        })
        .expect("the modern client's update");
    assert_eq!(
        tagged["params"],
        json!({"uri": COUNTER, "_meta": {"io.modelcontextprotocol/subscriptionId": "watch"}}),
        "{tagged}"
    );

    legacy.request(json!(3), "resources/unsubscribe", json!({"uri": COUNTER}));
    assert_eq!(legacy.response(&json!(3))["result"], json!({}));
    assert_eq!(watched(&mut other, 3), json!([COUNTER]));
    assert_eq!(bump(&mut other, 4), "counter 2 subscribed true");
    assert!(
        modern
            .wait(Duration::from_secs(10), |m| {
                m["method"] == "notifications/resources/updated"
            })
            .is_some()
    );

    modern.notify("notifications/cancelled", json!({"requestId": "watch"}));
    settles_on(&mut other, json!([]));
    assert_eq!(bump(&mut other, 5), "counter 3 subscribed false");
    assert!(
        legacy
            .wait(Duration::from_millis(500), |m| {
                m["method"] == "notifications/resources/updated"
            })
            .is_none()
    );
}

/// A legacy client that subscribed and went away releases its share: the server's listen
/// stream is cancelled when the session ends.
#[test]
fn a_session_ending_closes_its_listen_on_the_modern_server() {
    if !require_docker() {
        return;
    }
    let daemon = mixed(&[]);
    let mut legacy = daemon.raw_client(&[]);
    legacy.initialize("2025-11-25", json!({}));
    legacy.request(json!(1), "resources/subscribe", json!({"uri": COUNTER}));
    assert_eq!(legacy.response(&json!(1))["result"], json!({}));
    let mut other = daemon.raw_client(&[]);
    assert_eq!(watched(&mut other, 1), json!([COUNTER]));
    assert!(legacy.close().success());
    settles_on(&mut other, json!([]));
}
