//! `mcp-gatewayd`: a per-user daemon that runs MCP servers in containers and serves them to AI
//! clients as one MCP server, through one Unix socket.
//!
//! # Layout
//!
//! - [`run`] is the whole daemon given a listening socket; `main.rs` and the tests both call it.
//! - `server`: accept loop, peer check, hello, dispatch. `control`: `mcpctl` requests.
//! - `session`: one MCP client; `downstream`: the handle the rest of the daemon writes to it with;
//!   `hangup`: noticing a client that has gone.
//!   `gateway`: merged lists and request routing over a profile, and (`gateway/events`) what
//!   servers send unprompted. `lists`: merged lists and their pages. `names`: the names and URIs
//!   a profile exposes. `jsonrpc`: the raw message envelope. `lines`: framing with a length limit.
//!   `modern`: the 2026-07-28 shapes; `http`: the optional Streamable HTTP face, sessions behind
//!   in-memory pipes; `parking`: sealed state of calls waiting for a modern
//!   client's input. `scan`: secret scanning. `audit`: the audit log.
//! - `pool`: containers per (profile, server). `listcache`: their lists, kept on disk across
//!   runs. `upstream`: one server's MCP connection.
//!   `docker`: the engine API (the only user of bollard). `logtail`: servers' stderr.
//! - `config`: settings, catalog, profiles, active profile, secrets. `dirs`: XDG paths.
//! - `listener`, `logging`, `notify`: the systemd side (socket activation, journal, sd_notify).
//!   `limits`: the open-file limit, raised for sessions and restored for children.
//! - `fuzzing`: the parsers the fuzz targets (`fuzz/`) reach; hidden, for them alone. `baseline`:
//!   the attach stream the benchmark's direct path (`bench/`) uses; hidden, for it alone.

mod audit;
#[doc(hidden)]
pub mod baseline;
mod cli;
mod config;
mod control;
mod dirs;
mod docker;
mod downstream;
#[doc(hidden)]
pub mod fuzzing;
mod gateway;
mod halves;
mod hangup;
mod http;
mod jsonrpc;
pub mod limits;
mod lines;
mod listcache;
pub mod listener;
mod lists;
pub mod logging;
mod logtail;
mod modern;
mod names;
mod notify;
mod outbox;
mod parking;
mod pool;
mod scan;
mod server;
mod session;
mod stdio;
mod upstream;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use cli::Cli;
pub use listener::Listener;

/// Tunables; `Default` is what a user gets.
#[derive(Debug, Clone)]
pub struct Settings {
    /// How long an MCP request to a server may take.
    pub request_timeout: Duration,
    /// How long a server may take to start and answer `initialize`.
    pub start_timeout: Duration,
    /// The longest MCP line accepted from clients and servers.
    pub max_mcp_line: usize,
    /// How long sessions get to finish at shutdown before they are cut.
    pub drain_timeout: Duration,
    /// Exit after this long without connections, when socket-activated (a bound socket has no one
    /// to start the daemon again).
    pub idle_timeout: Option<Duration>,
    /// Items per page of the merged lists clients get.
    pub list_page_size: usize,
    /// How long a modern client's `requestState` stays good.
    pub input_ttl: Duration,
    /// The launcher that puts container servers' stdio on the daemon's sockets; `None`, or one
    /// that is unusable, leaves it on the engine's attach stream.
    pub launcher: Option<PathBuf>,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            request_timeout: Duration::from_secs(120),
            start_timeout: Duration::from_secs(60),
            max_mcp_line: mcp_gateway_proto::MAX_MCP_LINE,
            drain_timeout: Duration::from_secs(10),
            idle_timeout: Some(Duration::from_secs(600)),
            list_page_size: 500,
            input_ttl: parking::DEFAULT_TTL,
            launcher: None,
        }
    }
}

/// Reads the configuration files as the daemon does at start and returns their problems
/// (`PATH:LINE: reason`), for `mcp-gatewayd --check-config`.
pub fn check_config() -> Result<Vec<String>, String> {
    let dirs = dirs::Dirs::from_env()?;
    let (_, problems) = config::ConfigStore::load(dirs);
    Ok(problems.iter().map(ToString::to_string).collect())
}

