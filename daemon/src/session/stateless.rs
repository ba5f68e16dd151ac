//! The 2026-07-28 side of a session: requests that describe themselves, answered without a
//! handshake; `subscriptions/listen` streams; and calls a legacy server interrupts with a request
//! for the client, which park and come back to the client as `input_required` (a modern server's
//! own `input_required` is sealed and unsealed in `gateway/input.rs`).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use serde_json::value::RawValue;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::Session;
use crate::downstream::{Declared, Listen, LogLevel, ServerAsk};
use crate::gateway::GatewayError;
use crate::jsonrpc::{self, Reply, code};
use crate::lists::ListKind;
use crate::modern;
use crate::parking::Sealed;
use crate::upstream::{Caller, UpstreamError};

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
pub(super) struct Parked {
    call: CallTask,
    asks: mpsc::Receiver<ServerAsk>,
    sink: u64,
    ask: Unanswered,
    /// When the client's state for it expires.
    expires: Instant,
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

impl Session {
    /// A 2026-07-28 request: checked on its own, answered without any handshake.
    pub(super) async fn handle_modern(
        &self,
        method: &str,
        id: &Value,
        params: Option<Value>,
        mut caller: Caller,
    ) -> Option<Reply> {
        if let Err(error) = modern::check(params.as_ref()) {
            return Some(Err(error));
        }
        let first = self.peer.serve_modern();
        let profile = self.peer.profile(&self.gateway.config.get());
        let gateway = &self.gateway;
        if first {
            // A modern client has no handshake; its first request opens the session.
            gateway.warm(&profile);
        }
        let log_level = modern::log_level(params.as_ref()).and_then(LogLevel::parse);
        if let Some(level) = log_level
            && self.peer.log_level() != Some(level)
        {
            // Shared legacy servers log at one level: at least this request's from now on.
            gateway.log_at(&self.peer, &profile, level).await;
        }
        let declared = Declared {
            capabilities: modern::capabilities(params.as_ref()),
            log_level,
            asks: None,
        };
        let relayed = modern::for_legacy_server(params.as_ref());
        let outcome = match method {
            "server/discover" => return Some(Ok(modern::discover())),
            modern::LISTEN => return self.listen(id, params, caller.cancel).await,
            "tools/call" | "prompts/get" | "resources/read" => {
                let outcome = self
                    .call_with_input(method, params, relayed, (caller, declared))
                    .await;
                return Some(
                    outcome
                        .map(|r| modern::complete(r, method == "resources/read"))
                        .map_err(modern::translate_error),
                );
            }
            "completion/complete" => {
                caller.declared = Some(Arc::new(declared));
                gateway
                    .call(&profile, method, relayed.as_deref(), &caller)
                    .await
                    .map(|reply| reply.map(|r| modern::complete(r, false)))
            }
            _ => match ListKind::from_method(method) {
                Some(kind) => gateway
                    .list(&profile, kind, relayed.as_deref(), &modern::list_members())
                    .await
                    .map(Ok),
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
        (mut caller, declared): (Caller, Declared),
    ) -> Reply {
        let state = params
            .as_ref()
            .and_then(|p| p.get("requestState"))
            .and_then(Value::as_str);
        let parked = match state {
            Some(state) => self.unpark(state)?,
            None => None,
        };
        let (mut call, mut asks, sink) = match parked {
            Some(Parked {
                call,
                asks,
                sink,
                mut ask,
                ..
            }) => {
                let ask = ask.0.take().ok_or_else(used_state)?;
                let answer = input_response(params.as_ref());
                let profile = self.peer.profile(&self.gateway.config.get());
                let name = ["name", "uri"]
                    .into_iter()
                    .find_map(|member| params.as_ref()?.get(member)?.as_str())
                    .unwrap_or_default();
                let screened = self.gateway.screen_answer(
                    (&profile, &self.peer.client),
                    (method, name, ask.upstream.name()),
                    answer,
                );
                let answer = match screened {
                    Ok(answer) => answer,
                    Err(blocked) => {
                        // The server is refused the answer and the call ends: dropping it
                        // cancels it on the server.
                        let refusal = jsonrpc::error(code::INTERNAL_ERROR, blocked.to_string());
                        ask.upstream.respond(&ask.id, &Err(refusal)).await;
                        self.peer.close_asks(sink);
                        return Err(blocked.to_jsonrpc());
                    }
                };
                ask.upstream.respond(&ask.id, &answer).await;
                (call, asks, sink)
            }
            // A fresh call, or the retry of a modern server's own `input_required`, whose state
            // the gateway unseals when it routes the call.
            None => {
                let (sink, asks) = self.peer.open_asks();
                caller.declared = Some(Arc::new(Declared {
                    asks: Some(sink),
                    ..declared
                }));
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
                let expires = Instant::now() + self.gateway.seal.ttl();
                self.park(Parked { call, asks, sink, ask: Unanswered(Some(ask)), expires })
            }
        }
    }

    /// Keeps a call waiting for the client's input; the `input_required` result asking for it.
    fn park(&self, parked: Parked) -> Reply {
        let key = self.next_parked.fetch_add(1, Ordering::Relaxed);
        let state = self
            .gateway
            .seal
            .seal(self.peer.id, &Sealed::Parked(key))
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

    /// The parked call a retry's `requestState` names; `None` for a state that wraps a modern
    /// server's own.
    fn unpark(&self, state: &str) -> Result<Option<Parked>, Box<RawValue>> {
        let sealed = self.gateway.seal.open(state, self.peer.id);
        let mut parked = self.lock_parked();
        // Calls whose clients let their state expire are given up here, which refuses their
        // servers' requests: the state can no longer resume them.
        let now = Instant::now();
        parked.retain(|_, call| call.expires > now);
        match sealed.map_err(|err| jsonrpc::error(code::INVALID_PARAMS, err.to_string()))? {
            Sealed::Parked(key) => parked.remove(&key).map(Some).ok_or_else(used_state),
            Sealed::Server { .. } => Ok(None),
        }
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
}
