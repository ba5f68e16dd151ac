//! One MCP client session (a connection from `mcp-shim` after its hello): reads the client's
//! JSON-RPC lines, answers what the gateway owns (`initialize`, `ping`, the merged lists) and
//! routes the rest to the profile's servers.
//!
//! Requests run concurrently on the session's own task (no task per request, so a server's answer
//! wakes only this task), and their answers go back in the order they complete: a lone answer
//! written by this task itself while the client keeps up, answers among others by the outbox's
//! writer task, several in one write (see `outbox`). A request the client cancels gets no answer,
//! as the protocol asks, and its server is told. When the client goes away, its unfinished
//! requests are dropped, which cancels them on their servers and withdraws its subscriptions.

mod stateless;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::future::BoxFuture;
use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, StreamExt};
use serde_json::value::RawValue;
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;

use crate::downstream::{self, Downstream};
use crate::gateway::{Gateway, GatewayError};
use crate::hangup::Hangup;
use crate::jsonrpc::{self, Kind, Message, ParseError, Reply, code};
use crate::lines::{Line, LineCodec, Reject, sniff_id};
use crate::lists::ListKind;
use crate::modern;
use crate::outbox::Outbox;
use crate::upstream::{Caller, UpstreamError};

/// The session's requests in flight, polled by the session's task itself: dropping one cancels
/// it (and tells its server).
type Requests = FuturesUnordered<BoxFuture<'static, ()>>;

/// Protocol revisions a legacy client may negotiate with the gateway, newest first.
const LEGACY_VERSIONS: [&str; 3] = ["2025-11-25", "2025-06-18", "2025-03-26"];

static NEXT_SESSION: AtomicU64 = AtomicU64::new(1);

/// Requests one session may have in flight at once.
const MAX_IN_FLIGHT: usize = 128;

struct Session {
    peer: Arc<Downstream>,
    gateway: Arc<Gateway>,
    /// Requests in flight, so the client can cancel them by their ids. A list, not a map: it
    /// holds at most [`MAX_IN_FLIGHT`], and a call then makes no key of the client's id.
    in_flight: Mutex<Vec<InFlight>>,
    next_request: AtomicU64,
    /// Fires when the client's input ends: listen streams end then, other requests finish.
    closing: CancellationToken,
    /// Calls waiting for this (modern) client's answers to their servers' requests.
    parked: Mutex<HashMap<u64, stateless::Parked>>,
    next_parked: AtomicU64,
}

/// Why a session ends before its client has finished with it.
enum Stop {
    /// The client is gone entirely (see [`Hangup`]).
    HungUp,
    /// The daemon is shutting down.
    Shutdown,
}

/// A request in flight: the session's own number for it, and the client's id.
struct InFlight {
    seq: u64,
    id: Value,
    cancel: CancellationToken,
    /// A `subscriptions/listen` stream, which stays open: it does not count as another request
    /// in flight when an answer decides who writes it.
    listen: bool,
}

/// Serves the session until the client closes its side or the daemon shuts down. `hangup`
/// watches where the client's answers go, so that a client gone entirely (killed) has its
/// unfinished requests cancelled instead of waiting for answers nobody will read. `profile` is the one the
/// client named; `None` follows the active profile. `client` names it in the audit log.
pub async fn serve<R, W>(
    mut lines: FramedRead<R, LineCodec>,
    writer: W,
    hangup: Hangup,
    profile: Option<String>,
    client: String,
    gateway: Arc<Gateway>,
    shutdown: CancellationToken,
) where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (out, write_queued) = Outbox::new(writer, downstream::MAX_QUEUED);
    let writer = tokio::spawn(write_queued);
    let peer = Arc::new(Downstream::new(
        NEXT_SESSION.fetch_add(1, Ordering::Relaxed),
        profile,
        client,
        out,
    ));
    gateway.register(Arc::clone(&peer));
    let session = Arc::new(Session {
        peer: Arc::clone(&peer),
        gateway: Arc::clone(&gateway),
        in_flight: Mutex::default(),
        next_request: AtomicU64::new(1),
        closing: CancellationToken::new(),
        parked: Mutex::default(),
        next_parked: AtomicU64::new(1),
    });
    let mut requests = Requests::new();
    // A client whose stdin was handed over may be gone (its shim killed) while its input stays
    // open, so the hang-up ends reading too, not only waiting for answers. The two watches sit in
    // a `FuturesUnordered`, which polls them only once one has woken it: as branches of the
    // loop's `select!` they were polled on each of the session's wake-ups, several per call.
    let mut stop: FuturesUnordered<_> = std::iter::once(async {
        tokio::select! {
            () = hangup.hung_up() => Stop::HungUp,
            () = shutdown.cancelled() => Stop::Shutdown,
        }
    })
    .collect();
    let mut why = None;
    loop {
        let line = tokio::select! {
            // A client at its limit is not read until one of its requests ends, so one that sends
            // without reading its answers holds at most this many of them in the daemon.
            line = lines.next(), if requests.len() < MAX_IN_FLIGHT => line,
            Some(()) = requests.next(), if !requests.is_empty() => continue,
            Some(stopped) = stop.next() => {
                why = Some(stopped);
                break;
            }
        };
        match line {
            None => break,
            Some(Ok(Line::Text(line))) => session.dispatch(&line, &mut requests).await,
            Some(Ok(Line::Rejected { head, reason })) => {
                let (code, message) = match reason {
                    Reject::TooLong => (
                        code::INVALID_REQUEST,
                        format!("message longer than {} bytes", lines.decoder().max()),
                    ),
                    Reject::NotUtf8 => (code::PARSE_ERROR, "message is not UTF-8".to_owned()),
                };
                let id = sniff_id(&head).unwrap_or_default();
                session.send(&id, &Err(jsonrpc::error(code, message))).await;
            }
            Some(Err(err)) => {
                tracing::debug!("session read failed: {err}");
                break;
            }
        }
    }
    // A client that closed its input may still wait for answers to what it already sent, unless
    // the daemon is shutting down.
    session.closing.cancel();
    if why.is_none() {
        why = tokio::select! {
            () = async { while requests.next().await.is_some() {} } => None,
            Some(stopped) = stop.next() => Some(stopped),
        };
    }
    match why {
        Some(Stop::Shutdown) => {
            requests.clear();
            session.refuse_in_flight().await;
        }
        Some(Stop::HungUp) if !requests.is_empty() => {
            // Dropping a request tells its server that the client went away.
            tracing::info!(
                session = peer.id,
                requests = requests.len(),
                "client gone; cancelling its requests in flight"
            );
            requests.clear();
        }
        Some(Stop::HungUp) | None => {}
    }
    drop(requests);
    gateway.unregister(&peer).await;
    peer.close();
    drop((session, peer));
    let _ = writer.await;
}

