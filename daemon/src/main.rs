//! `mcp-gatewayd`: parse flags, set up logging, take the listening socket, then hand over to
//! [`mcp_gatewayd::run`]. The socket is taken before the tokio runtime starts because `listenfd`
//! clears `LISTEN_*` from the environment, which is only sound while the process has one thread.

use std::process::ExitCode;

use clap::Parser;
use mcp_gatewayd::{Cli, listener, logging};

fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init();
    let listener = match listener::take_or_bind(cli.socket.as_deref()) {
        Ok(listener) => listener,
        Err(err) => {
            tracing::error!("cannot listen: {err}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            tracing::error!("cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(mcp_gatewayd::run(
        listener,
        cli.settings(),
        shutdown_signal(),
    )) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Resolves on SIGTERM (systemd's stop) or SIGINT (Ctrl-C in a terminal).
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers; stop the daemon with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("received SIGTERM"),
        _ = int.recv() => tracing::info!("received SIGINT"),
    }
}
