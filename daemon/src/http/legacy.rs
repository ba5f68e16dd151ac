//! Legacy-era (2025-03-26 to 2025-11-25) clients over HTTP: `initialize` opens a session named by
//! a random `Mcp-Session-Id`, which every later request carries. Each session is one daemon
//! session behind pipes; a router sends each line it writes to the right HTTP stream:
//!
//! - a response to the POST that asked (a JSON body, or the end of that POST's event stream);
//! - progress to the POST whose request carries the token, when it streams;
//! - a server's request (sampling, elicitation, roots) to the newest streaming POST, else the
//!   GET stream, else back to the server as an error, so that no server waits for nobody;
//! - other notifications (list changes, logs, resource updates) to the GET stream, or nowhere.
//!
//! A session is idle while it has no request in flight and no open GET stream. One idle for
//! [`SESSION_IDLE`] is ended; at [`super::MAX_SESSIONS`], the one idle longest is ended to make
//! room for a new one, so that clients that never send `DELETE` cannot hold the face full. Either
//! way its id then gets `404`, as the spec has for an expired session.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use hyper::header::{HeaderMap, HeaderValue};
use hyper::{Response, StatusCode};
use serde_json::Value;
use tokio::sync::mpsc;

use super::pipe::{self, Output, Pipe};
use super::sse::{self, Body};
use super::{Context, Posted, client_name, header_text, plain, rpc_error};
use crate::jsonrpc::{self, Kind, Message, code};

/// A session idle (no open stream, no request in flight) this long is ended, as if deleted.
pub const SESSION_IDLE: Duration = Duration::from_secs(30 * 60);
/// Messages buffered for one HTTP stream before notifications for it are dropped.
const STREAM_BUFFER: usize = 64;

/// The requests that may cause server messages before their answer.
const CALLS: [&str; 3] = ["tools/call", "prompts/get", "resources/read"];

#[derive(Default)]
pub struct Sessions {
    map: Mutex<HashMap<String, Arc<Legacy>>>,
    /// Sessions whose `initialize` is under way: they count against the cap before they are in
    /// `map`, so that concurrent ones cannot overshoot it.
    opening: AtomicUsize,
}

/// A place among the [`super::MAX_SESSIONS`] held by an `initialize` under way.
struct Opening<'a>(&'a AtomicUsize);

impl Drop for Opening<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

struct Legacy {
    pipe: Pipe,
    routes: Mutex<Routes>,
    /// The protocol revision `initialize` settled on, which `MCP-Protocol-Version` must repeat.
    version: OnceLock<String>,
    /// Whether the client declared a capability a server's request could use.
    asks: bool,
    /// When a request or GET stream last began or ended.
    last_used: Mutex<Instant>,
}

#[derive(Default)]
struct Routes {
    /// Requests waiting for their answers, by the client's id as JSON text.
    posts: HashMap<String, Post>,
    /// Progress tokens of streaming requests, as JSON text, to the request's id.
    tokens: HashMap<String, String>,
    standalone: Option<mpsc::Sender<String>>,
}

struct Post {
    lines: mpsc::Sender<String>,
    streams: bool,
    opened: u64,
}

impl Routes {
    /// Whether a request is in flight or the GET stream is open.
    fn busy(&self) -> bool {
        !self.posts.is_empty() || self.standalone.as_ref().is_some_and(|s| !s.is_closed())
    }
}

static OPENED: AtomicU64 = AtomicU64::new(0);

enum Target {
    /// A response: awaited, since the client waits for it.
    Answer(mpsc::Sender<String>),
    /// Dropped when the stream is full or gone.
    Notice(mpsc::Sender<String>),
    /// A server request: refused back to the session when it cannot be delivered.
    Ask(Option<mpsc::Sender<String>>, Value),
    Nowhere,
}

impl Legacy {
    fn lock_routes(&self) -> std::sync::MutexGuard<'_, Routes> {
        self.routes.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn touch(&self) {
        *self.last_used.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
    }

