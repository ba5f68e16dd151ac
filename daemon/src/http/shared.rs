//! The long-lived daemon sessions that 2026-07-28 POSTs share, one per profile and client name,
//! so that a call parked for `input_required` is still there when the client's retry arrives in
//! another POST (the sealed `requestState` binds it to its session). Each request enters under a
//! gateway id of its own, so that concurrent POSTs with the same JSON-RPC id never collide; its
//! answer goes back under the client's id to the POST waiting for it, as does its progress under
//! the client's token. Log messages reach the session only while one of its requests that asked
//! for them is in flight on the server that logs; each goes to every streaming POST of the session
//! whose level lets it through, since a session is one client, as a connection is over
//! `mcp-shim`. A POST whose client goes away cancels its request.
//!
//! At [`super::MAX_SESSIONS`], a new client's session takes the place of the one unused longest,
//! if that one has no POST waiting and has been unused for longer than a parked call lives: a
//! session may hold parked calls the face cannot see, and ending it would lose them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::legacy::{SESSION_IDLE, longest_idle};
use super::pipe::{self, Output, Pipe};
use super::{Context, Posted};
use crate::downstream::LogLevel;
use crate::jsonrpc::{self, Kind, Message};

/// Which shared session a POST goes to: its profile (`None`: the active one) and client name.
type Key = (Option<String>, String);

#[derive(Default)]
pub struct Shared {
    map: Mutex<HashMap<Key, Arc<Session>>>,
}

struct Session {
    pipe: Pipe,
    /// POSTs waiting for their answers, by the gateway id their request entered under.
    waiting: Mutex<HashMap<u64, Waiter>>,
    next_id: AtomicU64,
    /// When a request last entered the session or its POST ended.
    last_used: Mutex<Instant>,
}

struct Waiter {
    /// The client's id, which its answer goes back under.
    id: Value,
    /// The client's progress token, when its POST streams progress.
    token: Option<Value>,
    /// The level the request asked to hear log messages at, when its POST streams.
    log_level: Option<LogLevel>,
    lines: mpsc::Sender<String>,
}

/// Why a request found no shared session to enter.
pub enum Refused {
    /// [`super::MAX_SESSIONS`] are open, none of them this client's.
    Full,
    /// The face is stopping.
    Stopping,
}

/// One request in a shared session; dropping it before the answer cancels the request.
pub struct Pending {
    session: Arc<Session>,
    id: u64,
}

impl Shared {
    /// Enters `posted` into the shared session for `profile` and `client` (opened when there is
    /// none yet, in place of an unused one at [`super::MAX_SESSIONS`]); its answer and, with
    /// `streams`, its progress and log messages arrive on `lines`.
    pub async fn request(
        &self,
        context: &Arc<Context>,
        profile: Option<String>,
        client: String,
        posted: &Posted,
        streams: bool,
        lines: mpsc::Sender<String>,
    ) -> Result<Pending, Refused> {
        let (session, evicted) = {
            let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
            let key = (profile, client);
            let mut evicted = None;
            if map.len() >= super::MAX_SESSIONS && !map.contains_key(&key) {
                let parked = context.gateway.seal.ttl();
                let unused = map.iter().map(|(key, session)| {
                    let since = session
                        .idle_since()
                        .filter(|since| since.elapsed() > parked);
                    (key, since)
                });
                let Some(oldest) = longest_idle(unused).cloned() else {
                    return Err(Refused::Full);
                };
                evicted = map.remove(&oldest);
            }
            let session = map.entry(key.clone()).or_insert_with(|| {
                let (pipe, output) = pipe::open(context, key.0, key.1);
                let session = Arc::new(Session {
                    pipe,
                    waiting: Mutex::default(),
                    next_id: AtomicU64::new(1),
                    last_used: Mutex::new(Instant::now()),
                });
                tokio::spawn(Arc::clone(&session).route(output));
                session
            });
            (Arc::clone(session), evicted)
        };
        if let Some(evicted) = evicted {
            evicted.pipe.close().await;
            tracing::info!(
                "http: a shared session ended to make room: {} are open",
                super::MAX_SESSIONS
            );
        }
        session.touch();
        let id = session.next_id.fetch_add(1, Ordering::Relaxed);
        let token = posted.progress_token().filter(|_| streams).cloned();
        let log_level = posted.log_level().filter(|_| streams);
        let mut params = posted.params.clone();
        if token.is_some()
            && let Some(meta) = params.as_mut().and_then(|p| p.get_mut("_meta"))
        {
            meta["progressToken"] = json!(id);
        }
        let params = params.as_ref().map(jsonrpc::to_raw);
        let line = jsonrpc::request_line(
            id,
            posted.method(),
            params
                .as_deref()
                .map(serde_json::value::RawValue::get)
                .as_slice(),
        );
        session.lock_waiting().insert(
            id,
            Waiter {
                id: posted.id(),
                token,
                log_level,
                lines,
            },
        );
        let pending = Pending { session, id };
        if pending.session.pipe.send(line.trim_end()).await {
            Ok(pending)
        } else {
            Err(Refused::Stopping)
        }
    }

