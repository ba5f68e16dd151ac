//! `mcp-gateway-bench`: measures the gateway against the paths it sits on (the engine's attach
//! stream, `docker run`) and prints every figure beside its baseline and target. `BENCHMARKS.md`
//! holds its output and the command that produced it.

mod cli;
mod direct;
mod figures;
mod mcp;
mod procfs;
mod report;
mod rig;
mod stats;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::Cli;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let plan = match cli.plan() {
        Ok(plan) => plan,
        Err(message) => {
            eprintln!("mcp-gateway-bench: {message}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("mcp-gateway-bench: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(figures::run(cli.figure, &plan)) {
        Ok(rows) if cli.json => {
            println!("{:#}", report::json(&rows));
            ExitCode::SUCCESS
        }
        Ok(rows) => {
            print!("{}", report::table(&rows));
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("mcp-gateway-bench: {err:#}");
            ExitCode::FAILURE
        }
    }
}
