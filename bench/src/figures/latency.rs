//! Warm `tools/call` latency and throughput: `echo` through `mcp-shim` → daemon → container,
//! against the same image reached over the engine's attach stream, for each client count.
//!
//! Both paths are closed loops: each client has one call in flight and sends the next as soon as
//! the answer arrives. Gateway clients are separate `mcp-shim` processes on pipes, as AI clients
//! start them, so each hands its stdio to the daemon (separate sessions on the one shared
//! container, as the daemon runs it). Direct clients share one attach stream with
//! distinct ids, driven from a single task that answers each response with that client's next
//! call: the same sharing the gateway does, with nothing in between. Rounds alternate which path
//! goes first, so drift on a shared machine falls on both.
//!
//! For attribution, a third path runs the shims with `--relay` (copying the session's bytes
//! through the shim process, as before stdio was handed over), and the gateway rounds record the
//! CPU time and context switches of the daemon and the shims per call. A fourth runs through
//! `mcp-bench-relay`, a process that only copies bytes between its pipes and an attach stream of
//! its own container: the floor of any gateway that is a process of its own. Its clients share
//! its pipes with distinct ids, as the direct path's share the attach stream, so at every client
//! count it shows how much of the direct path's latency and throughput one more process on the
//! way leaves to the gateway. A fifth, from 2 clients on, puts every client's calls over one
//! gateway session with distinct ids, as the direct path's share one stream: against the
//! gateway's own rows, it shows what each client's pipes of its own cost. A sixth is a second
//! daemon with `--server-stdio attach`, its server's stdio on the attach stream as the direct
//! path's is, where the first daemon's goes over a socket of its own (`docker/launcher.rs`): the
//! gateway's cost on the direct path's own road, and the one to set against the bare relay.

use std::collections::HashMap;
use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures_util::future::try_join_all;
use mcp_gateway_tests::Start;
use tokio::io::{AsyncBufRead, AsyncWrite};

use crate::cli::{ONE_PAGE, Plan};
use crate::direct::Engine;
use crate::mcp::{self, LineClient, ProcessClient, Reply};
use crate::procfs;
use crate::report::{Row, Unit};
use crate::rig::{Rig, Server};
use crate::stats::{Samples, micros};

/// The gateway's share of p50 latency the issue allows, on top of the ratio.
const P50_SLACK: Duration = Duration::from_micros(50);
const P50_RATIO: f64 = 1.10;
const P99_RATIO: f64 = 1.5;
const THROUGHPUT_SHARE: f64 = 0.9;
/// The longest warm-up before a cell's measured rounds.
const WARM_UP: Duration = Duration::from_millis(500);

/// Latencies and completed calls of one path over one or more rounds.
#[derive(Default)]
struct Tally {
    latencies: Vec<Duration>,
    calls: u64,
    elapsed: Duration,
    /// CPU time the daemon (in the bare relay's rounds, the relay) and the shims used meanwhile
    /// (gateway and bare relay rounds only).
    daemon_cpu: Duration,
    shim_cpu: Duration,
    /// Context switches of the daemon's (the relay's) and the shims' threads meanwhile.
    daemon_switches: u64,
    shim_switches: u64,
}

impl Tally {
    fn add(&mut self, other: Tally) {
        self.latencies.extend(other.latencies);
        self.calls += other.calls;
        self.elapsed += other.elapsed;
        self.daemon_cpu += other.daemon_cpu;
        self.shim_cpu += other.shim_cpu;
        self.daemon_switches += other.daemon_switches;
        self.shim_switches += other.shim_switches;
    }

    /// CPU time per call, in microseconds.
    fn per_call(&self, cpu: Duration) -> f64 {
        micros(cpu) / self.calls.max(1) as f64
    }

    fn switches_per_call(&self, switches: u64) -> f64 {
        switches as f64 / self.calls.max(1) as f64
    }

    fn per_second(&self) -> f64 {
        self.calls as f64 / self.elapsed.as_secs_f64()
    }
}

/// The paths of one cell, each over all its rounds.
#[derive(Default)]
struct Cell {
    gateway: Tally,
    /// The shims with `--relay`.
    relayed: Tally,
    /// The daemon with `--server-stdio attach`.
    attached: Tally,
    baseline: Tally,
    bare: Option<Tally>,
    carried: Option<Tally>,
}