    /// Ends the sessions nobody sent a request to for longer than a parked call can live (and
    /// at least [`SESSION_IDLE`]), and that nobody waits on.
    pub async fn reap(&self, context: &Context) {
        let idle = SESSION_IDLE.max(context.gateway.seal.ttl());
        let ended: Vec<Arc<Session>> = {
            let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
            let mut ended = Vec::new();
            map.retain(|_, session| {
                let unused = session
                    .idle_since()
                    .is_some_and(|since| since.elapsed() > idle);
                if unused {
                    ended.push(Arc::clone(session));
                }
                !unused
            });
            ended
        };
        for session in ended {
            session.pipe.close().await;
        }
    }

    pub async fn end_all(&self) {
        let sessions: Vec<Arc<Session>> = self
            .map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
            .map(|(_, s)| s)
            .collect();
        for session in sessions {
            session.pipe.close().await;
        }
    }
}

impl Session {
    fn lock_waiting(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Waiter>> {
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn touch(&self) {
        *self.last_used.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
    }

    /// When a request last entered or left the session; `None` while a POST waits on it.
    fn idle_since(&self) -> Option<Instant> {
        if !self.lock_waiting().is_empty() {
            return None;
        }
        Some(*self.last_used.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Delivers each answer and progress notification the session writes to the POST it belongs
    /// to, under the client's own id and token, until the session ends. Other notifications
    /// belong to no one request and go nowhere.
    async fn route(self: Arc<Self>, mut output: Output) {
        while let Some(line) = pipe::next_line(&mut output).await {
            let Ok(message) = Message::parse(&line) else {
                continue;
            };
            match message.kind() {
                Kind::Response => {
                    let waiter = message
                        .id
                        .as_ref()
                        .and_then(Value::as_u64)
                        .and_then(|id| self.lock_waiting().remove(&id));
                    if let Some(waiter) = waiter {
                        self.touch();
                        let answer = jsonrpc::response_line(&waiter.id, &message.into_reply());
                        // A stream full of progress nobody reads must not hold up the answers
                        // of the session's other POSTs.
                        tokio::spawn(async move {
                            let _ = waiter.lines.send(answer.trim_end().to_owned()).await;
                        });
                    }
                }
                Kind::Notification
                    if message.method.as_deref() == Some("notifications/progress") =>
                {
                    self.pass_progress(&message);
                }
                Kind::Notification
                    if message.method.as_deref() == Some("notifications/message") =>
                {
                    self.pass_log(&message, &line);
                }
                _ => {}
            }
        }
        // The session is over: the POSTs waiting on it end without an answer.
        self.lock_waiting().clear();
    }

    fn pass_log(&self, message: &Message, line: &str) {
        let level = message
            .params
            .as_deref()
            .and_then(|p| serde_json::from_str::<Value>(p.get()).ok())
            .and_then(|p| {
                p.get("level")
                    .and_then(Value::as_str)
                    .and_then(LogLevel::parse)
            });
        let streams: Vec<mpsc::Sender<String>> = self
            .lock_waiting()
            .values()
            .filter(|w| {
                w.log_level
                    .is_some_and(|min| level.is_none_or(|l| l >= min))
            })
            .map(|w| w.lines.clone())
            .collect();
        for lines in streams {
            let _ = lines.try_send(line.to_owned());
        }
    }

    fn pass_progress(&self, message: &Message) {
        let Some(mut params) = message
            .params
            .as_deref()
            .and_then(|p| serde_json::from_str::<Value>(p.get()).ok())
        else {
            return;
        };
        let waiting = self.lock_waiting();
        let Some((token, lines)) = params
            .get("progressToken")
            .and_then(Value::as_u64)
            .and_then(|id| waiting.get(&id))
            .and_then(|w| Some((w.token.clone()?, w.lines.clone())))
        else {
            return;
        };
        drop(waiting);
        params["progressToken"] = token;
        let line =
            jsonrpc::notification_line("notifications/progress", Some(&jsonrpc::to_raw(&params)));
        let _ = lines.try_send(line.trim_end().to_owned());
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        // Still waiting means the POST ended before its answer: the client went away.
        if self.session.lock_waiting().remove(&self.id).is_none() {
            return;
        }
        self.session.touch();
        let cancel = pipe::cancelled(&json!(self.id));
        let session = Arc::clone(&self.session);
        tokio::spawn(async move { session.pipe.send(&cancel).await });
    }
}
