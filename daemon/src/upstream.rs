//! One connection to an MCP server (today: a container's attached stdio).
//!
//! The gateway speaks to the server with its own request ids, so requests from many client
//! sessions can share one server: [`Upstream::request`] mints an id, parks a oneshot under it, and
//! the reader task hands the server's response to whoever waits. Result bodies stay raw.
//!
//! Each parked request remembers the client it is made for. That is how the server's messages
//! about a request find their client: progress for the token the client chose (the server sees
//! the gateway's id as token, so two clients may pick the same one), and requests the server makes
//! while it works (sampling, elicitation, roots), which [`ServerEvent::Request`] hands to the
//! gateway with the clients that have requests in flight here. Everything else the server says
//! goes to the gateway as [`ServerEvent::Notification`], through this connection's own queue
//! (`queues`), which the reader waits for when it is full (and drops past a bound). What the
//! server writes unprompted is charged to a budget (`budget`); past it the reader pauses, so a
//! flooding server is held back by its own blocked writes rather than read and dropped. Bad
//! lines are warned about at a bounded rate (`warnings`).

mod budget;
mod deadlines;
mod handshake;
mod listen;
mod queues;
mod warnings;

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot};
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;

use crate::downstream::{Declared, Downstream, LogLevel};
use crate::jsonrpc::{self, Kind, Message, Reply, code};
use crate::lines::{Line, LineCodec, sniff_id};
use crate::logtail::LogTail;
use crate::modern;
use crate::outbox::Outbox;
use budget::{Budget, Charged};
use deadlines::{Deadlines, until};
pub use handshake::Era;
pub use queues::{EventQueues, NewQueues};
use warnings::Warnings;

/// Lines that may wait for a server's stdin (requests from every session it serves) before
/// senders wait for room.
const MAX_QUEUED: usize = 1024;

#[derive(Debug, Clone, thiserror::Error)]
pub enum UpstreamError {
    #[error("server {server:?} exited{}", stderr_suffix(.stderr))]
    Closed { server: String, stderr: Vec<String> },
    #[error("server {server:?} did not answer {method} within {seconds} s")]
    Timeout {
        server: String,
        method: String,
        seconds: u64,
    },
    #[error("server {server:?} failed to initialize: {reason}")]
    Initialize { server: String, reason: String },
    #[error("the request was cancelled")]
    Cancelled,
}

fn stderr_suffix(lines: &[String]) -> String {
    if lines.is_empty() {
        String::new()
    } else {
        format!("; its last output: {}", lines.join(" | "))
    }
}

/// What the server said that the gateway, not this connection, has to route.
pub enum ServerEvent {
    /// A notification other than progress and cancellation (logs, list changes, updates…).
    Notification {
        profile: String,
        /// The client session owning the container, for a session-isolated server.
        session: Option<u64>,
        server: String,
        method: String,
        params: Option<Box<RawValue>>,
        /// The notification's share of its server's [`queues::QUEUE_BYTES`], given back when
        /// the event is dropped after routing.
        queued: tokio::sync::OwnedSemaphorePermit,
    },
    /// A log message (`notifications/message`).
    Log {
        profile: String,
        session: Option<u64>,
        server: String,
        params: Option<Box<RawValue>>,
        /// Its share of the server's queue, as for a notification.
        queued: tokio::sync::OwnedSemaphorePermit,
    },
    /// A request to a client; answer it with [`Upstream::relay_to_client`].
    Request {
        upstream: Arc<Upstream>,
        id: Value,
        method: String,
        params: Option<Box<RawValue>>,
        /// Client requests in flight on this server, most recent first.
        owners: Vec<InFlight>,
    },
}

/// A client's request in flight on a server, as a server's request for a client sees it.
pub struct InFlight {
    pub client: Arc<Downstream>,
    /// What the request declared itself, for a 2026-07-28 client's request.
    pub declared: Option<Arc<Declared>>,
}

impl InFlight {
    /// Whether this request's client can answer a server's request: by what the request
    /// declared, or (a legacy client) what the client declared at `initialize`.
    pub fn can_answer(&self, method: &str, params: Option<&RawValue>) -> bool {
        match &self.declared {
            Some(declared) => declared.can_answer(method, params),
            None => self.client.can_answer(method, params),
        }
    }
}

