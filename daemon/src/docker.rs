//! The container engine, through the Docker Engine API (Docker or Podman). This is the only module
//! that knows bollard; the rest of the daemon sees [`Engine`]'s few operations and its own types.

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::Arc;

use bollard::Docker;
use bollard::container::LogOutput;
use bollard::models::{ContainerCreateBody, HostConfig, Mount, MountType};
use bollard::query_parameters::{
    AttachContainerOptionsBuilder, CreateContainerOptionsBuilder, ListContainersOptionsBuilder,
    RemoveContainerOptionsBuilder, WaitContainerOptionsBuilder,
};
use futures_util::StreamExt;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::io::StreamReader;

use crate::logtail::LogTail;

/// Labels on every container the daemon creates, so that leftovers can be found and removed.
pub const LABEL_MANAGED: &str = "io.mcp-gateway.managed";
pub const LABEL_UID: &str = "io.mcp-gateway.uid";
/// The daemon's socket: two daemons of one user (say, a development one beside the systemd one)
/// own separate sets of containers and never reconcile away each other's.
pub const LABEL_SCOPE: &str = "io.mcp-gateway.scope";
pub const LABEL_INSTANCE: &str = "io.mcp-gateway.instance";
pub const LABEL_PROFILE: &str = "io.mcp-gateway.profile";
pub const LABEL_SERVER: &str = "io.mcp-gateway.server";
/// On a session-isolated server's container: the id of the client session it belongs to.
pub const LABEL_SESSION: &str = "io.mcp-gateway.session";

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("container engine unreachable: {0}")]
    Unreachable(String),
    #[error("image {0:?} is not present; pull or build it first")]
    ImageMissing(String),
    #[error("container engine: {0}")]
    Api(#[from] bollard::errors::Error),
}

/// A connected engine.
pub struct Engine {
    docker: Docker,
    /// e.g. `Docker Engine 20.10.24 (API 1.41)`, for status output.
    pub description: String,
}

/// What to run; the pool decides, the engine only executes.
pub struct ContainerSpec {
    pub name: String,
    pub image: String,
    pub command: Vec<String>,
    pub env: Vec<(String, String)>,
    pub labels: Vec<(&'static str, String)>,
    pub memory: u64,
    pub nano_cpus: u64,
    pub pids: u32,
    /// The network mode: `none`, a network's name, or `None` for the engine's default network.
    pub network: Option<String>,
    pub mounts: Vec<BindMount>,
}

/// A host path bind-mounted into a container.
pub struct BindMount {
    pub source: String,
    pub target: String,
    pub writable: bool,
}

/// A started container with its stdio attached. Dropping `stdin` closes the server's input, and
/// since containers are created with `StdinOnce`, the engine then closes it for good.
pub struct Attached {
    pub id: String,
    /// The id of the image the container was created from.
    pub image_id: String,
    pub stdin: Pin<Box<dyn AsyncWrite + Send>>,
    pub stdout: Pin<Box<dyn AsyncRead + Send>>,
}

impl Engine {
    /// Connects to `DOCKER_HOST` (or the default Docker socket) and negotiates the API version;
    /// when that fails and `DOCKER_HOST` is unset, tries Podman's user socket.
    /// `connect_with_podman_defaults` would itself honour a `unix://` `DOCKER_HOST`, which is why
    /// it is only tried without one.
    pub async fn connect() -> Result<Engine, EngineError> {
        // An empty DOCKER_HOST (a unit or wrapper passing the variable through unset) means the
        // default, as it does for the docker CLI.
        let host = std::env::var("DOCKER_HOST")
            .ok()
            .filter(|host| !host.is_empty());
        let docker = match &host {
            Some(host) => Docker::connect_with_host(host),
            None => Docker::connect_with_local_defaults(),
        };
        let docker_err = match Self::try_connect(docker).await {
            Ok(engine) => return Ok(engine),
            Err(err) => err,
        };
        if host.is_none()
            && let Ok(engine) = Self::try_connect(Docker::connect_with_podman_defaults()).await
        {
            return Ok(engine);
        }
        Err(docker_err)
    }

    async fn try_connect(
        docker: Result<Docker, bollard::errors::Error>,
    ) -> Result<Engine, EngineError> {
        let unreachable = |err: bollard::errors::Error| EngineError::Unreachable(err.to_string());
        let docker = docker
            .map_err(unreachable)?
            .negotiate_version()
            .await
            .map_err(unreachable)?;
        let version = docker.version().await.map_err(unreachable)?;
        let product = version
            .platform
            .map(|p| p.name)
            .filter(|name| !name.is_empty())
            .unwrap_or_else(|| "container engine".into());
        let description = format!(
            "{product} {} (API {})",
            version.version.unwrap_or_default(),
            docker.client_version()
        );
        Ok(Engine {
            docker,
            description,
        })
    }

    pub async fn ping(&self) -> Result<(), EngineError> {
        self.docker
            .ping()
            .await
            .map(drop)
            .map_err(|err| EngineError::Unreachable(err.to_string()))
    }

