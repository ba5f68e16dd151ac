//! A second session's warm `tools/call` latency while a hostile server of the same profile
//! attacks, against the same session's latency with that server idle.
//!
//! The profile holds a well-behaved fixture (`calm`) and the hostile fixture (`evil`). The probe
//! session calls the calm server's `echo` in a closed loop; in attack rounds a second session
//! keeps the hostile server flooding notifications (`flood`, which the gateway hands to every
//! session of the profile, the probe's included) and writing lines that are not JSON (`junk`),
//! one call after the other for the whole round. Rounds alternate idle and attack, so drift on a
//! shared machine falls on both. The daemon throttles the attacker past its budget of
//! unprompted output (`daemon/src/upstream/budget.rs`), so after its first burst each of its
//! calls takes seconds, and an attack round lasts until its last call ends.

use std::time::{Duration, Instant};

use anyhow::Context;
use mcp_gateway_tests::Start;
use serde_json::json;
use tokio::io::{AsyncBufRead, AsyncWrite};

use crate::cli::Plan;
use crate::mcp::{self, LineClient, Reply};
use crate::report::{Row, Unit};
use crate::rig::{Rig, Server};
use crate::stats::{Samples, micros};

/// Notifications of one `flood` call, and their size.
const FLOOD: u64 = 5_000;
const FLOOD_BYTES: u64 = 1024;
/// Lines that are not JSON of one `junk` call.
const JUNK: u64 = 5_000;

pub async fn run(plan: &Plan) -> anyhow::Result<Vec<Row>> {
    let rig = Rig::start(Start::Bound, plan);
    rig.add(&Server {
        name: "calm",
        image: &plan.image,
        extra_tools: 0,
    })?;
    rig.ctl(&[
        "server",
        "add",
        "evil",
        "--image",
        &plan.image,
        "--env",
        "MCP_FIXTURE_NAME=evil",
        "--env",
        "MCP_FIXTURE_HOSTILE=1",
    ])?;
    rig.profile("attacked", &["calm", "evil"])?;
    rig.ctl(&["profile", "use", "attacked"])?;
    let mut probe = rig.socket_session().await?;
    let mut attacker = rig.socket_session().await?;
    // Both containers start before anything is measured.
    answer(&mut probe, &mcp::echo(mcp::next_id())).await?;
    answer(&mut attacker, &flood_call(10)).await?;

    let round = Duration::from_secs_f64(plan.round_secs);
    let mut idle = Vec::new();
    let mut attacked = Vec::new();
    let mut attacks = 0;
    eprintln!(
        "hostile: {} idle and {} attack rounds",
        plan.rounds, plan.rounds
    );
    for n in 0..plan.rounds {
        if n % 2 == 0 {
            idle.extend(probe_round(&mut probe, round).await?);
        }
        let (latencies, calls) =
            tokio::try_join!(probe_round(&mut probe, round), attack(&mut attacker, round))?;
        attacked.extend(latencies);
        attacks += calls;
        if n % 2 == 1 {
            idle.extend(probe_round(&mut probe, round).await?);
        }
    }
    let note = format!(
        "{} calls idle, {} under attack; the attacker's {attacks} calls each sent {FLOOD} \
         notifications of {FLOOD_BYTES} bytes or {JUNK} lines that are not JSON",
        idle.len(),
        attacked.len()
    );
    let idle = Samples::new(idle);
    let attacked = Samples::new(attacked);
    Ok(vec![
        Row::new(
            "tools/call p50, a second session, hostile server attacking",
            Unit::Micros,
        )
        .gateway(micros(attacked.p50()))
        .baseline(micros(idle.p50()))
        .note(note),
        Row::new(
            "tools/call p99, a second session, hostile server attacking",
            Unit::Micros,
        )
        .gateway(micros(attacked.p99()))
        .baseline(micros(idle.p99()))
        .note("baseline: the same session with the hostile server idle"),
    ])
}

fn flood_call(count: u64) -> String {
    mcp::call(
        mcp::next_id(),
        "flood",
        json!({"count": count, "bytes": FLOOD_BYTES}),
    )
}

/// Sends one request and reads until its answer, skipping the notifications in between (the
/// flood reaches every session of the profile); fails when the answer is an error.
async fn answer<W, R>(client: &mut LineClient<W, R>, line: &str) -> anyhow::Result<()>
where
    W: AsyncWrite + Unpin,
    R: AsyncBufRead + Unpin,
{
    let id = serde_json::from_str::<serde_json::Value>(line)?["id"]
        .as_u64()
        .context("a request without an id")?;
    client.send(line).await?;
    loop {
        let received = client.receive().await?;
        if received.contains("\"method\"") {
            continue;
        }
        Reply::expect(received, id)?;
        return Ok(());
    }
}

/// The probe's `echo` latencies for `length`.
async fn probe_round<W, R>(
    client: &mut LineClient<W, R>,
    length: Duration,
) -> anyhow::Result<Vec<Duration>>
where
    W: AsyncWrite + Unpin,
    R: AsyncBufRead + Unpin,
{
    let deadline = Instant::now() + length;
    let mut latencies = Vec::new();
    while Instant::now() < deadline {
        let sent = Instant::now();
        answer(client, &mcp::echo(mcp::next_id())).await?;
        latencies.push(sent.elapsed());
    }
    Ok(latencies)
}

/// Floods and writes junk, one call after the other, for `length`; returns the calls made.
async fn attack<W, R>(client: &mut LineClient<W, R>, length: Duration) -> anyhow::Result<u64>
where
    W: AsyncWrite + Unpin,
    R: AsyncBufRead + Unpin,
{
    let deadline = Instant::now() + length;
    let mut calls = 0;
    while Instant::now() < deadline {
        let line = if calls % 2 == 0 {
            flood_call(FLOOD)
        } else {
            mcp::call(mcp::next_id(), "junk", json!({"count": JUNK}))
        };
        answer(client, &line).await?;
        calls += 1;
    }
    Ok(calls)
}
