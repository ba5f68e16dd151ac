//! `isolation = "session"` against a real engine (issue 9): each client session of a profile gets
//! its own container of such a server, with its own state, removed when the session ends (closed,
//! or its bridge SIGKILLed) and at daemon shutdown, while a shared server of the same profile
//! keeps one container for all; the Python SDK sees the same over `mcp-shim`. With
//! `isolation = "call"` each call gets a fresh container, removed when the call ends (answered,
//! cancelled, timed out, or its client SIGKILLed mid-call), leaving only the profile's listing
//! container.

use std::collections::BTreeSet;
use std::time::Duration;

use mcp_gateway_tests::{
    Daemon, RawClient, Start, first_text, fixture_image, require_docker, wait_for,
};
use serde_json::{Value, json};

const SESSION_LABEL: &str = "io.mcp-gateway.session";

/// Adds the fixture as the shared server `alpha` and the session-isolated server `solo`.
fn two_servers(daemon: &Daemon) {
    daemon.add_fixture("alpha");
    daemon.ctl_ok(&[
        "server",
        "add",
        "solo",
        "--image",
        fixture_image(),
        "--env",
        "MCP_FIXTURE_NAME=solo",
        "--isolation",
        "session",
    ]);
}

/// This daemon's containers of `server`: how many are shared, and the session labels of the
/// others. One `docker ps`, so a container removed meanwhile cannot fail the count.
fn containers_of(daemon: &Daemon, server: &str) -> (usize, BTreeSet<String>) {
    let mine: BTreeSet<String> = daemon.containers().into_iter().collect();
    let output = std::process::Command::new("docker")
        .args([
            "ps",
            "-a",
            "--no-trunc",
            "--filter",
            &format!("label=io.mcp-gateway.server={server}"),
            "--format",
            &format!("{{{{.ID}}}} {{{{.Label \"{SESSION_LABEL}\"}}}}"),
        ])
        .output()
        .expect("docker ps");
    assert!(output.status.success(), "docker ps failed");
    let (mut shared, mut sessions) = (0, BTreeSet::new());
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let (id, session) = line.split_once(' ').unwrap_or((line, ""));
        if !mine.contains(id) {
            continue;
        }
        match session.trim() {
            "" => shared += 1,
            session => {
                sessions.insert(session.to_owned());
            }
        }
    }
    (shared, sessions)
}

