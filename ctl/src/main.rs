//! `mcpctl`: administers `mcp-gatewayd` over its socket. Parsing lives in `cli`, the connection in
//! `client`, and each command's logic and output in `commands`.

use mcpctl::cli;
mod client;
mod commands;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("mcpctl: {err:#}");
            ExitCode::from(client::exit_status(&err))
        }
    }
}
