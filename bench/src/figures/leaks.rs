//! Leaks: the daemon's containers, child processes, zombies, open files, threads and memory
//! before and after many clients that connect, call, leave a slow call in flight, and are killed
//! with SIGKILL, as a crashing AI client would be.
//!
//! Counts are compared before and after all cycles (after a few warm-up cycles) and must come back
//! exactly. Memory is compared between the middle and the end of the run instead: each killed
//! client's session lives on until its slow call returns, so the daemon reaches its peak of
//! concurrent sessions during the first half, and the allocator keeps that high-water mark. A
//! leak grows on through the second half; a high-water mark does not. It gets a small allowance
//! for allocator noise.

use std::time::Duration;

use anyhow::Context;

use mcp_gateway_tests::Start;
use serde_json::json;

use crate::cli::Plan;
use crate::mcp;
use crate::procfs;
use crate::report::{Row, Unit};
use crate::rig::{Rig, Server};

const WARM_UP_CYCLES: usize = 20;
/// The call left in flight when a client is killed.
const SLOW_CALL_MS: u64 = 1000;
/// Allocator noise allowed on the daemon's resident memory.
const RSS_SLACK_KIB: u64 = 1024;

#[derive(Debug, Clone, Copy)]
struct Snapshot {
    containers: u64,
    children: u64,
    zombies: u64,
    fds: u64,
    threads: u64,
    rss_kib: u64,
}

impl Snapshot {
    fn take(rig: &Rig) -> anyhow::Result<Snapshot> {
        let pid = rig.pid()?;
        let (children, zombies) = mcp_gateway_tests::children(pid).context("cannot list /proc")?;
        Ok(Snapshot {
            containers: rig.containers() as u64,
            children,
            zombies,
            fds: procfs::open_fds(pid)?,
            threads: procfs::threads(pid)?,
            rss_kib: procfs::rss_kib(pid)?,
        })
    }
}

pub async fn run(plan: &Plan) -> anyhow::Result<Vec<Row>> {
    let rig = Rig::start(Start::Bound, plan);
    rig.add(&Server {
        name: "leak",
        image: &plan.image,
        extra_tools: 0,
    })?;
    for _ in 0..WARM_UP_CYCLES {
        cycle(&rig).await?;
    }
    settle().await;
    let before = Snapshot::take(&rig)?;
    eprintln!("leaks: {} connect/SIGKILL cycles", plan.cycles);
    let half = plan.cycles / 2;
    for _ in 0..half {
        cycle(&rig).await?;
    }
    settle().await;
    let middle = Snapshot::take(&rig)?;
    for _ in half..plan.cycles {
        cycle(&rig).await?;
    }
    settle().await;
    let after = Snapshot::take(&rig)?;

    let cycles = format!("{} cycles", plan.cycles);
    let count = |figure: &str, before: u64, after: u64| {
        Row::new(format!("{figure}, after {cycles}"), Unit::Count)
            .gateway(after as f64)
            .baseline(before as f64)
            .target("no growth", after <= before)
    };
    Ok(vec![
        count("daemon's containers", before.containers, after.containers),
        count("daemon's child processes", before.children, after.children),
        count("daemon's zombie children", before.zombies, after.zombies),
        count("daemon's open files", before.fds, after.fds),
        count("daemon's threads", before.threads, after.threads),
        Row::new(format!("daemon RSS, after {cycles}"), Unit::Kib)
            .gateway(after.rss_kib as f64)
            .baseline(middle.rss_kib as f64)
            .target(
                "no growth (1 MiB allowance)",
                after.rss_kib <= middle.rss_kib + RSS_SLACK_KIB,
            )
            .note(format!(
                "baseline: after the first {half} cycles; {} KiB after {WARM_UP_CYCLES} warm-up cycles",
                before.rss_kib
            )),
    ])
}

/// One client: handshake, a call, a slow call left in flight, then SIGKILL.
async fn cycle(rig: &Rig) -> anyhow::Result<()> {
    let mut shim = rig.session(None).await?;
    let id = mcp::next_id();
    shim.io.request(&mcp::echo(id), id).await?;
    let slow = mcp::call(mcp::next_id(), "sleep", json!({"ms": SLOW_CALL_MS}));
    shim.io.send(&slow).await?;
    shim.kill().await
}

/// Lets the calls left in flight finish and their sessions close.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(SLOW_CALL_MS + 1000)).await;
}