/// Who a request is made for, and how long it may take.
pub struct Caller {
    /// The client the request is made for; `None` for the gateway's own requests (listing).
    pub owner: Option<Arc<Downstream>>,
    /// What a 2026-07-28 client's request declared itself; `None` for a legacy client's, whose
    /// `initialize` declared for all of them, and for the gateway's own.
    pub declared: Option<Arc<Declared>>,
    /// Fires when the client cancels the request.
    pub cancel: CancellationToken,
    pub timeout: Duration,
}

impl Caller {
    /// The gateway asking on its own behalf.
    pub fn gateway(timeout: Duration) -> Caller {
        Caller {
            owner: None,
            declared: None,
            cancel: CancellationToken::new(),
            timeout,
        }
    }

    /// The client capabilities and log level a modern server is told of for this request.
    fn for_modern_server(&self) -> (Arc<RawValue>, Option<LogLevel>) {
        match (&self.declared, &self.owner) {
            (Some(declared), _) => (declared.for_servers(), declared.log_level),
            (None, Some(owner)) => (owner.declared_for_servers(), owner.log_level()),
            (None, None) => (Arc::from(jsonrpc::empty_object()), None),
        }
    }
}

pub struct Upstream {
    name: String,
    profile: String,
    /// The client session this container belongs to (`isolation = "session"`).
    session: Option<u64>,
    outgoing: Arc<Outbox>,
    /// By the gateway's id; foldhash, as every call and every answer looks its request up.
    pending: Mutex<hashbrown::HashMap<u64, Pending>>,
    /// The one timer that fails `pending` requests past their deadline.
    deadlines: Deadlines,
    /// Server requests relayed to a client: the server's id (as JSON text) → the client and the
    /// id the gateway gave the request there.
    relayed: Mutex<HashMap<String, (Weak<Downstream>, u64)>>,
    next_id: AtomicU64,
    /// Requests in flight other than listen streams.
    calls: AtomicUsize,
    closed: CancellationToken,
    stderr: Arc<LogTail>,
    /// The server's `capabilities`, once initialized.
    capabilities: OnceLock<Value>,
    era: OnceLock<Era>,
    /// This connection's own queue to the gateway ([`EventQueues`]), and the bytes of it left.
    events: mpsc::Sender<ServerEvent>,
    queue_bytes: Arc<tokio::sync::Semaphore>,
    /// The gateway's `subscriptions/listen` requests waiting for their acknowledgement, by id.
    acks: Mutex<HashMap<u64, oneshot::Sender<Value>>>,
    /// Episodes of throttling so far (`budget`), and whether the reader is paused now.
    throttles: AtomicU32,
    paused: AtomicBool,
}

struct Pending {
    /// Taken when the answer comes or the deadline passes, whichever is first.
    reply: Option<oneshot::Sender<Result<Reply, TimedOut>>>,
    deadline: tokio::time::Instant,
    owner: Option<Arc<Downstream>>,
    declared: Option<Arc<Declared>>,
    /// The client's own progress token; the server was given the request's id instead.
    progress_token: Option<Value>,
}

/// What a parked request gets instead of its answer when its deadline passes.
struct TimedOut;

/// Removes a parked request when its caller stops waiting and, unless the answer came, tells the
/// server to stop working on it.
struct PendingGuard<'a> {
    upstream: &'a Upstream,
    id: u64,
    /// Why the request is abandoned; `None` for requests that must not be cancelled.
    reason: Option<&'static str>,
    /// Whether it counts in the upstream's `calls`.
    counted: bool,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        if self.counted {
            self.upstream.calls.fetch_sub(1, Ordering::Relaxed);
        }
        let unanswered = self.upstream.lock_pending().remove(&self.id).is_some();
        if let (true, Some(reason)) = (unanswered, self.reason) {
            let cancel = json!({"requestId": self.id, "reason": reason});
            let line = jsonrpc::notification_line(
                "notifications/cancelled",
                Some(&jsonrpc::to_raw(&cancel)),
            );
            // Best effort: a full queue means the server is not reading anyway.
            self.upstream.outgoing.offer(line, usize::MAX);
        }
    }
}

