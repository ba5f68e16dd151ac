//! The container pool: one running server per (profile, server), started on first need and shared
//! by every session of that profile.
//!
//! The pool owns the engine connection, which it (re)establishes lazily: the daemon must start and
//! answer `status` while the engine is down, and pick the engine up once it appears.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::config::{Secrets, ServerDef};
use crate::docker::{self, ContainerSpec, Engine, EngineError};
use crate::logtail::LogTail;
use crate::upstream::{ServerEvent, Upstream, UpstreamError};

#[derive(Debug, Clone, thiserror::Error)]
pub enum PoolError {
    #[error("{0}")]
    Engine(String),
    #[error("cannot start server {server:?}: {reason}")]
    Start { server: String, reason: String },
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
}

impl From<EngineError> for PoolError {
    fn from(err: EngineError) -> PoolError {
        PoolError::Engine(err.to_string())
    }
}

pub struct PoolSettings {
    /// Which daemon's containers these are (its socket path); see `docker::LABEL_SCOPE`.
    pub scope: String,
    pub start_timeout: Duration,
    pub max_line: usize,
    /// Where the secrets a server declares are looked up, each time its container starts.
    pub secrets: Arc<Secrets>,
}

pub struct Pool {
    settings: PoolSettings,
    /// Identifies this daemon's containers among leftovers of earlier runs.
    instance: String,
    uid: u32,
    engine: tokio::sync::Mutex<Option<Arc<Engine>>>,
    slots: Mutex<HashMap<(String, String), Arc<Slot>>>,
    seq: std::sync::atomic::AtomicU64,
    /// Where every server's unprompted messages go (the gateway).
    events: tokio::sync::mpsc::Sender<ServerEvent>,
}

/// One (profile, server) place in the pool. The async mutex makes concurrent first callers wait
/// for the one start in progress instead of starting a container each.
#[derive(Default)]
struct Slot {
    running: tokio::sync::Mutex<Option<Running>>,
}

struct Running {
    upstream: Arc<Upstream>,
    container: String,
    def: ServerDef,
}

impl Pool {
    pub fn new(settings: PoolSettings, events: tokio::sync::mpsc::Sender<ServerEvent>) -> Pool {
        Pool {
            events,
            settings,
            instance: instance_id(),
            uid: nix::unistd::geteuid().as_raw(),
            engine: tokio::sync::Mutex::new(None),
            slots: Mutex::default(),
            seq: Default::default(),
        }
    }

    /// The engine, connecting if there is no live connection.
    pub async fn engine(&self) -> Result<Arc<Engine>, EngineError> {
        let mut engine = self.engine.lock().await;
        if let Some(engine) = engine.as_ref() {
            return Ok(Arc::clone(engine));
        }
        let connected = Arc::new(Engine::connect().await?);
        tracing::info!("connected to {}", connected.description);
        *engine = Some(Arc::clone(&connected));
        Ok(connected)
    }

    /// Engine health for `status`: the description, or why it is unreachable.
    pub async fn engine_status(&self) -> Result<String, String> {
        let engine = self.engine().await.map_err(|err| err.to_string())?;
        match tokio::time::timeout(Duration::from_secs(3), engine.ping()).await {
            Ok(Ok(())) => Ok(engine.description.clone()),
            Ok(Err(err)) => {
                *self.engine.lock().await = None;
                Err(err.to_string())
            }
            Err(_) => Err("container engine did not answer a ping within 3 s".into()),
        }
    }

    /// Removes containers that earlier daemon runs left behind (after a crash or SIGKILL): their
    /// MCP sessions cannot be resumed, so adopting them would only hand out a stale handshake.
    pub async fn reconcile(&self) -> Result<usize, EngineError> {
        let engine = self.engine().await?;
        let leftovers = engine
            .list_leftovers(self.uid, &self.settings.scope, &self.instance)
            .await?;
        futures_util::future::join_all(leftovers.iter().map(|id| engine.remove(id))).await;
        Ok(leftovers.len())
    }

