//! The on-disk list cache across activations (issue 9): the first lists after a socket
//! activation come from the cache without a container, the containers start in the background,
//! a real list that differs from the cache is announced with `list_changed`, and a changed
//! definition is never answered from the cache.

use std::path::PathBuf;
use std::time::Duration;

use mcp_gateway_tests::{Daemon, RawClient, Start, require_docker, wait_for};
use serde_json::{Value, json};

const KINDS: [(&str, &str); 4] = [
    ("tools/list", "tools"),
    ("prompts/list", "prompts"),
    ("resources/list", "resources"),
    ("resources/templates/list", "resourceTemplates"),
];

fn cache_file(daemon: &Daemon, server: &str) -> PathBuf {
    daemon
        .dir
        .path()
        .join(format!("state/mcp-gateway/lists/default/{server}.json"))
}

/// Every item of one list, over all of the gateway's pages.
fn list(client: &mut RawClient, method: &str, field: &str) -> Vec<Value> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    for page in 0.. {
        let id = json!(format!("{method}-{page}"));
        let params = cursor
            .as_ref()
            .map_or(json!({}), |c| json!({ "cursor": c }));
        client.request(id.clone(), method, params);
        let answer = client.response(&id);
        let result = &answer["result"];
        items.extend(
            result[field]
                .as_array()
                .unwrap_or_else(|| panic!("{answer}"))
                .clone(),
        );
        cursor = result["nextCursor"].as_str().map(str::to_owned);
        if cursor.is_none() {
            break;
        }
    }
    items
}

