//! The figures, each measured beside its baseline: [`run`] checks that the binaries, the engine and
//! the fixture image are there, runs the chosen figures in order, and removes the benchmark's own
//! containers whatever happened.

mod cold;
mod footprint;
mod hostile;
mod latency;
mod leaks;
mod scale;

use anyhow::{Context, bail};
use mcp_gateway_tests::{engine_answers, ensure_fixture_image, find_bin};

use crate::cli::{Figure, Plan};
use crate::direct::Engine;
use crate::report::Row;

pub async fn run(figure: Figure, plan: &Plan) -> anyhow::Result<Vec<Row>> {
    for name in ["mcp-gatewayd", "mcpctl", "mcp-shim"] {
        find_bin(name).map_err(anyhow::Error::msg)?;
    }
    if !engine_answers() {
        bail!("no container engine answers `docker version`");
    }
    ensure_fixture_image(&plan.image);
    let engine = Engine::connect().await?;
    let rows = measure(figure, plan, &engine).await;
    engine
        .remove_leftovers()
        .await
        .context("cleaning up the benchmark's containers")?;
    rows
}

async fn measure(figure: Figure, plan: &Plan, engine: &Engine) -> anyhow::Result<Vec<Row>> {
    let all = figure == Figure::All;
    let mut rows = Vec::new();
    if all || figure == Figure::Latency {
        rows.extend(latency::run(plan, engine).await.context("latency")?);
    }
    if all || figure == Figure::Cold {
        rows.extend(cold::run(plan, engine).await.context("cold start")?);
    }
    if all || figure == Figure::Scale {
        rows.extend(scale::run(plan, engine).await.context("scale")?);
    }
    if all || figure == Figure::Footprint {
        rows.extend(footprint::run(plan).await.context("footprint")?);
    }
    if all || figure == Figure::Hostile {
        rows.extend(hostile::run(plan).await.context("hostile")?);
    }
    if all || figure == Figure::Leaks {
        rows.extend(leaks::run(plan).await.context("leaks")?);
    }
    Ok(rows)
}
