//! Hostile peers (issue 7): a server and clients that misbehave on the wire hurt only themselves.
//! Each test runs the attack on one profile while a second session, on another profile and
//! server, calls `echo` in a loop; its calls must all succeed within the request timeout, and
//! their latency during the attack is printed (not asserted: speed belongs to `bench/`). The
//! daemon's resident memory is read before and after and must stay within a generous bound.
//!
//! A server writing unprompted output past its budget (4096 lines at once, then 1000 lines or
//! 2 MiB a second) is read more slowly, so the floods here are sized to last seconds, not
//! minutes, at that pace.

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mcp_gateway_tests::{Daemon, RawClient, Start, require_docker, wait_for};
use serde_json::{Value, json};

/// How much the daemon's resident memory may grow during an attack. Generous: it tells bounded
/// from unbounded (the attacks below move hundreds of megabytes), not lean from fat.
const RSS_BOUND_KIB: u64 = 64 * 1024;

/// Longer than the daemon's default MCP line limit (16 MiB).
const GIANT: usize = 17 * 1024 * 1024;

/// A daemon with a `hostile` profile holding `server` (the fixture with `env`) and a `calm`
/// profile holding an ordinary fixture.
fn two_profiles(server: &str, env: &[&str]) -> Daemon {
    with_two_profiles(Daemon::start(Start::Bound), server, env)
}

/// [`two_profiles`] on a daemon already started.
fn with_two_profiles(daemon: Daemon, server: &str, env: &[&str]) -> Daemon {
    daemon.add_fixture_with_env(server, env);
    daemon.add_fixture("calm");
    daemon.ctl_ok(&["profile", "create", "hostile", "--server", server]);
    daemon.ctl_ok(&["profile", "create", "calm", "--server", "calm"]);
    daemon
}

fn rss_kib(daemon: &Daemon) -> u64 {
    let pid = daemon.pid().expect("the daemon runs");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS in {status}"))
}

/// A session on the `calm` profile calling `echo` until stopped; each call must be answered
/// within the harness's answer timeout.
struct Probe {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Vec<Duration>>,
}

impl Probe {
    fn start(daemon: &Daemon) -> Probe {
        let mut client = daemon.raw_client(&["--profile", "calm"]);
        client.initialize("2025-11-25", json!({}));
        // The first call starts the container; only calls after it measure the gateway.
        let answer = call(&mut client, 0, "echo", json!({"text": "warm"}));
        assert_eq!(answer["result"]["content"][0]["text"], "warm", "{answer}");
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut latencies = Vec::new();
            let mut id = 1;
            while !stopped.load(Ordering::Relaxed) {
                let sent = Instant::now();
                let answer = call(&mut client, id, "echo", json!({"text": id.to_string()}));
                latencies.push(sent.elapsed());
                assert_eq!(
                    answer["result"]["content"][0]["text"],
                    id.to_string(),
                    "{answer}"
                );
                id += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            latencies
        });
        Probe { stop, thread }
    }

    /// Stops the probe and prints its latencies under `label`.
    fn finish(self, label: &str) {
        self.stop.store(true, Ordering::Relaxed);
        let mut latencies = self.thread.join().expect("the calm session's calls failed");
        assert!(!latencies.is_empty(), "the calm session made no call");
        latencies.sort();
        let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
        eprintln!(
            "{label}: the calm session's echo during the attack: {} calls, p50 {:?}, p99 {:?}, max {:?}",
            latencies.len(),
            at(0.5),
            at(0.99),
            latencies[latencies.len() - 1]
        );
    }
}

/// Ends an attack: stops the probe and prints its latencies, prints the daemon's memory before
/// and now, and fails when it grew past the bound.
fn end_attack(daemon: &Daemon, probe: Probe, before: u64, label: &str) {
    let after = rss_kib(daemon);
    probe.finish(label);
    eprintln!("{label}: daemon RSS {before} KiB before, {after} KiB after");
    assert!(
        after < before + RSS_BOUND_KIB,
        "{label}: the daemon grew from {before} KiB to {after} KiB"
    );
}

fn call(client: &mut RawClient, id: u64, name: &str, arguments: Value) -> Value {
    client.request(
        json!(id),
        "tools/call",
        json!({"name": name, "arguments": arguments}),
    );
    client.response(&json!(id))
}

fn error_message(answer: &Value) -> &str {
    answer["error"]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("not an error: {answer}"))
}

