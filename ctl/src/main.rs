//! `mcpctl`: administers `mcp-gatewayd` over its socket. Parsing lives in `cli`, the connection in
//! `client`, and each command's logic and output in `commands`; `client_commands` and `clients`
//! edit AI clients' configuration files, without the daemon. `status` and `doctor` (with `units`,
//! the systemd side) look at the daemon and around it.

use mcpctl::cli;
mod client;
mod client_commands;
mod clients;
mod commands;
mod doctor;
mod http_commands;
mod import;
mod secret_input;
mod status;
mod units;

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