/// Runs the daemon on `listener` until `shutdown` resolves, then drains sessions and removes the
/// containers it started.
pub async fn run(
    listener: Listener,
    settings: Settings,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let dirs = dirs::Dirs::from_env().map_err(anyhow::Error::msg)?;
    let audit = audit::Audit::start(&dirs.state);
    let cache = listcache::ListCache::new(dirs.state.clone());
    let launcher = settings.launcher.as_ref().and_then(|program| {
        match docker::Launcher::new(program.clone(), &dirs::runtime()) {
            Ok(launcher) => Some(Arc::new(launcher)),
            Err(reason) => {
                tracing::warn!("servers' stdio goes over the engine's attach stream: {reason}");
                None
            }
        }
    });
    let (config, problems) = config::ConfigStore::load(dirs);
    for problem in &problems {
        tracing::error!("configuration: {problem}");
    }
    let config = Arc::new(config);
    let (events, server_events) = upstream::EventQueues::new();
    let pool = Arc::new(pool::Pool::new(
        pool::PoolSettings {
            scope: listener.description.clone(),
            start_timeout: settings.start_timeout,
            max_line: settings.max_mcp_line,
            config: Arc::clone(&config),
            launcher,
        },
        events,
    ));
    pool.spawn_idle_reaper();
    let gateway = gateway::Gateway::new(
        config,
        Arc::clone(&pool),
        audit,
        cache,
        settings.request_timeout,
        settings.list_page_size,
        parking::Seal::new(settings.input_ttl),
    );
    tokio::spawn(Arc::clone(&gateway).run_events(server_events));
    let token = CancellationToken::new();
    let tracker = TaskTracker::new();
    let http = http::Face::new(
        Arc::clone(&gateway),
        settings.max_mcp_line,
        token.clone(),
        tracker.clone(),
    );
    let shared = Arc::new(server::Shared {
        http,
        gateway,
        socket: listener.description.clone(),
        sessions: Default::default(),
        max_mcp_line: settings.max_mcp_line,
        activity: Default::default(),
    });
    let configured = shared.gateway.config.get().settings.http.clone();
    if let Err(err) = shared.http.apply(configured.as_ref(), &shared.activity) {
        tracing::error!("http: {err}");
    }
    let idle_timeout = settings
        .idle_timeout
        .filter(|_| listener.bound_path.is_none());
    let socket = tokio::net::UnixListener::from_std(listener.socket)
        .context("cannot use the listening socket")?;

    // The engine may be slow or absent; readiness must not wait for it.
    tokio::spawn({
        let pool = Arc::clone(&pool);
        async move {
            match pool.reconcile().await {
                Ok(removed) => {
                    if removed > 0 {
                        tracing::info!("removed {removed} containers left by an earlier run");
                    }
                    if let Ok(engine) = pool.engine().await {
                        notify::engine_connected(&engine.description);
                    }
                }
                Err(err) => {
                    tracing::warn!("{err}");
                    notify::status(&format!("ready; {err}"));
                }
            }
        }
    });

    notify::ready(&format!(
        "accepting connections on {}",
        listener.description
    ));
    notify::spawn_watchdog();
    tracing::info!("listening on {}", listener.description);
    tokio::select! {
        () = server::accept_loop(socket, Arc::clone(&shared), token.clone(), &tracker) => {}
        () = shared.activity.idle(idle_timeout) => notify::stopping("idle, exiting"),
        () = shutdown => notify::stopping("draining sessions"),
    }
    token.cancel();
    tracker.close();
    if tokio::time::timeout(settings.drain_timeout, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            "sessions did not finish within {:?}",
            settings.drain_timeout
        );
    }
    pool.shutdown().await;
    if let Some(path) = &listener.bound_path {
        let _ = std::fs::remove_file(path);
    }
    tracing::info!("stopped");
    Ok(())
}
