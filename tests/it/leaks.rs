//! Clients killed with SIGKILL in the middle of a call (issue 9): a hundred real `mcp-shim`
//! sessions, several at once, each left with a call in flight on the shared container and then
//! killed, leave the daemon with the containers, child processes and zombies it had before, and
//! the container with the processes it had.

use std::process::Command;
use std::time::Duration;

use mcp_gateway_tests::{Daemon, Start, children, require_docker, wait_for};
use serde_json::json;

const CYCLES: usize = 100;
/// Clients alive (and killed) at once.
const CONCURRENT: usize = 5;
/// The call each client leaves in flight: longer than the client lives.
const SLOW_CALL_MS: u64 = 1500;

#[derive(Debug, PartialEq, Eq)]
struct Counts {
    containers: Vec<String>,
    /// The daemon's child processes and zombies.
    children: (u64, u64),
    /// Processes inside the shared container, as the engine lists them.
    in_container: usize,
}

fn counts(daemon: &Daemon) -> Counts {
    let containers = daemon.containers();
    let in_container = containers.first().map_or(0, |id| {
        let top = Command::new("docker")
            .args(["top", id])
            .output()
            .expect("docker top");
        // The first line is the header.
        String::from_utf8_lossy(&top.stdout)
            .lines()
            .count()
            .saturating_sub(1)
    });
    let pid = daemon.pid().expect("the daemon runs");
    Counts {
        containers,
        children: children(pid).expect("/proc"),
        in_container,
    }
}

#[test]
fn clients_killed_mid_call_leave_nothing_behind() {
    if !require_docker() {
        return;
    }
    let daemon = Daemon::start(Start::Bound);
    daemon.add_fixture("alpha");
    assert_eq!(daemon.ctl_ok(&["tools", "call", "whoami"]).trim(), "alpha");
    let before = counts(&daemon);
    assert_eq!(before.containers.len(), 1, "{before:?}");

    for round in 0..CYCLES / CONCURRENT {
        let mut clients: Vec<_> = (0..CONCURRENT)
            .map(|n| {
                let mut client = daemon.raw_client(&["--client", &format!("killed-{round}-{n}")]);
                client.initialize("2025-11-25", json!({}));
                client.request(
                    json!("slow"),
                    "tools/call",
                    json!({"name": "sleep", "arguments": {"ms": SLOW_CALL_MS}}),
                );
                client
            })
            .collect();
        // A quick call answered proves the session is served, with the slow one in flight.
        for client in &mut clients {
            client.request(json!("quick"), "tools/call", json!({"name": "whoami"}));
            let answer = client.response(&json!("quick"));
            assert_eq!(answer["result"]["content"][0]["text"], "alpha", "{answer}");
        }
        // Dropping a raw client SIGKILLs its shim.
        drop(clients);
    }

    // The calls left in flight end on the server; then every count is as it was.
    wait_for(Duration::from_secs(20), || counts(&daemon) == before);
    assert_eq!(daemon.ctl_ok(&["tools", "call", "whoami"]).trim(), "alpha");
}