fn text(answer: &Value) -> &str {
    answer["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("no text result: {answer}"))
}

/// Giant lines, invalid UTF-8, unsolicited junk, responses to ids the server never got, a flood
/// of notifications and silence: the caller gets an error or its answer for each, and the
/// session stays usable.
#[test]
fn a_hostile_server_hurts_only_its_own_calls() {
    if !require_docker() {
        return;
    }
    let daemon = two_profiles("evil", &["MCP_FIXTURE_HOSTILE=1"]);
    let mut client = daemon.raw_client(&["--profile", "hostile"]);
    client.initialize("2025-11-25", json!({}));
    assert_eq!(
        text(&call(&mut client, 1, "strays", json!({}))),
        "strays sent"
    );
    let probe = Probe::start(&daemon);
    let before = rss_kib(&daemon);

    let giant = call(&mut client, 2, "giant", json!({"bytes": GIANT}));
    assert!(error_message(&giant).contains("too long"), "{giant}");
    let garbage = call(&mut client, 3, "garbage", json!({}));
    assert!(error_message(&garbage).contains("not UTF-8"), "{garbage}");
    let noise = call(&mut client, 4, "noise", json!({"bytes": GIANT}));
    assert_eq!(text(&noise), "noise sent");
    let strays = call(&mut client, 5, "strays", json!({}));
    assert_eq!(text(&strays), "strays sent");
    let flood = call(
        &mut client,
        6,
        "flood",
        json!({"count": 10000, "bytes": 1024}),
    );
    assert_eq!(text(&flood), "flooded 10000");
    assert!(
        client
            .seen
            .iter()
            .any(|m| m["method"] == "notifications/fixture/flood"),
        "the flood's notifications reach a client that reads"
    );
    assert!(
        daemon.server_entry("evil")["containers"][0]["throttled"]
            .as_u64()
            .is_some_and(|n| n >= 1),
        "server ls tells of the throttling: {}",
        daemon.server_entry("evil")
    );
    client.seen.clear();
    client.request(
        json!(7),
        "tools/call",
        json!({"name": "silent", "arguments": {}}),
    );
    let cancelled = json!({"requestId": 7, "reason": "the test gave up"});
    std::thread::sleep(Duration::from_millis(500));
    client.notify("notifications/cancelled", cancelled);
    wait_for(Duration::from_secs(20), || {
        daemon
            .ctl_ok(&["server", "logs", "evil"])
            .contains("cancelled ")
    });
    client.request(json!(8), "ping", json!({}));
    assert_eq!(client.response(&json!(8))["result"], json!({}));

    end_attack(&daemon, probe, before, "hostile server");
    assert!(
        client.seen.iter().all(|m| m["id"] != json!(7)),
        "a cancelled call was answered"
    );
}

/// A client connected straight to the socket that asks the hostile server for a flood of large
/// notifications and never reads: its notifications are dropped once a few megabytes wait for
/// it, so the daemon's memory stays bounded, and other sessions keep working. (100 MiB, which
/// the server's budget lets through in under a minute.)
#[test]
fn a_client_that_does_not_read_costs_bounded_memory() {
    if !require_docker() {
        return;
    }
    let daemon = two_profiles("evil", &["MCP_FIXTURE_HOSTILE=1"]);
    let probe = Probe::start(&daemon);
    let before = rss_kib(&daemon);

    let mut stuck = UnixStream::connect(&daemon.socket).unwrap();
    let lines = [
        json!({"type": "hello", "proto": 1, "role": "mcp", "client": "stuck", "profile": "hostile"}),
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": "stuck", "version": "0"}}}),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
            "name": "flood", "arguments": {"count": 100, "bytes": 1024 * 1024}}}),
    ];
    for line in lines {
        writeln!(stuck, "{line}").unwrap();
    }
    wait_for(Duration::from_secs(120), || {
        daemon
            .ctl_ok(&["server", "logs", "evil"])
            .contains("flooded 100")
    });
    // The gateway reads the server's last lines a moment after it wrote them.
    std::thread::sleep(Duration::from_secs(1));
    end_attack(&daemon, probe, before, "client that does not read 100 MiB");
    drop(stuck);
}

