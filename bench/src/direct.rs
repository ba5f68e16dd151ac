//! The direct path, the floor the gateway is measured against: the same image, created with the
//! same host configuration the daemon uses, reached over the engine's attach stream with no
//! gateway in between. The stream is the daemon's own (`mcp_gatewayd::baseline`), read and
//! written by the same code as the gateway's; bollard only creates, starts and removes.
//!
//! Benchmark containers carry the label [`BENCH_LABEL`] so that [`remove_leftovers`] can clean up
//! after a run that failed half-way.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;

use anyhow::Context;
use bollard::Docker;
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{ListContainersOptionsBuilder, RemoveContainerOptionsBuilder};
use mcp_gatewayd::baseline::{Address, LogTail, attach};
use tokio::io::{AsyncBufRead, AsyncWrite, BufReader};

use crate::mcp::LineClient;

/// Marks the containers this benchmark creates itself, with the benchmark's pid as the value.
pub const BENCH_LABEL: &str = "io.mcp-gateway.bench";

/// The label `tests/fixture/build-image.sh` gives the fixture image: the Cargo profile of the
/// binary inside (`debug` or `release`).
pub const FIXTURE_BUILD_LABEL: &str = "io.mcp-gateway.fixture-build";

pub struct Engine {
    docker: Docker,
    /// Where `docker` connects, for the attach streams made without it.
    address: Address,
    /// The engine's Unix socket; `None` for one reached over TCP.
    socket: Option<String>,
}

/// The MCP client over an attach stream.
pub type AttachClient =
    LineClient<Pin<Box<dyn AsyncWrite + Send>>, Pin<Box<dyn AsyncBufRead + Send>>>;

/// A started, initialised server with its stdio attached.
pub struct DirectServer {
    pub id: String,
    pub io: AttachClient,
}

impl Engine {
    /// Connects as the daemon does: `DOCKER_HOST` or the local default, version negotiated.
    pub async fn connect() -> anyhow::Result<Engine> {
        let host = std::env::var("DOCKER_HOST")
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "unix:///var/run/docker.sock".to_owned());
        let address = Address::parse(&host).with_context(|| {
            format!("DOCKER_HOST {host} is neither unix://PATH nor tcp://HOST:PORT")
        })?;
        let socket = host.strip_prefix("unix://").map(str::to_owned);
        let docker = Docker::connect_with_host(&host)
            .context("cannot reach the container engine")?
            .negotiate_version()
            .await
            .context("cannot negotiate the engine's API version")?;
        Ok(Engine {
            docker,
            address,
            socket,
        })
    }

    /// The engine's Unix socket, as `DOCKER_HOST` or the local default names it; `None` for an
    /// engine reached over TCP.
    pub fn socket(&self) -> Option<&str> {
        self.socket.as_deref()
    }

    /// Creates, attaches and starts `image` with `env`, then does the MCP handshake.
    pub async fn start(&self, image: &str, env: &[String]) -> anyhow::Result<DirectServer> {
        let id = self.create(image, env).await?;
        // The API version bollard negotiated, as the daemon's attach request carries it.
        let path = format!(
            "/v{}/containers/{id}/attach?stream=1&stdin=1&stdout=1&stderr=1",
            self.docker.client_version()
        );
        // The server's stderr is not part of the MCP stream; it goes to a tail nobody reads.
        let stderr = Arc::new(LogTail::new("direct"));
        let attach = match attach(&self.address, &path, stderr).await {
            Ok(streams) => self
                .docker
                .start_container(&id, None)
                .await
                .map(|()| streams)
                .context("cannot start the container"),
            Err(err) => Err(err).context("cannot attach to the container"),
        };
        let (stdin, stdout) = match attach {
            Ok(streams) => streams,
            Err(err) => {
                self.remove(&id).await;
                return Err(err);
            }
        };
        let mut server = DirectServer {
            id,
            io: LineClient::new(stdin, Box::pin(BufReader::new(stdout))),
        };
        if let Err(err) = server.io.handshake().await {
            self.remove(&server.id).await;
            return Err(err);
        }
        Ok(server)
    }

    /// Creates a container of `image` with `env` as the daemon would (stdin open, no TTY), not
    /// started, and returns its id.
    pub async fn create(&self, image: &str, env: &[String]) -> anyhow::Result<String> {
        let labels = HashMap::from([(BENCH_LABEL.to_owned(), std::process::id().to_string())]);
        let body = ContainerCreateBody {
            image: Some(image.to_owned()),
            env: Some(env.to_vec()),
            labels: Some(labels),
            attach_stdin: Some(true),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            open_stdin: Some(true),
            stdin_once: Some(true),
            tty: Some(false),
            host_config: Some(daemon_host_config()),
            ..Default::default()
        };
        Ok(self
            .docker
            .create_container(None, body)
            .await
            .with_context(|| format!("cannot create a container of {image}"))?
            .id)
    }

    /// The value of `label` on `image`, if it has one.
    pub async fn image_label(&self, image: &str, label: &str) -> anyhow::Result<Option<String>> {
        let inspected = self
            .docker
            .inspect_image(image)
            .await
            .with_context(|| format!("cannot inspect {image}"))?;
        Ok(inspected
            .config
            .and_then(|config| config.labels)
            .and_then(|mut labels| labels.remove(label)))
    }

    /// Kills and removes a container; one already gone counts as removed.
    pub async fn remove(&self, id: &str) {
        let options = RemoveContainerOptionsBuilder::default().force(true).build();
        let _ = self.docker.remove_container(id, Some(options)).await;
    }

    /// Removes containers this benchmark process labelled and did not remove (after a failure).
    pub async fn remove_leftovers(&self) -> anyhow::Result<()> {
        let filters = HashMap::from([(
            "label".to_owned(),
            vec![format!("{BENCH_LABEL}={}", std::process::id())],
        )]);
        let options = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        let containers = self
            .docker
            .list_containers(Some(options))
            .await
            .context("cannot list the benchmark's containers")?;
        for id in containers.into_iter().filter_map(|c| c.id) {
            self.remove(&id).await;
        }
        Ok(())
    }
}

/// The host configuration `daemon::docker` gives every server, so that the direct container
/// differs from the gateway's only in who talks to it.
fn daemon_host_config() -> HostConfig {
    HostConfig {
        init: Some(true),
        auto_remove: Some(true),
        security_opt: Some(vec!["no-new-privileges".into()]),
        cap_drop: Some(vec!["ALL".into()]),
        network_mode: Some("none".into()),
        memory: Some(512 * 1024 * 1024),
        pids_limit: Some(256),
        nano_cpus: Some(1_000_000_000),
        ..Default::default()
    }
}
