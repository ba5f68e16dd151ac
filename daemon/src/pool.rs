//! The container pool: one running server per (profile, server), started on first need, shared
//! by every session of that profile, and removed after its idle timeout. A server runs as a
//! container, or (`kind = "process"`, `process`) as a local process behind the same slots. A
//! server with `isolation = "session"` has one per (profile, server, session) for the requests
//! of client sessions instead, removed when the session ends; one with `isolation = "call"` one
//! per request that names an item (`call`).
//!
//! The pool owns the engine connection, which it (re)establishes lazily: the daemon must start and
//! answer `status` while the engine is down, and pick the engine up once it appears.
//!
//! A server that exits while the pool holds it, or fails to start, is started again on the next
//! need, but only after a backoff (`backoff`); until then requests fail at once with the reason
//! and the server's last stderr lines. Each slot keeps what `mcpctl server ls` shows: its state,
//! uptime, last use and last failure.

mod backoff;
mod call;
mod process;
mod pulls;
mod remote;

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use backoff::Backoff;
pub use call::CallServer;
pub use pulls::{Progress, PullState};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{Config, ConfigStore, Isolation, Network, RunSettings, ServerDef, ServerKind};
use crate::docker::{self, BindMount, ContainerSpec, Engine, EngineError, Launcher};
use crate::logtail::LogTail;
use crate::upstream::{Era, EventQueues, Upstream, UpstreamError};

/// How many stderr lines a failure report carries.
const STDERR_LINES: usize = 5;

#[derive(Debug, Clone, thiserror::Error)]
pub enum PoolError {
    #[error("{0}")]
    Engine(String),
    #[error("cannot start server {server:?}: {reason}")]
    Start { server: String, reason: String },
    #[error(
        "server {server:?} failed and will be started again in {:.1} s: {reason}",
        retry_in.as_secs_f64()
    )]
    Backoff {
        server: String,
        retry_in: Duration,
        reason: String,
    },
    #[error("mcp-gateway is shutting down")]
    ShuttingDown,
    #[error("the client session has ended")]
    SessionEnded,
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
    /// The defaults of `config.toml`, and the secrets a server declares, looked up each time its
    /// container starts.
    pub config: Arc<ConfigStore>,
    /// Puts servers' stdio on the daemon's sockets, on a local engine.
    pub launcher: Option<Arc<Launcher>>,
}

pub struct Pool {
    settings: PoolSettings,
    /// Identifies this daemon's containers among leftovers of earlier runs.
    instance: String,
    uid: u32,
    engine: tokio::sync::Mutex<Option<Arc<Engine>>>,
    slots: Mutex<Slots>,
    /// The client sessions open now: only they may have a container of their own. Taken after
    /// `slots` when both are needed.
    sessions: Mutex<HashSet<u64>>,
    seq: std::sync::atomic::AtomicU64,
    /// Where every server's unprompted messages go (the gateway).
    events: EventQueues,
    /// Wakes the idle reaper when a container starts, so it learns the new deadline.
    started: Arc<tokio::sync::Notify>,
    /// Image ids by the name a definition gives (`image_id`).
    images: Mutex<HashMap<String, String>>,
    /// Set by `shutdown`: a background start (warming) that comes later must not start a
    /// container nobody will remove, and the per-call servers' tasks remove theirs.
    closing: CancellationToken,
    /// The servers started for one call each (`call`), each a task that removes its own.
    calls: TaskTracker,
    pulls: pulls::Pulls,
    /// The thread process servers are forked from.
    spawner: process::Spawner,
}

/// A place in the pool: (profile, server, the session owning it for a session-isolated server).
type SlotKey = (String, String, Option<u64>);

/// The pool's places. Every call finds its slot here, so the map hashes with foldhash and is
/// searched with a [`SlotRef`], which borrows the call's names instead of copying them.
type Slots = hashbrown::HashMap<SlotKey, Arc<Slot>>;

/// A [`SlotKey`] borrowed: it hashes as the key does (a `str` as its `String`, field by field).
#[derive(Hash)]
struct SlotRef<'a>(&'a str, &'a str, Option<u64>);

impl hashbrown::Equivalent<SlotKey> for SlotRef<'_> {
    fn equivalent(&self, key: &SlotKey) -> bool {
        self.0 == key.0 && self.1 == key.1 && self.2 == key.2
    }
}

/// One (profile, server[, session]) place in the pool. The async mutex makes concurrent first callers wait
/// for the one start in progress instead of starting a container each; `state` is what can be
/// read without waiting for a start.
struct Slot {
    server: String,
    running: tokio::sync::Mutex<Option<Running>>,
    state: Mutex<SlotState>,
}