    /// When the session became idle; `None` while it is busy.
    fn idle_since(&self) -> Option<Instant> {
        if self.lock_routes().busy() {
            return None;
        }
        Some(*self.last_used.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn target(&self, message: &Message) -> Target {
        let mut routes = self.lock_routes();
        match message.kind() {
            Kind::Response => {
                let key = message
                    .id
                    .as_ref()
                    .map(Value::to_string)
                    .unwrap_or_default();
                routes.tokens.retain(|_, id| *id != key);
                match routes.posts.remove(&key) {
                    Some(post) => Target::Answer(post.lines),
                    None => Target::Nowhere,
                }
            }
            Kind::Notification => {
                let to_post = (message.method.as_deref() == Some("notifications/progress"))
                    .then(|| progress_token(message))
                    .flatten()
                    .and_then(|token| routes.tokens.get(&token))
                    .and_then(|id| routes.posts.get(id));
                match to_post {
                    Some(post) => Target::Notice(post.lines.clone()),
                    None => match &routes.standalone {
                        Some(stream) => Target::Notice(stream.clone()),
                        None => Target::Nowhere,
                    },
                }
            }
            Kind::Request => {
                let newest = routes
                    .posts
                    .values()
                    .filter(|p| p.streams)
                    .max_by_key(|p| p.opened)
                    .map(|p| p.lines.clone());
                let id = message.id.clone().unwrap_or_default();
                Target::Ask(newest.or_else(|| routes.standalone.clone()), id)
            }
            Kind::Invalid => Target::Nowhere,
        }
    }

    /// Delivers each line the session writes until the session ends.
    async fn route(self: Arc<Self>, mut output: Output) {
        while let Some(line) = pipe::next_line(&mut output).await {
            let Ok(message) = Message::parse(&line) else {
                continue;
            };
            match self.target(&message) {
                Target::Answer(post) => {
                    let _ = post.send(line).await;
                }
                Target::Notice(stream) => {
                    let _ = stream.try_send(line);
                }
                Target::Ask(stream, id) => {
                    if stream.is_none_or(|s| s.try_send(line).is_err()) {
                        let refusal = jsonrpc::error(
                            code::INTERNAL_ERROR,
                            "the HTTP client has no open stream to receive this request",
                        );
                        let answer = jsonrpc::response_line(&id, &Err(refusal));
                        self.pipe.send(answer.trim_end()).await;
                    }
                }
                Target::Nowhere => {}
            }
        }
        // The session is over: waiting requests and streams end with it.
        *self.lock_routes() = Routes::default();
    }

    /// Sends one request to the session, and answers the POST with its response, as JSON or as
    /// an event stream that also carries what the request causes.
    async fn request(self: &Arc<Self>, posted: Posted, headers: &HeaderMap) -> Response<Body> {
        let id = posted.id();
        let key = id.to_string();
        let streams = CALLS.contains(&posted.method())
            && super::accepts_exactly(headers, "text/event-stream")
            && (posted.progress_token().is_some() || self.asks);
        let (lines, mut answers) = mpsc::channel(STREAM_BUFFER);
        {
            let mut routes = self.lock_routes();
            if routes.posts.contains_key(&key) {
                drop(routes);
                return rpc_error(
                    StatusCode::BAD_REQUEST,
                    &id,
                    code::INVALID_REQUEST,
                    "a request with this id is still in flight",
                );
            }
            let opened = OPENED.fetch_add(1, Ordering::Relaxed);
            routes.posts.insert(
                key.clone(),
                Post {
                    lines,
                    streams,
                    opened,
                },
            );
            if streams && let Some(token) = posted.progress_token() {
                routes.tokens.insert(token.to_string(), key.clone());
            }
        }
        let forget = Forget {
            session: Arc::clone(self),
            key,
        };
        if !self.pipe.send(&posted.line).await {
            return plain(StatusCode::NOT_FOUND, "the session has ended");
        }
        if streams {
            return sse::stream(answers, forget);
        }
        match answers.recv().await {
            Some(line) => sse::json(StatusCode::OK, line),
            None => plain(StatusCode::NOT_FOUND, "the session ended before answering"),
        }
    }
}

/// Withdraws a POST's routes when its HTTP exchange ends, answered or not: a client that went
/// away does not cancel (that takes `notifications/cancelled`), but nothing waits for it. The
/// session's idle time counts from then.
struct Forget {
    session: Arc<Legacy>,
    key: String,
}

impl Drop for Forget {
    fn drop(&mut self) {
        let mut routes = self.session.lock_routes();
        routes.posts.remove(&self.key);
        routes.tokens.retain(|_, id| *id != self.key);
        drop(routes);
        self.session.touch();
    }
}

/// Lives as long as a GET stream's body: the session's idle time counts from its end.
struct Touch(Arc<Legacy>);

impl Drop for Touch {
    fn drop(&mut self) {
        self.0.touch();
    }
}

/// Of `sessions`, each with when it became idle (`None`: busy), the one idle longest.
pub(super) fn longest_idle<K>(
    sessions: impl IntoIterator<Item = (K, Option<Instant>)>,
) -> Option<K> {
    sessions
        .into_iter()
        .filter_map(|(key, since)| Some((key, since?)))
        .min_by_key(|(_, since)| *since)
        .map(|(key, _)| key)
}

fn progress_token(message: &Message) -> Option<String> {
    let params: Value = serde_json::from_str(message.params.as_deref()?.get()).ok()?;
    params.get("progressToken").map(Value::to_string)
}

/// `initialize` without a session: opens one, and names it in the answer's `Mcp-Session-Id`
/// when the gateway accepted it.
pub async fn initialize(
    context: &Arc<Context>,
    headers: &HeaderMap,
    posted: Posted,
) -> Response<Body> {
    let params = posted.params.as_ref();
    let client = client_name(params.and_then(|p| p.get("clientInfo")));
    let asks = params
        .and_then(|p| p.get("capabilities"))
        .and_then(Value::as_object)
        .is_some_and(|c| {
            ["sampling", "elicitation", "roots"]
                .iter()
                .any(|k| c.contains_key(*k))
        });
    let Some(_opening) = context.sessions.reserve().await else {
        let remedy = "each has a request in flight or an open GET stream; end one with DELETE and its Mcp-Session-Id";
        return super::too_many_sessions(&posted.id(), "session", remedy);
    };
    let id = match super::token::random_hex(16) {
        Ok(id) => id,
        Err(err) => return plain(StatusCode::INTERNAL_SERVER_ERROR, &err.to_string()),
    };
    let (pipe, output) = pipe::open(context, context.profile(), client);
    let session = Arc::new(Legacy {
        pipe,
        routes: Mutex::default(),
        version: OnceLock::new(),
        asks,
        last_used: Mutex::new(Instant::now()),
    });
    tokio::spawn(Arc::clone(&session).route(output));
    let response = session.request(posted, headers).await;
    let (parts, body) = response.into_parts();
    let answer = match http_body_util::BodyExt::collect(body).await {
        Ok(collected) => collected.to_bytes(),
        Err(never) => match never {},
    };
    let version = serde_json::from_slice::<Value>(&answer)
        .ok()
        .and_then(|a| a.pointer("/result/protocolVersion").cloned())
        .and_then(|v| v.as_str().map(str::to_owned));
    let mut response = Response::from_parts(parts, sse::full(answer));
    match version {
        Some(version) => {
            let _ = session.version.set(version);
            if let Ok(value) = HeaderValue::from_str(&id) {
                response.headers_mut().insert("mcp-session-id", value);
            }
            context.sessions.lock().insert(id.clone(), session);
            tracing::info!("http: session {id} opened");
        }
        None => session.pipe.close().await,
    }
    response
}

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Legacy>>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn count(&self) -> u64 {
        self.lock().len() as u64
    }

    /// A place for one more session. When [`super::MAX_SESSIONS`] are open or opening, the
    /// session idle longest is ended to make room; `None` when none is idle.
    async fn reserve(&self) -> Option<Opening<'_>> {
        let evicted = {
            let mut map = self.lock();
            let evicted = if map.len() + self.opening.load(Ordering::Relaxed) >= super::MAX_SESSIONS
            {
                let id = longest_idle(map.iter().map(|(id, s)| (id, s.idle_since())))?.clone();
                map.remove_entry(&id)
            } else {
                None
            };
            self.opening.fetch_add(1, Ordering::Relaxed);
            evicted
        };
        if let Some((id, session)) = evicted {
            session.pipe.close().await;
            tracing::info!(
                "http: session {id} ended to make room: {} are open",
                super::MAX_SESSIONS
            );
        }
        Some(Opening(&self.opening))
    }