impl Session {
    async fn send(&self, id: &Value, reply: &Reply) {
        self.peer.send_line(jsonrpc::response_line(id, reply)).await;
    }

    async fn dispatch(self: &Arc<Self>, line: &str, requests: &mut Requests) {
        if line.trim().is_empty() {
            return;
        }
        let message = match Message::parse(line) {
            Ok(message) => message,
            Err(err) => {
                let code = match err {
                    ParseError::Batch => code::INVALID_REQUEST,
                    ParseError::Json(_) => code::PARSE_ERROR,
                };
                let error = jsonrpc::error(code, err.to_string());
                return self.send(&Value::Null, &Err(error)).await;
            }
        };
        match message.kind() {
            Kind::Request => {
                let id = message.id.clone().unwrap_or_default();
                let seq = self.next_request.fetch_add(1, Ordering::Relaxed);
                let cancel = CancellationToken::new();
                self.lock_in_flight().push(InFlight {
                    seq,
                    id: id.clone(),
                    cancel: cancel.clone(),
                    listen: message.method.as_deref() == Some(crate::modern::LISTEN),
                });
                let session = Arc::clone(self);
                self.peer.touch();
                let request = async move {
                    let reply = session.handle_request(message, cancel).await;
                    let alone = session.finished(seq);
                    if let Some(reply) = reply {
                        let line = jsonrpc::response_line(&id, &reply);
                        // A lone answer is written at once; one among others in flight is left
                        // to the writer task, so that answers completing together (a client's
                        // parallel calls) go out in one write.
                        if alone {
                            session.peer.send_line(line).await;
                        } else {
                            session.peer.send_line_batched(line).await;
                        }
                    }
                };
                // A request that panics fails alone, as a task of its own would.
                requests.push(
                    std::panic::AssertUnwindSafe(request)
                        .catch_unwind()
                        .map(|_| ())
                        .boxed(),
                );
            }
            Kind::Notification => self.handle_notification(message).await,
            Kind::Response => self.peer.answer(message),
            Kind::Invalid => {
                let id = message.id.unwrap_or_default();
                let error = jsonrpc::error(
                    code::INVALID_REQUEST,
                    "not a JSON-RPC request, notification or response",
                );
                self.send(&id, &Err(error)).await;
            }
        }
    }

    /// Answers every request still in flight with an error, so that a client cut off by the
    /// daemon's shutdown learns it at once instead of waiting for answers that will not come.
    async fn refuse_in_flight(&self) {
        let refused: Vec<InFlight> = self.lock_in_flight().drain(..).collect();
        for request in refused {
            let error = jsonrpc::error(code::INTERNAL_ERROR, "mcp-gateway is shutting down");
            self.send(&request.id, &Err(error)).await;
        }
    }

    /// Takes request `seq` off the list once it has ended; whether no other is in flight but
    /// listen streams.
    fn finished(&self, seq: u64) -> bool {
        let mut in_flight = self.lock_in_flight();
        if let Some(at) = in_flight.iter().position(|request| request.seq == seq) {
            in_flight.swap_remove(at);
        }
        in_flight.iter().all(|request| request.listen)
    }