#[derive(Default)]
struct SlotState {
    starting: bool,
    /// The container running now, and since when.
    container: Option<(String, Instant)>,
    /// The run (container sequence number) whose exit is still to be recorded; cleared when the
    /// pool removes the container itself, so a deliberate stop is not taken for a crash.
    watching: Option<u64>,
    last_used: Option<Instant>,
    /// The protocol era the last started container speaks.
    era: Option<Era>,
    backoff: Backoff,
    restarts: u32,
    failure: Option<Failure>,
    /// What the last start used; a changed definition lifts the backoff, since the user may
    /// have fixed what made the server fail.
    tried: Option<(ServerDef, RunSettings)>,
    /// The stderr of the last container, kept after it is gone for `mcpctl server logs`.
    stderr: Option<Arc<LogTail>>,
}

struct Failure {
    cause: Cause,
    /// No start before this; `None` for failures a retry may fix at once (engine, secrets).
    retry_at: Option<Instant>,
}

enum Cause {
    Exited {
        seq: u64,
        status: Option<i64>,
        stderr: Vec<String>,
    },
    Start(String),
}

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Cause::Exited { status, stderr, .. } => {
                f.write_str("the server exited")?;
                if let Some(status) = status {
                    write!(f, " with status {status}")?;
                }
                if !stderr.is_empty() {
                    write!(f, "; its last output: {}", stderr.join(" | "))?;
                }
                Ok(())
            }
            Cause::Start(reason) => f.write_str(reason),
        }
    }
}

struct Running {
    upstream: Arc<Upstream>,
    /// What `server ls` shows for it: the container id, `pid N` for a process, the origin for
    /// a remote server.
    container: String,
    instance: Instance,
    seq: u64,
    def: ServerDef,
    run: RunSettings,
    /// The configuration snapshot it was last found current against. A snapshot never changes,
    /// so against the same one (the same address: the `Weak` keeps it from being reused) the
    /// comparison of `def` and `run` would find the same.
    checked: Weak<Config>,
    stderr: Arc<LogTail>,
    /// References to `upstream` while no request uses it (the pool's and the connection's own
    /// tasks'); more means a request is in progress, so the container is not idle.
    idle_refs: usize,
}

/// What runs a server, for stopping it.
enum Instance {
    Container(String),
    Process(process::Process),
    /// The HTTP connection of a remote server, closed rather than removed.
    Remote(remote::Remote),
}

/// A server's transport as its kind's start gives it, before the handshake.
struct Started {
    id: String,
    instance: Instance,
    stdin: Pin<Box<dyn AsyncWrite + Send>>,
    stdout: Pin<Box<dyn AsyncRead + Send>>,
    /// Resolves with the exit status when the server has stopped.
    exit: Pin<Box<dyn Future<Output = Option<i64>> + Send>>,
}

/// The catalog's definition of `server` in `config`.
pub fn definition<'a>(config: &'a Config, server: &str) -> Result<&'a ServerDef, PoolError> {
    config
        .catalog
        .servers
        .get(server)
        .ok_or_else(|| PoolError::Start {
            server: server.to_owned(),
            reason: "it is not in the catalog".into(),
        })
}

impl Running {
    /// Whether this container is alive and runs what the slot should run now.
    fn is_current(&self, def: &ServerDef, run: &RunSettings) -> bool {
        !self.upstream.is_closed() && self.def == *def && self.run == *run
    }
}

