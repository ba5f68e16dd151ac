//! The gateway's handle on one connected MCP client: what servers' messages need to reach it.
//!
//! A session (`session.rs`) reads the client; this handle is what the rest of the daemon holds to
//! write to it: notifications (progress, logs, list changes), and requests that servers make of
//! the client (sampling, elicitation, roots), each under an id the gateway mints so that the
//! client's answer finds its way back. It also records what the client declared at `initialize`,
//! because a server's request may only go to a client that can answer it.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::value::RawValue;
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::jsonrpc::{self, Message, Reply, code};
use crate::outbox::Outbox;
use crate::upstream::Upstream;

/// A source of recency shared by every client, so "the most recent session" is well defined.
static CLOCK: AtomicU64 = AtomicU64::new(1);

/// Lines that may wait for a client before its answers wait for room and its notifications are
/// dropped.
pub const MAX_QUEUED: usize = 256;

/// How many bytes may wait for a client that does not read before its notifications are dropped.
/// The queue's count of lines alone would let a server's large notifications pile up to hundreds
/// of megabytes per client.
const NOTIFY_BUDGET: usize = 4 * 1024 * 1024;

pub struct Downstream {
    pub id: u64,
    /// The profile named in the client's hello; `None` follows the active profile.
    pub named_profile: Option<String>,
    /// The client's name from its hello, for the audit log.
    pub client: String,
    out: Arc<Outbox>,
    /// The client's `capabilities` from `initialize`; a modern client's are per request
    /// ([`Declared`]).
    capabilities: Mutex<Value>,
    /// [`bridged`] of `capabilities` as JSON text, made at `initialize` rather than for every
    /// request that goes to a modern server.
    for_servers: Mutex<Arc<RawValue>>,
    /// Which protocol era the client speaks, once it has said: see [`Era`].
    era: AtomicU8,
    /// Open `subscriptions/listen` streams (modern clients).
    listens: Mutex<Vec<Listen>>,
    /// Calls of a modern client waiting for servers' requests to turn into `input_required`.
    asks: Mutex<Vec<(u64, mpsc::Sender<ServerAsk>)>>,
    /// Requests sent to the client for servers, by the id the gateway gave them.
    waiting: Mutex<HashMap<u64, oneshot::Sender<Reply>>>,
    next_id: AtomicU64,
    last_active: AtomicU64,
    /// Exposed resource URIs the client subscribed to.
    pub subscriptions: Mutex<HashSet<String>>,
    /// The level the client set with `logging/setLevel`.
    log_level: Mutex<Option<LogLevel>>,
}

/// The protocol era of a client; notifications wait until it is known.
#[repr(u8)]
enum Era {
    Unknown,
    Legacy,
    Modern,
}

/// One `subscriptions/listen` stream: its request id and the notifications it accepted.
pub struct Listen {
    pub id: Value,
    /// The list-changed notifications it takes, by method.
    pub changes: Vec<&'static str>,
    /// Resource URIs (as the client knows them) whose updates it takes.
    pub uris: Vec<String>,
}

/// What one 2026-07-28 request declared in its `_meta`: they hold for that request only, so
/// concurrent requests of one client may declare different ones.
pub struct Declared {
    pub capabilities: Value,
    pub log_level: Option<LogLevel>,
    /// Where servers' requests for this call go (see [`Downstream::open_asks`]); `None` for
    /// requests that cannot turn into `input_required`.
    pub asks: Option<u64>,
}

impl Declared {
    /// Whether the request declared what a server's request needs (see [`can_answer`]).
    pub fn can_answer(&self, method: &str, params: Option<&RawValue>) -> bool {
        can_answer(&self.capabilities, method, params)
    }

    /// The capabilities a modern server is told of for this request (see [`bridged`]).
    pub fn for_servers(&self) -> Arc<RawValue> {
        Arc::from(bridged(&self.capabilities))
    }
}

/// A server's request for a modern client, which its call answers with `input_required`.
pub struct ServerAsk {
    pub upstream: Arc<Upstream>,
    pub id: Value,
    pub method: String,
    pub params: Option<Box<RawValue>>,
}

/// Syslog severities as MCP names them, least severe first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Debug,
    Info,
    Notice,
    Warning,
    Error,
    Critical,
    Alert,
    Emergency,
}