    /// The session a request names, after its `MCP-Protocol-Version` check.
    fn find(&self, id: &str, headers: &HeaderMap) -> Result<Arc<Legacy>, Box<Response<Body>>> {
        let Some(session) = self.lock().get(id).cloned() else {
            return Err(Box::new(plain(
                StatusCode::NOT_FOUND,
                "no such session; initialize again",
            )));
        };
        // Without the header the spec has the server assume 2025-03-26, which this session
        // serves as it is.
        if let Some(version) = header_text(headers, "mcp-protocol-version")
            && session.version.get().is_some_and(|v| v != version)
        {
            let message = format!(
                "MCP-Protocol-Version {version} is not the session's {}",
                session.version.get().map_or("", String::as_str)
            );
            return Err(Box::new(plain(StatusCode::BAD_REQUEST, &message)));
        }
        session.touch();
        Ok(session)
    }

    pub async fn post(&self, id: &str, headers: &HeaderMap, posted: Posted) -> Response<Body> {
        let session = match self.find(id, headers) {
            Ok(session) => session,
            Err(response) => return *response,
        };
        match posted.kind() {
            Kind::Request => session.request(posted, headers).await,
            _ => {
                if session.pipe.send(&posted.line).await {
                    sse::empty(StatusCode::ACCEPTED)
                } else {
                    plain(StatusCode::NOT_FOUND, "the session has ended")
                }
            }
        }
    }