/// A (profile, server) slot as `mcpctl server ls` shows it.
pub struct SlotStatus {
    pub profile: String,
    pub server: String,
    /// The session whose own container this is.
    pub session: Option<u64>,
    pub state: SlotPhase,
    pub container: Option<String>,
    pub uptime: Option<Duration>,
    pub last_used: Option<Duration>,
    pub restarts: u32,
    pub last_error: Option<String>,
    pub retry_in: Option<Duration>,
    pub era: Option<Era>,
    /// The running connection's episodes of throttling and whether it is paused now
    /// ([`Upstream::throttled`]); none while the slot is being started or stopped.
    pub throttled: (u32, bool),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotPhase {
    Starting,
    Running,
    Backoff,
    Stopped,
}

impl Slot {
    fn new(server: &str) -> Slot {
        Slot {
            server: server.to_owned(),
            running: tokio::sync::Mutex::new(None),
            state: Mutex::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, SlotState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records that run `seq` ended on its own: the first report counts the failure, a later one
    /// only adds the exit status the first did not know.
    fn exited(&self, seq: u64, status: Option<i64>, stderr: &LogTail) {
        let mut state = self.lock();
        if state.watching != Some(seq) {
            if let Some(Failure {
                cause:
                    Cause::Exited {
                        seq: failed,
                        status: known @ None,
                        ..
                    },
                ..
            }) = &mut state.failure
                && *failed == seq
            {
                *known = status;
            }
            return;
        }
        let now = Instant::now();
        let ran_for = state
            .container
            .take()
            .map_or(Duration::ZERO, |(_, since)| now - since);
        let delay = state.backoff.failed(ran_for);
        state.watching = None;
        state.failure = Some(Failure {
            cause: Cause::Exited {
                seq,
                status,
                stderr: stderr.last(STDERR_LINES),
            },
            retry_at: Some(now + delay),
        });
        tracing::warn!(
            server = %self.server,
            "{}; next start in {} s at the earliest",
            state.failure.as_ref().map(|f| f.cause.to_string()).unwrap_or_default(),
            delay.as_secs()
        );
    }

    /// Forgets run `seq` without counting its end as a failure: the pool stopped it, or a remote
    /// session expired.
    fn released(&self, seq: u64) {
        let mut state = self.lock();
        if state.watching == Some(seq) {
            state.watching = None;
            state.container = None;
        }
    }

    /// Refuses a start while the backoff lasts. A definition other than the one that failed
    /// starts at once.
    fn check_backoff(&self, def: &ServerDef, run: &RunSettings) -> Result<(), PoolError> {
        let mut state = self.lock();
        if state
            .tried
            .as_ref()
            .is_some_and(|(d, r)| d != def || r != run)
        {
            state.backoff = Backoff::default();
            if let Some(failure) = &mut state.failure {
                failure.retry_at = None;
            }
        }
        let now = Instant::now();
        match &state.failure {
            Some(Failure {
                cause,
                retry_at: Some(at),
            }) if *at > now => Err(PoolError::Backoff {
                server: self.server.clone(),
                retry_in: *at - now,
                reason: cause.to_string(),
            }),
            _ => Ok(()),
        }
    }
}

impl Pool {
    pub fn new(settings: PoolSettings, events: EventQueues) -> Pool {
        Pool {
            events,
            settings,
            instance: instance_id(),
            uid: nix::unistd::geteuid().as_raw(),
            engine: tokio::sync::Mutex::new(None),
            slots: Mutex::default(),
            sessions: Mutex::default(),
            seq: Default::default(),
            started: Arc::default(),
            images: Mutex::default(),
            closing: CancellationToken::new(),
            calls: TaskTracker::new(),
            pulls: pulls::Pulls::default(),
            spawner: process::Spawner::default(),
        }
    }

    /// The engine, connecting if there is no live connection.
    pub async fn engine(&self) -> Result<Arc<Engine>, EngineError> {
        let mut engine = self.engine.lock().await;
        if let Some(engine) = engine.as_ref() {
            return Ok(Arc::clone(engine));
        }
        let connected = Arc::new(Engine::connect(self.settings.launcher.clone()).await?);
        tracing::info!(
            "connected to {}; servers' stdio over {}",
            connected.description,
            connected.stdio_road()
        );
        *engine = Some(Arc::clone(&connected));
        Ok(connected)
    }

    /// Engine health for `status`: the description and the road servers' stdio takes, or why
    /// it is unreachable.
    pub async fn engine_status(&self) -> Result<String, String> {
        let engine = self.engine().await.map_err(|err| err.to_string())?;
        match tokio::time::timeout(Duration::from_secs(3), engine.ping()).await {
            Ok(Ok(())) => Ok(format!(
                "{}; servers' stdio over {}",
                engine.description,
                engine.stdio_road()
            )),
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

    fn lock_slots(&self) -> MutexGuard<'_, Slots> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_sessions(&self) -> MutexGuard<'_, HashSet<u64>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The slot for `key`; a session's own slot only while the session is open, checked under
    /// the same lock `end_session` takes, so no container starts for a session that has ended.
    fn slot(&self, key: SlotRef<'_>) -> Result<Arc<Slot>, PoolError> {
        let mut slots = self.lock_slots();
        if let Some(session) = key.2
            && !self.lock_sessions().contains(&session)
        {
            return Err(PoolError::SessionEnded);
        }
        if let Some(slot) = slots.get(&key) {
            return Ok(Arc::clone(slot));
        }
        let slot = Arc::new(Slot::new(key.1));
        let owned = (key.0.to_owned(), key.1.to_owned(), key.2);
        slots.insert(owned, Arc::clone(&slot));
        Ok(slot)
    }

    /// A client session opened: from now on it may have containers of its own.
    pub fn open_session(&self, session: u64) {
        self.lock_sessions().insert(session);
    }

    /// A client session ended: its own containers are removed (a start in progress is waited
    /// for, then removed). Returns how many containers were removed.
    pub async fn end_session(&self, session: u64) -> usize {
        let ended: Vec<_> = {
            let mut slots = self.lock_slots();
            self.lock_sessions().remove(&session);
            let keys: Vec<_> = slots
                .keys()
                .filter(|key| key.2 == Some(session))
                .cloned()
                .collect();
            keys.iter().filter_map(|key| slots.remove(key)).collect()
        };
        let mut removed = 0;
        for slot in ended {
            if let Some(running) = slot.running.lock().await.take() {
                tracing::info!(session, server = %slot.server, "removing the session's container");
                self.stop(&slot, running).await;
                removed += 1;
            }
        }
        removed
    }

    /// The running server for (profile, server), started if needed; for a session-isolated
    /// server and a request of a client session, that session's own. `config` is the snapshot
    /// the caller routes by. Every request to a server comes through here, which is what marks
    /// the container as used.
    pub async fn get(
        &self,
        profile: &str,
        server: &str,
        session: Option<u64>,
        config: &Arc<Config>,
    ) -> Result<Arc<Upstream>, PoolError> {
        let def = definition(config, server)?;
        // A per-call server's gateway requests (listings) use the profile's listing server too.
        let session = session.filter(|_| def.isolation == Isolation::Session);
        let slot = self.slot(SlotRef(profile, server, session))?;
        slot.lock().last_used = Some(Instant::now());
        let mut running = slot.running.lock().await;
        if let Some(current) = running.as_ref()
            && std::ptr::eq(current.checked.as_ptr(), Arc::as_ptr(config))
            && !current.upstream.is_closed()
        {
            return Ok(Arc::clone(&current.upstream));
        }
        let (def, run) = Pool::resolve_in(config, profile, server, def);
        if let Some(current) = running.as_mut()
            && current.is_current(&def, &run)
        {
            current.checked = Arc::downgrade(config);
            return Ok(Arc::clone(&current.upstream));
        }
        // Boxed, so that the future of every warm call through here is not the size of a
        // container start (about 5 KB, copied each time the call's future moves).
        Box::pin(self.replace(&slot, &mut running, (profile, server, session), &def, run)).await
    }

    /// Starts (profile, server)'s container in place of the one `running` holds, if any.
    async fn replace(
        &self,
        slot: &Arc<Slot>,
        running: &mut Option<Running>,
        key: (&str, &str, Option<u64>),
        def: &ServerDef,
        run: RunSettings,
    ) -> Result<Arc<Upstream>, PoolError> {
        if let Some(stale) = running.take() {
            if stale.upstream.is_closed() {
                // The watcher may not have heard from the engine yet; the exit counts now.
                slot.exited(stale.seq, None, &stale.stderr);
            }
            self.stop(slot, stale).await;
        }
        slot.check_backoff(def, &run)?;
        if self.closing.is_cancelled() {
            return Err(PoolError::ShuttingDown);
        }
        let started = self.start(slot, key, def, run).await?;
        let upstream = Arc::clone(&started.upstream);
        *running = Some(started);
        self.started.notify_one();
        Ok(upstream)
    }

    /// What (profile, server)'s container runs with: the definition with the profile's values
    /// for the server in its environment, and the limits resolved against the defaults. The
    /// values are part of it, so a change to them starts a new container like a change to the
    /// definition does.
    pub fn resolve<'a>(
        &self,
        profile: &str,
        server: &str,
        def: &'a ServerDef,
    ) -> (Cow<'a, ServerDef>, RunSettings) {
        Pool::resolve_in(&self.settings.config.get(), profile, server, def)
    }

    /// [`Pool::resolve`] against the configuration snapshot `config`.
    fn resolve_in<'a>(
        config: &Config,
        profile: &str,
        server: &str,
        def: &'a ServerDef,
    ) -> (Cow<'a, ServerDef>, RunSettings) {
        let run = config.settings.defaults.resolve(def);
        let values = config.server_values(profile, server);
        if values.is_empty() {
            return (Cow::Borrowed(def), run);
        }
        let mut merged = def.clone();
        merged.env.extend(values);
        (Cow::Owned(merged), run)
    }

    /// The shared running server for (profile, server) if it is up and current, without starting or
    /// waiting for one; it counts as a use.
    pub fn current(&self, profile: &str, server: &str, def: &ServerDef) -> Option<Arc<Upstream>> {
        let slot = self
            .lock_slots()
            .get(&SlotRef(profile, server, None))
            .cloned()?;
        let (def, run) = self.resolve(profile, server, def);
        let running = slot.running.try_lock().ok()?;
        let current = running.as_ref().filter(|r| r.is_current(&def, &run))?;
        slot.lock().last_used = Some(Instant::now());
        Some(Arc::clone(&current.upstream))
    }

    /// Whether (profile, server) has a shared container up, current or not, busy or not.
    pub fn has_container(&self, profile: &str, server: &str) -> bool {
        self.lock_slots()
            .get(&SlotRef(profile, server, None))
            .is_some_and(|slot| slot.lock().container.is_some())
    }

    /// The id of `image`, asked of the engine once per daemon run and again whenever a container
    /// of it starts, so that looking it up costs no engine round trip per listing.
    pub async fn image_id(&self, image: &str) -> Result<String, PoolError> {
        if let Some(id) = self.lock_images().get(image) {
            return Ok(id.clone());
        }
        let id = self.engine().await?.image(image).await?.id;
        self.lock_images().insert(image.to_owned(), id.clone());
        Ok(id)
    }

    /// What a server's list-cache entry is keyed on besides its definition: its image's id, for
    /// a process server its program file's identity (`process::identity`), and nothing for a
    /// remote one, which its definition alone names (its URL and header templates, never the
    /// secrets filled into them).
    pub async fn runs(&self, def: &ServerDef) -> Result<String, PoolError> {
        match def.kind {
            ServerKind::Container => self.image_id(&def.image).await,
            ServerKind::Process => process::identity(def).map_err(|reason| PoolError::Start {
                server: def.command.first().cloned().unwrap_or_default(),
                reason,
            }),
            ServerKind::Remote => Ok(String::new()),
        }
    }

    fn lock_images(&self) -> MutexGuard<'_, HashMap<String, String>> {
        self.images.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts a container and records the outcome in the slot.
    async fn start(
        &self,
        slot: &Arc<Slot>,
        key: (&str, &str, Option<u64>),
        def: &ServerDef,
        run: RunSettings,
    ) -> Result<Running, PoolError> {
        {
            let mut state = slot.lock();
            state.starting = true;
            state.tried = Some((def.clone(), run.clone()));
        }
        let result = self.launch(slot, key, def, run).await;
        let mut state = slot.lock();
        state.starting = false;
        match &result {
            Ok(running) => {
                if state.backoff.after_failure() {
                    state.restarts += 1;
                }
                state.container = Some((running.container.clone(), Instant::now()));
                state.watching = Some(running.seq);
                state.era = running.upstream.era();
            }
            Err(err) => {
                // A server that fails its handshake would fail the same way at once; engine and
                // secret problems cost nothing to retry and may be fixed any moment.
                let retry_at = matches!(err, PoolError::Upstream(_))
                    .then(|| Instant::now() + state.backoff.failed(Duration::ZERO));
                state.failure = Some(Failure {
                    cause: Cause::Start(err.to_string()),
                    retry_at,
                });
            }
        }
        result
    }

    async fn launch(
        &self,
        slot: &Arc<Slot>,
        (profile, server, session): (&str, &str, Option<u64>),
        def: &ServerDef,
        run: RunSettings,
    ) -> Result<Running, PoolError> {
        let start_error = |reason: String| PoolError::Start {
            server: server.to_owned(),
            reason,
        };
        // Secrets reach the server's environment and nothing else: not its command, labels or
        // name, and not this error, which names only the secret.
        let secrets = self
            .settings
            .config
            .secrets
            .resolve(&def.secrets)
            .map_err(|err| start_error(err.to_string()))?;
        let stderr = Arc::new(LogTail::new(server));
        let seq = self.seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let started = match def.kind {
            ServerKind::Container => {
                self.start_container(
                    slot,
                    (profile, server, session),
                    seq,
                    def,
                    &run,
                    secrets,
                    &stderr,
                )
                .await?
            }
            ServerKind::Process => self
                .start_process(slot, server, def, secrets, &stderr)
                .await
                .map_err(start_error)?,
            ServerKind::Remote => {
                let key = (profile, server, session);
                return self
                    .launch_remote(slot, key, seq, def, run, &secrets, stderr)
                    .await;
            }
        };
        let upstream = Upstream::spawn(
            server,
            (profile, session),
            (started.stdin, started.stdout),
            Arc::clone(&stderr),
            self.settings.max_line,
            self.events.open(),
        );
        if let Err(err) = upstream.handshake(self.settings.start_timeout).await {
            self.remove(&started.instance, &upstream).await;
            return Err(err.into());
        }
        if let Some(era) = upstream.era() {
            tracing::info!(profile, server, "speaks {}", era.name());
        }
        tokio::spawn(watch(
            Arc::clone(slot),
            started.exit,
            seq,
            Arc::downgrade(&upstream),
            Arc::clone(&stderr),
        ));
        Ok(Running {
            idle_refs: Arc::strong_count(&upstream),
            upstream,
            container: started.id,
            instance: started.instance,
            seq,
            def: def.clone(),
            run,
            checked: Weak::new(),
            stderr,
        })
    }

    /// Pulls the image if needed, then creates, attaches and starts the container.
    #[allow(clippy::too_many_arguments)]
    async fn start_container(
        &self,
        slot: &Slot,
        (profile, server, session): (&str, &str, Option<u64>),
        seq: u64,
        def: &ServerDef,
        run: &RunSettings,
        secrets: Vec<(String, String)>,
        stderr: &Arc<LogTail>,
    ) -> Result<Started, PoolError> {
        let engine = self.engine().await?;
        // A missing image is pulled on first need; a pinned digest is checked even when present.
        let image = self
            .pulls
            .ensure(&engine, &def.image)
            .await
            .map_err(|reason| PoolError::Start {
                server: server.to_owned(),
                reason,
            })?;
        let mut labels = vec![
            (docker::LABEL_MANAGED, "true".into()),
            (docker::LABEL_UID, self.uid.to_string()),
            (docker::LABEL_SCOPE, self.settings.scope.clone()),
            (docker::LABEL_INSTANCE, self.instance.clone()),
            (docker::LABEL_PROFILE, profile.to_owned()),
            (docker::LABEL_SERVER, server.to_owned()),
        ];
        if let Some(session) = session {
            labels.push((docker::LABEL_SESSION, session.to_string()));
        }
        let spec = ContainerSpec {
            name: format!("mcp-gw-{profile}-{server}-{}-{seq}", self.instance),
            image: def.image.clone(),
            command: def.command.clone(),
            runs: image.runs(&def.command),
            env: def
                .env
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .chain(secrets)
                .collect(),
            labels,
            memory: run.memory,
            nano_cpus: run.nano_cpus,
            pids: run.pids,
            network: match &run.network {
                Network::None => Some("none".into()),
                Network::Default => None,
                Network::Named(name) => Some(name.clone()),
            },
            mounts: run
                .mounts
                .iter()
                .map(|mount| BindMount {
                    source: mount.source().display().to_string(),
                    target: mount.target().display().to_string(),
                    writable: mount.writable(),
                })
                .collect(),
        };
        slot.lock().stderr = Some(Arc::clone(stderr));
        let attached = engine
            .start(&spec, Arc::clone(stderr))
            .await
            .map_err(|err| PoolError::Start {
                server: server.to_owned(),
                reason: err.to_string(),
            })?;
        tracing::info!(profile, server, session, container = %attached.id, "started {}", def.image);
        self.lock_images().insert(def.image.clone(), image.id);
        let id = attached.id.clone();
        Ok(Started {
            id: attached.id.clone(),
            instance: Instance::Container(attached.id),
            stdin: attached.stdin,
            stdout: attached.stdout,
            exit: Box::pin(async move { engine.wait(&id).await }),
        })
    }

    /// Runs a process server, if `config.toml` lets process servers run at all.
    async fn start_process(
        &self,
        slot: &Slot,
        server: &str,
        def: &ServerDef,
        secrets: Vec<(String, String)>,
        stderr: &Arc<LogTail>,
    ) -> Result<Started, String> {
        if !self.settings.config.get().settings.process.enabled {
            return Err(format!(
                "process servers are off: set enabled = true in the [process] table of {}",
                self.settings.config.settings_path().display()
            ));
        }
        slot.lock().stderr = Some(Arc::clone(stderr));
        let spawned = process::spawn(&self.spawner, def, secrets, Arc::clone(stderr)).await?;
        tracing::info!(server, pid = spawned.pid, "started {}", def.command[0]);
        let exit = spawned.process.exited();
        Ok(Started {
            id: format!("pid {}", spawned.pid),
            instance: Instance::Process(spawned.process),
            stdin: Box::pin(spawned.stdin),
            stdout: Box::pin(spawned.stdout),
            exit: Box::pin(exit),
        })
    }

    /// Ends what runs a server: removes its container, or closes the process's stdin and stops
    /// it.
    async fn remove(&self, instance: &Instance, upstream: &Upstream) {
        match instance {
            Instance::Container(id) => {
                if let Some(engine) = self.engine.lock().await.clone() {
                    engine.remove(id).await;
                }
            }
            Instance::Process(process) => {
                upstream.close();
                process.stop().await;
            }
            Instance::Remote(remote) => remote.close().await,
        }
    }

    /// Removes a container the pool no longer wants; its exit is not a failure.
    async fn stop(&self, slot: &Slot, running: Running) {
        slot.released(running.seq);
        self.remove(&running.instance, &running.upstream).await;
    }

    /// Removes the containers idle for longer than their timeout, for as long as the pool
    /// exists. A container counts as used while a request holds its connection.
    pub fn spawn_idle_reaper(self: &Arc<Pool>) {
        let pool = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let Some(strong) = pool.upgrade() else { break };
                let next = strong.reap_idle().await;
                let started = Arc::clone(&strong.started);
                drop(strong);
                tokio::select! {
                    () = tokio::time::sleep(next) => {}
                    () = started.notified() => {}
                }
            }
        });
    }

