//! Everything that flows to clients without a request of theirs, and the per-client state it
//! needs: which clients are connected to which profile, their log levels and subscriptions.
//!
//! Servers are shared by every client of a profile, so the gateway decides who hears what: log
//! messages go to every client of the profile (above its level, with the server's name as
//! logger), list changes to every client once the burst is over and the merged list rebuilt,
//! resource updates to subscribers only, and a server's request to the client whose call it is
//! working on.

use std::sync::Arc;
use std::time::Duration;

use serde_json::value::RawValue;
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;

use super::{Gateway, GatewayError, parse_params, string_member};
use crate::downstream::{Downstream, LogLevel, ServerAsk, log_message};
use crate::jsonrpc::{self, Reply, code};
use crate::lists::ListKind;
use crate::upstream::{Caller, Era, InFlight, NewQueues, ServerEvent, Upstream};
use crate::{modern, names};

/// How long a burst of list changes is collected before clients hear of it once.
const DEBOUNCE: Duration = Duration::from_millis(100);

impl Gateway {
    pub fn register(&self, session: Arc<Downstream>) {
        self.pool.open_session(session.id);
        self.lock_sessions().insert(session.id, session);
    }

    /// Forgets a client that went away, withdraws the subscriptions it held and removes its own
    /// containers of session-isolated servers.
    pub async fn unregister(&self, session: &Downstream) {
        self.lock_sessions().remove(&session.id);
        self.pool.end_session(session.id).await;
        let profile = session.profile(&self.config.get());
        let uris: Vec<String> = session
            .subscriptions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
            .collect();
        for uri in uris {
            if let Err(err) = self.release_subscription(&profile, &uri).await {
                tracing::debug!(profile, uri, "unsubscribing a closed session: {err}");
            }
        }
    }