/// Calls the fixture's `bump` tool as `tool` and returns the counter it reports.
fn bump(client: &mut RawClient, id: u64, tool: &str) -> u64 {
    let id = json!(id);
    client.request(
        id.clone(),
        "tools/call",
        json!({"name": tool, "arguments": {}}),
    );
    let response = client.response(&id);
    let text = first_text(&response["result"]);
    text.strip_prefix("counter ")
        .and_then(|rest| rest.split(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("not a bump answer: {text}"))
}

/// `server ls --json`'s container rows for `server`.
fn rows(daemon: &Daemon, server: &str) -> Vec<Value> {
    let entry = daemon.server_entry(server);
    assert_eq!(
        entry["run"]["isolation"],
        if server == "solo" {
            "session"
        } else {
            "shared"
        },
        "{entry}"
    );
    entry["containers"].as_array().unwrap().clone()
}

fn running_session_rows(daemon: &Daemon, server: &str) -> Vec<Value> {
    rows(daemon, server)
        .into_iter()
        .filter(|row| row["session"].is_u64() && row["state"] == "running")
        .collect()
}

#[test]
fn each_session_has_its_own_container_removed_when_the_session_ends() {
    if !require_docker() {
        return;
    }
    let daemon = Daemon::start(Start::Bound);
    two_servers(&daemon);
    let mut first = daemon.raw_client(&[]);
    first.initialize("2025-11-25", json!({}));
    let mut second = daemon.raw_client(&[]);
    second.initialize("2025-11-25", json!({}));

    // The session-isolated counter counts each session's calls apart; the shared one counts all.
    assert_eq!(bump(&mut first, 1, "solo__bump"), 1);
    assert_eq!(bump(&mut first, 2, "solo__bump"), 2);
    assert_eq!(bump(&mut second, 1, "solo__bump"), 1);
    assert_eq!(bump(&mut first, 3, "alpha__bump"), 1);
    assert_eq!(bump(&mut second, 2, "alpha__bump"), 2);

    // A session container's log message reaches its own session only; a shared one's, both.
    let log = |client: &mut RawClient, id: u64, tool: &str, message: &str| {
        let id = json!(id);
        client.request(
            id.clone(),
            "tools/call",
            json!({"name": tool, "arguments": {"level": "error", "message": message}}),
        );
        client.response(&id);
    };
    let logged = |message: &'static str| {
        move |m: &Value| m["method"] == "notifications/message" && m["params"]["data"] == message
    };
    log(&mut first, 10, "solo__log", "solo only");
    assert!(
        first
            .wait(Duration::from_secs(5), logged("solo only"))
            .is_some()
    );
    log(&mut first, 11, "alpha__log", "for all");
    assert!(
        first
            .wait(Duration::from_secs(5), logged("for all"))
            .is_some()
    );
    // The shared message, sent after the session one, arriving shows the other session's
    // message would have arrived by now had it been sent here.
    assert!(
        second
            .wait(Duration::from_secs(5), logged("for all"))
            .is_some()
    );
    assert!(
        second.wait(Duration::ZERO, logged("solo only")).is_none(),
        "{:?}",
        second.seen
    );

    let (_, sessions) = containers_of(&daemon, "solo");
    assert_eq!(sessions.len(), 2, "one container per session: {sessions:?}");
    assert_eq!(containers_of(&daemon, "alpha"), (1, BTreeSet::new()));

    // `server ls` shows one row per session container, each used by its one session, and the
    // shared container used by both sessions.
    let solo_rows = running_session_rows(&daemon, "solo");
    assert_eq!(solo_rows.len(), 2, "{solo_rows:?}");
    let listed: BTreeSet<String> = solo_rows
        .iter()
        .map(|row| row["session"].to_string())
        .collect();
    assert_eq!(listed, sessions);
    assert!(
        solo_rows.iter().all(|row| row["sessions"] == 1),
        "{solo_rows:?}"
    );
    let alpha_rows = rows(&daemon, "alpha");
    assert_eq!(alpha_rows.len(), 1, "{alpha_rows:?}");
    assert_eq!(alpha_rows[0]["sessions"], 2, "{alpha_rows:?}");
    assert!(alpha_rows[0]["session"].is_null(), "{alpha_rows:?}");
    let text = daemon.ctl_ok(&["server", "ls"]);
    assert!(text.contains("one per session"), "{text}");
    assert!(text.contains("default/session "), "{text}");

    // A session that closes takes its container with it, and only its own.
    assert!(first.close().success());
    wait_for(Duration::from_secs(10), || {
        containers_of(&daemon, "solo").1.len() == 1
    });
    assert_eq!(running_session_rows(&daemon, "solo").len(), 1);
    assert_eq!(bump(&mut second, 3, "solo__bump"), 2);

    // So does one whose bridge is SIGKILLed (dropping a raw client kills its shim): the
    // daemon sees the end of the session's socket.
    drop(second);
    wait_for(Duration::from_secs(10), || {
        containers_of(&daemon, "solo").1.is_empty()
    });
    assert!(running_session_rows(&daemon, "solo").is_empty());
    assert_eq!(containers_of(&daemon, "alpha"), (1, BTreeSet::new()));
}

#[test]
fn session_containers_are_removed_at_shutdown() {
    if !require_docker() {
        return;
    }
    let mut daemon = Daemon::start(Start::Bound);
    two_servers(&daemon);
    let mut client = daemon.raw_client(&[]);
    client.initialize("2025-11-25", json!({}));
    assert_eq!(bump(&mut client, 1, "solo__bump"), 1);
    assert_eq!(containers_of(&daemon, "solo").1.len(), 1);
    assert!(daemon.stop());
    assert!(daemon.containers().is_empty(), "{:?}", daemon.containers());
}