    /// One pass of the reaper; returns how long until the next container may become idle.
    async fn reap_idle(&self) -> Duration {
        // Without containers the reaper sleeps until one starts.
        let mut next = Duration::from_secs(3600);
        let slots: Vec<_> = self
            .lock_slots()
            .iter()
            .map(|(k, s)| (k.clone(), Arc::clone(s)))
            .collect();
        for ((profile, server, _), slot) in slots {
            // A slot whose lock is taken is starting a container or handing one out: in use.
            let Ok(mut running) = slot.running.try_lock() else {
                continue;
            };
            let Some(current) = running.as_ref() else {
                continue;
            };
            let Some(timeout) = current.run.idle_timeout else {
                continue;
            };
            if current.upstream.is_closed() {
                continue;
            }
            let now = Instant::now();
            let idle_for = {
                let mut state = slot.lock();
                if Arc::strong_count(&current.upstream) > current.idle_refs {
                    state.last_used = Some(now);
                }
                state.last_used.map_or(Duration::ZERO, |used| now - used)
            };
            if idle_for < timeout {
                next = next.min(timeout - idle_for);
                continue;
            }
            if let Some(idle) = running.take() {
                tracing::info!(
                    profile,
                    server,
                    "removing container {} unused for {} s",
                    idle.container,
                    idle_for.as_secs()
                );
                self.stop(&slot, idle).await;
            }
        }
        next
    }