    fn lock_sessions(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<u64, Arc<Downstream>>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The clients currently served from `profile`, both eras.
    fn clients_of(&self, profile: &str) -> Vec<Arc<Downstream>> {
        let config = self.config.get();
        self.lock_sessions()
            .values()
            .filter(|s| s.profile(&config) == profile)
            .cloned()
            .collect()
    }

    /// How many clients each profile serves now, both eras.
    pub fn session_counts(&self) -> std::collections::HashMap<String, u32> {
        let config = self.config.get();
        let mut counts = std::collections::HashMap::new();
        for session in self.lock_sessions().values() {
            *counts.entry(session.profile(&config)).or_default() += 1;
        }
        counts
    }

    /// The legacy clients currently served from `profile`: those that hear every change.
    fn sessions_of(&self, profile: &str) -> Vec<Arc<Downstream>> {
        let mut clients = self.clients_of(profile);
        clients.retain(|s| s.is_legacy());
        clients
    }

    /// Tells every client that the configuration changed what it may see.
    pub fn config_changed(&self) {
        let sessions: Vec<_> = self.lock_sessions().values().cloned().collect();
        for session in sessions {
            for kind in [ListKind::Tools, ListKind::Prompts, ListKind::Resources] {
                announce(&session, kind.changed_notification());
            }
        }
    }

    /// `resources/subscribe` and `resources/unsubscribe`: the server hears of the first
    /// subscriber and of the last one leaving; every client's own set is kept here.
    pub async fn subscription(
        &self,
        session: &Downstream,
        profile: &str,
        subscribe: bool,
        params: Option<&RawValue>,
        caller: &Caller,
    ) -> Result<Reply, GatewayError> {
        let params = parse_params(params)?;
        let uri = string_member(&params, "uri")?;
        let changed = {
            let mut mine = session
                .subscriptions
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if subscribe {
                mine.insert(uri.clone())
            } else {
                mine.remove(&uri)
            }
        };
        if !changed {
            return Ok(Ok(jsonrpc::empty_object()));
        }
        let result = if subscribe {
            self.take_subscription(profile, &uri, params, caller).await
        } else {
            self.release_subscription(profile, &uri).await
        };
        if result.as_ref().map_or(true, |reply| reply.is_err()) {
            // Undo this client's part so that a retry is not taken for a repeat.
            let mut mine = session
                .subscriptions
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if subscribe {
                mine.remove(&uri);
            } else {
                mine.insert(uri);
            }
        }
        result
    }

    async fn take_subscription(
        &self,
        profile: &str,
        uri: &str,
        mut params: Map<String, Value>,
        caller: &Caller,
    ) -> Result<Reply, GatewayError> {
        let route = self.route_uri(profile, uri).await?;
        let key = (
            profile.to_owned(),
            route.server.to_string(),
            route.original.to_string(),
        );
        let first = {
            let mut counts = self.lock_subscriptions();
            let count = counts.entry(key.clone()).or_default();
            *count += 1;
            *count == 1
        };
        if !first {
            return Ok(Ok(jsonrpc::empty_object()));
        }
        let upstream = self
            .upstream(profile, &route.server, super::session_of(caller))
            .await?;
        let reply = if upstream.era() == Some(Era::Modern) {
            // A modern server has no `resources/subscribe`: a listen stream naming the
            // resource stands for the subscription until the last subscriber leaves. The
            // guard closes it too if this subscribe is itself abandoned half-way.
            let listen = tokio_util::sync::CancellationToken::new();
            let guard = listen.clone().drop_guard();
            let reply = upstream
                .listen_to(&route.original, listen, caller.timeout)
                .await
                .map_err(GatewayError::from);
            if matches!(reply, Ok(Ok(_))) {
                self.lock_listens().insert(key.clone(), guard);
            }
            reply
        } else {
            params.insert("uri".into(), Value::from(&*route.original));
            let params = jsonrpc::to_raw(&Value::Object(params));
            upstream
                .request("resources/subscribe", Some(&params), caller)
                .await
                .map_err(GatewayError::from)
        };
        if !matches!(reply, Ok(Ok(_))) {
            self.drop_count(&key);
        }
        reply
    }

    async fn release_subscription(&self, profile: &str, uri: &str) -> Result<Reply, GatewayError> {
        let route = self.route_uri(profile, uri).await?;
        let key = (
            profile.to_owned(),
            route.server.to_string(),
            route.original.to_string(),
        );
        if !self.drop_count(&key) {
            return Ok(Ok(jsonrpc::empty_object()));
        }
        // Dropping a modern server's listen stream cancels it there.
        if self.lock_listens().remove(&key).is_some() {
            return Ok(Ok(jsonrpc::empty_object()));
        }
        let params = Map::from_iter([("uri".to_owned(), Value::from(&*route.original))]);
        self.forward(
            profile,
            &route.server,
            "resources/unsubscribe",
            &params,
            &Caller::gateway(self.request_timeout),
        )
        .await
    }

    /// Counts one subscriber less; true when it was the last.
    fn drop_count(&self, key: &(String, String, String)) -> bool {
        let mut counts = self.lock_subscriptions();
        match counts.get_mut(key) {
            Some(count) if *count > 1 => {
                *count -= 1;
                false
            }
            Some(_) => {
                counts.remove(key);
                true
            }
            None => false,
        }
    }

    fn lock_listens(
        &self,
    ) -> std::sync::MutexGuard<
        '_,
        std::collections::HashMap<(String, String, String), tokio_util::sync::DropGuard>,
    > {
        self.resource_listens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    fn lock_subscriptions(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<(String, String, String), usize>> {
        self.subscriptions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `logging/setLevel`: a shared server logs at the most verbose level any of its clients
    /// asked for; each client is then only sent messages at or above its own level.
    pub async fn set_log_level(
        &self,
        session: &Downstream,
        profile: &str,
        params: Option<&RawValue>,
    ) -> Result<Reply, GatewayError> {
        let params = parse_params(params)?;
        let level = string_member(&params, "level")?;
        let level = LogLevel::parse(&level)
            .ok_or_else(|| GatewayError::InvalidParams(format!("unknown log level {level:?}")))?;
        self.log_at(session, profile, level).await;
        Ok(Ok(jsonrpc::empty_object()))
    }

    /// Records `level` as the session's and has the profile's legacy servers log at the most
    /// verbose level any of its clients asked for (a 2026-07-28 client by its requests'
    /// `io.modelcontextprotocol/logLevel`); modern servers take each request's level instead.
    pub async fn log_at(&self, session: &Downstream, profile: &str, level: LogLevel) {
        session.set_log_level(level);
        let wanted = self
            .clients_of(profile)
            .iter()
            .filter_map(|s| s.log_level())
            .chain([level])
            .min()
            .unwrap_or(level);
        let servers = self
            .config
            .get()
            .profile(profile)
            .map(|p| p.servers)
            .unwrap_or_default();
        let params = json!({"level": wanted.name()});
        futures_util::future::join_all(servers.iter().map(|server| async {
            let upstream = self.upstream(profile, server, Some(session.id)).await?;
            // Modern servers take a log level per request instead; the method is gone there.
            if upstream.supports("logging") && upstream.era() == Some(Era::Legacy) {
                let params = jsonrpc::to_raw(&params);
                upstream
                    .request(
                        "logging/setLevel",
                        Some(&params),
                        &Caller::gateway(self.request_timeout),
                    )
                    .await?
                    .map_err(|error| {
                        GatewayError::InvalidParams(format!("refused: {}", error.get()))
                    })?;
            }
            Ok::<(), GatewayError>(())
        }))
        .await
        .into_iter()
        .zip(&servers)
        .filter_map(|(result, server)| Some((server, result.err()?)))
        .for_each(|(server, err)| tracing::warn!(profile, server, "logging/setLevel: {err}"));
    }

    /// A client's notification for the servers (roots changed, or one the gateway does not know):
    /// every running server the session reaches (the profile's shared ones and its own) hears
    /// it; none is started for it.
    pub async fn notify_servers(
        &self,
        session: &Downstream,
        profile: &str,
        method: &str,
        params: Option<&RawValue>,
    ) {
        for upstream in self.pool.running_upstreams(profile, session.id) {
            upstream.notify(method, params).await;
        }
    }

    /// Routes what servers send unprompted, until the pool is gone: each server connection's
    /// queue in a task of its own, so that a server flooding its queue delays no other's.
    pub async fn run_events(self: Arc<Self>, mut queues: NewQueues) {
        while let Some(queue) = queues.recv().await {
            tokio::spawn(Arc::clone(&self).drain(queue));
        }
    }

    /// Routes one server connection's events until the connection is gone.
    async fn drain(self: Arc<Self>, mut events: mpsc::Receiver<ServerEvent>) {
        while let Some(event) = events.recv().await {
            match event {
                ServerEvent::Notification {
                    profile,
                    session,
                    server,
                    method,
                    params,
                    queued,
                } => {
                    self.on_notification((&profile, session), &server, &method, params);
                    // Its share of the server's queue is given back once it is routed.
                    drop(queued);
                }
                ServerEvent::Log {
                    profile,
                    session,
                    server,
                    params,
                    queued,
                } => {
                    self.forward_log((&profile, session), &server, params.as_deref());
                    drop(queued);
                }
                ServerEvent::Request {
                    upstream,
                    id,
                    method,
                    params,
                    owners,
                } => {
                    let client = self.pick_client(&upstream, &method, params.as_deref(), owners);
                    // A modern client is not asked directly: its call turns the request into an
                    // `input_required` result.
                    let (id, method, params, client) = match client {
                        Ok(chosen) if chosen.client.is_modern() => {
                            let upstream = Arc::clone(&upstream);
                            let ask = ServerAsk {
                                upstream,
                                id,
                                method,
                                params,
                            };
                            // Only the call that declared what the request needs is asked.
                            let sink = chosen.declared.as_ref().and_then(|d| d.asks);
                            let Err(ask) = chosen.client.hand_ask(sink, ask) else {
                                continue;
                            };
                            let refusal = "no call of the client waits for input".to_owned();
                            let refusal = Err((code::INTERNAL_ERROR, refusal));
                            (ask.id, ask.method, ask.params, refusal)
                        }
                        other => (id, method, params, other.map(|chosen| chosen.client)),
                    };
                    tokio::spawn(upstream.relay_to_client(id, method, params, client));
                }
            }
        }
    }

    /// Routes a server's notification: to the profile's clients, or only to the session whose
    /// own container sent it. A session container's list change is only announced to its
    /// session: the profile's tables come from its shared listing, which did not change.
    fn on_notification(
        self: &Arc<Self>,
        (profile, owner): (&str, Option<u64>),
        server: &str,
        method: &str,
        params: Option<Box<RawValue>>,
    ) {
        match method {
            "notifications/resources/updated" => {
                self.forward_update((profile, owner), server, params.as_deref())
            }
            _ if !ListKind::changed_by(method).is_empty() => match owner {
                None => self.list_changed(profile, method),
                Some(_) => {
                    for session in audience(self.clients_of(profile), owner) {
                        announce(&session, method);
                    }
                }
            },
            _ => {
                for session in audience(self.sessions_of(profile), owner) {
                    session.notify(method, params.as_deref());
                }
            }
        }
    }

    /// Sends a server's log message to the legacy clients of the profile at or above their own
    /// levels. Modern clients hear it from the server's connection itself (see
    /// [`Upstream`]'s reader), before the answer of the request that asked for it.
    fn forward_log(
        &self,
        (profile, owner): (&str, Option<u64>),
        server: &str,
        params: Option<&RawValue>,
    ) {
        let Some((params, level)) = log_message(params, server) else {
            return;
        };
        for session in audience(self.sessions_of(profile), owner) {
            if session
                .log_level()
                .is_none_or(|min| level.is_none_or(|l| l >= min))
            {
                session.notify("notifications/message", Some(&params));
            }
        }
    }

    /// Sends `resources/updated` to the clients subscribed to the URI, in the form each knows.
    fn forward_update(
        &self,
        (profile, owner): (&str, Option<u64>),
        server: &str,
        params: Option<&RawValue>,
    ) {
        let Ok(mut params) = parse_params(params) else {
            return;
        };
        let Ok(uri) = string_member(&params, "uri") else {
            return;
        };
        // A modern server tags its update with the gateway's own listen stream, which no client
        // knows; modern clients get theirs instead.
        if let Some(meta) = params.get_mut("_meta").and_then(Value::as_object_mut) {
            meta.remove(modern::SUBSCRIPTION_KEY);
            if meta.is_empty() {
                params.remove("_meta");
            }
        }
        let rewritten = format!("{}{server}/{uri}", names::URI_PREFIX);
        let method = "notifications/resources/updated";
        for session in audience(self.clients_of(profile), owner) {
            let known = {
                let mine = session
                    .subscriptions
                    .lock()
                    .unwrap_or_else(|e| e.into_inner());
                [&rewritten, &uri]
                    .into_iter()
                    .find(|u| mine.contains(*u))
                    .cloned()
            };
            let Some(known) = known else { continue };
            params.insert("uri".into(), Value::from(known.clone()));
            let params = jsonrpc::to_raw(&Value::Object(params.clone()));
            if session.is_legacy() {
                session.notify(method, Some(&params));
            }
            for id in session.listens_where(|l| l.uris.contains(&known)) {
                session.notify(method, Some(&modern::tagged(Some(&params), &id)));
            }
        }
    }

    /// A server's list changed: once the burst is over, rebuild the merged lists it affects and
    /// tell every client of the profile once.
    pub(super) fn list_changed(self: &Arc<Self>, profile: &str, method: &str) {
        let key = (profile.to_owned(), method.to_owned());
        if !self
            .debouncing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.clone())
        {
            return;
        }
        let gateway = Arc::clone(self);
        tokio::spawn(async move {
            tokio::time::sleep(DEBOUNCE).await;
            gateway
                .debouncing
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&key);
            let (profile, method) = key;
            for &kind in ListKind::changed_by(&method) {
                if let Some(tables) = gateway.lock_tables().get_mut(&profile) {
                    tables.remove(&kind);
                }
                if let Err(err) = gateway.build_table(&profile, kind).await {
                    tracing::warn!(profile, "refreshing {}: {err}", kind.field());
                }
            }
            for session in gateway.clients_of(&profile) {
                announce(&session, &method);
            }
        });
    }

    /// The client a server's request goes to: one whose call the server is working on (the most
    /// recent one that can answer), else the most recent client of the profile that can (of a
    /// session's own container: that session); with none, the error the server gets.
    fn pick_client(
        &self,
        upstream: &Upstream,
        method: &str,
        params: Option<&RawValue>,
        owners: Vec<InFlight>,
    ) -> Result<InFlight, (i64, String)> {
        let chosen = if owners.is_empty() {
            audience(self.sessions_of(upstream.profile()), upstream.session())
                .into_iter()
                .filter(|s| s.can_answer(method, params))
                .max_by_key(|s| s.last_active())
                .map(|client| InFlight {
                    client,
                    declared: None,
                })
        } else {
            // A call in flight owns the request: another client, or a request of the same
            // client that did not declare what it needs, must not see it.
            owners
                .into_iter()
                .find(|request| request.can_answer(method, params))
        };
        chosen.ok_or_else(|| {
            (
                code::METHOD_NOT_FOUND,
                format!("no connected client can answer {method}"),
            )
        })
    }
}

/// `sessions`, or only the one owning the container (`owner`) among them.
fn audience(mut sessions: Vec<Arc<Downstream>>, owner: Option<u64>) -> Vec<Arc<Downstream>> {
    sessions.retain(|s| owner.is_none_or(|id| s.id == id));
    sessions
}

/// Tells a client that a list changed: a legacy client directly, a modern one on each of its
/// listen streams that asked for that change.
fn announce(session: &Downstream, method: &str) {
    if session.is_legacy() {
        session.notify(method, None);
    }
    for id in session.listens_where(|l| l.changes.contains(&method)) {
        session.notify(method, Some(&modern::tagged(None, &id)));
    }
}
