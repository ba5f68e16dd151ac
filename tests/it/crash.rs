//! Crash safety and concurrency of the configuration files, with the real daemon and real
//! `mcpctl` processes: concurrent changes all land, and a daemon SIGKILLed while it rewrites a
//! large catalog (timed by its temporary file appearing) leaves files that parse, hold every
//! change it acknowledged, and let the next daemon start and change them.

use std::collections::BTreeSet;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use mcp_gateway_tests::{Daemon, Start, bin};

/// A value big enough that each rewrite of the catalog takes a while: 20 servers make it about
/// 1.3 MiB, written whole at every change.
fn big_value() -> String {
    "x".repeat(64 * 1024)
}

fn add(daemon: &Daemon, name: &str) -> Child {
    let env = format!("BIG={}", big_value());
    Command::new(bin("mcpctl"))
        .args(["server", "add", name, "--image", "img:crash", "--env", &env])
        .envs(daemon.env())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run mcpctl")
}

fn server_names(daemon: &Daemon) -> BTreeSet<String> {
    daemon.ctl_json(&["server", "ls"])["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_owned())
        .collect()
}

/// The catalog as the daemon's own parser sees it, run the way `mcpctl doctor` does.
fn check_config(daemon: &Daemon) -> std::process::Output {
    Command::new(bin("mcp-gatewayd"))
        .arg("--check-config")
        .envs(daemon.env())
        .output()
        .expect("run mcp-gatewayd --check-config")
}

#[test]
fn twenty_concurrent_server_adds_all_land() {
    let daemon = Daemon::start(Start::Bound);
    let names: Vec<String> = (0..20).map(|i| format!("par{i:02}")).collect();
    let children: Vec<Child> = names.iter().map(|name| add(&daemon, name)).collect();
    for child in children {
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    assert_eq!(
        server_names(&daemon),
        names.iter().cloned().collect::<BTreeSet<_>>()
    );
    let catalog = daemon.dir.path().join("config/mcp-gateway/catalog.toml");
    let text = std::fs::read_to_string(catalog).unwrap();
    assert_eq!(text.matches(&big_value()).count(), 20);
}

#[test]
fn a_daemon_killed_while_writing_leaves_parseable_files_with_every_acknowledged_change() {
    let mut daemon = Daemon::start(Start::Bound);
    let config_dir = daemon.dir.path().join("config/mcp-gateway");
    let mut acknowledged = BTreeSet::new();
    let mut cut_short = 0;
    for round in 0..3 {
        // Four writers add servers in a loop until the daemon is killed under them.
        let stop = Arc::new(AtomicBool::new(false));
        let writers: Vec<_> = (0..4)
            .map(|writer| {
                let stop = Arc::clone(&stop);
                let env = daemon.env();
                std::thread::spawn(move || {
                    let mut landed = Vec::new();
                    let value = format!("BIG={}", big_value());
                    for i in 0.. {
                        if stop.load(Ordering::SeqCst) {
                            break;
                        }
                        let name = format!("r{round}w{writer}n{i}");
                        let status = Command::new(bin("mcpctl"))
                            .args(["server", "add", &name, "--image", "img:crash"])
                            .args(["--env", &value])
                            .envs(env.iter().cloned())
                            .stdout(Stdio::null())
                            .stderr(Stdio::null())
                            .status()
                            .unwrap();
                        if status.success() {
                            landed.push(name);
                        } else {
                            // The daemon is gone: nothing more will land this round.
                            break;
                        }
                    }
                    landed
                })
            })
            .collect();
        // The kill lands while a write is under way: once its temporary file exists, before the
        // rename. Each round first lets some adds land, so the files hold something to lose.
        std::thread::sleep(Duration::from_millis(500));
        let writing = wait_for_temp_file(&config_dir, Duration::from_secs(20));
        daemon.kill();
        stop.store(true, Ordering::SeqCst);
        if writing.is_some_and(|name| temp_files(&config_dir).contains(&name)) {
            cut_short += 1;
        }
        // A bound daemon's socket outlives a SIGKILL; without it, the relaunch below waits until
        // the new daemon listens.
        std::fs::remove_file(&daemon.socket).unwrap();
        for writer in writers {
            acknowledged.extend(writer.join().unwrap());
        }

        let check = check_config(&daemon);
        assert!(
            check.status.success(),
            "round {round}: the files do not parse after the kill: {}",
            String::from_utf8_lossy(&check.stdout)
        );
        let text = std::fs::read_to_string(config_dir.join("catalog.toml")).unwrap();
        let catalog: toml::Table = toml::from_str(&text).unwrap();
        let servers = catalog["servers"].as_table().unwrap();
        for (name, server) in servers {
            assert_eq!(
                server["env"]["BIG"].as_str().map(str::len),
                Some(64 * 1024),
                "round {round}: server {name} is not whole"
            );
        }

        daemon.relaunch(Start::Bound);
        let present = server_names(&daemon);
        let lost: Vec<_> = acknowledged.difference(&present).collect();
        assert!(
            lost.is_empty(),
            "round {round}: acknowledged but lost: {lost:?}"
        );
    }
    assert!(
        acknowledged.len() >= 3,
        "too few writes landed to test anything: {acknowledged:?}"
    );
    // At least one kill cut a write short (its temporary file stayed), or the test proved nothing.
    assert!(cut_short >= 1, "no kill landed during a write");
    // Temporary files a kill left behind are ignored, and changes go on.
    daemon.ctl_ok(&["server", "add", "after", "--image", "img:after"]);
    assert!(server_names(&daemon).contains("after"));
    let stray = temp_files(&config_dir);
    for name in &stray {
        assert!(name.starts_with(".catalog.toml."), "{stray:?}");
    }
}

/// The names of the daemon's temporary files in `dir` (`.NAME.PID.tmp`).
fn temp_files(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|entry| entry.file_name().to_string_lossy().into_owned())
                .filter(|name| name.ends_with(".tmp"))
                .collect()
        })
        .unwrap_or_default()
}

/// Polls `dir` until a temporary file appears that was not there before (a write in progress)
/// and returns its name; `None` when none did within `limit`.
fn wait_for_temp_file(dir: &std::path::Path, limit: Duration) -> Option<String> {
    let before = temp_files(dir);
    let deadline = std::time::Instant::now() + limit;
    while std::time::Instant::now() < deadline {
        if let Some(name) = temp_files(dir).into_iter().find(|n| !before.contains(n)) {
            return Some(name);
        }
    }
    None
}