#[test]
fn python_sdk_sessions_do_not_share_a_session_isolated_server() {
    if !require_docker() {
        return;
    }
    let daemon = Daemon::start(Start::Bound);
    two_servers(&daemon);
    let steps = json!([
        {"op": "call_tool", "name": "solo__bump", "arguments": {}},
        {"op": "call_tool", "name": "solo__bump", "arguments": {}},
        {"op": "call_tool", "name": "alpha__bump", "arguments": {}},
    ]);
    let texts = |report: &Value| -> Vec<String> {
        report["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|step| first_text(step).to_owned())
            .collect()
    };
    let first = daemon.python_run(&steps, &[]);
    assert_eq!(
        texts(&first),
        [
            "counter 1 subscribed false",
            "counter 2 subscribed false",
            "counter 1 subscribed false"
        ]
    );
    wait_for(Duration::from_secs(10), || {
        containers_of(&daemon, "solo").1.is_empty()
    });
    // A later session starts from a fresh server; the shared one remembers.
    let second = daemon.python_run(&steps, &[]);
    assert_eq!(
        texts(&second),
        [
            "counter 1 subscribed false",
            "counter 2 subscribed false",
            "counter 2 subscribed false"
        ]
    );
    wait_for(Duration::from_secs(10), || {
        containers_of(&daemon, "solo").1.is_empty()
    });
    assert_eq!(containers_of(&daemon, "alpha"), (1, BTreeSet::new()));
}

/// Adds the fixture as `fresh`, with a container per call.
fn per_call_server(daemon: &Daemon) {
    daemon.ctl_ok(&[
        "server",
        "add",
        "fresh",
        "--image",
        fixture_image(),
        "--env",
        "MCP_FIXTURE_NAME=fresh",
        "--isolation",
        "call",
    ]);
}

#[test]
fn each_call_of_a_per_call_server_runs_in_a_fresh_container() {
    if !require_docker() {
        return;
    }
    let daemon = Daemon::start(Start::Bound);
    per_call_server(&daemon);
    let mut client = daemon.raw_client(&[]);
    client.initialize("2025-11-25", json!({}));
    // A stateful tool called twice starts from scratch both times.
    assert_eq!(bump(&mut client, 1, "bump"), 1);
    assert_eq!(bump(&mut client, 2, "bump"), 1);
    // Concurrent calls each have their own container too.
    for id in 10..14 {
        client.request(
            json!(id),
            "tools/call",
            json!({"name": "bump", "arguments": {}}),
        );
    }
    for id in 10..14 {
        let response = client.response(&json!(id));
        assert!(
            first_text(&response["result"]).starts_with("counter 1 "),
            "{response}"
        );
    }
    // Only the listing container (the lists' source) stays.
    wait_for(Duration::from_secs(10), || daemon.containers().len() == 1);
    let text = daemon.ctl_ok(&["server", "ls"]);
    assert!(text.contains("one per call"), "{text}");
    let servers = daemon.ctl_json(&["server", "ls"]);
    assert_eq!(
        servers["servers"][0]["run"]["isolation"], "call",
        "{servers}"
    );
}

#[test]
fn a_per_call_container_goes_when_its_call_is_cancelled_or_its_client_killed() {
    if !require_docker() {
        return;
    }
    let daemon = Daemon::start(Start::Bound);
    per_call_server(&daemon);
    let mut client = daemon.raw_client(&[]);
    client.initialize("2025-11-25", json!({}));
    client.request(
        json!(1),
        "tools/call",
        json!({"name": "sleep", "arguments": {"ms": 60000}}),
    );
    // The listing container and the call's.
    wait_for(Duration::from_secs(20), || daemon.containers().len() == 2);
    // A call the client cancels takes its container with it.
    client.notify(
        "notifications/cancelled",
        json!({"requestId": 1, "reason": "test"}),
    );
    wait_for(Duration::from_secs(10), || daemon.containers().len() == 1);
    client.request(
        json!(2),
        "tools/call",
        json!({"name": "sleep", "arguments": {"ms": 60000}}),
    );
    wait_for(Duration::from_secs(20), || daemon.containers().len() == 2);
    // Dropping a raw client SIGKILLs its shim.
    drop(client);
    wait_for(Duration::from_secs(10), || daemon.containers().len() == 1);
}

#[test]
fn a_per_call_container_goes_when_its_call_times_out() {
    if !require_docker() {
        return;
    }
    let daemon = Daemon::start_with_env(Start::Bound, &[("MCP_GATEWAY_REQUEST_TIMEOUT", "3")]);
    per_call_server(&daemon);
    let mut client = daemon.raw_client(&[]);
    client.initialize("2025-11-25", json!({}));
    client.request(
        json!(1),
        "tools/call",
        json!({"name": "sleep", "arguments": {"ms": 60000}}),
    );
    wait_for(Duration::from_secs(20), || daemon.containers().len() == 2);
    let answer = client.response(&json!(1));
    let message = answer["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("did not answer"), "{answer}");
    wait_for(Duration::from_secs(10), || daemon.containers().len() == 1);
}
