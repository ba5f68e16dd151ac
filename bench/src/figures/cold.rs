//! Cold start: from a daemon that is not running (its socket held by `systemd-socket-activate`, as
//! systemd holds it) to the first `tools/list` answer through `mcp-shim`, for one server and for
//! a profile of several, against `docker run -i --rm IMAGE` with the same handshake and listing.
//!
//! For attribution, the same number of containers is also started at once straight through the
//! engine API: what any gateway that starts them before answering must wait for.
//!
//! Each sample starts from nothing: the daemon is stopped (which removes its containers) and its
//! list cache removed before the next one, and samples of the three configurations alternate.
//!
//! The warm-cache figure is the same activation with the large profile's list cache left in
//! place, as a user's daemon finds it after an idle exit: the answer comes from the cache while
//! the containers start behind it.

use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use mcp_gateway_tests::{Start, bin, wait_for};
use tokio::process::Command;

use crate::cli::{FIXTURE_TOOLS, ONE_PAGE, Plan};
use crate::direct::{BENCH_LABEL, Engine};
use crate::mcp::{self, ProcessClient};
use crate::report::{Row, Unit};
use crate::rig::{Rig, Server};
use crate::stats::{Samples, millis};

/// How much slower than one `docker run` a cold start of the large profile may be.
const MANY_RATIO: f64 = 1.5;

pub async fn run(plan: &Plan, engine: &Engine) -> anyhow::Result<Vec<Row>> {
    // The configuration is written through a daemon of its own, which then exits.
    let mut rig = Rig::start(Start::Bound, plan);
    let names: Vec<String> = (1..=plan.cold_servers)
        .map(|n| format!("c{n:02}"))
        .collect();
    for name in &names {
        rig.add(&Server {
            name,
            image: &plan.image,
            extra_tools: 0,
        })?;
    }
    let all: Vec<&str> = names.iter().map(String::as_str).collect();
    rig.profile("one", &all[..1])?;
    rig.profile("many", &all)?;
    if !rig.daemon.stop() {
        bail!("the daemon that wrote the configuration did not exit cleanly");
    }

    let mut docker_run = Vec::new();
    let mut one = Vec::new();
    let mut many = Vec::new();
    let mut engine_many = Vec::new();
    let mut cached = Vec::new();
    let many_tools = FIXTURE_TOOLS * plan.cold_servers;
    for sample in 1..=plan.cold_samples {
        eprintln!("cold start: sample {sample} of {}", plan.cold_samples);
        docker_run.push(docker_run_sample(&plan.image).await?);
        one.push(gateway_sample(&mut rig, "one", FIXTURE_TOOLS, Cache::Cold).await?);
        many.push(gateway_sample(&mut rig, "many", many_tools, Cache::Cold).await?);
        // The cold sample just filled the cache this one reads.
        cached.push(gateway_sample(&mut rig, "many", many_tools, Cache::Warm).await?);
        engine_many.push(engine_sample(engine, &plan.image, plan.cold_servers).await?);
    }
    let samples = format!("median of {}", plan.cold_samples);
    let docker_run = Samples::new(docker_run).p50();
    let one = Samples::new(one).p50();
    let many = Samples::new(many).p50();
    let engine_many = Samples::new(engine_many).p50();
    let cached = Samples::new(cached).p50();
    Ok(vec![
        Row::new("cold start → first tools/list, 1 server", Unit::Millis)
            .gateway(millis(one))
            .baseline(millis(docker_run))
            .note(format!(
                "baseline: `docker run -i --rm` + initialize + tools/list; {samples}"
            )),
        Row::new(
            format!(
                "cold start → first tools/list, {} servers",
                plan.cold_servers
            ),
            Unit::Millis,
        )
        .gateway(millis(many))
        .baseline(millis(docker_run))
        .target(
            "≤ ×1.5 of one `docker run`",
            millis(many) <= millis(docker_run) * MANY_RATIO,
        )
        .note(samples.clone()),
        Row::new(
            format!("cold start → first tools/list, {} servers, against the engine", plan.cold_servers),
            Unit::Millis,
        )
        .gateway(millis(many))
        .baseline(millis(engine_many))
        .note(format!(
            "for attribution: baseline starts as many containers at once with bollard, initialises and lists them; {samples}"
        )),
        Row::new(
            format!(
                "first tools/list after activation, warm list cache, {} servers",
                plan.cold_servers
            ),
            Unit::Millis,
        )
        .gateway(millis(cached))
        .baseline(millis(docker_run))
        .target("< 50 ms", millis(cached) < WARM_TARGET_MS)
        .note(format!(
            "daemon activation to the answer from the on-disk list cache, containers starting behind it; {samples}"
        )),
    ])
}