impl LogLevel {
    pub fn parse(name: &str) -> Option<LogLevel> {
        Some(match name {
            "debug" => LogLevel::Debug,
            "info" => LogLevel::Info,
            "notice" => LogLevel::Notice,
            "warning" => LogLevel::Warning,
            "error" => LogLevel::Error,
            "critical" => LogLevel::Critical,
            "alert" => LogLevel::Alert,
            "emergency" => LogLevel::Emergency,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Notice => "notice",
            LogLevel::Warning => "warning",
            LogLevel::Error => "error",
            LogLevel::Critical => "critical",
            LogLevel::Alert => "alert",
            LogLevel::Emergency => "emergency",
        }
    }
}

/// A server's `notifications/message` params as clients get them, with the server's name as
/// `logger`, and the message's level; `None` when the params are not an object.
pub fn log_message(
    params: Option<&RawValue>,
    server: &str,
) -> Option<(Box<RawValue>, Option<LogLevel>)> {
    let mut params: serde_json::Map<String, Value> = match params {
        Some(params) => serde_json::from_str(params.get()).ok()?,
        None => serde_json::Map::new(),
    };
    let level = params
        .get("level")
        .and_then(Value::as_str)
        .and_then(LogLevel::parse);
    params.insert("logger".into(), Value::from(server));
    Some((jsonrpc::to_raw(&Value::Object(params)), level))
}

/// Why a request to the client got no answer.
#[derive(Debug, thiserror::Error)]
#[error("the client went away before answering")]
pub struct ClientGone;

impl Downstream {
    pub fn new(
        id: u64,
        named_profile: Option<String>,
        client: String,
        out: Arc<Outbox>,
    ) -> Downstream {
        Downstream {
            id,
            named_profile,
            client,
            out,
            capabilities: Mutex::new(Value::Null),
            for_servers: Mutex::new(Arc::from(bridged(&Value::Null))),
            asks: Mutex::default(),
            era: AtomicU8::new(Era::Unknown as u8),
            listens: Mutex::default(),
            waiting: Mutex::default(),
            next_id: AtomicU64::new(1),
            last_active: AtomicU64::new(CLOCK.fetch_add(1, Ordering::Relaxed)),
            subscriptions: Mutex::default(),
            log_level: Mutex::default(),
        }
    }

    /// The profile this client is served from now.
    pub fn profile(&self, config: &Config) -> String {
        self.named_profile
            .clone()
            .unwrap_or_else(|| config.active.clone())
    }

    /// Records the client's `initialize` params.
    pub fn initialize(&self, params: Option<&Value>) {
        let capabilities = params
            .and_then(|p| p.get("capabilities"))
            .cloned()
            .unwrap_or(Value::Null);
        *self.for_servers.lock().unwrap_or_else(|e| e.into_inner()) =
            Arc::from(bridged(&capabilities));
        *self.lock_capabilities() = capabilities;
        self.era.store(Era::Legacy as u8, Ordering::Release);
    }