pub async fn run(plan: &Plan, engine: &Engine) -> anyhow::Result<Vec<Row>> {
    let rig = warm_rig(plan, &[]).await?;
    let attach_rig = warm_rig(plan, &[("MCP_GATEWAY_SERVER_STDIO", "attach")]).await?;
    let mut direct = engine
        .start(
            &plan.image,
            &["MCP_FIXTURE_NAME=echo".to_owned(), ONE_PAGE.to_owned()],
        )
        .await?;

    let mut floor = match engine.socket() {
        Some(socket) => Some(relay_floor(engine, plan, socket).await?),
        None => {
            eprintln!("latency: no bare relay row, it speaks to a Unix-socket engine only");
            None
        }
    };

    let round = Duration::from_secs_f64(plan.round_secs);
    let mut rows = Vec::new();
    for &clients in &plan.clients {
        eprintln!("latency: {clients} client(s)");
        let mut shims = try_join_all((0..clients).map(|_| rig.session(None))).await?;
        let mut relays = try_join_all((0..clients).map(|_| rig.relayed_session())).await?;
        let mut attached = try_join_all((0..clients).map(|_| attach_rig.session(None))).await?;
        // Every client's calls over one session, as the direct path's share one stream.
        let mut carrier = if clients > 1 {
            Some(rig.session(None).await?)
        } else {
            None
        };
        let warm_up = round.min(WARM_UP);
        let daemon = rig.pid()?;
        let attach_daemon = attach_rig.pid()?;
        let shim_pids = shims
            .iter()
            .map(|shim| shim.pid().context("a shim exited"))
            .collect::<anyhow::Result<Vec<u32>>>()?;
        closed_loop(shims.iter_mut().map(|shim| &mut shim.io), warm_up).await?;
        closed_loop(relays.iter_mut().map(|relay| &mut relay.io), warm_up).await?;
        closed_loop(attached.iter_mut().map(|shim| &mut shim.io), warm_up).await?;
        shared_round(&mut direct.io, clients, warm_up).await?;
        if let Some((_, relay)) = &mut floor {
            shared_round(&mut relay.io, clients, warm_up).await?;
        }
        if let Some(carrier) = &mut carrier {
            shared_round(&mut carrier.io, clients, warm_up).await?;
        }
        let mut cell = Cell::default();
        let mut bare = Tally::default();
        let mut carried = Tally::default();
        for n in 0..plan.rounds {
            if let Some((_, relay)) = &mut floor {
                let pid = relay.pid().context("the bare relay exited")?;
                bare.add(measured(pid, &[], shared_round(&mut relay.io, clients, round)).await?);
            }
            if let Some(carrier) = &mut carrier {
                let round = shared_round(&mut carrier.io, clients, round);
                carried.add(measured(daemon, &[], round).await?);
            }
            let shims = shims.iter_mut().map(|shim| &mut shim.io);
            let gateway_round = measured(daemon, &shim_pids, closed_loop(shims, round));
            let attached_round = measured(
                attach_daemon,
                &[],
                closed_loop(attached.iter_mut().map(|shim| &mut shim.io), round),
            );
            let relays = relays.iter_mut().map(|relay| &mut relay.io);
            if n % 2 == 0 {
                cell.baseline
                    .add(shared_round(&mut direct.io, clients, round).await?);
                cell.gateway.add(gateway_round.await?);
                cell.attached.add(attached_round.await?);
                cell.relayed.add(closed_loop(relays, round).await?);
            } else {
                cell.relayed.add(closed_loop(relays, round).await?);
                cell.attached.add(attached_round.await?);
                cell.gateway.add(gateway_round.await?);
                cell.baseline
                    .add(shared_round(&mut direct.io, clients, round).await?);
            }
        }
        cell.bare = floor.is_some().then_some(bare);
        cell.carried = carrier.is_some().then_some(carried);
        try_join_all(
            shims
                .into_iter()
                .chain(relays)
                .chain(attached)
                .chain(carrier)
                .map(ProcessClient::close),
        )
        .await?;
        rows.extend(cell_rows(clients, cell));
    }
    engine.remove(&direct.id).await;
    if let Some((id, relay)) = floor {
        relay.close().await?;
        engine.remove(&id).await;
    }
    Ok(rows)
}