    /// Pulls `image` again (`mcpctl server pull`), or joins its pull in flight. Containers
    /// already running keep the image they started with; the next start uses the new one.
    pub async fn pull(
        &self,
        image: &str,
    ) -> Result<tokio::sync::watch::Receiver<PullState>, PoolError> {
        let engine = self.engine().await?;
        Ok(self.pulls.pull(&engine, image))
    }

    /// The images being pulled and how far each is, for `status` and `server ls`.
    pub fn pulls(&self) -> Vec<(String, Progress)> {
        self.pulls.in_flight()
    }

    /// Removes every container of `server` (`mcpctl server restart` and `server rm`) and lifts
    /// its backoff, so the next request that needs it starts it at once. Returns how many
    /// containers were removed.
    pub async fn stop_server(&self, server: &str) -> usize {
        let slots: Vec<_> = self
            .lock_slots()
            .iter()
            .filter(|((_, s, _), _)| s == server)
            .map(|(_, slot)| Arc::clone(slot))
            .collect();
        let mut stopped = 0;
        for slot in slots {
            let mut running = slot.running.lock().await;
            if let Some(current) = running.take() {
                self.stop(&slot, current).await;
                stopped += 1;
            }
            let mut state = slot.lock();
            state.backoff = Backoff::default();
            if let Some(failure) = &mut state.failure {
                failure.retry_at = None;
            }
        }
        stopped
    }

