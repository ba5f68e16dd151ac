//! Scale: a profile of many servers with 20 tools each. The merged `tools/list` once the servers
//! run (target under 5 ms), against the same listings sent at once to as many containers over
//! their attach streams (what a gateway that asks every server each time cannot beat); the first
//! listing, which starts the containers, against starting as many directly; and the daemon's
//! memory once it holds them all, against the same daemon before the first listing.

use std::time::{Duration, Instant};

use anyhow::bail;
use futures_util::future::try_join_all;
use mcp_gateway_tests::Start;

use crate::cli::{FIXTURE_TOOLS, ONE_PAGE, Plan};
use crate::direct::Engine;
use crate::mcp;
use crate::procfs;
use crate::report::{Row, Unit};
use crate::rig::{Rig, Server};
use crate::stats::{Samples, micros, millis};

const LIST_TARGET: Duration = Duration::from_millis(5);

pub async fn run(plan: &Plan, engine: &Engine) -> anyhow::Result<Vec<Row>> {
    let servers = plan.scale_servers;
    let per_server = plan.scale_tools;
    let extra_tools = per_server - FIXTURE_TOOLS;
    eprintln!("scale: configuring {servers} servers × {per_server} tools");
    let rig = Rig::start(Start::Bound, plan);
    for n in 1..=servers {
        rig.add(&Server {
            name: &format!("s{n:02}"),
            image: &plan.image,
            extra_tools,
        })?;
    }
    let pid = rig.pid()?;
    // `status` connects the daemon to the engine, as any first use would.
    rig.ctl(&["status"])?;
    let rss_before = procfs::rss_kib(pid)?;

    eprintln!("scale: starting {servers} containers");
    let mut shim = rig.session(None).await?;
    let start = Instant::now();
    let names = shim.io.tool_names(mcp::next_id()).await?;
    let first = start.elapsed();
    if names.len() != servers * per_server {
        bail!(
            "the profile listed {} tools, not {}; is {} built from this tree's fixture \
             (MCP_FIXTURE_EXTRA_TOOLS)? rebuild it with tests/fixture/build-image.sh {}",
            names.len(),
            servers * per_server,
            plan.image,
            plan.image
        );
    }

    eprintln!("scale: starting {servers} containers directly");
    let start = Instant::now();
    let mut direct = try_join_all((1..=servers).map(|n| {
        let env = [
            format!("MCP_FIXTURE_NAME=d{n:02}"),
            format!("MCP_FIXTURE_EXTRA_TOOLS={extra_tools}"),
            ONE_PAGE.to_owned(),
        ];
        async move {
            let mut server = engine.start(&plan.image, &env).await?;
            server.io.tool_names(mcp::next_id()).await?;
            anyhow::Ok(server)
        }
    }))
    .await?;
    let direct_first = start.elapsed();

    let mut gateway = Vec::with_capacity(plan.repeats);
    let mut baseline = Vec::with_capacity(plan.repeats);
    eprintln!("scale: {} warm listings", plan.repeats);
    for _ in 0..plan.repeats {
        let start = Instant::now();
        shim.io.tool_names(mcp::next_id()).await?;
        gateway.push(start.elapsed());
        let start = Instant::now();
        try_join_all(direct.iter_mut().map(|server| async {
            let id = mcp::next_id();
            let line = mcp::list_tools(id);
            server.io.request(&line, id).await.map(drop)
        }))
        .await?;
        baseline.push(start.elapsed());
    }
    futures_util::future::join_all(direct.iter().map(|server| engine.remove(&server.id))).await;
    direct.clear();
    let rss_after = procfs::rss_kib(pid)?;
    shim.close().await?;

    let label = format!("{servers} servers × {per_server} tools");
    let gateway = Samples::new(gateway);
    let baseline = Samples::new(baseline);
    Ok(vec![
        Row::new(format!("tools/list p50, {label}, warm"), Unit::Micros)
            .gateway(micros(gateway.p50()))
            .baseline(micros(baseline.p50()))
            .target("< 5 ms", gateway.p50() < LIST_TARGET)
            .note(format!(
                "baseline: the same {servers} listings sent at once over {servers} attach streams; {} listings",
                gateway.len()
            )),
        Row::new(format!("tools/list p99, {label}, warm"), Unit::Micros)
            .gateway(micros(gateway.p99()))
            .baseline(micros(baseline.p99())),
        Row::new(format!("first tools/list, {label}"), Unit::Millis)
            .gateway(millis(first))
            .baseline(millis(direct_first))
            .note(format!(
                "starts {servers} containers; baseline: {servers} started at once with bollard, initialised and listed"
            )),
        Row::new(format!("daemon RSS, {label}"), Unit::Kib)
            .gateway(rss_after as f64)
            .baseline(rss_before as f64)
            .note("baseline: the same daemon before its first listing"),
    ])
}