/// A daemon with `env` serving the fixture, its shared container started.
async fn warm_rig(plan: &Plan, env: &[(&str, &str)]) -> anyhow::Result<Rig> {
    let rig = Rig::start_with(Start::Bound, plan, env);
    rig.add(&Server {
        name: "echo",
        image: &plan.image,
        extra_tools: 0,
    })?;
    // The first session starts the shared container; later ones find it warm.
    let mut first = rig.session(None).await?;
    first.io.tool_names(mcp::next_id()).await?;
    first.close().await?;
    Ok(rig)
}

/// A server of its own behind `mcp-bench-relay`, initialised; with its container's id.
async fn relay_floor(
    engine: &Engine,
    plan: &Plan,
    socket: &str,
) -> anyhow::Result<(String, ProcessClient)> {
    let env = ["MCP_FIXTURE_NAME=echo".to_owned(), ONE_PAGE.to_owned()];
    let id = engine.create(&plan.image, &env).await?;
    let mut command = tokio::process::Command::new(mcp_gateway_tests::bin("mcp-bench-relay"));
    command.args([socket, id.as_str()]);
    let spawned = ProcessClient::spawn(command);
    let handshake = match spawned {
        Ok(mut relay) => relay.io.handshake().await.map(|()| relay),
        Err(err) => Err(err),
    };
    match handshake {
        Ok(relay) => Ok((id, relay)),
        Err(err) => {
            engine.remove(&id).await;
            Err(err.context("the bare relay did not come up"))
        }
    }
}