    /// The stderr of `server`'s last container in each profile that ran it (and each open
    /// session's own), by profile.
    pub fn logs(&self, server: &str) -> Vec<(String, Arc<LogTail>)> {
        let slots = self.lock_slots();
        let mut logs: Vec<_> = slots
            .iter()
            .filter(|((_, s, _), _)| s == server)
            .filter_map(|((profile, ..), slot)| {
                Some((profile.clone(), slot.lock().stderr.clone()?))
            })
            .collect();
        logs.sort_by(|a, b| a.0.cmp(&b.0));
        logs
    }

    /// (profile, server) pairs with a live container, for `status` and `server ls`; a pair with
    /// several session containers is there once per container.
    pub fn running(&self) -> Vec<(String, String)> {
        let mut live: Vec<_> = self
            .live()
            .into_iter()
            .map(|((profile, server, _), _)| (profile, server))
            .collect();
        live.sort();
        live
    }

    /// The live connections a session of `profile` reaches: the profile's shared servers and
    /// the session's own containers; servers starting right now are left out.
    pub fn running_upstreams(&self, profile: &str, session: u64) -> Vec<Arc<Upstream>> {
        self.live()
            .into_iter()
            .filter(|((p, _, owner), _)| p == profile && owner.is_none_or(|o| o == session))
            .map(|(_, upstream)| upstream)
            .collect()
    }