impl Upstream {
    /// Starts the reader and writer tasks over the server's stdout and stdin.
    pub fn spawn(
        name: &str,
        (profile, session): (&str, Option<u64>),
        (stdin, stdout): (
            impl AsyncWrite + Send + 'static,
            impl AsyncRead + Send + 'static,
        ),
        stderr: Arc<LogTail>,
        max_line: usize,
        events: mpsc::Sender<ServerEvent>,
    ) -> Arc<Upstream> {
        let (outgoing, write_queued) = Outbox::new(stdin, MAX_QUEUED);
        let upstream = Arc::new(Upstream {
            name: name.to_owned(),
            profile: profile.to_owned(),
            session,
            outgoing,
            pending: Mutex::default(),
            deadlines: Deadlines::default(),
            relayed: Mutex::default(),
            next_id: AtomicU64::new(1),
            calls: AtomicUsize::new(0),
            closed: CancellationToken::new(),
            stderr,
            capabilities: OnceLock::new(),
            era: OnceLock::new(),
            events,
            queue_bytes: Arc::new(tokio::sync::Semaphore::new(queues::QUEUE_BYTES)),
            acks: Mutex::default(),
            throttles: AtomicU32::new(0),
            paused: AtomicBool::new(false),
        });
        // The writer ends with the connection, which closes the server's stdin: a server that
        // reads it learns that it should exit.
        let closed = upstream.closed.clone();
        let outgoing = Arc::clone(&upstream.outgoing);
        tokio::spawn(async move {
            tokio::select! {
                () = write_queued => {}
                () = closed.cancelled() => outgoing.close(),
            }
        });
        tokio::spawn(read_loop(Arc::clone(&upstream), Box::pin(stdout), max_line));
        let timed = Arc::clone(&upstream);
        tokio::spawn(async move {
            tokio::select! {
                () = timed.deadlines.run(|now| timed.expire(now)) => {}
                () = timed.closed.cancelled() => {}
            }
        });
        upstream
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The client session this container belongs to, if it is one session's own.
    pub fn session(&self) -> Option<u64> {
        self.session
    }

    pub fn profile(&self) -> &str {
        &self.profile
    }

    /// Ends the connection from the gateway's side: requests waiting fail at once and the
    /// server's stdin is closed.
    pub fn close(&self) {
        self.closed.cancel();
        self.lock_pending().clear();
    }

    pub fn is_closed(&self) -> bool {
        self.closed.is_cancelled()
    }

    /// The server's era, once the handshake found it.
    pub fn era(&self) -> Option<Era> {
        self.era.get().copied()
    }

    /// How many times the server's unprompted output went past its budget, and whether the
    /// reader is paused for it now.
    pub fn throttled(&self) -> (u32, bool) {
        (
            self.throttles.load(Ordering::Relaxed),
            self.paused.load(Ordering::Relaxed),
        )
    }

    /// The server's `capabilities`, once the handshake got them.
    pub fn capabilities(&self) -> Option<&Value> {
        self.capabilities.get()
    }

    /// Whether the server declared `capability` (e.g. `prompts`, `logging`) at `initialize`.
    pub fn supports(&self, capability: &str) -> bool {
        self.capabilities
            .get()
            .and_then(|c| c.get(capability))
            .is_some_and(|v| !v.is_null())
    }

    fn lock_pending(&self) -> std::sync::MutexGuard<'_, hashbrown::HashMap<u64, Pending>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sends a request and waits for its reply, its timeout, or its cancellation.
    pub async fn request(
        &self,
        method: &str,
        params: Option<&RawValue>,
        caller: &Caller,
    ) -> Result<Reply, UpstreamError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.request_as(id, method, params, caller).await
    }

