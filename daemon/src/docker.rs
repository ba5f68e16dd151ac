//! The container engine, through the Docker Engine API (Docker or Podman). This is the only module
//! that knows bollard; the rest of the daemon sees [`Engine`]'s few operations and its own types.
//! The attach stream is read without it (`docker/attach.rs`, `docker/frames.rs`), and on a local
//! engine a server's stdio bypasses it altogether (`docker/launcher.rs`).

pub(crate) mod attach;
mod frames;
mod launcher;

use std::collections::HashMap;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use bollard::models::{
    ContainerCreateBody, HostConfig, ImageInspect, Mount, MountType, ResourcesUlimits,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, CreateImageOptionsBuilder, ListContainersOptionsBuilder,
    RemoveContainerOptionsBuilder, WaitContainerOptionsBuilder,
};
use bollard::{API_DEFAULT_VERSION, Docker};
use futures_util::StreamExt;
use tokio::io::{AsyncRead, AsyncWrite};

use self::attach::{Address, AttachError, Streams};
use self::launcher::LaunchError;
pub use self::launcher::Launcher;
use crate::logtail::LogTail;

/// The Docker socket when `DOCKER_HOST` names none, as for the docker CLI.
const DOCKER_SOCKET: &str = "/var/run/docker.sock";
/// Podman's system service socket, tried after the user's (`$XDG_RUNTIME_DIR/podman/podman.sock`).
const PODMAN_SYSTEM_SOCKET: &str = "/run/podman/podman.sock";
/// bollard's own default for its requests, in seconds.
const REQUEST_TIMEOUT: u64 = 120;

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
    /// The engine could not pull the image; `reason` is the registry's answer as the engine
    /// relays it.
    #[error("cannot pull image {image}: {reason}")]
    Pull { image: String, reason: String },
    /// An image pinned by digest that the engine holds without that digest, even after a pull.
    #[error("image {image} does not match its pinned digest; the engine has {found}")]
    DigestMismatch { image: String, found: String },
    #[error("image {0} is not present locally")]
    ImageMissing(String),
    #[error("container engine: {0}")]
    Api(#[from] bollard::errors::Error),
    #[error("cannot attach to the container: {0}")]
    Attach(#[from] AttachError),
    #[error("{0}")]
    Launch(#[from] LaunchError),
    #[error("image {0} names no command to run, and neither does the server")]
    NoCommand(String),
}

/// A connected engine.
pub struct Engine {
    docker: Docker,
    /// Where `docker` connects, for the attach connections made without it.
    address: Address,
    /// Set when servers' stdio goes over the daemon's sockets: the engine is local, and a static
    /// launcher was found.
    launcher: Option<Arc<Launcher>>,
    /// e.g. `Docker Engine 20.10.24 (API 1.41)`, for status output.
    pub description: String,
}

/// What to run; the pool decides, the engine only executes.
pub struct ContainerSpec {
    pub name: String,
    pub image: String,
    pub command: Vec<String>,
    /// What the container runs in all: the image's entrypoint, then `command` or else the
    /// image's own (`Image::runs`). A launcher is given it as its arguments.
    pub runs: Vec<String>,
    pub env: Vec<(String, String)>,
    pub labels: Vec<(&'static str, String)>,
    pub memory: u64,
    pub nano_cpus: u64,
    pub pids: u32,
    /// The network mode: `none`, a network's name, or `None` for the engine's default network.
    pub network: Option<String>,
    pub mounts: Vec<BindMount>,
}

/// A local image as a container start needs it: its id (the list cache is keyed by it) and what
/// it runs unless told otherwise.
pub struct Image {
    pub id: String,
    entrypoint: Vec<String>,
    cmd: Vec<String>,
}

impl Image {
    fn inspected(inspected: ImageInspect) -> Image {
        let config = inspected.config.unwrap_or_default();
        Image {
            id: inspected.id.unwrap_or_default(),
            entrypoint: config.entrypoint.unwrap_or_default(),
            cmd: config.cmd.unwrap_or_default(),
        }
    }

    /// What a container of this image runs with `command`: the entrypoint, then `command`, or
    /// the image's own when it is empty, as the engine puts them together.
    pub fn runs(&self, command: &[String]) -> Vec<String> {
        let command = if command.is_empty() {
            &self.cmd
        } else {
            command
        };
        self.entrypoint.iter().chain(command).cloned().collect()
    }
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
    pub stdin: Pin<Box<dyn AsyncWrite + Send>>,
    pub stdout: Pin<Box<dyn AsyncRead + Send>>,
}

impl Engine {
    /// Connects to `DOCKER_HOST` (or the default Docker socket) and negotiates the API version;
    /// when that fails and `DOCKER_HOST` is unset, tries Podman's socket (the user's, else the
    /// system's, where bollard's `connect_with_podman_defaults` looks). Servers' stdio goes over
    /// `launcher`'s sockets when the engine is reached over a Unix socket, which a host socket
    /// bind-mounted into a container then reaches too.
    pub async fn connect(launcher: Option<Arc<Launcher>>) -> Result<Engine, EngineError> {
        let mut engine = Self::connect_any().await?;
        if matches!(engine.address, Address::Unix(_)) {
            engine.launcher = launcher;
        }
        Ok(engine)
    }

    /// How servers' stdio reaches the daemon, in words for the log and `status`.
    pub fn stdio_road(&self) -> &'static str {
        if self.launcher.is_some() {
            "the daemon's sockets"
        } else {
            "the attach stream"
        }
    }

    async fn connect_any() -> Result<Engine, EngineError> {
        // An empty DOCKER_HOST (a unit or wrapper passing the variable through unset) means the
        // default, as it does for the docker CLI.
        let host = std::env::var("DOCKER_HOST")
            .ok()
            .filter(|host| !host.is_empty());
        if let Some(host) = host {
            let address = Address::parse(&host).ok_or_else(|| {
                EngineError::Unreachable(format!(
                    "DOCKER_HOST {host} is neither unix://PATH nor tcp://HOST:PORT"
                ))
            })?;
            return Self::try_connect(address).await;
        }
        let docker_err = match Self::try_connect(Address::Unix(DOCKER_SOCKET.into())).await {
            Ok(engine) => return Ok(engine),
            Err(err) => err,
        };
        if let Some(socket) = podman_socket()
            && let Ok(engine) = Self::try_connect(Address::Unix(socket)).await
        {
            return Ok(engine);
        }
        Err(docker_err)
    }

    async fn try_connect(address: Address) -> Result<Engine, EngineError> {
        let unreachable = |err: bollard::errors::Error| EngineError::Unreachable(err.to_string());
        let docker = match &address {
            Address::Unix(socket) => Docker::connect_with_unix(
                &socket.to_string_lossy(),
                REQUEST_TIMEOUT,
                API_DEFAULT_VERSION,
            ),
            Address::Tcp(authority) => {
                Docker::connect_with_http(authority, REQUEST_TIMEOUT, API_DEFAULT_VERSION)
            }
        };
        let docker = docker
            .map_err(unreachable)?
            .negotiate_version()
            .await
            .map_err(unreachable)?;
        let version = docker.version().await.map_err(unreachable)?;
        // Podman's platform name is the host's (`linux/amd64/debian-12`); its product name is
        // that of its first component.
        let podman = version
            .components
            .iter()
            .flatten()
            .map(|component| component.name.clone())
            .find(|name| name.starts_with("Podman"));
        let product = podman
            .or(version.platform.map(|p| p.name))
            .filter(|name| !name.is_empty())
            .unwrap_or_else(|| "container engine".into());
        let description = format!(
            "{product} {} (API {})",
            version.version.unwrap_or_default(),
            docker.client_version()
        );
        Ok(Engine {
            docker,
            address,
            launcher: None,
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
    /// output is lost. Never a TTY, which would mangle the line framing. With a launcher, the
    /// container runs the image's command through it, and its stdio is the launcher's connection
    /// unless the launcher falls back to the attach stream.
    pub async fn start(
        &self,
        spec: &ContainerSpec,
        stderr: Arc<LogTail>,
    ) -> Result<Attached, EngineError> {
        let mut body = ContainerCreateBody {
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
        let listening = match &self.launcher {
            Some(launcher) => {
                if spec.runs.is_empty() {
                    return Err(EngineError::NoCommand(spec.image.clone()));
                }
                let listening = launcher.listen()?;
                launcher.wrap(&listening, spec.runs.clone(), &mut body);
                Some(listening)
            }
            None => None,
        };
        let options = CreateContainerOptionsBuilder::default()
            .name(&spec.name)
            .build();
        let id = self.docker.create_container(Some(options), body).await?.id;
        let started = async {
            let streams = self.attach_and_start(&id, stderr).await?;
            match listening {
                Some(listening) => Ok(launcher::choose(listening, streams).await?),
                None => Ok(streams),
            }
        };
        match started.await {
            Ok((stdin, stdout)) => Ok(Attached { id, stdin, stdout }),
            Err(err) => {
                self.remove(&id).await;
                Err(err)
            }
        }
    }

    /// A local image (by name or id), [`EngineError::ImageMissing`] when it is not present.
    pub async fn image(&self, image: &str) -> Result<Image, EngineError> {
        let inspected = self
            .inspect_image(image)
            .await?
            .ok_or_else(|| EngineError::ImageMissing(image.to_owned()))?;
        Ok(Image::inspected(inspected))
    }

    async fn attach_and_start(
        &self,
        id: &str,
        stderr: Arc<LogTail>,
    ) -> Result<Streams, EngineError> {
        // The API version bollard negotiated, as its own requests carry it.
        let path = format!(
            "/v{}/containers/{id}/attach?stream=1&stdin=1&stdout=1&stderr=1",
            self.docker.client_version()
        );
        // Stderr is diverted to the server's log as it arrives; only stdout, the MCP stream,
        // reaches the reader.
        let streams = attach::attach(&self.address, &path, stderr).await?;
        self.docker.start_container(id, None).await?;
        Ok(streams)
    }

    /// `image` when the engine holds it as it should run: present, and for an image pinned by
    /// digest (`repo@sha256:…`), recorded under that digest, so a local image that merely
    /// answers to the name is not taken for it. One inspection answers that and gives what a
    /// container start needs (the id, the command).
    pub async fn ready_image(&self, image: &str) -> Result<Option<Image>, EngineError> {
        let Some(inspected) = self.inspect_image(image).await? else {
            return Ok(None);
        };
        let digests = inspected.repo_digests.as_deref().unwrap_or_default();
        Ok(pinned_digest(image)
            .is_none_or(|_| holds_digest(image, digests))
            .then(|| Image::inspected(inspected)))
    }

    /// The image's `RepoDigests`, or `None` when the engine does not have it.
    async fn repo_digests(&self, image: &str) -> Result<Option<Vec<String>>, EngineError> {
        let inspected = self.inspect_image(image).await?;
        Ok(inspected.map(|inspected| inspected.repo_digests.unwrap_or_default()))
    }

    /// The engine's description of `image`, or `None` when it does not have it.
    async fn inspect_image(&self, image: &str) -> Result<Option<ImageInspect>, EngineError> {
        match self.docker.inspect_image(image).await {
            Ok(inspected) => Ok(Some(inspected)),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(None),
            Err(err) => Err(err.into()),
        }
    }

    /// Pulls `image` (by its tag, `latest` when it names none, or by its pinned digest), handing
    /// each progress message of the engine to `progress`, then checks a pinned digest.
    pub async fn pull(
        &self,
        image: &str,
        mut progress: impl FnMut(PullEvent),
    ) -> Result<(), EngineError> {
        let (name, reference) = split_reference(image);
        let options = CreateImageOptionsBuilder::default()
            .from_image(name)
            .tag(reference)
            .build();
        let failed = |reason: String| EngineError::Pull {
            image: image.to_owned(),
            reason,
        };
        let mut stream = self.docker.create_image(Some(options), None, None);
        while let Some(item) = stream.next().await {
            let info = item.map_err(|err| failed(pull_reason(err)))?;
            let detail = info.progress_detail.unwrap_or_default();
            progress(PullEvent {
                layer: info.id,
                status: info.status.unwrap_or_default(),
                current: detail.current.and_then(|n| u64::try_from(n).ok()),
                total: detail.total.and_then(|n| u64::try_from(n).ok()),
            });
        }
        if pinned_digest(image).is_some() {
            let digests = self.repo_digests(image).await?.unwrap_or_default();
            if !holds_digest(image, &digests) {
                return Err(EngineError::DigestMismatch {
                    image: image.to_owned(),
                    found: if digests.is_empty() {
                        "no digest".to_owned()
                    } else {
                        digests.join(", ")
                    },
                });
            }
        }
        Ok(())
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

/// One progress message of a pull, as the engine sends them: per layer (`layer`), a status
/// (`Downloading`, `Pull complete`, …) and, while bytes move, how many of how many.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullEvent {
    pub layer: Option<String>,
    pub status: String,
    pub current: Option<u64>,
    pub total: Option<u64>,
}

/// Podman's API socket, the first that exists: the user's service under `$XDG_RUNTIME_DIR`,
/// under `/run/user/UID`, then the system's.
fn podman_socket() -> Option<PathBuf> {
    let user = |dir: PathBuf| dir.join("podman/podman.sock");
    let runtime = std::env::var_os("XDG_RUNTIME_DIR").map(|dir| user(dir.into()));
    let by_uid = user(format!("/run/user/{}", nix::unistd::geteuid()).into());
    [runtime, Some(by_uid), Some(PODMAN_SYSTEM_SOCKET.into())]
        .into_iter()
        .flatten()
        .find(|socket| socket.exists())
}

/// The digest an image reference is pinned to (`repo@sha256:…`), if any.
pub fn pinned_digest(image: &str) -> Option<&str> {
    image.split_once('@').map(|(_, digest)| digest)
}

/// The repository and the tag or digest to pull, as the engine's API takes them: a digest after
/// `@`, else a tag after the last `:` that follows the last `/` (a `:` before it belongs to a
/// registry's port), else `latest`.
fn split_reference(image: &str) -> (&str, &str) {
    if let Some((name, digest)) = image.split_once('@') {
        return (name, digest);
    }
    let last_part = image.rfind('/').map_or(0, |slash| slash + 1);
    match image[last_part..].rfind(':') {
        Some(colon) => (&image[..last_part + colon], &image[last_part + colon + 1..]),
        None => (image, "latest"),
    }
}

/// Whether `digests` (an image's `RepoDigests`) hold the digest `image` is pinned to, under the
/// same repository. The engine writes Docker Hub's repositories in their short form, so
/// `docker.io/` and `library/` are left out of both sides.
fn holds_digest(image: &str, digests: &[String]) -> bool {
    fn short(reference: &str) -> &str {
        let reference = reference.strip_prefix("docker.io/").unwrap_or(reference);
        reference.strip_prefix("library/").unwrap_or(reference)
    }
    digests.iter().any(|digest| short(digest) == short(image))
}

/// The registry's answer inside a failed pull, without bollard's wrapping.
fn pull_reason(err: bollard::errors::Error) -> String {
    match err {
        bollard::errors::Error::DockerStreamError { error } => error,
        bollard::errors::Error::DockerResponseServerError { message, .. } => message,
        other => other.to_string(),
    }
}

/// The restrictions that protect the host: an init process to reap zombies and forward signals,
/// no privilege escalation, no capabilities, the spec's network (`none` unless the catalog asks),
/// memory, CPU and process limits, bind mounts read-only unless marked writable, open-file and
/// process rlimits at the daemon's own hard limits, and removal by the engine itself once the
/// server exits.
fn restricted_host_config(spec: &ContainerSpec) -> HostConfig {
    let mounts = spec
        .mounts
        .iter()
        .map(|mount| bind(mount.source.clone(), mount.target.clone(), mount.writable))
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
        ulimits: Some(host_ulimits()),
        ..Default::default()
    }
}

/// The host path `source` bind-mounted at `target`, read-only unless `writable`.
fn bind(source: String, target: String, writable: bool) -> Mount {
    Mount {
        source: Some(source),
        target: Some(target),
        typ: Some(MountType::BIND),
        read_only: Some(!writable),
        ..Default::default()
    }
}

/// Podman's API service lowers its own process limit to this at start, and a container cannot
/// be given more than the service has (seen with Podman 4.3).
const PODMAN_NPROC: u64 = 32768;

/// `nofile` and `nproc` at the hard limits this process has (`nproc` no higher than Podman's).
/// Podman otherwise asks the runtime for defaults of its own (1048576 open files) that a host with
/// lower hard limits refuses at start (`error setting rlimit type 7: operation not permitted`);
/// Docker would apply its daemon's limits, and a user's server has no claim to more than the user
/// has. Processes are bounded by the pids limit anyway; `nproc` only has to be allowed.
fn host_ulimits() -> Vec<ResourcesUlimits> {
    use nix::sys::resource::{Resource, getrlimit};
    [
        ("nofile", Resource::RLIMIT_NOFILE, u64::MAX),
        ("nproc", Resource::RLIMIT_NPROC, PODMAN_NPROC),
    ]
    .into_iter()
    .filter_map(|(name, resource, ceiling)| {
        let (_, hard) = getrlimit(resource).ok()?;
        // Unlimited (RLIM_INFINITY) is -1 to the engine.
        let limit = i64::try_from(hard.min(ceiling)).unwrap_or(-1);
        Some(ResourcesUlimits {
            name: Some(name.to_owned()),
            soft: Some(limit),
            hard: Some(limit),
        })
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_split_into_repository_and_tag_or_digest() {
        assert_eq!(split_reference("alpine"), ("alpine", "latest"));
        assert_eq!(split_reference("alpine:3.20"), ("alpine", "3.20"));
        assert_eq!(
            split_reference("127.0.0.1:5000/team/fixture"),
            ("127.0.0.1:5000/team/fixture", "latest")
        );
        assert_eq!(
            split_reference("127.0.0.1:5000/fixture:v2"),
            ("127.0.0.1:5000/fixture", "v2")
        );
        assert_eq!(
            split_reference("127.0.0.1:5000/fixture@sha256:abc"),
            ("127.0.0.1:5000/fixture", "sha256:abc")
        );
        assert_eq!(pinned_digest("fixture@sha256:abc"), Some("sha256:abc"));
        assert_eq!(pinned_digest("127.0.0.1:5000/fixture:v2"), None);
    }

    #[test]
    fn a_container_runs_the_entrypoint_then_the_servers_command_or_the_images() {
        let words = |text: &str| {
            text.split_whitespace()
                .map(String::from)
                .collect::<Vec<_>>()
        };
        let image = Image {
            id: "sha256:1".into(),
            entrypoint: words("/bin/server --stdio"),
            cmd: words("--default"),
        };
        assert_eq!(image.runs(&[]), words("/bin/server --stdio --default"));
        assert_eq!(
            image.runs(&words("--mine")),
            words("/bin/server --stdio --mine")
        );
        let bare = Image {
            entrypoint: Vec::new(),
            ..image
        };
        assert_eq!(bare.runs(&[]), words("--default"));
    }

    #[test]
    fn a_pinned_digest_must_be_recorded_for_the_same_repository() {
        let digests = vec![
            "alpine@sha256:aaa".to_owned(),
            "10.0.0.1:5000/x@sha256:bbb".to_owned(),
        ];
        assert!(holds_digest("alpine@sha256:aaa", &digests));
        assert!(holds_digest(
            "docker.io/library/alpine@sha256:aaa",
            &digests
        ));
        assert!(holds_digest("10.0.0.1:5000/x@sha256:bbb", &digests));
        assert!(!holds_digest("alpine@sha256:bbb", &digests));
        assert!(!holds_digest("10.0.0.1:5000/y@sha256:bbb", &digests));
        assert!(!holds_digest("alpine@sha256:aaa", &[]));
    }
}