/// The warm-cache figure's target.
const WARM_TARGET_MS: f64 = 50.0;

/// Whether a sample finds the list cache the previous activation left.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Cache {
    Cold,
    Warm,
}

/// Activates the daemon with one client and times it until the first `tools/list` answer.
async fn gateway_sample(
    rig: &mut Rig,
    profile: &str,
    tools: usize,
    cache: Cache,
) -> anyhow::Result<Duration> {
    let lists = rig.daemon.dir.path().join("state/mcp-gateway/lists");
    if cache == Cache::Cold {
        match std::fs::remove_dir_all(&lists) {
            Ok(()) => {}
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => return Err(err).context("removing the list cache"),
        }
    } else if !lists.join(profile).is_dir() {
        bail!("no list cache for profile {profile} to start warm from");
    }
    rig.daemon.relaunch(Start::SocketActivated);
    let start = Instant::now();
    let mut shim = rig.shim(&bin("mcp-shim"), Some(profile))?;
    shim.io.handshake().await?;
    let names = shim.io.tool_names(mcp::next_id()).await?;
    let elapsed = start.elapsed();
    if names.len() != tools {
        bail!(
            "profile {profile} listed {} tools, not {tools}",
            names.len()
        );
    }
    shim.close().await?;
    if !rig.daemon.stop() {
        bail!("the socket-activated daemon did not exit cleanly");
    }
    // Stopping removes the containers; make sure the next sample starts from none.
    wait_for(Duration::from_secs(30), || rig.containers() == 0);
    Ok(elapsed)
}

/// `servers` containers started at once straight through the engine API, each initialised and
/// listed: the floor for a gateway that must start them all before it answers.
async fn engine_sample(engine: &Engine, image: &str, servers: usize) -> anyhow::Result<Duration> {
    let start = Instant::now();
    let started = futures_util::future::join_all((1..=servers).map(|n| async move {
        let mut server = engine
            .start(
                image,
                &[format!("MCP_FIXTURE_NAME=e{n:02}"), ONE_PAGE.to_owned()],
            )
            .await?;
        let listed = server.io.tool_names(mcp::next_id()).await;
        anyhow::Ok((server, listed))
    }))
    .await;
    let elapsed = start.elapsed();
    let mut failure = None;
    for outcome in started {
        match outcome {
            Ok((server, listed)) => {
                engine.remove(&server.id).await;
                failure = failure.or(listed.err());
            }
            Err(err) => failure = failure.or(Some(err)),
        }
    }
    match failure {
        Some(err) => Err(err),
        None => Ok(elapsed),
    }
}

/// One server run by hand, as a client would without the gateway.
async fn docker_run_sample(image: &str) -> anyhow::Result<Duration> {
    let start = Instant::now();
    let mut command = Command::new("docker");
    command
        .args(["run", "-i", "--rm", "--label"])
        .arg(format!("{BENCH_LABEL}={}", std::process::id()))
        .args(["-e", "MCP_FIXTURE_NAME=cold", "-e", ONE_PAGE, image])
        .stderr(Stdio::null());
    let mut client = ProcessClient::spawn(command)?;
    client.io.handshake().await.context("docker run")?;
    let names = client.io.tool_names(mcp::next_id()).await?;
    let elapsed = start.elapsed();
    if names.len() != FIXTURE_TOOLS {
        bail!(
            "docker run listed {} tools, not {FIXTURE_TOOLS}",
            names.len()
        );
    }
    client.close().await?;
    Ok(elapsed)
}