    /// [`Upstream::request`] under an id the caller minted (from `next_id`).
    async fn request_as(
        &self,
        id: u64,
        method: &str,
        params: Option<&RawValue>,
        caller: &Caller,
    ) -> Result<Reply, UpstreamError> {
        let (params, progress_token) = match params {
            Some(params) if caller.owner.is_some() => {
                let (params, token) = with_progress_token(params, id);
                (Some(params), token)
            }
            _ => (params.map(Cow::Borrowed), None),
        };
        let line = match self.era() {
            Some(Era::Modern) => {
                let (declared, level) = caller.for_modern_server();
                let level = level.map(LogLevel::name);
                let described = modern::describe(params.as_deref(), &declared, level);
                jsonrpc::request_line(id, method, &described.pieces())
            }
            _ => jsonrpc::request_line(id, method, params.as_deref().map(RawValue::get).as_slice()),
        };
        let (tx, rx) = oneshot::channel();
        let deadline = Deadlines::after(caller.timeout);
        self.lock_pending().insert(
            id,
            Pending {
                reply: Some(tx),
                deadline,
                owner: caller.owner.clone(),
                declared: caller.declared.clone(),
                progress_token,
            },
        );
        self.deadlines.note(deadline);
        let mut guard = PendingGuard {
            upstream: self,
            id,
            // The lifecycle rules forbid cancelling `initialize`.
            reason: (method != "initialize").then_some("the client went away"),
            // Listen streams stay open: counted, they would make every request look like one
            // among others.
            counted: method != crate::modern::LISTEN,
        };
        // A request alone goes out at once; one among others waits for the writer task with
        // them, so that a busy server's requests share writes.
        let alone = !guard.counted || self.calls.fetch_add(1, Ordering::Relaxed) == 0;
        let sent = if alone {
            self.outgoing.send(line).await
        } else {
            self.outgoing.send_batched(line).await
        };
        if self.is_closed() {
            return Err(self.closed_error());
        }
        // A line the server's stdin did not take (it has exited) still waits for the reader: its
        // end fails the request, once the server's last stderr lines are in, which on a
        // launcher's socket come later, over the attach stream.
        if !sent {
            tracing::debug!(server = %self.name, "the server's stdin is closed");
        }
        tokio::select! {
            reply = rx => match reply {
                Ok(Ok(reply)) => Ok(reply),
                Ok(Err(TimedOut)) => {
                    guard.reason = guard.reason.and(Some("timed out in the gateway"));
                    Err(UpstreamError::Timeout {
                        server: self.name.clone(),
                        method: method.to_owned(),
                        seconds: caller.timeout.as_secs(),
                    })
                }
                Err(_) => Err(self.closed_error()),
            },
            () = caller.cancel.cancelled() => {
                guard.reason = guard.reason.and(Some("cancelled by the client"));
                Err(UpstreamError::Cancelled)
            }
        }
    }

    pub async fn notify(&self, method: &str, params: Option<&RawValue>) {
        self.outgoing
            .send(jsonrpc::notification_line(method, params))
            .await;
    }

    /// Fails the requests whose deadline is past at `now` (their callers tell the server to
    /// cancel them); the earliest deadline of the others.
    fn expire(&self, now: tokio::time::Instant) -> Option<tokio::time::Instant> {
        let mut next: Option<tokio::time::Instant> = None;
        // A request failed already (its `reply` taken) stays until its caller removes it.
        let mut requests = self.lock_pending();
        for pending in requests.values_mut().filter(|p| p.reply.is_some()) {
            if pending.deadline > now {
                next = Some(next.map_or(pending.deadline, |next| next.min(pending.deadline)));
            } else if let Some(reply) = pending.reply.take() {
                drop(reply.send(Err(TimedOut)));
            }
        }
        next
    }

    fn closed_error(&self) -> UpstreamError {
        UpstreamError::Closed {
            server: self.name.clone(),
            stderr: self.stderr.last(5),
        }
    }

    /// Hands an answer to whoever waits for it; false when nobody does.
    fn deliver(&self, id: u64, reply: Reply) -> bool {
        let waiting = self
            .lock_pending()
            .remove(&id)
            .and_then(|pending| pending.reply);
        match waiting {
            Some(waiting) => {
                drop(waiting.send(Ok(reply)));
                true
            }
            None => {
                tracing::debug!(server = %self.name, id, "late or unknown response dropped");
                false
            }
        }
    }

    /// Answers the server's request `id`.
    pub async fn respond(&self, id: &Value, reply: &Reply) {
        self.outgoing.send(jsonrpc::response_line(id, reply)).await;
    }

    /// Answers the server's request `id` without waiting, for code that cannot (a drop).
    pub fn respond_now(&self, id: &Value, reply: &Reply) {
        self.outgoing
            .offer(jsonrpc::response_line(id, reply), usize::MAX);
    }