fn names(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|item| item["name"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// A socket-activated daemon with server `alpha`, listed once so that its cache entry exists,
/// then stopped. Returns the daemon and what the real server listed, per kind.
fn listed_then_stopped() -> (Daemon, Vec<Vec<Value>>) {
    let mut daemon = Daemon::start_capturing_stderr(Start::SocketActivated, &[]);
    daemon.add_fixture("alpha");
    let mut client = daemon.raw_client(&[]);
    let real: Vec<Vec<Value>> = KINDS
        .iter()
        .map(|(method, field)| list(&mut client, method, field))
        .collect();
    assert!(!real[0].is_empty() && !real[3].is_empty(), "{real:?}");
    assert_eq!(
        daemon.containers().len(),
        1,
        "the first listing started alpha"
    );
    // The entry is written in the background, once every kind has been listed.
    let file = cache_file(&daemon, "alpha");
    wait_for(Duration::from_secs(20), || file.exists());
    drop(client);
    assert!(daemon.stop(), "the daemon exits cleanly on SIGTERM");
    assert!(daemon.containers().is_empty(), "no container survives");
    (daemon, real)
}

/// The log of the latest activation: the daemon appends to one file across relaunches.
fn log_since(daemon: &Daemon, offset: usize) -> String {
    daemon.log()[offset..].to_owned()
}

#[test]
fn the_first_lists_after_an_activation_come_from_the_cache() {
    if !require_docker() {
        return;
    }
    let (mut daemon, real) = listed_then_stopped();
    let file = cache_file(&daemon, "alpha");
    let mode = std::os::unix::fs::PermissionsExt::mode(&file.metadata().unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600, "the cache file is private");

    let offset = daemon.log().len();
    daemon.relaunch(Start::SocketActivated);
    // No `initialize`: nothing but the listing itself may start a container.
    let mut client = daemon.raw_client(&[]);
    for ((method, field), real) in KINDS.iter().zip(&real) {
        assert_eq!(
            &list(&mut client, method, field),
            real,
            "{method} from the cache"
        );
    }
    let log = log_since(&daemon, offset);
    for (_, field) in KINDS {
        let line = format!("{field} from the list cache");
        assert!(log.contains(&line), "no {line:?} in the log:\n{log}");
    }
    // Every answer was given before any container started: the start is the warming after it.
    let first_answer = log.find("from the list cache").unwrap();
    if let Some(start) = log.find("started ") {
        assert!(first_answer < start, "a container started first:\n{log}");
    }
    wait_for(Duration::from_secs(30), || daemon.containers().len() == 1);

    // Once warmed, the server answers itself and a call reaches it.
    client.request(json!("call"), "tools/call", json!({"name": "whoami"}));
    let answer = client.response(&json!("call"));
    assert_eq!(answer["result"]["content"][0]["text"], "alpha", "{answer}");
    drop(client);
    assert!(daemon.stop());
    assert!(daemon.containers().is_empty());
}

#[test]
fn a_real_list_that_differs_from_the_cache_is_announced_and_replaces_it() {
    if !require_docker() {
        return;
    }
    let (mut daemon, real) = listed_then_stopped();
    // What a server whose tools changed between two activations looks like to the gateway: the
    // entry is still valid for its image and definition, but names a tool the server dropped and
    // misses one it has.
    let file = cache_file(&daemon, "alpha");
    let mut entry: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    let tools = entry["lists"]["tools"].as_array_mut().unwrap();
    tools.retain(|tool| tool["name"] != "echo");
    tools.push(json!({"name": "retired", "inputSchema": {"type": "object"}}));
    std::fs::write(&file, entry.to_string()).unwrap();

    daemon.relaunch(Start::SocketActivated);
    let mut client = daemon.raw_client(&[]);
    client.initialize("2025-11-25", json!({}));
    let cached = names(&list(&mut client, "tools/list", "tools"));
    assert!(
        cached.contains(&"retired".to_owned()) && !cached.contains(&"echo".to_owned()),
        "the first list is the cached one: {cached:?}"
    );
    let changed = client.wait(Duration::from_secs(30), |m| {
        m["method"] == "notifications/tools/list_changed"
    });
    assert!(
        changed.is_some(),
        "no list_changed; seen: {:?}",
        client.seen
    );
    assert_eq!(
        list(&mut client, "tools/list", "tools"),
        real[0],
        "the real list"
    );
    // Only the kind that differed is announced.
    std::thread::sleep(Duration::from_millis(300));
    let others: Vec<_> = client
        .seen
        .iter()
        .filter(|m| {
            m["method"]
                .as_str()
                .is_some_and(|m| m.ends_with("list_changed"))
        })
        .collect();
    assert!(others.is_empty(), "other kinds announced: {others:?}");

    // The entry on disk is the real one again.
    wait_for(Duration::from_secs(10), || {
        let entry: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        entry["lists"]["tools"].as_array() == Some(&real[0])
    });
    drop(client);
    assert!(daemon.stop());
}

#[test]
fn a_changed_definition_or_a_corrupt_file_is_not_answered_from_the_cache() {
    if !require_docker() {
        return;
    }
    let (mut daemon, _) = listed_then_stopped();
    let offset = daemon.log().len();
    daemon.relaunch(Start::SocketActivated);
    // The profile's values reach the container's environment, so they are part of the key.
    daemon.ctl_ok(&["profile", "create", "default", "--server", "alpha"]);
    daemon.ctl_ok(&[
        "profile",
        "config",
        "default",
        "alpha.MCP_FIXTURE_EXTRA_TOOLS=3",
    ]);
    let mut client = daemon.raw_client(&[]);
    let tools = names(&list(&mut client, "tools/list", "tools"));
    assert!(tools.contains(&"extra_3".to_owned()), "{tools:?}");
    let log = log_since(&daemon, offset);
    assert!(!log.contains("from the list cache"), "{log}");
    drop(client);
    assert!(daemon.stop());

    // A file that is not an entry is ignored with a log line, and the listing starts the server.
    let file = cache_file(&daemon, "alpha");
    std::fs::write(&file, b"{\"format\": 1, \"lists\": [").unwrap();
    let offset = daemon.log().len();
    daemon.relaunch(Start::SocketActivated);
    let mut client = daemon.raw_client(&[]);
    let tools = names(&list(&mut client, "tools/list", "tools"));
    assert!(tools.contains(&"extra_3".to_owned()), "{tools:?}");
    let log = log_since(&daemon, offset);
    assert!(
        log.contains("alpha.json") && log.contains("ignored"),
        "{log}"
    );
    assert!(!log.contains("from the list cache"), "{log}");
    drop(client);
    assert!(daemon.stop());
}

/// A session that opens starts its profile's servers in the background, before any request
/// needs them: a legacy client at `initialize`, a modern one at its first request.
#[test]
fn an_opening_session_warms_its_profiles_servers() {
    if !require_docker() {
        return;
    }
    let daemon = Daemon::start(Start::Bound);
    daemon.add_fixture("alpha");
    daemon.add_fixture("beta");
    let mut legacy = daemon.raw_client(&[]);
    assert!(
        daemon.containers().is_empty(),
        "nothing starts on connecting"
    );
    legacy.initialize("2025-11-25", json!({}));
    wait_for(Duration::from_secs(30), || daemon.containers().len() == 2);
    drop(legacy);
    daemon.ctl_ok(&["server", "restart", "alpha"]);
    daemon.ctl_ok(&["server", "restart", "beta"]);
    wait_for(Duration::from_secs(30), || daemon.containers().is_empty());

    let mut modern = daemon.raw_client(&[]);
    let meta = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": {"name": "raw-test", "version": "0"},
        "io.modelcontextprotocol/clientCapabilities": {},
    });
    modern.request(json!(1), "server/discover", json!({ "_meta": meta }));
    let discover = modern.response(&json!(1));
    assert!(discover.get("result").is_some(), "{discover}");
    wait_for(Duration::from_secs(30), || daemon.containers().len() == 2);
}