    /// The running server for (profile, server), started if needed.
    pub async fn get(
        &self,
        profile: &str,
        server: &str,
        def: &ServerDef,
    ) -> Result<Arc<Upstream>, PoolError> {
        let slot = {
            let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
            Arc::clone(
                slots
                    .entry((profile.to_owned(), server.to_owned()))
                    .or_default(),
            )
        };
        let mut running = slot.running.lock().await;
        if let Some(current) = running.as_ref()
            && !current.upstream.is_closed()
            && current.def == *def
        {
            return Ok(Arc::clone(&current.upstream));
        }
        if let Some(stale) = running.take() {
            self.stop(stale).await;
        }
        let started = self.start(profile, server, def).await?;
        let upstream = Arc::clone(&started.upstream);
        *running = Some(started);
        Ok(upstream)
    }

    async fn start(
        &self,
        profile: &str,
        server: &str,
        def: &ServerDef,
    ) -> Result<Running, PoolError> {
        let engine = self.engine().await?;
        // Secrets reach the container's environment and nothing else: not its command, labels or
        // name, and not this error, which names only the secret.
        let secrets =
            self.settings
                .secrets
                .resolve(&def.secrets)
                .map_err(|err| PoolError::Start {
                    server: server.to_owned(),
                    reason: err.to_string(),
                })?;
        let seq = self.seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let spec = ContainerSpec {
            name: format!("mcp-gw-{profile}-{server}-{}-{seq}", self.instance),
            image: def.image.clone(),
            command: def.command.clone(),
            env: def
                .env
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .chain(secrets)
                .collect(),
            labels: vec![
                (docker::LABEL_MANAGED, "true".into()),
                (docker::LABEL_UID, self.uid.to_string()),
                (docker::LABEL_SCOPE, self.settings.scope.clone()),
                (docker::LABEL_INSTANCE, self.instance.clone()),
                (docker::LABEL_PROFILE, profile.to_owned()),
                (docker::LABEL_SERVER, server.to_owned()),
            ],
        };
        let stderr = Arc::new(LogTail::new(server));
        let attached = engine
            .start(&spec, Arc::clone(&stderr))
            .await
            .map_err(|err| PoolError::Start {
                server: server.to_owned(),
                reason: err.to_string(),
            })?;
        tracing::info!(profile, server, container = %attached.id, "started {}", def.image);
        let upstream = Upstream::spawn(
            server,
            profile,
            (attached.stdin, attached.stdout),
            stderr,
            self.settings.max_line,
            self.events.clone(),
        );
        let running = Running {
            upstream,
            container: attached.id,
            def: def.clone(),
        };
        if let Err(err) = running
            .upstream
            .handshake(self.settings.start_timeout)
            .await
        {
            self.stop(running).await;
            return Err(err.into());
        }
        if let Some(era) = running.upstream.era() {
            tracing::info!(profile, server, "speaks {}", era.name());
        }
        Ok(running)
    }

    async fn stop(&self, running: Running) {
        if let Some(engine) = self.engine.lock().await.clone() {
            engine.remove(&running.container).await;
        }
    }

    /// (profile, server) pairs with a live container, for `status` and `server ls`.
    pub fn running(&self) -> Vec<(String, String)> {
        let mut live: Vec<_> = self.live().into_iter().map(|(key, _)| key).collect();
        live.sort();
        live
    }

    /// The live connections of a profile's servers; servers starting right now are left out.
    pub fn running_upstreams(&self, profile: &str) -> Vec<Arc<Upstream>> {
        self.live()
            .into_iter()
            .filter(|((p, _), _)| p == profile)
            .map(|(_, upstream)| upstream)
            .collect()
    }

    fn live(&self) -> Vec<((String, String), Arc<Upstream>)> {
        let slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots
            .iter()
            .filter_map(|(key, slot)| {
                let running = slot.running.try_lock().ok()?;
                let upstream = &running.as_ref()?.upstream;
                (!upstream.is_closed()).then(|| (key.clone(), Arc::clone(upstream)))
            })
            .collect()
    }

    /// Removes every container this daemon started.
    pub async fn shutdown(&self) {
        let slots: Vec<_> = {
            let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
            slots.drain().map(|(_, slot)| slot).collect()
        };
        let stops = slots.into_iter().map(|slot| async move {
            if let Some(running) = slot.running.lock().await.take() {
                self.stop(running).await;
            }
        });
        futures_util::future::join_all(stops).await;
    }
}

/// A short random id for this daemon run, from the kernel's random source.
fn instance_id() -> String {
    use std::io::Read;
    let mut bytes = [0u8; 4];
    let read = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    if read.is_err() {
        // Without /dev/urandom the pid still separates concurrent daemons.
        bytes = std::process::id().to_be_bytes();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