    /// A request from the server: `ping` is answered here, the rest goes to the gateway, which
    /// picks a client.
    async fn on_request(self: &Arc<Self>, message: Message) {
        let id = message.id.unwrap_or_default();
        let method = message.method.unwrap_or_default();
        if method == "ping" {
            return self.respond(&id, &Ok(jsonrpc::empty_object())).await;
        }
        let owners = {
            let pending = self.lock_pending();
            let mut requests: Vec<(&u64, &Pending)> =
                pending.iter().filter(|(_, p)| p.owner.is_some()).collect();
            requests.sort_by(|a, b| b.0.cmp(a.0));
            let mut owners: Vec<InFlight> = Vec::new();
            for (_, request) in requests {
                let Some(client) = &request.owner else {
                    continue;
                };
                // A legacy client's requests all declare the same; a modern client's each their own.
                let same = |o: &InFlight| {
                    o.client.id == client.id
                        && match (&o.declared, &request.declared) {
                            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                            (a, b) => a.is_none() && b.is_none(),
                        }
                };
                if !owners.iter().any(same) {
                    owners.push(InFlight {
                        client: Arc::clone(client),
                        declared: request.declared.clone(),
                    });
                }
            }
            owners
        };
        let event = ServerEvent::Request {
            upstream: Arc::clone(self),
            id: id.clone(),
            method,
            params: message.params,
            owners,
        };
        if self.events.send(event).await.is_err() {
            let error = jsonrpc::error(code::INTERNAL_ERROR, "the gateway is shutting down");
            self.respond(&id, &Err(error)).await;
        }
    }

    /// Relays a server's request to `client` and its answer back; with no client, the server
    /// gets `refusal` as a JSON-RPC error.
    pub async fn relay_to_client(
        self: Arc<Self>,
        id: Value,
        method: String,
        params: Option<Box<RawValue>>,
        client: Result<Arc<Downstream>, (i64, String)>,
    ) {
        let client = match client {
            Ok(client) => client,
            Err((code, message)) => {
                return self.respond(&id, &Err(jsonrpc::error(code, message))).await;
            }
        };
        let gone = || Err(jsonrpc::error(code::INTERNAL_ERROR, "the client went away"));
        let Ok((client_id, answer)) = client.request(&method, params.as_deref()).await else {
            return self.respond(&id, &gone()).await;
        };
        let key = id.to_string();
        self.lock_relayed()
            .insert(key.clone(), (Arc::downgrade(&client), client_id));
        let reply = tokio::select! {
            reply = answer => reply.ok(),
            () = self.closed.cancelled() => None,
        };
        // No entry left means the server withdrew the request and expects no answer.
        if self.lock_relayed().remove(&key).is_none() {
            return;
        }
        match reply {
            Some(reply) => self.respond(&id, &reply).await,
            None if self.is_closed() => client.withdraw(client_id, "the server exited"),
            None => self.respond(&id, &gone()).await,
        }
    }

