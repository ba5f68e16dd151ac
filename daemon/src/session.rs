//! One MCP client session (a connection from `mcp-shim` after its hello): reads the client's
//! JSON-RPC lines, answers what the gateway owns (`initialize`, `ping`, the merged lists) and
//! routes the rest to the profile's servers.
//!
//! Requests run concurrently, each in its own task, and their answers go back through one writer
//! task in the order they complete. A request the client cancels gets no answer, as the protocol
//! asks, and its server is told. When the client goes away, its unfinished requests are dropped,
//! which cancels them on their servers and withdraws its subscriptions.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::StreamExt;
use serde_json::value::RawValue;
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;

use crate::downstream::{Downstream, Listen, ServerAsk};
use crate::gateway::{Gateway, GatewayError};
use crate::jsonrpc::{self, Kind, Message, ParseError, Reply, code};
use crate::lines::{Line, LineCodec, Reject, sniff_id};
use crate::lists::ListKind;
use crate::modern;
use crate::upstream::{Caller, UpstreamError};

/// Protocol revisions a legacy client may negotiate with the gateway, newest first.
const LEGACY_VERSIONS: [&str; 3] = ["2025-11-25", "2025-06-18", "2025-03-26"];

static NEXT_SESSION: AtomicU64 = AtomicU64::new(1);

struct Session {
    peer: Arc<Downstream>,
    gateway: Arc<Gateway>,
    /// Requests in flight, by the client's id (as JSON text), so the client can cancel them.
    in_flight: Mutex<HashMap<String, CancellationToken>>,
    /// Fires when the client's input ends: listen streams end then, other requests finish.
    closing: CancellationToken,
    /// Calls waiting for this (modern) client's answers to their servers' requests.
    parked: Mutex<HashMap<u64, Parked>>,
    next_parked: AtomicU64,
}

/// The key of the one input request an `input_required` result of the gateway holds.
const INPUT_KEY: &str = "server-request";

/// A call in its own task, stopped when dropped (the client went away or never answered).
struct CallTask(JoinHandle<Result<Reply, GatewayError>>);

impl Drop for CallTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A call waiting for the client's answer to `ask`.
struct Parked {
    call: CallTask,
    asks: mpsc::Receiver<ServerAsk>,
    sink: u64,
    ask: Unanswered,
}

/// A server request still to be answered; refused when dropped unanswered, so the server does
/// not wait forever for a client that never retries.
struct Unanswered(Option<ServerAsk>);

impl Drop for Unanswered {
    fn drop(&mut self) {
        if let Some(ask) = self.0.take() {
            let refusal = jsonrpc::error(code::INTERNAL_ERROR, "the client did not answer");
            ask.upstream.respond_now(&ask.id, &Err(refusal));
        }
    }
}

fn used_state() -> Box<RawValue> {
    jsonrpc::error(
        code::INVALID_PARAMS,
        "requestState was already used or its call has ended; call again",
    )
}

/// The client's answer to the gateway's input request: a result, or the error it gave instead.
fn input_response(params: Option<&Value>) -> Reply {
    let answer = params
        .and_then(|p| p.get("inputResponses"))
        .and_then(|r| r.get(INPUT_KEY));
    match answer {
        Some(error)
            if error.get("code").is_some_and(Value::is_i64) && error.get("message").is_some() =>
        {
            Err(jsonrpc::to_raw(error))
        }
        Some(result) => Ok(jsonrpc::to_raw(result)),
        None => Err(jsonrpc::error(
            code::INTERNAL_ERROR,
            "the client retried without answering",
        )),
    }
}