fn cell_rows(clients: usize, cell: Cell) -> Vec<Row> {
    let Cell {
        gateway,
        relayed,
        attached,
        baseline,
        bare,
        carried,
    } = cell;
    let label = if clients == 1 {
        "1 client".to_owned()
    } else {
        format!("{clients} clients")
    };
    let note = format!(
        "{} calls through the gateway, {} direct",
        gateway.calls, baseline.calls
    );
    let gateway_rate = gateway.per_second();
    let daemon_cpu = gateway.per_call(gateway.daemon_cpu);
    let shim_cpu = gateway.per_call(gateway.shim_cpu);
    let daemon_switches = gateway.switches_per_call(gateway.daemon_switches);
    let shim_switches = gateway.switches_per_call(gateway.shim_switches);
    let baseline_rate = baseline.per_second();
    let gateway = Samples::new(gateway.latencies);
    let relayed = Samples::new(relayed.latencies);
    let baseline = Samples::new(baseline.latencies);
    let p50_met = gateway.p50() <= baseline.p50() + P50_SLACK
        && micros(gateway.p50()) <= micros(baseline.p50()) * P50_RATIO;
    let mut rows = vec![
        Row::new(format!("tools/call p50, {label}"), Unit::Micros)
            .gateway(micros(gateway.p50()))
            .baseline(micros(baseline.p50()))
            .target("≤ +50 µs and ≤ ×1.10", p50_met)
            .note(note),
        Row::new(format!("tools/call p99, {label}"), Unit::Micros)
            .gateway(micros(gateway.p99()))
            .baseline(micros(baseline.p99()))
            .target(
                "≤ ×1.5",
                micros(gateway.p99()) <= micros(baseline.p99()) * P99_RATIO,
            ),
        Row::new(format!("throughput, {label}"), Unit::PerSecond)
            .gateway(gateway_rate)
            .baseline(baseline_rate)
            .target("≥ ×0.90", gateway_rate >= baseline_rate * THROUGHPUT_SHARE),
        Row::new(
            format!("tools/call p50, {label}, mcp-shim relaying"),
            Unit::Micros,
        )
        .gateway(micros(relayed.p50()))
        .baseline(micros(baseline.p50()))
        .note("for attribution: `mcp-shim --relay`, copying the session's bytes instead of handing its stdio to the daemon"),
        Row::new(format!("CPU per call, {label}: daemon"), Unit::Micros)
            .gateway(daemon_cpu)
            .note("for attribution: user + system time over the gateway rounds"),
    ];
    let (attached, attached_rate, attached_rows) = attribution(
        &format!("{label}, servers' stdio over the attach stream"),
        attached,
        (&baseline, baseline_rate),
        [
            "for attribution: a daemon with `--server-stdio attach`, on the direct path's own road: what the gateway costs when it does not bypass the engine",
            "for attribution: as above, for throughput",
        ],
        (
            &format!("CPU per call, {label}: daemon, servers' stdio over the attach stream"),
            "for attribution: user + system time over those rounds",
        ),
    );
    rows.extend(attached_rows);
    if let Some(bare) = bare {
        let relay_switches = bare.switches_per_call(bare.daemon_switches);
        let (bare, relay_rate, bare_rows) = attribution(
            &format!("{label}, through a bare relay process"),
            bare,
            (&baseline, baseline_rate),
            [
                "for attribution: `mcp-bench-relay`, a process that only copies bytes between its pipes and an attach stream: the floor of any gateway that is a process of its own",
                "for attribution: the share of the direct path's throughput that one more process on the way leaves",
            ],
            (
                &format!("CPU per call, {label}: bare relay"),
                "for attribution: user + system time of `mcp-bench-relay` over its rounds, beside the daemon's above",
            ),
        );
        rows.extend(bare_rows);
        rows.push(
            Row::new(
                format!("tools/call p50, {label}, gateway over the attach stream against the bare relay"),
                Unit::Micros,
            )
            .gateway(micros(attached.p50()))
            .baseline(micros(bare.p50()))
            .note("for attribution: what the daemon's own work adds over that floor, on the same road"),
        );
        rows.push(
            Row::new(
                format!(
                    "throughput, {label}, gateway over the attach stream against the bare relay"
                ),
                Unit::PerSecond,
            )
            .gateway(attached_rate)
            .baseline(relay_rate)
            .note("for attribution: as above, for throughput"),
        );
        rows.push(
            Row::new(
                format!("context switches per call, {label}: bare relay"),
                Unit::Ratio,
            )
            .gateway(relay_switches)
            .note("for attribution: its two threads"),
        );
    }
    if let Some(carried) = carried {
        let (_, _, carried_rows) = attribution(
            &format!("{label}, one session carrying them all"),
            carried,
            (&baseline, baseline_rate),
            [
                "for attribution: every client's calls over one `mcp-shim` session with distinct ids, as the direct path's share one attach stream; against the rows above, what each client's own pipes cost",
                "for attribution: as above, for throughput",
            ],
            (
                &format!("CPU per call, {label}: daemon, one session carrying them all"),
                "for attribution: user + system time over those rounds",
            ),
        );
        rows.extend(carried_rows);
    }
    // `/proc` counts CPU time in 10 ms ticks per process: many shims that each run a few
    // milliseconds read as zero, so only a lone shim's figure means something.
    if clients == 1 {
        rows.push(
            Row::new(format!("CPU per call, {label}: mcp-shim"), Unit::Micros)
                .gateway(shim_cpu)
                .note("for attribution, as above"),
        );
    }
    rows.push(
        Row::new(
            format!("context switches per call, {label}: daemon"),
            Unit::Ratio,
        )
        .gateway(daemon_switches)
        .note("for attribution: each is a thread going to sleep or being preempted"),
    );
    rows.push(
        Row::new(
            format!("context switches per call, {label}: mcp-shim"),
            Unit::Ratio,
        )
        .gateway(shim_switches)
        .note("all shims together"),
    );
    rows
}

/// A path's rows for attribution (`cell` names it and the client count): its p50 and throughput
/// against the direct path's, with their notes, then the CPU per call of the process in its
/// middle (`cpu`: the row's name and note). Its samples and rate come back too, for rows that set
/// other paths against it.
fn attribution(
    cell: &str,
    path: Tally,
    (direct, direct_rate): (&Samples, f64),
    [p50_note, throughput_note]: [&str; 2],
    (cpu_name, cpu_note): (&str, &str),
) -> (Samples, f64, [Row; 3]) {
    let cpu = path.per_call(path.daemon_cpu);
    let rate = path.per_second();
    let samples = Samples::new(path.latencies);
    let rows = [
        Row::new(format!("tools/call p50, {cell}"), Unit::Micros)
            .gateway(micros(samples.p50()))
            .baseline(micros(direct.p50()))
            .note(p50_note),
        Row::new(format!("throughput, {cell}"), Unit::PerSecond)
            .gateway(rate)
            .baseline(direct_rate)
            .note(throughput_note),
        Row::new(cpu_name, Unit::Micros).gateway(cpu).note(cpu_note),
    ];
    (samples, rate, rows)
}