    /// Records that the client speaks 2026-07-28 (its requests carry their own `_meta`, so
    /// nothing it declares is kept here). True for the session's first such request.
    pub fn serve_modern(&self) -> bool {
        self.era
            .compare_exchange(
                Era::Unknown as u8,
                Era::Modern as u8,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok()
    }

    fn lock_capabilities(&self) -> std::sync::MutexGuard<'_, Value> {
        self.capabilities.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn is_modern(&self) -> bool {
        self.era() == Era::Modern as u8
    }

    /// Opens a place where servers' requests for one of this modern client's calls arrive.
    pub fn open_asks(&self) -> (u64, mpsc::Receiver<ServerAsk>) {
        let (tx, rx) = mpsc::channel(4);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.lock_asks().push((id, tx));
        (id, rx)
    }

    pub fn close_asks(&self, id: u64) {
        self.lock_asks().retain(|(open, _)| *open != id);
    }

    /// Hands a server's request to the call of this modern client that opened `sink`; gives it
    /// back when that call no longer waits (or there is none).
    pub fn hand_ask(&self, sink: Option<u64>, ask: ServerAsk) -> Result<(), ServerAsk> {
        let sink = sink.and_then(|wanted| {
            self.lock_asks()
                .iter()
                .find(|(open, _)| *open == wanted)
                .map(|(_, tx)| tx.clone())
        });
        match sink {
            Some(tx) => tx.try_send(ask).map_err(|err| err.into_inner()),
            None => Err(ask),
        }
    }

    fn lock_asks(&self) -> std::sync::MutexGuard<'_, Vec<(u64, mpsc::Sender<ServerAsk>)>> {
        self.asks.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn era(&self) -> u8 {
        self.era.load(Ordering::Acquire)
    }

    /// Whether the client completed the legacy handshake, so it hears list changes and logs.
    pub fn is_legacy(&self) -> bool {
        self.era() == Era::Legacy as u8
    }

    pub fn add_listen(&self, listen: Listen) {
        self.lock_listens().push(listen);
    }

    pub fn remove_listen(&self, id: &Value) {
        self.lock_listens().retain(|l| &l.id != id);
    }

    /// The ids of the open listen streams that `wanted` picks.
    pub fn listens_where(&self, wanted: impl Fn(&Listen) -> bool) -> Vec<Value> {
        self.lock_listens()
            .iter()
            .filter(|l| wanted(l))
            .map(|l| l.id.clone())
            .collect()
    }

    fn lock_listens(&self) -> std::sync::MutexGuard<'_, Vec<Listen>> {
        self.listens.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the client declared at `initialize` what a server's request needs (see
    /// [`can_answer`]).
    pub fn can_answer(&self, method: &str, params: Option<&RawValue>) -> bool {
        can_answer(&self.lock_capabilities(), method, params)
    }

    /// The client capabilities a modern server is told of on this legacy client's requests (see
    /// [`bridged`]).
    pub fn declared_for_servers(&self) -> Arc<RawValue> {
        Arc::clone(&self.for_servers.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Marks the client as just active, for choosing "the most recent session".
    pub fn touch(&self) {
        self.last_active
            .store(CLOCK.fetch_add(1, Ordering::Relaxed), Ordering::Relaxed);
    }

    pub fn last_active(&self) -> u64 {
        self.last_active.load(Ordering::Relaxed)
    }

    pub fn log_level(&self) -> Option<LogLevel> {
        *self.log_level.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn set_log_level(&self, level: LogLevel) {
        *self.log_level.lock().unwrap_or_else(|e| e.into_inner()) = Some(level);
    }

    /// Sends a response to the client, waiting for room: answers are never dropped.
    pub async fn send_line(&self, line: String) {
        self.out.send(line).await;
    }

    /// [`Downstream::send_line`] by the outbox's writer task, with the lines sent after it.
    pub async fn send_line_batched(&self, line: String) {
        self.out.send_batched(line).await;
    }

    /// Fails every server request waiting for this client's answer, stops notifications and
    /// closes the outbox (what it holds is still written); for a session that has ended.
    pub fn close(&self) {
        self.era.store(Era::Unknown as u8, Ordering::Release);
        self.out.close();
        self.waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// Queues a line for the client. A client that does not read its notifications loses them
    /// rather than holding up the server they came from.
    pub fn notify(&self, method: &str, params: Option<&RawValue>) {
        if self.era() == Era::Unknown as u8 {
            return;
        }
        let line = jsonrpc::notification_line(method, params);
        if !self.out.offer(line, NOTIFY_BUDGET) {
            tracing::debug!(
                session = self.id,
                method,
                "notification dropped: the client is not reading"
            );
        }
    }

    /// Sends a request to the client; returns the id it carries and where its answer will come.
    pub async fn request(
        &self,
        method: &str,
        params: Option<&RawValue>,
    ) -> Result<(u64, oneshot::Receiver<Reply>), ClientGone> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, tx);
        if !self
            .out
            .send(jsonrpc::request_line(
                id,
                method,
                params.map(RawValue::get).as_slice(),
            ))
            .await
        {
            self.forget(id);
            return Err(ClientGone);
        }
        Ok((id, rx))
    }

    /// Asks the client on the gateway's behalf (a modern server's `input_required` for a legacy
    /// client) and waits for its answer, at most `timeout`; a cancelled wait withdraws the
    /// request and is `None`.
    pub async fn ask(
        &self,
        method: &str,
        params: Option<&RawValue>,
        cancel: &CancellationToken,
        timeout: Duration,
    ) -> Option<Reply> {
        let gone = || Err(jsonrpc::error(code::INTERNAL_ERROR, ClientGone.to_string()));
        let Ok((id, answer)) = self.request(method, params).await else {
            return Some(gone());
        };
        tokio::select! {
            reply = answer => Some(reply.unwrap_or_else(|_| gone())),
            () = cancel.cancelled() => {
                self.withdraw(id, "the call was cancelled");
                None
            }
            () = tokio::time::sleep(timeout) => {
                self.withdraw(id, "timed out in the gateway");
                let message = format!("the client did not answer {method} within {} s", timeout.as_secs());
                Some(Err(jsonrpc::error(code::INTERNAL_ERROR, message)))
            }
        }
    }

    /// Tells the client that a request it was asked to answer is withdrawn.
    pub fn withdraw(&self, id: u64, reason: &str) {
        if self.forget(id) {
            let params = json!({"requestId": id, "reason": reason});
            self.notify("notifications/cancelled", Some(&jsonrpc::to_raw(&params)));
        }
    }

    /// Stops waiting for the answer to request `id` (the server withdrew it).
    pub fn forget(&self, id: u64) -> bool {
        self.waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id)
            .is_some()
    }

    /// Hands the client's response to whoever waits for it.
    pub fn answer(&self, message: Message) {
        let Some(id) = message.id.as_ref().and_then(Value::as_u64) else {
            tracing::debug!(
                session = self.id,
                "response with an id the gateway never sent"
            );
            return;
        };
        let waiter = self
            .waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
        match waiter {
            Some(waiter) => drop(waiter.send(message.into_reply())),
            None => tracing::debug!(session = self.id, id, "late or unknown response dropped"),
        }
    }
}

/// Whether `capabilities` declare what a server's request needs: `sampling` for
/// `sampling/createMessage`, `elicitation` (and `elicitation.url` for URL mode) for
/// `elicitation/create`, `roots` for `roots/list`. Other methods need nothing declared.
fn can_answer(capabilities: &Value, method: &str, params: Option<&RawValue>) -> bool {
    let declared = |path: &[&str]| {
        let mut at = Some(capabilities);
        for key in path {
            at = at.and_then(|v| v.get(key));
        }
        at.is_some_and(|v| !v.is_null())
    };
    match method {
        "sampling/createMessage" => declared(&["sampling"]),
        "roots/list" => declared(&["roots"]),
        "elicitation/create" => {
            let url_mode = params
                .and_then(|p| serde_json::from_str::<Value>(p.get()).ok())
                .is_some_and(|p| p.get("mode").and_then(Value::as_str) == Some("url"));
            if url_mode {
                declared(&["elicitation", "url"])
            } else {
                // A client that declares only `url` cannot show a form; an empty object is
                // how 2025-06-18 clients declare form support.
                let elicitation = capabilities.get("elicitation");
                match elicitation.and_then(Value::as_object) {
                    Some(modes) => modes.is_empty() || modes.contains_key("form"),
                    None => false,
                }
            }
        }
        _ => true,
    }
}

/// The client capabilities a modern server is told of: those the gateway can bring to the client
/// (sampling, elicitation and roots), as the client declared them. A legacy client answers them
/// as requests; a modern one gets the server's `input_required` as it is. JSON text, which
/// `modern::describe` splices into each request's `_meta`.
fn bridged(capabilities: &Value) -> Box<RawValue> {
    let bridged = ["sampling", "elicitation", "roots"]
        .into_iter()
        .filter_map(|key| Some((key.to_owned(), capabilities.get(key)?.clone())))
        .filter(|(_, value)| !value.is_null());
    jsonrpc::to_raw(&Value::Object(bridged.collect()))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn declaring(capabilities: Value) -> Downstream {
        let (out, _) = Outbox::new(tokio::io::sink(), MAX_QUEUED);
        let client = Downstream::new(1, None, "test".into(), out);
        client.initialize(Some(&json!({ "capabilities": capabilities })));
        client
    }

    fn can(client: &Downstream, method: &str, params: Value) -> bool {
        client.can_answer(method, Some(&jsonrpc::to_raw(&params)))
    }

    #[test]
    fn server_requests_need_the_matching_declared_capability() {
        let bare = declaring(json!({}));
        assert!(!can(&bare, "sampling/createMessage", json!({})));
        assert!(!can(&bare, "roots/list", json!({})));
        assert!(!can(&bare, "elicitation/create", json!({"mode": "form"})));
        assert!(can(&bare, "vendor/ask", json!({})));

        // 2025-06-18 clients declare form elicitation as an empty object.
        let old = declaring(json!({"elicitation": {}, "sampling": {}, "roots": {}}));
        assert!(can(&old, "sampling/createMessage", json!({})));
        assert!(can(&old, "roots/list", json!({})));
        assert!(can(
            &old,
            "elicitation/create",
            json!({"message": "form by default"})
        ));
        assert!(!can(&old, "elicitation/create", json!({"mode": "url"})));

        let url_only = declaring(json!({"elicitation": {"url": {}}}));
        assert!(can(&url_only, "elicitation/create", json!({"mode": "url"})));
        assert!(!can(
            &url_only,
            "elicitation/create",
            json!({"mode": "form"})
        ));
    }

    #[tokio::test]
    async fn notifications_for_a_client_that_does_not_read_stop_at_the_byte_budget() {
        let (ours, _theirs) = tokio::io::duplex(1);
        let (out, _write_queued) = Outbox::new(ours, MAX_QUEUED);
        let client = Downstream::new(1, None, "test".into(), Arc::clone(&out));
        client.initialize(None);
        let big = jsonrpc::to_raw(&json!({"data": "x".repeat(1024 * 1024)}));
        for _ in 0..64 {
            client.notify("notifications/big", Some(&big));
        }
        let queued = out.waiting();
        assert!(queued <= NOTIFY_BUDGET, "{queued} bytes queued");
        assert!(queued >= NOTIFY_BUDGET / 2, "only {queued} bytes queued");
    }

    #[test]
    fn a_requests_own_capabilities_decide_for_it() {
        let bare = Declared {
            capabilities: json!({}),
            log_level: None,
            asks: None,
        };
        let sampling = Declared {
            capabilities: json!({"sampling": {}, "extensions": {"x.y/z": {}}}),
            log_level: Some(LogLevel::Info),
            asks: Some(2),
        };
        assert!(!bare.can_answer("sampling/createMessage", None));
        assert!(sampling.can_answer("sampling/createMessage", None));
        assert_eq!(sampling.for_servers().get(), r#"{"sampling":{}}"#);
    }

    #[test]
    fn a_server_request_goes_to_the_call_that_opened_its_sink() {
        let (out, _) = Outbox::new(tokio::io::sink(), MAX_QUEUED);
        let client = Downstream::new(1, None, "test".into(), out);
        let (first, mut first_asks) = client.open_asks();
        let (_second, mut second_asks) = client.open_asks();
        let (upstream_out, _upstream_in) = tokio::io::duplex(64);
        let (events, _) = mpsc::channel(1);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let (read, write) = tokio::io::split(upstream_out);
            let upstream = Upstream::spawn(
                "s",
                ("p", None),
                (write, read),
                Arc::new(crate::logtail::LogTail::new("s")),
                1024,
                events,
            );
            let ask = |id: i64| ServerAsk {
                upstream: Arc::clone(&upstream),
                id: json!(id),
                method: "sampling/createMessage".into(),
                params: None,
            };
            assert!(client.hand_ask(Some(first), ask(1)).is_ok());
            assert_eq!(first_asks.try_recv().unwrap().id, json!(1));
            assert!(second_asks.try_recv().is_err());
            assert!(client.hand_ask(None, ask(2)).is_err());
            client.close_asks(first);
            assert!(client.hand_ask(Some(first), ask(3)).is_err());
        });
    }

    #[test]
    fn log_levels_order_by_severity() {
        assert!(LogLevel::parse("debug") < LogLevel::parse("warning"));
        assert!(LogLevel::parse("emergency") > LogLevel::parse("alert"));
        assert_eq!(LogLevel::parse("loud"), None);
        assert_eq!(LogLevel::Notice.name(), "notice");
    }
}