    /// Creates the container, attaches to its stdio, then starts it: attaching first means no
    /// output is lost. Never a TTY, which would mangle the line framing.
    pub async fn start(
        &self,
        spec: &ContainerSpec,
        stderr: Arc<LogTail>,
    ) -> Result<Attached, EngineError> {
        let image_id = self.image_id(&spec.image).await?;
        let body = ContainerCreateBody {
            image: Some(spec.image.clone()),
            cmd: (!spec.command.is_empty()).then(|| spec.command.clone()),
            env: Some(spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
            labels: Some(
                spec.labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.clone()))
                    .collect(),
            ),
            attach_stdin: Some(true),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            open_stdin: Some(true),
            stdin_once: Some(true),
            tty: Some(false),
            host_config: Some(restricted_host_config(spec)),
            ..Default::default()
        };
        let options = CreateContainerOptionsBuilder::default()
            .name(&spec.name)
            .build();
        let id = self.docker.create_container(Some(options), body).await?.id;
        match self.attach_and_start(&id, image_id, stderr).await {
            Ok(attached) => Ok(attached),
            Err(err) => {
                self.remove(&id).await;
                Err(err)
            }
        }
    }

    /// The id of a local image (by name or id), [`EngineError::ImageMissing`] when it is not
    /// present; the list cache is keyed by it.
    pub async fn image_id(&self, image: &str) -> Result<String, EngineError> {
        match self.docker.inspect_image(image).await {
            Ok(inspected) => Ok(inspected.id.unwrap_or_default()),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Err(EngineError::ImageMissing(image.to_owned())),
            Err(other) => Err(other.into()),
        }
    }

    async fn attach_and_start(
        &self,
        id: &str,
        image_id: String,
        stderr: Arc<LogTail>,
    ) -> Result<Attached, EngineError> {
        let options = AttachContainerOptionsBuilder::default()
            .stream(true)
            .stdin(true)
            .stdout(true)
            .stderr(true)
            .build();
        let attach = self.docker.attach_container(id, Some(options)).await?;
        self.docker.start_container(id, None).await?;
        // Stderr is diverted to the server's log as it arrives; only stdout, the MCP stream,
        // reaches the reader.
        let stdout = attach.output.filter_map(move |item| {
            let chunk = match item {
                Ok(LogOutput::StdOut { message }) | Ok(LogOutput::Console { message }) => {
                    Some(Ok(message))
                }
                Ok(LogOutput::StdErr { message }) => {
                    stderr.push(&message);
                    None
                }
                Ok(LogOutput::StdIn { .. }) => None,
                Err(err) => Some(Err(io::Error::other(err))),
            };
            std::future::ready(chunk)
        });
        Ok(Attached {
            id: id.to_owned(),
            image_id,
            stdin: attach.input,
            stdout: Box::pin(StreamReader::new(stdout)),
        })
    }

    /// Kills and removes a container; one that is already gone counts as removed.
    pub async fn remove(&self, id: &str) {
        let options = RemoveContainerOptionsBuilder::default().force(true).build();
        match self.docker.remove_container(id, Some(options)).await {
            Ok(()) => {}
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404 | 409,
                ..
            }) => {}
            Err(err) => tracing::warn!("cannot remove container {id}: {err}"),
        }
    }

    /// Waits until the container stops and returns its exit status; `None` when the engine cannot
    /// tell (the container was already removed, or the engine went away).
    pub async fn wait(&self, id: &str) -> Option<i64> {
        let options = WaitContainerOptionsBuilder::default()
            .condition("not-running")
            .build();
        let mut stream = self.docker.wait_container(id, Some(options));
        match stream.next().await? {
            Ok(response) => Some(response.status_code),
            // bollard reports a non-zero status as an error.
            Err(bollard::errors::Error::DockerContainerWaitError { code, .. }) => Some(code),
            Err(err) => {
                tracing::debug!("cannot wait for container {id}: {err}");
                None
            }
        }
    }

    /// Ids of the containers of this user and scope not created by the daemon instance `keep`.
    pub async fn list_leftovers(
        &self,
        uid: u32,
        scope: &str,
        keep: &str,
    ) -> Result<Vec<String>, EngineError> {
        let filters = HashMap::from([(
            "label".to_owned(),
            vec![
                format!("{LABEL_MANAGED}=true"),
                format!("{LABEL_UID}={uid}"),
                format!("{LABEL_SCOPE}={scope}"),
            ],
        )]);
        let options = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        let containers = self.docker.list_containers(Some(options)).await?;
        Ok(containers
            .into_iter()
            .filter(|c| {
                c.labels
                    .as_ref()
                    .and_then(|l| l.get(LABEL_INSTANCE))
                    .map(String::as_str)
                    != Some(keep)
            })
            .filter_map(|c| c.id)
            .collect())
    }
}

/// The restrictions that protect the host: an init process to reap zombies and forward signals,
/// no privilege escalation, no capabilities, the spec's network (`none` unless the catalog asks),
/// memory, CPU and process limits, bind mounts read-only unless marked writable, and removal by
/// the engine itself once the server exits.
fn restricted_host_config(spec: &ContainerSpec) -> HostConfig {
    let mounts = spec
        .mounts
        .iter()
        .map(|mount| Mount {
            source: Some(mount.source.clone()),
            target: Some(mount.target.clone()),
            typ: Some(MountType::BIND),
            read_only: Some(!mount.writable),
            ..Default::default()
        })
        .collect();
    HostConfig {
        init: Some(true),
        auto_remove: Some(true),
        security_opt: Some(vec!["no-new-privileges".into()]),
        cap_drop: Some(vec!["ALL".into()]),
        network_mode: spec.network.clone(),
        memory: Some(i64::try_from(spec.memory).unwrap_or(i64::MAX)),
        pids_limit: Some(i64::from(spec.pids)),
        nano_cpus: Some(i64::try_from(spec.nano_cpus).unwrap_or(i64::MAX)),
        mounts: Some(mounts),
        ..Default::default()
    }
}