/// `round`, with the CPU time and context switches meanwhile of the process between its clients
/// and the server (the daemon, or the bare relay) and of the shims.
async fn measured(
    middle: u32,
    shim_pids: &[u32],
    round: impl Future<Output = anyhow::Result<Tally>>,
) -> anyhow::Result<Tally> {
    let shims_cpu =
        || -> anyhow::Result<Duration> { shim_pids.iter().map(|&pid| procfs::cpu_time(pid)).sum() };
    let shims_switches = || -> anyhow::Result<u64> {
        shim_pids
            .iter()
            .map(|&pid| procfs::context_switches(pid))
            .sum()
    };
    let middle_cpu = procfs::cpu_time(middle)?;
    let middle_switches = procfs::context_switches(middle)?;
    let shim_cpu = shims_cpu()?;
    let shim_switches = shims_switches()?;
    let mut tally = round.await?;
    tally.daemon_cpu = procfs::cpu_time(middle)?.saturating_sub(middle_cpu);
    tally.daemon_switches = procfs::context_switches(middle)?.saturating_sub(middle_switches);
    tally.shim_cpu = shims_cpu()?.saturating_sub(shim_cpu);
    tally.shim_switches = shims_switches()?.saturating_sub(shim_switches);
    Ok(tally)
}

/// Every client calls `echo` in a loop until `length` has passed.
async fn closed_loop<'a, W, R>(
    clients: impl Iterator<Item = &'a mut LineClient<W, R>>,
    length: Duration,
) -> anyhow::Result<Tally>
where
    W: AsyncWrite + Unpin + 'a,
    R: AsyncBufRead + Unpin + 'a,
{
    let start = Instant::now();
    let deadline = start + length;
    let per_client = try_join_all(clients.map(|client| async move {
        let mut latencies = Vec::new();
        while Instant::now() < deadline {
            let id = mcp::next_id();
            let line = mcp::echo(id);
            let sent = Instant::now();
            client.request(&line, id).await?;
            latencies.push(sent.elapsed());
        }
        anyhow::Ok(latencies)
    }))
    .await?;
    let elapsed = start.elapsed();
    let latencies: Vec<Duration> = per_client.into_iter().flatten().collect();
    Ok(Tally {
        calls: latencies.len() as u64,
        latencies,
        elapsed,
        ..Tally::default()
    })
}

/// `clients` callers share `server`'s stream (the attach stream, or the bare relay's pipes), each
/// with one call in flight, until `length` has passed.
async fn shared_round<W, R>(
    server: &mut LineClient<W, R>,
    clients: usize,
    length: Duration,
) -> anyhow::Result<Tally>
where
    W: AsyncWrite + Unpin,
    R: AsyncBufRead + Unpin,
{
    let start = Instant::now();
    let deadline = start + length;
    let mut in_flight: HashMap<u64, Instant> = HashMap::with_capacity(clients);
    for _ in 0..clients {
        let id = mcp::next_id();
        let line = mcp::echo(id);
        in_flight.insert(id, Instant::now());
        server.send(&line).await?;
    }
    let mut latencies = Vec::new();
    while !in_flight.is_empty() {
        let answer = server.receive().await?;
        let id = Reply::success(answer)?.id.unwrap_or_default();
        let sent = in_flight
            .remove(&id)
            .with_context(|| format!("an answer to request {id}, which is not in flight"))?;
        latencies.push(sent.elapsed());
        if Instant::now() < deadline {
            let id = mcp::next_id();
            let line = mcp::echo(id);
            in_flight.insert(id, Instant::now());
            server.send(&line).await?;
        }
    }
    Ok(Tally {
        calls: latencies.len() as u64,
        latencies,
        elapsed: start.elapsed(),
        ..Tally::default()
    })
}