/// Serves the session until the client closes its side or the daemon shuts down. `profile` is the
/// one the client named; `None` follows the active profile. `client` names it in the audit log.
pub async fn serve<R, W>(
    mut lines: FramedRead<R, LineCodec>,
    writer: W,
    profile: Option<String>,
    client: String,
    gateway: Arc<Gateway>,
    shutdown: CancellationToken,
) where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (out, queue) = mpsc::channel(256);
    let writer = tokio::spawn(jsonrpc::write_lines(writer, queue));
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
        closing: CancellationToken::new(),
        parked: Mutex::default(),
        next_parked: AtomicU64::new(1),
    });
    let mut requests = JoinSet::new();
    loop {
        let line = tokio::select! {
            line = lines.next() => line,
            Some(_) = requests.join_next(), if !requests.is_empty() => continue,
            () = shutdown.cancelled() => break,
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
    tokio::select! {
        () = async { while requests.join_next().await.is_some() {} } => {}
        () = shutdown.cancelled() => {
            requests.abort_all();
            session.refuse_in_flight().await;
        }
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

    async fn dispatch(self: &Arc<Self>, line: &str, requests: &mut JoinSet<()>) {
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
                let key = id.to_string();
                let cancel = CancellationToken::new();
                self.lock_in_flight().insert(key.clone(), cancel.clone());
                let session = Arc::clone(self);
                self.peer.touch();
                requests.spawn(async move {
                    let reply = session.handle_request(message, cancel).await;
                    session.lock_in_flight().remove(&key);
                    if let Some(reply) = reply {
                        session.send(&id, &reply).await;
                    }
                });
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
        let ids: Vec<String> = self.lock_in_flight().drain().map(|(id, _)| id).collect();
        for id in ids {
            let id = serde_json::from_str(&id).unwrap_or_default();
            let error = jsonrpc::error(code::INTERNAL_ERROR, "mcp-gateway is shutting down");
            self.send(&id, &Err(error)).await;
        }
    }

    fn lock_in_flight(&self) -> std::sync::MutexGuard<'_, HashMap<String, CancellationToken>> {
        self.in_flight.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The answer to one request; `None` when the client cancelled it.
    async fn handle_request(&self, message: Message, cancel: CancellationToken) -> Option<Reply> {
        let method = message.method.as_deref().unwrap_or_default();
        let params = message.params.as_deref();
        let caller = Caller {
            owner: Some(Arc::clone(&self.peer)),
            cancel,
            timeout: self.gateway.request_timeout(),
        };
        // Only a request that mentions the protocol key pays for parsing its params here.
        if method == "server/discover"
            || params.is_some_and(|p| p.get().contains(modern::PROTOCOL_KEY))
        {
            let parsed = params.and_then(|p| serde_json::from_str::<Value>(p.get()).ok());
            if modern::is_modern(method, parsed.as_ref()) {
                let id = message.id.clone().unwrap_or_default();
                return self.handle_modern(method, &id, parsed, caller).await;
            }
        }
        let profile = self.peer.profile(&self.gateway.config.get());
        let gateway = &self.gateway;
        let outcome = match method {
            "initialize" => {
                let params = params.and_then(|p| serde_json::from_str::<Value>(p.get()).ok());
                self.peer.initialize(params.as_ref());
                return Some(Ok(initialize_result(params.as_ref())));
            }
            "ping" => return Some(Ok(jsonrpc::empty_object())),
            "tools/call" | "prompts/get" | "resources/read" | "completion/complete" => {
                gateway.call(&profile, method, params, &caller).await
            }
            "resources/subscribe" | "resources/unsubscribe" => {
                let subscribe = method == "resources/subscribe";
                gateway
                    .subscription(&self.peer, &profile, subscribe, params, &caller)
                    .await
            }
            "logging/setLevel" => gateway.set_log_level(&self.peer, &profile, params).await,
            _ => match ListKind::from_method(method) {
                Some(kind) => gateway
                    .list(&profile, kind, params)
                    .await
                    .map(|page| Ok(jsonrpc::to_raw(&page))),
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

    /// A 2026-07-28 request: checked on its own, answered without any handshake.
    async fn handle_modern(
        &self,
        method: &str,
        id: &Value,
        params: Option<Value>,
        caller: Caller,
    ) -> Option<Reply> {
        if let Err(error) = modern::check(params.as_ref()) {
            return Some(Err(error));
        }
        self.peer
            .serve_modern(modern::capabilities(params.as_ref()));
        let profile = self.peer.profile(&self.gateway.config.get());
        let gateway = &self.gateway;
        let relayed = modern::for_legacy_server(params.as_ref());
        let outcome = match method {
            "server/discover" => return Some(Ok(modern::discover())),
            "subscriptions/listen" => return self.listen(id, params, caller.cancel).await,
            "tools/call" | "prompts/get" | "resources/read" => {
                let outcome = self.call_with_input(method, params, relayed, caller).await;
                return Some(
                    outcome
                        .map(|r| modern::complete(r, method == "resources/read"))
                        .map_err(modern::translate_error),
                );
            }
            "completion/complete" => gateway
                .call(&profile, method, relayed.as_deref(), &caller)
                .await
                .map(|reply| reply.map(|r| modern::complete(r, method == "resources/read"))),
            _ => match ListKind::from_method(method) {
                Some(kind) => gateway
                    .list(&profile, kind, relayed.as_deref())
                    .await
                    .map(|page| Ok(modern::complete(jsonrpc::to_raw(&page), true))),
                None => {
                    let error =
                        format!("method not found: {method} (protocol {})", modern::VERSION);
                    return Some(Err(jsonrpc::error(code::METHOD_NOT_FOUND, error)));
                }
            },
        };
        let reply = match outcome {
            Ok(reply) => reply,
            Err(GatewayError::Upstream(UpstreamError::Cancelled)) => return None,
            Err(err) => Err(err.to_jsonrpc()),
        };
        Some(reply.map_err(modern::translate_error))
    }

    /// A modern client's call that a legacy server may interrupt with a request of its own. The
    /// call runs on in its own task; a server request for this client ends the client's request
    /// with an `input_required` result whose sealed `requestState` names the parked call, and the
    /// client's retry (answers in `inputResponses`) answers the server and waits on.
    async fn call_with_input(
        &self,
        method: &str,
        params: Option<Value>,
        relayed: Option<Box<RawValue>>,
        caller: Caller,
    ) -> Reply {
        let state = params
            .as_ref()
            .and_then(|p| p.get("requestState"))
            .and_then(Value::as_str);
        let (mut call, mut asks, sink) = match state {
            Some(state) => {
                let Parked {
                    call,
                    asks,
                    sink,
                    mut ask,
                } = self.unpark(state)?;
                let ask = ask.0.take().ok_or_else(used_state)?;
                let answer = input_response(params.as_ref());
                ask.upstream.respond(&ask.id, &answer).await;
                (call, asks, sink)
            }
            None => {
                let (sink, asks) = self.peer.open_asks();
                let gateway = Arc::clone(&self.gateway);
                let profile = self.peer.profile(&gateway.config.get());
                let method = method.to_owned();
                let call = tokio::spawn(async move {
                    gateway
                        .call(&profile, &method, relayed.as_deref(), &caller)
                        .await
                });
                (CallTask(call), asks, sink)
            }
        };
        tokio::select! {
            outcome = &mut call.0 => {
                self.peer.close_asks(sink);
                match outcome {
                    Ok(Ok(reply)) => reply,
                    Ok(Err(err)) => Err(err.to_jsonrpc()),
                    Err(err) => Err(jsonrpc::error(code::INTERNAL_ERROR, format!("the call failed: {err}"))),
                }
            }
            Some(ask) = asks.recv() => {
                self.park(Parked { call, asks, sink, ask: Unanswered(Some(ask)) })
            }
        }
    }

    /// Keeps a call waiting for the client's input; the `input_required` result asking for it.
    fn park(&self, parked: Parked) -> Reply {
        let key = self.next_parked.fetch_add(1, Ordering::Relaxed);
        let state = self
            .gateway
            .seal
            .seal(self.peer.id, key)
            .map_err(|err| jsonrpc::error(code::INTERNAL_ERROR, err.to_string()))?;
        let ask = parked.ask.0.as_ref().map(
            |ask| json!({ INPUT_KEY: {"method": ask.method, "params": ask.params.as_deref()} }),
        );
        self.lock_parked().insert(key, parked);
        Ok(jsonrpc::to_raw(&json!({
            "resultType": "input_required",
            "inputRequests": ask,
            "requestState": state,
        })))
    }

    /// The parked call a retry's `requestState` names.
    fn unpark(&self, state: &str) -> Result<Parked, Box<RawValue>> {
        let key = self
            .gateway
            .seal
            .open(state, self.peer.id)
            .map_err(|err| jsonrpc::error(code::INVALID_PARAMS, err.to_string()))?;
        self.lock_parked().remove(&key).ok_or_else(used_state)
    }

    fn lock_parked(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Parked>> {
        self.parked.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `subscriptions/listen`: acknowledges what it can deliver, then keeps the stream open
    /// (notifications tagged with its id) until the client cancels it or goes away.
    async fn listen(
        &self,
        id: &Value,
        params: Option<Value>,
        cancel: CancellationToken,
    ) -> Option<Reply> {
        let profile = self.peer.profile(&self.gateway.config.get());
        let wanted = params
            .as_ref()
            .and_then(|p| p.get("notifications"))
            .cloned()
            .unwrap_or_default();
        let mut accepted = serde_json::Map::new();
        let mut changes = Vec::new();
        for (key, kind) in [
            ("toolsListChanged", ListKind::Tools),
            ("promptsListChanged", ListKind::Prompts),
            ("resourcesListChanged", ListKind::Resources),
        ] {
            if wanted.get(key).and_then(Value::as_bool) == Some(true) {
                accepted.insert(key.into(), Value::Bool(true));
                changes.push(kind.changed_notification());
            }
        }
        let requested = wanted
            .get("resourceSubscriptions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str);
        let mut uris = Vec::new();
        for uri in requested {
            let params = jsonrpc::to_raw(&json!({ "uri": uri }));
            let caller = Caller::gateway(self.gateway.request_timeout());
            let subscribed = self
                .gateway
                .subscription(&self.peer, &profile, true, Some(&params), &caller)
                .await;
            if matches!(subscribed, Ok(Ok(_))) {
                uris.push(uri.to_owned());
            }
        }
        if !uris.is_empty() {
            accepted.insert("resourceSubscriptions".into(), json!(uris));
        }
        let ack = jsonrpc::to_raw(&json!({ "notifications": accepted }));
        self.peer.notify(
            "notifications/subscriptions/acknowledged",
            Some(&modern::tagged(Some(&ack), id)),
        );
        self.peer.add_listen(Listen {
            id: id.clone(),
            changes,
            uris: uris.clone(),
        });
        tokio::select! {
            () = cancel.cancelled() => {}
            () = self.closing.cancelled() => {}
        }
        self.peer.remove_listen(id);
        for uri in uris {
            let params = jsonrpc::to_raw(&json!({ "uri": uri }));
            let caller = Caller::gateway(self.gateway.request_timeout());
            let _ = self
                .gateway
                .subscription(&self.peer, &profile, false, Some(&params), &caller)
                .await;
        }
        None
    }

    async fn handle_notification(&self, message: Message) {
        let method = message.method.as_deref().unwrap_or_default();
        match method {
            "notifications/initialized" => {}
            "notifications/cancelled" => {
                let request = message
                    .params
                    .as_deref()
                    .and_then(|p| serde_json::from_str::<Value>(p.get()).ok())
                    .and_then(|p| p.get("requestId").map(Value::to_string));
                if let Some(cancel) = request.and_then(|key| self.lock_in_flight().remove(&key)) {
                    cancel.cancel();
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
                    .notify_servers(&profile, method, message.params.as_deref())
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
