//! A gateway under test: the harness's [`Daemon`] (temporary XDG directories, the real
//! `mcp-gatewayd`), configured through the real `mcpctl`, with real `mcp-shim` clients.

use anyhow::{Context, bail};
use mcp_gateway_tests::{Daemon, Start, bin};
use tokio::process::Command;

use crate::mcp::ProcessClient;

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
    pub fn start(how: Start) -> Rig {
        Rig {
            daemon: Daemon::start_with_env(how, &[("RUST_LOG", DAEMON_LOG)]),
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

    /// An `mcp-shim` for `profile` (the active one when `None`), not yet initialised.
    pub fn shim(
        &self,
        shim: &std::path::Path,
        profile: Option<&str>,
    ) -> anyhow::Result<ProcessClient> {
        let mut command = Command::new(shim);
        if let Some(profile) = profile {
            command.args(["--profile", profile]);
        }
        command.envs(self.daemon.env());
        ProcessClient::spawn(command)
    }

    /// An initialised `mcp-shim` client of the release shim beside the daemon.
    pub async fn session(&self, profile: Option<&str>) -> anyhow::Result<ProcessClient> {
        let mut client = self.shim(&bin("mcp-shim"), profile)?;
        client.io.handshake().await?;
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