    fn lock_relayed(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Weak<Downstream>, u64)>> {
        self.relayed.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Handles a notification; false when it was for the gateway and its queue had no room
    /// within [`queues::QUEUE_WAIT`].
    async fn on_notification(&self, message: Message) -> bool {
        let deadline = tokio::time::Instant::now() + queues::QUEUE_WAIT;
        let method = message.method.unwrap_or_default();
        match method.as_str() {
            "notifications/progress" => self.forward_progress(message.params.as_deref()),
            // The gateway's own listen streams on a modern server; clients get the gateway's.
            "notifications/subscriptions/acknowledged" => {
                self.acknowledged(message.params.as_deref())
            }
            "notifications/message" => {
                self.forward_log(message.params.as_deref());
                let Some(queued) = self.queue_share(message.params.as_deref(), deadline).await
                else {
                    return false;
                };
                let event = ServerEvent::Log {
                    profile: self.profile.clone(),
                    session: self.session,
                    server: self.name.clone(),
                    params: message.params,
                    queued,
                };
                return self.offer(event, deadline).await;
            }
            "notifications/cancelled" => {
                let request = parse(message.params.as_deref())
                    .and_then(|p| p.get("requestId").map(Value::to_string));
                let relayed = request.and_then(|key| self.lock_relayed().remove(&key));
                if let Some((client, client_id)) = relayed
                    && let Some(client) = client.upgrade()
                {
                    client.withdraw(client_id, "cancelled by the server");
                }
            }
            _ => {
                let Some(queued) = self.queue_share(message.params.as_deref(), deadline).await
                else {
                    return false;
                };
                let event = ServerEvent::Notification {
                    profile: self.profile.clone(),
                    session: self.session,
                    server: self.name.clone(),
                    method,
                    params: message.params,
                    queued,
                };
                return self.offer(event, deadline).await;
            }
        }
        true
    }

    /// The share of this connection's [`queues::QUEUE_BYTES`] a notification with `params`
    /// takes, waited for until `deadline`; `None` when that much was not given back by then.
    async fn queue_share(
        &self,
        params: Option<&RawValue>,
        deadline: tokio::time::Instant,
    ) -> Option<tokio::sync::OwnedSemaphorePermit> {
        let size = params.map_or(0, |p| p.get().len());
        let share = size.clamp(1, queues::QUEUE_BYTES) as u32;
        let acquire = Arc::clone(&self.queue_bytes).acquire_many_owned(share);
        tokio::time::timeout_at(deadline, acquire).await.ok()?.ok()
    }

    /// Queues a notification for the gateway, waiting for room until `deadline`; false when
    /// there was none by then and it is dropped. Waiting stops the reader, which is the
    /// server's own: its answers behind the notification wait with it, nobody else's do.
    async fn offer(&self, event: ServerEvent, deadline: tokio::time::Instant) -> bool {
        // A closed queue (the gateway gone) is not a drop to warn about.
        tokio::time::timeout_at(deadline, self.events.send(event))
            .await
            .is_ok()
    }

    /// The modern clients with requests in flight that asked for log messages, each once with
    /// its most verbose level.
    fn log_requesters(&self) -> Vec<(Arc<Downstream>, LogLevel)> {
        let mut requesters: Vec<(Arc<Downstream>, LogLevel)> = Vec::new();
        for pending in self.lock_pending().values() {
            let (Some(client), Some(level)) = (
                &pending.owner,
                pending.declared.as_ref().and_then(|d| d.log_level),
            ) else {
                continue;
            };
            match requesters.iter_mut().find(|(c, _)| c.id == client.id) {
                Some((_, least)) => *least = (*least).min(level),
                None => requesters.push((Arc::clone(client), level)),
            }
        }
        requesters
    }

    /// Sends a log message to the 2026-07-28 clients with a request in flight here that asked for
    /// log messages, at or above the most verbose level their requests asked for: the only ones
    /// of their era that may hear it. It is sent from the reader, as progress is, so that it
    /// reaches the client ahead of the answer the server sent after it: the gateway's queue
    /// (legacy clients' way) could deliver it after the request ended, when an HTTP POST's
    /// event stream is already closed.
    fn forward_log(&self, params: Option<&RawValue>) {
        let requesters = self.log_requesters();
        if requesters.is_empty() {
            return;
        }
        let Some((params, level)) = crate::downstream::log_message(params, &self.name) else {
            return;
        };
        for (client, min) in requesters {
            let heard =
                self.session.is_none_or(|id| client.id == id) && level.is_none_or(|l| l >= min);
            if client.is_modern() && heard {
                client.notify("notifications/message", Some(&params));
            }
        }
    }

    /// Sends progress to the client whose request it is about, under the client's own token.
    fn forward_progress(&self, params: Option<&RawValue>) {
        let Some(mut params) = parse(params) else {
            return;
        };
        let Some(id) = params.get("progressToken").and_then(Value::as_u64) else {
            return;
        };
        let target = self
            .lock_pending()
            .get(&id)
            .and_then(|p| Some((Arc::clone(p.owner.as_ref()?), p.progress_token.clone()?)));
        match target {
            Some((owner, token)) => {
                params.insert("progressToken".into(), token);
                owner.notify(
                    "notifications/progress",
                    Some(&jsonrpc::to_raw(&Value::Object(params))),
                );
            }
            None => tracing::debug!(server = %self.name, id, "progress for no request in flight"),
        }
    }

    /// A response line the reader could not take: whoever waits for it gets an error now rather
    /// than a timeout later. False when it answers nothing.
    fn on_rejected(&self, head: &[u8], reason: crate::lines::Reject) -> bool {
        let Some(id) = sniff_id(head).as_ref().and_then(Value::as_u64) else {
            return false;
        };
        let error = jsonrpc::error(
            code::INTERNAL_ERROR,
            format!(
                "server {:?} sent a response the gateway cannot take ({})",
                self.name,
                match reason {
                    crate::lines::Reject::TooLong => "too long",
                    crate::lines::Reject::NotUtf8 => "not UTF-8",
                }
            ),
        );
        self.deliver(id, Err(error))
    }
}

fn parse(params: Option<&RawValue>) -> Option<Map<String, Value>> {
    serde_json::from_str(params?.get()).ok()
}

/// `params` with `_meta.progressToken` replaced by `id`, and the client's token; untouched when
/// the request asks for no progress.
fn with_progress_token(params: &RawValue, id: u64) -> (Cow<'_, RawValue>, Option<Value>) {
    // Most requests carry no token; only those pay for a parse.
    if !params.get().contains("\"progressToken\"") {
        return (Cow::Borrowed(params), None);
    }
    let Some(mut map) = parse(Some(params)) else {
        return (Cow::Borrowed(params), None);
    };
    let token = map
        .get_mut("_meta")
        .and_then(Value::as_object_mut)
        .and_then(|meta| meta.insert("progressToken".into(), Value::from(id)));
    match token {
        Some(token) => (
            Cow::Owned(jsonrpc::to_raw(&Value::Object(map))),
            Some(token),
        ),
        None => (Cow::Borrowed(params), None),
    }
}

async fn read_loop(
    upstream: Arc<Upstream>,
    stdout: std::pin::Pin<Box<dyn AsyncRead + Send>>,
    max_line: usize,
) {
    let mut lines = FramedRead::new(stdout, LineCodec::new(max_line));
    let mut warnings = Warnings::new(&upstream.name);
    let mut budget = Budget::new(tokio::time::Instant::now());
    let mut paused: Option<tokio::time::Instant> = None;
    loop {
        let due = warnings.summary_due();
        // While paused nothing is read: the server's writes block once the pipe is full.
        let line = tokio::select! {
            biased;
            line = lines.next(), if paused.is_none() => line,
            () = until(paused), if paused.is_some() => {
                paused = None;
                upstream.paused.store(false, Ordering::Relaxed);
                continue;
            }
            () = until(due) => {
                warnings.summarize();
                continue;
            }
        };
        let Some(line) = line else {
            break;
        };
        // What the line costs the server's budget: nothing for an answer someone waits for.
        let unprompted = match line {
            Ok(Line::Text(line)) => handle_line(&upstream, &mut warnings, line).await,
            Ok(Line::Rejected { head, reason }) => {
                warnings.bad_line(format_args!(
                    "dropped an output line it cannot take: {reason:?}"
                ));
                // An overlong line was read to its end, at least the limit's worth of bytes.
                let size = match reason {
                    crate::lines::Reject::TooLong => max_line,
                    crate::lines::Reject::NotUtf8 => head.len(),
                };
                (!upstream.on_rejected(&head, reason)).then_some(size)
            }
            Err(err) => {
                tracing::warn!(server = %upstream.name, "reading the server's output failed: {err}");
                break;
            }
        };
        let Some(size) = unprompted else {
            continue;
        };
        if let Charged::Paused { until, first } = budget.charge(size, tokio::time::Instant::now()) {
            if first {
                upstream.throttles.fetch_add(1, Ordering::Relaxed);
                warnings.throttled();
            }
            upstream.paused.store(true, Ordering::Relaxed);
            paused = Some(until);
        }
    }
    warnings.summarize();
    upstream.closed.cancel();
    // Everyone still waiting learns at once that no answer will come.
    upstream.lock_pending().clear();
}

/// Handles one line of the server's output; its size (with the newline) when the server wrote
/// it unprompted, `None` for an answer to a request in flight.
async fn handle_line(
    upstream: &Arc<Upstream>,
    warnings: &mut Warnings,
    line: String,
) -> Option<usize> {
    let size = line.len() + 1;
    if line.trim().is_empty() {
        return Some(size);
    }
    let message = match Message::parse(&line) {
        Ok(message) => message,
        Err(err) => {
            warnings.bad_line(format_args!("ignored a line that is not MCP: {err}"));
            return Some(size);
        }
    };
    match message.kind() {
        Kind::Response => match message.id.as_ref().and_then(Value::as_u64) {
            Some(id) if upstream.deliver(id, message.into_reply()) => return None,
            Some(_) => {}
            None => warnings.bad_line(format_args!("response with an id the gateway never sent")),
        },
        Kind::Request => upstream.on_request(message).await,
        Kind::Notification => {
            if !upstream.on_notification(message).await {
                warnings.dropped();
            }
        }
        Kind::Invalid => warnings.bad_line(format_args!("ignored an invalid JSON-RPC message")),
    }
    Some(size)
}

#[cfg(test)]
mod tests;