    fn live(&self) -> Vec<(SlotKey, Arc<Upstream>)> {
        let slots = self.lock_slots();
        slots
            .iter()
            .filter_map(|(key, slot)| {
                let running = slot.running.try_lock().ok()?;
                let upstream = &running.as_ref()?.upstream;
                (!upstream.is_closed()).then(|| (key.clone(), Arc::clone(upstream)))
            })
            .collect()
    }

    /// Every (profile, server) that has had a container since the daemon started, sorted.
    pub fn statuses(&self) -> Vec<SlotStatus> {
        let slots: Vec<_> = self
            .lock_slots()
            .iter()
            .map(|(k, s)| (k.clone(), Arc::clone(s)))
            .collect();
        let now = Instant::now();
        let mut statuses: Vec<SlotStatus> = slots
            .into_iter()
            .map(|((profile, server, session), slot)| {
                let throttled = slot
                    .running
                    .try_lock()
                    .ok()
                    .and_then(|running| Some(running.as_ref()?.upstream.throttled()))
                    .unwrap_or_default();
                let state = slot.lock();
                let retry_in = state
                    .failure
                    .as_ref()
                    .and_then(|f| f.retry_at)
                    .filter(|at| *at > now)
                    .map(|at| at - now);
                let phase = if state.starting {
                    SlotPhase::Starting
                } else if state.container.is_some() {
                    SlotPhase::Running
                } else if retry_in.is_some() {
                    SlotPhase::Backoff
                } else {
                    SlotPhase::Stopped
                };
                SlotStatus {
                    profile,
                    server,
                    session,
                    state: phase,
                    container: state.container.as_ref().map(|(id, _)| id.clone()),
                    uptime: state.container.as_ref().map(|(_, since)| now - *since),
                    last_used: state.last_used.map(|used| now - used),
                    restarts: state.restarts,
                    last_error: state.failure.as_ref().map(|f| f.cause.to_string()),
                    retry_in,
                    era: state.era,
                    throttled,
                }
            })
            .collect();
        statuses.sort_by(|a, b| {
            (&a.profile, &a.server, a.session).cmp(&(&b.profile, &b.server, b.session))
        });
        statuses
    }