/// A client that sends giant lines, invalid UTF-8, a flood of notifications and responses to
/// requests it was never sent: it gets an error for each line that has an id, its session keeps
/// answering, and the other session does not notice.
#[test]
fn a_hostile_client_hurts_only_itself() {
    if !require_docker() {
        return;
    }
    let daemon = two_profiles("victim", &[]);
    let mut client = daemon.raw_client(&["--profile", "hostile"]);
    client.initialize("2025-11-25", json!({}));
    let probe = Probe::start(&daemon);
    let before = rss_kib(&daemon);

    let mut giant = br#"{"jsonrpc":"2.0","id":"giant","method":"tools/call","params":{"name":"echo","arguments":{"text":""#.to_vec();
    giant.resize(GIANT, b'x');
    giant.extend_from_slice(br#""}}}"#);
    client.send_bytes(&giant);
    let answer = client.response(&json!("giant"));
    assert_eq!(answer["error"]["code"], -32600, "{answer}");

    client.send_bytes(b"{\"jsonrpc\":\"2.0\",\"id\":\"bytes\",\"method\":\"ping\",\"params\":{\"x\":\"\xff\xfe\"}}");
    let answer = client.response(&json!("bytes"));
    assert_eq!(answer["error"]["code"], -32700, "{answer}");

    for n in 0..20000 {
        client.notify("notifications/hostile/flood", json!({"n": n}));
    }
    for n in 0..1000 {
        client.send(&json!({"jsonrpc": "2.0", "id": 100_000 + n, "result": {}}));
    }
    client.send_line("not json at all");
    let answer = client
        .wait(mcp_gateway_tests::ANSWER_TIMEOUT, |m| {
            m["id"].is_null() && m.get("error").is_some()
        })
        .expect("a parse error for the line that is not JSON");
    assert_eq!(answer["error"]["code"], -32700, "{answer}");
    assert_eq!(
        text(&call(&mut client, 9, "echo", json!({"text": "still here"}))),
        "still here"
    );

    end_attack(&daemon, probe, before, "hostile client");
}

/// Opens a client straight on the socket that never reads, on `profile`, and has it ask the
/// hostile server for `count` notifications of `bytes` bytes: the daemon still reads and routes
/// every one (dropping those the client has no room for), at the pace of the server's budget.
fn start_flood(daemon: &Daemon, profile: &str, count: u64, bytes: u64) -> UnixStream {
    let mut stuck = UnixStream::connect(&daemon.socket).unwrap();
    let lines = [
        json!({"type": "hello", "proto": 1, "role": "mcp", "client": "stuck", "profile": profile}),
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": "stuck", "version": "0"}}}),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
            "name": "flood", "arguments": {"count": count, "bytes": bytes}}}),
    ];
    for line in lines {
        writeln!(stuck, "{line}").unwrap();
    }
    stuck
}

/// A flood of notifications from one server does not hold up another server's: once the hostile
/// server said `flooding` and while its flood is still being read (its `flooded` line, which
/// it writes after the last notification and which reaches the gateway behind them, has not
/// arrived), the calm server's log message reaches its client, more than once. The proof is the
/// order of events, not a time limit.
#[test]
fn a_flood_delays_no_other_servers_notifications() {
    if !require_docker() {
        return;
    }
    let daemon = two_profiles("evil", &["MCP_FIXTURE_HOSTILE=1"]);
    let mut calm = daemon.raw_client(&["--profile", "calm"]);
    calm.initialize("2025-11-25", json!({}));
    // Starts the calm server's container before the flood, so that only routing is measured.
    assert_eq!(
        text(&call(&mut calm, 1, "echo", json!({"text": "warm"}))),
        "warm"
    );

    let stuck = start_flood(&daemon, "hostile", 20_000, 1024);
    // The server says `flooding` just before its first notification.
    wait_for(Duration::from_secs(60), || {
        daemon
            .ctl_ok(&["server", "logs", "evil"])
            .contains("flooding ")
    });
    let flood_over = || {
        daemon
            .ctl_ok(&["server", "logs", "evil"])
            .contains("flooded ")
    };
    for n in 0..3 {
        let id = 10 + n;
        let message = format!("calm during the flood {n}");
        let answer = call(
            &mut calm,
            id,
            "log",
            json!({"level": "warning", "message": message}),
        );
        assert_eq!(text(&answer), "logged", "{answer}");
        let log = calm
            .wait(Duration::from_secs(30), |m| {
                m["method"] == "notifications/message" && m["params"]["data"] == message.as_str()
            })
            .unwrap_or_else(|| panic!("the calm server's log {n} never arrived"));
        assert_eq!(log["params"]["logger"], "calm", "{log}");
        assert!(
            !flood_over(),
            "the flood was over before the calm server's log {n} arrived: the test proves nothing"
        );
    }
    wait_for(Duration::from_secs(300), flood_over);
    drop(stuck);
}

