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
use crate::direct::{Engine, FIXTURE_BUILD_LABEL};
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
    check_fixture_build(plan, &engine).await?;
    let rows = measure(figure, plan, &engine).await;
    engine
        .remove_leftovers()
        .await
        .context("cleaning up the benchmark's containers")?;
    rows
}

/// Refuses a fixture image that does not hold a release build, except in a quick (smoke) run. A
/// debug fixture spends several times the CPU of a release one on each call, so every figure
/// would measure the fixture, and the gateway's share of the path would look smaller than it is.
async fn check_fixture_build(plan: &Plan, engine: &Engine) -> anyhow::Result<()> {
    if plan.any_fixture_build {
        return Ok(());
    }
    let build = engine.image_label(&plan.image, FIXTURE_BUILD_LABEL).await?;
    if build.as_deref() == Some("release") {
        return Ok(());
    }
    let holds = build.map_or("an unlabelled build of the fixture".to_owned(), |build| {
        format!("a {build} build of the fixture")
    });
    bail!(
        "{} holds {holds}, not a release build; rebuild it with \
         `tests/fixture/build-image.sh --release {}` (bench/run.sh does), or pass --quick for a \
         smoke run",
        plan.image,
        plan.image
    )
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
