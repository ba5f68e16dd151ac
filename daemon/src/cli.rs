//! The daemon's command line, kept in the library so packaging can render its man page from the
//! same definition that parses it.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use mcp_gateway_proto::SOCKET_ENV;

use crate::Settings;

/// Runs MCP servers in containers and serves them to AI clients through one socket.
///
/// Normally started by systemd through mcp-gateway.socket; run it by hand with --socket for
/// development and tests.
#[derive(Debug, Parser)]
#[command(name = "mcp-gatewayd", version)]
pub struct Cli {
    /// The Unix socket to bind when not socket-activated [default: $XDG_RUNTIME_DIR/mcp-gateway.sock]
    #[arg(long, env = SOCKET_ENV, value_name = "PATH")]
    pub socket: Option<PathBuf>,

    /// When socket-activated, exit after this many seconds without any connection (0: never);
    /// systemd starts the daemon again on the next connection
    #[arg(long, default_value_t = 600, value_name = "SECONDS")]
    pub idle_timeout: u64,

    /// Seconds to wait for an MCP server's answer before failing the request
    #[arg(
        long,
        env = "MCP_GATEWAY_REQUEST_TIMEOUT",
        default_value_t = 120,
        value_name = "SECONDS"
    )]
    pub request_timeout: u64,

    /// Items per page of the merged tools, prompts and resources lists
    #[arg(long, env = "MCP_GATEWAY_LIST_PAGE_SIZE", default_value_t = 500, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub list_page_size: u64,

    /// Read the configuration files, print each problem (`PATH:LINE: reason`) and exit without
    /// starting: 0 when they read cleanly, 1 otherwise (`mcpctl doctor` runs this without a daemon)
    #[arg(long)]
    pub check_config: bool,
    /// Seconds a 2026-07-28 client has to retry an input_required result (its requestState
    /// expires then, and a call parked for its answer is given up)
    #[arg(long, env = "MCP_GATEWAY_INPUT_TTL", default_value_t = 600, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
    pub input_ttl: u64,

    /// How a container server's stdin and stdout reach the daemon: `socket`, a Unix socket the
    /// launcher connects to from inside the container, when the engine is local and the launcher
    /// is statically linked; `attach`, the engine's attach stream, always (the fallback of
    /// `socket`)
    #[arg(long, env = "MCP_GATEWAY_SERVER_STDIO", value_enum, default_value_t = ServerStdio::Socket)]
    pub server_stdio: ServerStdio,

    /// The launcher for `--server-stdio socket` [default: ../libexec/mcp-gateway/mcp-launcher
    /// from mcp-gatewayd's directory, else mcp-launcher beside it]
    #[arg(long, env = "MCP_GATEWAY_LAUNCHER", value_name = "PATH")]
    pub launcher: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ServerStdio {
    Socket,
    Attach,
}

impl Cli {
    pub fn settings(&self) -> Settings {
        Settings {
            request_timeout: Duration::from_secs(self.request_timeout),
            idle_timeout: (self.idle_timeout > 0).then(|| Duration::from_secs(self.idle_timeout)),
            list_page_size: usize::try_from(self.list_page_size).unwrap_or(usize::MAX),
            input_ttl: Duration::from_secs(self.input_ttl),
            launcher: match self.server_stdio {
                ServerStdio::Socket => Some(self.launcher.clone().unwrap_or_else(default_launcher)),
                ServerStdio::Attach => None,
            },
            ..Settings::default()
        }
    }
}

/// Where the packages install the launcher relative to the daemon (`/usr/bin` and
/// `/usr/libexec/mcp-gateway`), else beside it; the first when neither exists, for the message
/// that says so.
fn default_launcher() -> PathBuf {
    let dir = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(PathBuf::from))
        .unwrap_or_default();
    let packaged = dir.join("../libexec/mcp-gateway/mcp-launcher");
    let beside = dir.join("mcp-launcher");
    if !packaged.exists() && beside.exists() {
        beside
    } else {
        packaged
    }
}
