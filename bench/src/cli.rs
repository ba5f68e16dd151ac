//! The benchmark's command line, and the [`Plan`] it resolves to: how many samples, clients,
//! servers and cycles each figure uses, full-size by default and small with `--quick`.

use clap::{Parser, Subcommand};

/// Measures mcp-gateway against the paths it sits on. Every figure is taken side by side with its
/// baseline in the same run.
///
/// It drives the real binaries found beside it (build them with `cargo build --release`), or in
/// `MCP_GATEWAY_BIN_DIR`, and a real container engine.
#[derive(Debug, Parser)]
#[command(name = "mcp-gateway-bench", version)]
pub struct Cli {
    #[command(subcommand)]
    pub figure: Figure,

    /// A smoke run: short rounds, few servers, sessions and cycles
    #[arg(long, global = true)]
    pub quick: bool,

    /// Print the figures as JSON instead of a table
    #[arg(long, global = true)]
    pub json: bool,

    /// The fixture image; built from tests/fixture when missing
    #[arg(long, global = true, default_value = "mcp-gateway-fixture:bench")]
    pub image: String,

    /// The shim built with `--profile dist`, for the size figure [default: target/dist/mcp-shim]
    #[arg(long, global = true, value_name = "PATH")]
    pub dist_shim: Option<std::path::PathBuf>,

    /// Concurrent clients per latency cell, comma-separated [default: 1,8,64]
    #[arg(long, global = true, value_delimiter = ',', value_name = "N,...")]
    pub clients: Option<Vec<usize>>,

    /// Measured rounds per latency cell, alternating gateway and baseline [default: 3; quick: 1]
    #[arg(long, global = true, value_name = "N")]
    pub rounds: Option<u32>,

    /// Seconds of one measured round [default: 2; quick: 0.3]
    #[arg(long, global = true, value_name = "SECONDS")]
    pub round_secs: Option<f64>,

    /// Cold starts measured per configuration [default: 5; quick: 1]
    #[arg(long, global = true, value_name = "N")]
    pub cold_samples: Option<u32>,

    /// Servers in the large cold-start profile [default: 10; quick: 3]
    #[arg(long, global = true, value_name = "N")]
    pub cold_servers: Option<usize>,

    /// Servers in the scale profile, 20 tools each [default: 50; quick: 5]
    #[arg(long, global = true, value_name = "N")]
    pub scale_servers: Option<usize>,

    /// Concurrent sessions for the footprint figure [default: 100; quick: 10]
    #[arg(long, global = true, value_name = "N")]
    pub sessions: Option<usize>,

    /// Connect/SIGKILL cycles for the leak figure [default: 1000; quick: 30]
    #[arg(long, global = true, value_name = "N")]
    pub cycles: Option<usize>,

    /// Extra environment for the daemon, for experiments (e.g. MCP_GATEWAY_LIST_PAGE_SIZE=50); repeatable
    #[arg(long, global = true, value_name = "KEY=VALUE", value_parser = parse_env)]
    pub daemon_env: Vec<(String, String)>,
}

fn parse_env(pair: &str) -> Result<(String, String), String> {
    match pair.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("{pair:?} is not KEY=VALUE")),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Subcommand)]
pub enum Figure {
    /// Every figure below, in one table
    All,
    /// Warm tools/call latency and throughput against the attach stream
    Latency,
    /// From a daemon that is not running to the first tools/list answer, against `docker run`
    Cold,
    /// tools/list over a profile of many servers, and the daemon's memory
    Scale,
    /// Daemon and shim memory, shim size and start time
    Footprint,
    /// Containers, processes and memory before and after many killed clients
    Leaks,
    /// A second session's tools/call latency while a hostile server of its profile attacks
    Hostile,
}

/// Everything the figures need to know, with the defaults filled in.
#[derive(Debug, Clone)]
pub struct Plan {
    pub image: String,
    pub dist_shim: Option<std::path::PathBuf>,
    pub clients: Vec<usize>,
    pub rounds: u32,
    pub round_secs: f64,
    pub cold_samples: u32,
    pub cold_servers: usize,
    pub scale_servers: usize,
    pub scale_tools: usize,
    pub sessions: usize,
    pub cycles: usize,
    /// Repetitions of the small sequential measurements (shim start, tools/list).
    pub repeats: usize,
    pub daemon_env: Vec<(String, String)>,
    /// Whether a fixture image that is not a release build may be measured (in a quick run).
    pub any_fixture_build: bool,
}

/// Tools each fixture has without filler (echo, whoami, add, sleep, NAME_info, crash and the
/// protocol probes: progress, log, sample, elicit, roots, change, bump, subscriptions, meta,
/// setlevel, ask, getenv, region).
pub const FIXTURE_TOOLS: usize = 19;

/// The fixture pages its lists at 2 items unless told otherwise; both paths of the benchmark
/// list everything in one page, so that neither pays for paging the other does not.
pub const ONE_PAGE: &str = "MCP_FIXTURE_PAGE_SIZE=1000";

impl Cli {
    /// The plan, or why the flags do not make one.
    pub fn plan(&self) -> Result<Plan, String> {
        let pick = |value: Option<usize>, full: usize, quick: usize| {
            value.unwrap_or(if self.quick { quick } else { full })
        };
        let plan = Plan {
            image: self.image.clone(),
            dist_shim: self.dist_shim.clone(),
            clients: self.clients.clone().unwrap_or_else(|| vec![1, 8, 64]),
            rounds: self.rounds.unwrap_or(if self.quick { 1 } else { 3 }),
            round_secs: self
                .round_secs
                .unwrap_or(if self.quick { 0.3 } else { 2.0 }),
            cold_samples: self.cold_samples.unwrap_or(if self.quick { 1 } else { 5 }),
            cold_servers: pick(self.cold_servers, 10, 3),
            scale_servers: pick(self.scale_servers, 50, 5),
            scale_tools: 20,
            sessions: pick(self.sessions, 100, 10),
            cycles: pick(self.cycles, 1000, 30),
            repeats: if self.quick { 20 } else { 200 },
            daemon_env: self.daemon_env.clone(),
            any_fixture_build: self.quick,
        };
        if plan.clients.is_empty()
            || plan.clients.contains(&0)
            || plan.clients.iter().any(|&n| n > 1024)
        {
            return Err("--clients takes counts from 1 to 1024".into());
        }
        if plan.rounds == 0 || plan.cold_samples == 0 {
            return Err("--rounds and --cold-samples must be at least 1".into());
        }
        if !(plan.round_secs.is_finite() && (0.05..=600.0).contains(&plan.round_secs)) {
            return Err("--round-secs must be between 0.05 and 600".into());
        }
        if plan.cold_servers == 0 || plan.scale_servers == 0 || plan.sessions == 0 {
            return Err("--cold-servers, --scale-servers and --sessions must be at least 1".into());
        }
        if plan.scale_servers > 500 || plan.cold_servers > 500 || plan.sessions > 1000 {
            return Err("at most 500 servers and 1000 sessions".into());
        }
        Ok(plan)
    }
}