    /// `GET` with a session: the stream of what the session sends unprompted. A second GET
    /// replaces the first, whose stream ends.
    pub fn get_stream(&self, id: &str, headers: &HeaderMap) -> Response<Body> {
        let session = match self.find(id, headers) {
            Ok(session) => session,
            Err(response) => return *response,
        };
        if !super::accepts_exactly(headers, "text/event-stream") {
            return plain(StatusCode::NOT_ACCEPTABLE, "accept text/event-stream");
        }
        let (lines, stream) = mpsc::channel(STREAM_BUFFER);
        session.lock_routes().standalone = Some(lines);
        sse::stream(stream, Touch(session))
    }

    /// `DELETE`: ends the session as a client closing its socket does.
    pub async fn delete(&self, id: &str, headers: &HeaderMap) -> Response<Body> {
        let session = match self.find(id, headers) {
            Ok(session) => session,
            Err(response) => return *response,
        };
        self.lock().remove(id);
        session.pipe.close().await;
        tracing::info!("http: session {id} deleted");
        sse::empty(StatusCode::NO_CONTENT)
    }

    /// Ends the sessions idle for [`SESSION_IDLE`].
    pub async fn reap(&self) {
        let idle: Vec<(String, Arc<Legacy>)> = self
            .lock()
            .iter()
            .filter(|(_, s)| s.idle_since().is_some_and(|t| t.elapsed() > SESSION_IDLE))
            .map(|(id, s)| (id.clone(), Arc::clone(s)))
            .collect();
        for (id, session) in idle {
            self.lock().remove(&id);
            session.pipe.close().await;
            tracing::info!("http: session {id} ended after {SESSION_IDLE:?} unused");
        }
    }

    pub async fn end_all(&self) {
        let sessions: Vec<Arc<Legacy>> = self.lock().drain().map(|(_, s)| s).collect();
        for session in sessions {
            session.pipe.close().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_idle_longest_is_chosen_and_busy_ones_never() {
        let now = Instant::now();
        let ago = |secs| Some(now - Duration::from_secs(secs));
        let sessions = [
            ("recent", ago(5)),
            ("busy", None),
            ("oldest", ago(60)),
            ("old", ago(30)),
        ];
        assert_eq!(longest_idle(sessions), Some("oldest"));
        assert_eq!(longest_idle([("busy", None), ("also busy", None)]), None);
        assert_eq!(longest_idle(Vec::<(&str, Option<Instant>)>::new()), None);
    }

    #[test]
    fn a_request_in_flight_or_an_open_stream_keeps_a_session_busy() {
        let mut routes = Routes::default();
        assert!(!routes.busy());
        let (lines, _stream) = mpsc::channel(1);
        routes.posts.insert(
            "1".to_owned(),
            Post {
                lines: lines.clone(),
                streams: false,
                opened: 0,
            },
        );
        assert!(routes.busy(), "a request in flight");
        routes.posts.clear();
        routes.standalone = Some(lines);
        assert!(routes.busy(), "an open GET stream");
        let (closed, stream) = mpsc::channel(1);
        drop(stream);
        routes.standalone = Some(closed);
        assert!(!routes.busy(), "a GET stream its client closed");
    }
}
