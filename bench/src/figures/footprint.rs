//! Footprint: the daemon's memory idle and with many sessions, and the shim's size, start time
//! and memory.
//!
//! The shim's start is timed from spawning it to the answer of a `ping` (which the daemon answers
//! itself), against the same hello and `ping` sent from inside the benchmark: the difference is
//! what the shim process costs.

use std::io::{BufRead, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures_util::future::try_join_all;
use mcp_gateway_proto::{Hello, Role};
use mcp_gateway_tests::{Start, bin, workspace};

use crate::cli::Plan;
use crate::mcp::{self, ProcessClient, Reply};
use crate::procfs;
use crate::report::{Row, Unit};
use crate::rig::{Rig, Server};
use crate::stats::{Samples, micros};

const IDLE_TARGET_KIB: u64 = 15 * 1024;
const SIZE_TARGET: u64 = 1024 * 1024;

pub async fn run(plan: &Plan) -> anyhow::Result<Vec<Row>> {
    let rig = Rig::start(Start::Bound, plan);
    rig.add(&Server {
        name: "fp",
        image: &plan.image,
        extra_tools: 0,
    })?;
    let pid = rig.pid()?;
    // `status` connects the daemon to the engine, as any first use would.
    rig.ctl(&["status"])?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let idle = procfs::rss_kib(pid)?;
    let mut rows = vec![
        Row::new("daemon RSS, idle", Unit::Kib)
            .gateway(idle as f64)
            .target("< 15 MiB", idle < IDLE_TARGET_KIB)
            .note("after `mcpctl status`, no session"),
    ];

    eprintln!("footprint: {} sessions", plan.sessions);
    let sessions = try_join_all((0..plan.sessions).map(|_| async {
        let mut shim = rig.session(None).await?;
        let id = mcp::next_id();
        shim.io.request(&mcp::echo(id), id).await?;
        anyhow::Ok(shim)
    }))
    .await?;
    let busy = procfs::rss_kib(pid)?;
    let shim_rss = procfs::rss_kib(sessions[0].pid().context("a shim exited")?)?;
    try_join_all(sessions.into_iter().map(ProcessClient::close)).await?;
    rows.push(
        Row::new(format!("daemon RSS, {} sessions", plan.sessions), Unit::Kib)
            .gateway(busy as f64)
            .baseline(idle as f64)
            .note(format!(
                "baseline: idle; {:.1} KiB per session, one shared container",
                busy.saturating_sub(idle) as f64 / plan.sessions as f64
            )),
    );

    let dist = plan
        .dist_shim
        .clone()
        .unwrap_or_else(|| workspace().join("target/dist/mcp-shim"));
    let release = bin("mcp-shim");
    let release_size = std::fs::metadata(&release)?.len();
    rows.push(match std::fs::metadata(&dist) {
        Ok(meta) => Row::new("mcp-shim binary size, dist profile", Unit::Bytes)
            .gateway(meta.len() as f64)
            .target("< 1 MiB", meta.len() < SIZE_TARGET)
            .note(format!(
                "{}; release build (symbols, line tables) {release_size} bytes",
                dist.display()
            )),
        Err(_) => Row::new("mcp-shim binary size, dist profile", Unit::Bytes)
            .unchecked_target("< 1 MiB")
            .note(format!(
                "{} not built: cargo build --profile dist -p mcp-shim",
                dist.display()
            )),
    });

    let shim = if dist.exists() { dist } else { release };
    let (started, in_process) = start_times(&rig, &shim, plan.repeats).await?;
    rows.push(
        Row::new("mcp-shim start → first answer (ping), p50", Unit::Micros)
            .gateway(micros(started.p50()))
            .baseline(micros(in_process.p50()))
            .note(format!(
                "baseline: the same hello and ping from inside the benchmark; {} starts of {}",
                started.len(),
                shim.display()
            )),
    );
    rows.push(
        Row::new("mcp-shim RSS, connected", Unit::Kib)
            .gateway(shim_rss as f64)
            .note("the shim beside the daemon, as the sessions above ran it"),
    );
    Ok(rows)
}

/// Alternately: a shim started and asked for a ping, and the same from this process.
async fn start_times(rig: &Rig, shim: &Path, repeats: usize) -> anyhow::Result<(Samples, Samples)> {
    let socket = rig.daemon.socket.clone();
    let mut started = Vec::with_capacity(repeats);
    let mut in_process = Vec::with_capacity(repeats);
    for _ in 0..repeats {
        let id = mcp::next_id();
        let line = mcp::ping(id);
        let start = Instant::now();
        let mut client = rig.shim(shim, None)?;
        client.io.request(&line, id).await?;
        started.push(start.elapsed());
        client.close().await?;

        let socket = socket.clone();
        in_process.push(tokio::task::spawn_blocking(move || ping_in_process(&socket)).await??);
    }
    Ok((Samples::new(started), Samples::new(in_process)))
}

/// Connects, says hello as the shim does, and times it to the answer of one `ping`.
fn ping_in_process(socket: &Path) -> anyhow::Result<Duration> {
    let id = mcp::next_id();
    let line = mcp::ping(id);
    let start = Instant::now();
    let hello = Hello::new(Role::Mcp, "mcp-gateway-bench");
    let mut connection = mcp_gateway_proto::connect(socket, &hello, Duration::from_secs(30))
        .map_err(|err| anyhow::anyhow!("{err}"))?;
    connection.stream.write_all(line.as_bytes())?;
    let mut answer = String::new();
    connection.reader.read_line(&mut answer)?;
    let elapsed = start.elapsed();
    Reply::expect(answer.trim_end(), id)?;
    Ok(elapsed)
}