    fn lock_in_flight(&self) -> std::sync::MutexGuard<'_, Vec<InFlight>> {
        self.in_flight.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The answer to one request; `None` when the client cancelled it.
    async fn handle_request(&self, message: Message, cancel: CancellationToken) -> Option<Reply> {
        let method = message.method.as_deref().unwrap_or_default();
        let params = message.params.as_deref();
        let caller = Caller {
            owner: Some(Arc::clone(&self.peer)),
            declared: None,
            cancel,
            timeout: self.gateway.request_timeout(),
        };
        // Only a request that mentions the protocol key pays for parsing its params here.
        if method == "server/discover" || params.is_some_and(|p| modern::mentions_protocol(p.get()))
        {
            let parsed = params.and_then(|p| serde_json::from_str::<Value>(p.get()).ok());
            if modern::is_modern(method, parsed.as_ref()) {
                let id = message.id.clone().unwrap_or_default();
                return Box::pin(self.handle_modern(method, &id, parsed, caller)).await;
            }
        }
        let profile = self.peer.profile(&self.gateway.config.get());
        let gateway = &self.gateway;
        // Every branch but the calls is boxed: a request's future is as large as its largest
        // branch, and is copied whole when it is boxed into the session's set, so a listing's
        // (several KB) would otherwise be paid by every `tools/call`.
        let outcome = match method {
            "initialize" => {
                let params = params.and_then(|p| serde_json::from_str::<Value>(p.get()).ok());
                self.peer.initialize(params.as_ref());
                // The client's first call should find its server started.
                gateway.warm(&profile);
                return Some(Ok(initialize_result(params.as_ref())));
            }
            "ping" => return Some(Ok(jsonrpc::empty_object())),
            "tools/call" | "prompts/get" | "resources/read" | "completion/complete" => {
                gateway.call(&profile, method, params, &caller).await
            }
            "resources/subscribe" | "resources/unsubscribe" => {
                let subscribe = method == "resources/subscribe";
                Box::pin(gateway.subscription(&self.peer, &profile, subscribe, params, &caller))
                    .await
            }
            "logging/setLevel" => {
                Box::pin(gateway.set_log_level(&self.peer, &profile, params)).await
            }
            _ => match ListKind::from_method(method) {
                Some(kind) => Box::pin(gateway.list(&profile, kind, params, &[]))
                    .await
                    .map(Ok),
                None => {
                    let error = format!("method not found: {method}");
                    return Some(Err(jsonrpc::error(code::METHOD_NOT_FOUND, error)));
                }
            },
        };
        match outcome {
            Ok(reply) => Some(reply),
            Err(GatewayError::Upstream(UpstreamError::Cancelled)) => None,
            Err(err) => Some(Err(err.to_jsonrpc())),
        }
    }

    async fn handle_notification(&self, message: Message) {
        let method = message.method.as_deref().unwrap_or_default();
        match method {
            "notifications/initialized" => {}
            "notifications/cancelled" => {
                let params = message
                    .params
                    .as_deref()
                    .and_then(|p| serde_json::from_str::<Value>(p.get()).ok());
                if let Some(id) = params.as_ref().and_then(|p| p.get("requestId")) {
                    // The oldest request of that id not cancelled yet: a client that reused an id
                    // in flight cancels them in the order it sent them.
                    let in_flight = self.lock_in_flight();
                    let oldest = in_flight
                        .iter()
                        .filter(|r| r.id == *id && !r.cancel.is_cancelled())
                        .min_by_key(|r| r.seq);
                    if let Some(request) = oldest {
                        request.cancel.cancel();
                    }
                }
            }
            // Progress from the client would be about a server's request to it; servers are not
            // told which of their tokens came back through which client, so it is not relayed.
            "notifications/progress" => {
                tracing::debug!(session = self.peer.id, "client progress not relayed")
            }
            _ => {
                let profile = self.peer.profile(&self.gateway.config.get());
                self.gateway
                    .notify_servers(&self.peer, &profile, method, message.params.as_deref())
                    .await;
            }
        }
    }
}

/// The gateway's own `initialize` answer: it is one server to the client, whatever it runs, and
/// it offers every feature it can relay.
fn initialize_result(params: Option<&Value>) -> Box<RawValue> {
    let requested = params
        .and_then(|p| p.get("protocolVersion"))
        .and_then(Value::as_str);
    // Echo the client's version when the gateway speaks it, else offer the newest legacy one, as
    // the lifecycle rules ask.
    let version = requested
        .filter(|v| LEGACY_VERSIONS.contains(v))
        .unwrap_or(LEGACY_VERSIONS[0]);
    jsonrpc::to_raw(&json!({
        "protocolVersion": version,
        "capabilities": {
            "tools": { "listChanged": true },
            "prompts": { "listChanged": true },
            "resources": { "subscribe": true, "listChanged": true },
            "completions": {},
            "logging": {},
        },
        "serverInfo": { "name": "mcp-gateway", "version": env!("CARGO_PKG_VERSION") },
    }))
}