    /// Removes every container this daemon started.
    pub async fn shutdown(&self) {
        self.closing.cancel();
        let slots: Vec<_> = self.lock_slots().drain().map(|(_, slot)| slot).collect();
        let stops = slots.into_iter().map(|slot| async move {
            if let Some(running) = slot.running.lock().await.take() {
                self.stop(&slot, running).await;
            }
        });
        futures_util::future::join_all(stops).await;
        // Each call's server is removed by its own task, which the cancellation above ends.
        self.calls.close();
        self.calls.wait().await;
    }
}

/// Waits for a server (container or process) to stop and records its exit in the slot, unless
/// the pool removed it itself meanwhile.
async fn watch(
    slot: Arc<Slot>,
    exit: impl Future<Output = Option<i64>>,
    seq: u64,
    upstream: Weak<Upstream>,
    stderr: Arc<LogTail>,
) {
    let status = exit.await;
    // The attach stream (or stderr pipe) delivers the server's last stderr lines before it closes; give it a
    // moment, so the failure report carries them.
    let deadline = Instant::now() + Duration::from_secs(2);
    let alive = || upstream.upgrade().is_some_and(|u| !u.is_closed());
    while alive() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The engine lost track (restarted, say) of a server that still answers: not an exit.
    if status.is_none() && alive() {
        return;
    }
    slot.exited(seq, status, &stderr);
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
