//! A gateway under test: the harness's [`Daemon`] (temporary XDG directories, the real
//! `mcp-gatewayd`), configured through the real `mcpctl`, with real `mcp-shim` clients.

use std::time::Duration;

use anyhow::{Context, bail};
use mcp_gateway_proto::{Hello, Role};
use mcp_gateway_tests::{Daemon, Start, bin};
use tokio::io::BufReader;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::process::Command;

use crate::cli::{ONE_PAGE, Plan};
use crate::mcp::{LineClient, ProcessClient};

/// An MCP session on the daemon's socket without a shim in between.
pub type SocketClient = LineClient<OwnedWriteHalf, BufReader<OwnedReadHalf>>;

/// The daemon's log level: warnings only, so the benchmark's output stays readable and the
/// daemon does not pay for logging every session.
const DAEMON_LOG: &str = "warn";

pub struct Rig {
    pub daemon: Daemon,
}

/// A fixture server to configure: its name, and how many filler tools it adds to its six.
pub struct Server<'a> {
    pub name: &'a str,
    pub image: &'a str,
    pub extra_tools: usize,
}

impl Rig {
    /// A daemon with the plan's extra environment (for experiments such as
    /// `RUST_LOG`). Its merged lists come in one page, as the direct path's do.
    pub fn start(how: Start, plan: &Plan) -> Rig {
        Rig::start_with(how, plan, &[])
    }

    /// [`Rig::start`] with `env` too, before the plan's.
    pub fn start_with(how: Start, plan: &Plan, env: &[(&str, &str)]) -> Rig {
        let mut env: Vec<(&str, &str)> = [
            ("RUST_LOG", DAEMON_LOG),
            ("MCP_GATEWAY_LIST_PAGE_SIZE", "100000"),
        ]
        .into_iter()
        .chain(env.iter().copied())
        .collect();
        env.extend(
            plan.daemon_env
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str())),
        );
        Rig {
            daemon: Daemon::start_with_env(how, &env),
        }
    }

    /// Runs `mcpctl ARGS` and fails with its stderr if it fails.
    pub fn ctl(&self, args: &[&str]) -> anyhow::Result<String> {
        let output = self.daemon.ctl(args);
        if !output.status.success() {
            bail!(
                "mcpctl {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        String::from_utf8(output.stdout).context("mcpctl printed something that is not UTF-8")
    }

    /// Adds a fixture server to the catalog (and so to the implicit `default` profile).
    pub fn add(&self, server: &Server) -> anyhow::Result<()> {
        let name = format!("MCP_FIXTURE_NAME={}", server.name);
        let extra = format!("MCP_FIXTURE_EXTRA_TOOLS={}", server.extra_tools);
        self.ctl(&[
            "server",
            "add",
            server.name,
            "--image",
            server.image,
            "--env",
            &name,
            "--env",
            &extra,
            "--env",
            ONE_PAGE,
        ])?;
        Ok(())
    }

    /// Creates profile `name` holding `servers`.
    pub fn profile(&self, name: &str, servers: &[&str]) -> anyhow::Result<()> {
        let mut args = vec!["profile", "create", name];
        for server in servers {
            args.extend(["--server", server]);
        }
        self.ctl(&args)?;
        Ok(())
    }

    /// An `mcp-shim` for `profile` (the active one when `None`), not yet initialised. On the
    /// pipes it is given, it hands its stdio to the daemon.
    pub fn shim(
        &self,
        shim: &std::path::Path,
        profile: Option<&str>,
    ) -> anyhow::Result<ProcessClient> {
        self.shim_with(shim, profile, &[])
    }

    fn shim_with(
        &self,
        shim: &std::path::Path,
        profile: Option<&str>,
        args: &[&str],
    ) -> anyhow::Result<ProcessClient> {
        let mut command = Command::new(shim);
        if let Some(profile) = profile {
            command.args(["--profile", profile]);
        }
        command.args(args).envs(self.daemon.env());
        ProcessClient::spawn(command)
    }

    /// An initialised `mcp-shim` client of the release shim beside the daemon.
    pub async fn session(&self, profile: Option<&str>) -> anyhow::Result<ProcessClient> {
        let mut client = self.shim(&bin("mcp-shim"), profile)?;
        client.io.handshake().await?;
        Ok(client)
    }

    /// An initialised client of the release shim that relays the session's bytes itself
    /// (`--relay`) instead of handing its stdio to the daemon.
    pub async fn relayed_session(&self) -> anyhow::Result<ProcessClient> {
        let mut client = self.shim_with(&bin("mcp-shim"), None, &["--relay"])?;
        client.io.handshake().await?;
        Ok(client)
    }

    /// An initialised MCP session spoken by this process straight on the daemon's socket, after
    /// the same hello the shim sends: the gateway path less the shim process.
    pub async fn socket_session(&self) -> anyhow::Result<SocketClient> {
        let socket = self.daemon.socket.clone();
        let stream = tokio::task::spawn_blocking(move || {
            let hello = Hello::new(Role::Mcp, "mcp-gateway-bench");
            mcp_gateway_proto::connect(&socket, &hello, Duration::from_secs(30))
                .map(|connection| connection.stream)
                .map_err(|err| anyhow::anyhow!("{err}"))
        })
        .await??;
        stream.set_nonblocking(true)?;
        let (read, write) = tokio::net::UnixStream::from_std(stream)?.into_split();
        let mut client = LineClient::new(write, BufReader::new(read));
        client.handshake().await?;
        Ok(client)
    }

    pub fn pid(&self) -> anyhow::Result<u32> {
        self.daemon.pid().context("the daemon is not running")
    }

    /// This daemon's containers, by its scope label.
    pub fn containers(&self) -> usize {
        self.daemon.containers().len()
    }
}
