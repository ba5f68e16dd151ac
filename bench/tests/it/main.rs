//! Smoke test of the benchmark: a quick run of every figure against the real binaries and engine,
//! so the harness cannot rot. It checks that each figure is measured, not how fast it is, except
//! for leaks, which must not happen at any speed.

use std::process::Command;
use std::time::Instant;

use mcp_gateway_tests::{fixture_image, require_docker};
use serde_json::Value;

fn row<'a>(rows: &'a [Value], prefix: &str) -> &'a Value {
    rows.iter()
        .find(|row| {
            row["figure"]
                .as_str()
                .is_some_and(|f| f.starts_with(prefix))
        })
        .unwrap_or_else(|| panic!("no figure starting with {prefix:?} in {rows:#?}"))
}

#[test]
fn a_quick_run_measures_every_figure() {
    if !require_docker() {
        return;
    }
    let start = Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_mcp-gateway-bench"))
        .args([
            "all",
            "--quick",
            "--json",
            "--clients",
            "1,4",
            "--round-secs",
            "0.2",
        ])
        .args([
            "--cold-servers",
            "2",
            "--scale-servers",
            "2",
            "--sessions",
            "5",
        ])
        .args(["--cycles", "10"])
        // The image `tests/run.sh` has just built from this tree: the benchmark's own tag is only
        // built when missing, so on a machine that ran an older benchmark it may be stale.
        .args(["--image", fixture_image()])
        .output()
        .expect("run mcp-gateway-bench");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the benchmark failed: {stderr}");
    let rows: Vec<Value> = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|err| panic!("not JSON ({err}): {stderr}"));

    for prefix in [
        "tools/call p50, 1 client",
        "tools/call p50, 1 client, through a bare relay process",
        "tools/call p99, 4 clients",
        "throughput, 4 clients",
        "throughput, 4 clients, through a bare relay process",
        "throughput, 4 clients, one session carrying them all",
        "throughput, 4 clients, servers' stdio over the attach stream",
        "CPU per call, 4 clients: daemon, servers' stdio over the attach stream",
        "cold start → first tools/list, 1 server",
        "cold start → first tools/list, 2 servers",
        "first tools/list after activation, warm list cache, 2 servers",
        "tools/list p50, 2 servers × 20 tools",
        "daemon RSS, 2 servers × 20 tools",
        "daemon RSS, idle",
        "daemon RSS, 5 sessions",
        "mcp-shim start → first answer",
        "mcp-shim RSS",
        "tools/call p50, a second session, hostile server attacking",
        "tools/call p99, a second session, hostile server attacking",
    ] {
        let row = row(&rows, prefix);
        let measured = row["gateway"].as_f64().unwrap_or_default();
        assert!(measured > 0.0, "{prefix} was not measured: {row}");
    }
    for prefix in [
        "tools/call p50",
        "tools/call p50, 1 client, through a bare relay process",
        "throughput",
        "throughput, 4 clients, through a bare relay process",
        "tools/call p50, 4 clients, servers' stdio over the attach stream",
        "cold start → first tools/list, 2",
        "tools/call p50, a second session",
    ] {
        let row = row(&rows, prefix);
        assert!(
            row["baseline"].as_f64().unwrap_or_default() > 0.0,
            "no baseline: {row}"
        );
    }
    for prefix in [
        "daemon's containers",
        "daemon's child processes",
        "daemon's zombie children",
        "daemon's open files",
    ] {
        let row = row(&rows, prefix);
        assert_eq!(row["met"], true, "a leak: {row}");
    }
    eprintln!("quick benchmark run took {:?}", start.elapsed());
}

#[test]
fn a_full_run_refuses_a_debug_build_of_the_fixture() {
    if !require_docker() {
        return;
    }
    // `tests/run.sh` builds the fixture image from the debug build, and labels it so (an image
    // built before the label existed is refused as unlabelled).
    let output = Command::new(env!("CARGO_BIN_EXE_mcp-gateway-bench"))
        .args(["latency", "--clients", "1", "--image", fixture_image()])
        .output()
        .expect("run mcp-gateway-bench");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "a debug fixture was measured");
    assert!(
        stderr.contains("build of the fixture, not a release build"),
        "{stderr}"
    );
    assert!(output.stdout.is_empty(), "figures were printed");
}
