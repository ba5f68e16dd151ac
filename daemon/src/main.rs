//! `mcp-gatewayd`: parse flags, set up logging, take the listening socket, then hand over to
//! [`mcp_gatewayd::run`]. The socket is taken before the tokio runtime starts because `listenfd`
//! clears `LISTEN_*` from the environment, which is only sound while the process has one thread.

use std::process::ExitCode;

use clap::Parser;
use mcp_gatewayd::{Cli, listener, logging};
use nix::sys::signal::{SigSet, Signal};

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.check_config {
        return match mcp_gatewayd::check_config() {
            Ok(problems) if problems.is_empty() => ExitCode::SUCCESS,
            Ok(problems) => {
                for problem in problems {
                    println!("{problem}");
                }
                ExitCode::FAILURE
            }
            Err(err) => {
                eprintln!("mcp-gatewayd: {err}");
                ExitCode::FAILURE
            }
        };
    }
    logging::init();
    if let Err(err) = mcp_gatewayd::limits::raise_open_files() {
        tracing::warn!("cannot raise the open-file limit: {err}");
    }
    // A stop signal that arrives before tokio's handlers exist would kill the daemon without its
    // cleanup (a socket it bound would stay behind): hold SIGTERM and SIGINT until they exist.
    // The runtime's threads inherit the mask, so the signals reach the main thread afterwards.
    let stop_signals = SigSet::from_iter([Signal::SIGTERM, Signal::SIGINT]);
    if let Err(err) = stop_signals.thread_block() {
        tracing::warn!("cannot hold stop signals during startup: {err}");
    }
    let listener = match listener::take_or_bind(cli.socket.as_deref()) {
        Ok(listener) => listener,
        Err(err) => {
            tracing::error!("cannot listen: {err}");
            return ExitCode::FAILURE;
        }
    };
    // One thread runs every task: a call's hand-offs between a session, its requests and the
    // server's reader and writer are then queue pushes on that thread instead of wake-ups of
    // another, and the daemon's CPU per call is small enough for one core to carry thousands of
    // calls a second. Blocking work goes to tokio's blocking pool as before.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            tracing::error!("cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let shutdown = {
        let _context = runtime.enter();
        match shutdown_signal() {
            Ok(shutdown) => shutdown,
            Err(err) => {
                tracing::error!("cannot install signal handlers: {err}");
                return ExitCode::FAILURE;
            }
        }
    };
    if let Err(err) = stop_signals.thread_unblock() {
        tracing::error!("cannot unblock stop signals: {err}");
        return ExitCode::FAILURE;
    }
    match runtime.block_on(mcp_gatewayd::run(listener, cli.settings(), shutdown)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Resolves on SIGTERM (systemd's stop) or SIGINT (Ctrl-C in a terminal). The handlers are
/// installed by this call, not when the future is first polled.
fn shutdown_signal() -> std::io::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("received SIGTERM"),
            _ = int.recv() => tracing::info!("received SIGINT"),
        }
    })
}