/// A server flooding past its budget is throttled, not cut off: while its reader is paused (the
/// flood's `flooded` line has not reached the gateway), another server's calls are answered,
/// and then the flooding server answers its own call. The gateway dropped none of its
/// notifications (the client may still lose some of the first burst if it reads slower than
/// 4096 lines arrive: that is the client's own queue) and logged the episode once. The proof is
/// the order of events, not a time limit.
#[test]
fn a_throttled_server_still_answers_and_others_answer_meanwhile() {
    if !require_docker() {
        return;
    }
    const FLOOD: u64 = 12_000;
    let daemon = with_two_profiles(
        Daemon::start_capturing_stderr(Start::Bound, &[]),
        "evil",
        &["MCP_FIXTURE_HOSTILE=1"],
    );
    let mut calm = daemon.raw_client(&["--profile", "calm"]);
    calm.initialize("2025-11-25", json!({}));
    assert_eq!(
        text(&call(&mut calm, 1, "echo", json!({"text": "warm"}))),
        "warm"
    );
    let mut hostile = daemon.raw_client(&["--profile", "hostile"]);
    hostile.initialize("2025-11-25", json!({}));
    hostile.request(
        json!(1),
        "tools/call",
        json!({"name": "flood", "arguments": {"count": FLOOD, "bytes": 256}}),
    );
    let paused = || daemon.server_entry("evil")["containers"][0]["paused"] == true;
    wait_for(Duration::from_secs(60), paused);
    let flood_over = || {
        daemon
            .ctl_ok(&["server", "logs", "evil"])
            .contains("flooded ")
    };
    for n in 0..3 {
        let echoed = format!("while throttled {n}");
        let answer = call(&mut calm, 10 + n, "echo", json!({"text": echoed}));
        assert_eq!(text(&answer), echoed, "{answer}");
        assert!(
            !flood_over(),
            "the flood was over before the calm call {n} was answered: the test proves nothing"
        );
    }
    let answer = hostile.response(&json!(1));
    assert_eq!(text(&answer), format!("flooded {FLOOD}"), "{answer}");
    assert!(
        hostile
            .seen
            .iter()
            .any(|m| m["method"] == "notifications/fixture/flood"),
        "the flood's notifications reach the client that asked"
    );
    let log = daemon.log();
    assert_eq!(lines_with(&log, "past its budget").len(), 1, "{log}");
    assert!(
        lines_with(&log, "dropping its notifications").is_empty(),
        "the gateway dropped some of the flood: {log}"
    );
    let ls = daemon.ctl_ok(&["server", "ls"]);
    assert!(ls.contains("output throttled 1 time"), "{ls}");
}

/// The log lines a daemon wrote that contain `needle`.
fn lines_with<'a>(log: &'a str, needle: &str) -> Vec<&'a str> {
    log.lines().filter(|line| line.contains(needle)).collect()
}

/// A server writing thousands of lines that are not JSON gets a handful of them logged one by
/// one and the rest counted in a summary line at the end of the window, so the journal sees a
/// bounded number of lines and the count is still exact.
#[test]
fn bad_server_lines_are_logged_at_a_bounded_rate() {
    if !require_docker() {
        return;
    }
    const JUNK: u64 = 20_000;
    let daemon = with_two_profiles(
        Daemon::start_capturing_stderr(Start::Bound, &[]),
        "evil",
        &["MCP_FIXTURE_HOSTILE=1"],
    );
    let mut client = daemon.raw_client(&["--profile", "hostile"]);
    client.initialize("2025-11-25", json!({}));
    let started = Instant::now();
    let answer = call(&mut client, 1, "junk", json!({"count": JUNK}));
    assert_eq!(text(&answer), "junk sent");
    let summarised = |log: &str| -> u64 {
        lines_with(log, " more bad output lines not logged")
            .iter()
            .filter_map(|line| {
                let head = line.split(" more bad output lines").next()?;
                head.rsplit(' ').next()?.parse::<u64>().ok()
            })
            .sum()
    };
    let one_by_one = |log: &str| lines_with(log, "ignored a line that is not MCP").len() as u64;
    // A summary comes when the window (5 s) ends.
    wait_for(Duration::from_secs(30), || {
        let log = daemon.log();
        one_by_one(&log) + summarised(&log) == JUNK
    });
    let log = daemon.log();
    let windows = started.elapsed().as_secs() / 5 + 2;
    assert!(
        one_by_one(&log) <= 10 * windows,
        "{} lines logged one by one in {windows} windows",
        one_by_one(&log)
    );
    let summaries = lines_with(&log, " more bad output lines not logged").len() as u64;
    assert!(
        (1..=windows).contains(&summaries),
        "{summaries} summary lines in {windows} windows"
    );
    let total = log.lines().count();
    assert!(
        total < 200,
        "the daemon wrote {total} log lines for {JUNK} bad ones"
    );
    assert_eq!(
        text(&call(&mut client, 2, "strays", json!({}))),
        "strays sent",
        "the server still answers"
    );
}
