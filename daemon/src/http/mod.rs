//! The optional Streamable HTTP face: MCP over `POST/GET/DELETE /mcp` on a TCP listener, for
//! clients that speak HTTP rather than launching `mcp-shim`. It is one more transport in front of
//! the same gateway: every HTTP client is served by a `session::serve` of its own behind in-memory
//! pipes (`pipe`), so routing, names, audit and scanning are the ones every client gets.
//!
//! Every request passes `guard` (Host, Origin) and the bearer token (`token`) first; bodies are
//! capped. Legacy clients (`initialize`) get sessions (`legacy`); 2026-07-28 requests are served
//! statelessly (`modern`) through long-lived sessions they share (`shared`). `sse` builds the response bodies.

mod guard;
mod legacy;
mod modern;
mod params;
mod pipe;
mod shared;
mod sse;
mod token;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::HttpSettings;
use crate::gateway::Gateway;
use crate::jsonrpc::{self, Kind, Message, code};
use crate::server::Activity;
use sse::Body;

pub use token::TokenError;

/// The one path the face serves.
const ENDPOINT: &str = "/mcp";
/// How often sessions nobody used for [`legacy::SESSION_IDLE`] are looked for.
const REAP_EVERY: Duration = Duration::from_secs(60);
/// How long a connection may take to send a request's headers: anyone on the host can connect
/// before the token is checked, so a connection that says nothing must not hold a task forever.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once; further ones are closed at accept, so that a local process
/// opening connections in a loop costs a bounded number of tasks and descriptors.
const MAX_CONNECTIONS: usize = 256;
/// Legacy `Mcp-Session-Id` sessions open at once, and separately the long-lived sessions
/// 2026-07-28 POSTs share (one per client name): each is a daemon session that outlives its
/// connection, so the connection cap does not bound them. The face has one token, so this is
/// the cap per token.
const MAX_SESSIONS: usize = 64;
/// The JSON-RPC error of a request refused because [`MAX_SESSIONS`] are open (from the range
/// JSON-RPC leaves to implementations).
const TOO_MANY_SESSIONS: i64 = -32000;

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("cannot listen on {listen}: {source}")]
    Bind {
        listen: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Token(#[from] TokenError),
}

/// What a running face's handlers share.
struct Context {
    gateway: Arc<Gateway>,
    max_line: usize,
    /// The bound address (the configured one, with the port chosen when it was 0).
    listen: SocketAddr,
    profile: RwLock<Option<String>>,
    token: RwLock<String>,
    sessions: legacy::Sessions,
    /// The sessions 2026-07-28 requests share.
    shared: shared::Shared,
    /// Fires when the face stops or the daemon shuts down; ends sessions and connections.
    stop: CancellationToken,
    tracker: TaskTracker,
}

struct Running {
    settings: HttpSettings,
    context: Arc<Context>,
}

/// The face as the daemon holds it: stopped, or running with the settings it was started with.
pub struct Face {
    gateway: Arc<Gateway>,
    max_line: usize,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    running: Mutex<Option<Running>>,
    /// Why the configured face is not running.
    error: Mutex<Option<String>>,
}

impl Face {
    pub fn new(
        gateway: Arc<Gateway>,
        max_line: usize,
        shutdown: CancellationToken,
        tracker: TaskTracker,
    ) -> Face {
        Face {
            gateway,
            max_line,
            shutdown,
            tracker,
            running: Mutex::default(),
            error: Mutex::default(),
        }
    }

    fn token_path(&self) -> PathBuf {
        self.gateway.config.config_dir().join(token::FILE_NAME)
    }

    /// Makes the running face match `wanted`: started, moved to another address, given another
    /// profile, or stopped. A running face keeps the daemon from its idle exit, since nothing
    /// would start it again for an HTTP client.
    pub fn apply(
        &self,
        wanted: Option<&HttpSettings>,
        activity: &Activity,
    ) -> Result<(), HttpError> {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        if let (Some(current), Some(wanted)) = (running.as_mut(), wanted)
            && current.settings.listen == wanted.listen
        {
            *current
                .context
                .profile
                .write()
                .unwrap_or_else(|e| e.into_inner()) = wanted.profile.clone();
            current.settings = wanted.clone();
            return Ok(());
        }
        if let Some(stopped) = running.take() {
            stopped.context.stop.cancel();
            activity.closed();
            tracing::info!("http: stopped listening on {}", stopped.context.listen);
        }
        let Some(wanted) = wanted else {
            *self.error.lock().unwrap_or_else(|e| e.into_inner()) = None;
            return Ok(());
        };
        let started = self.start(wanted);
        *self.error.lock().unwrap_or_else(|e| e.into_inner()) =
            started.as_ref().err().map(ToString::to_string);
        let context = started?;
        activity.opened();
        tracing::info!("http: listening on http://{}{ENDPOINT}", context.listen);
        *running = Some(Running {
            settings: wanted.clone(),
            context,
        });
        Ok(())
    }

    fn start(&self, settings: &HttpSettings) -> Result<Arc<Context>, HttpError> {
        let token = token::load_or_create(&self.token_path())?;
        let bind_error = |source| HttpError::Bind {
            listen: settings.listen,
            source,
        };
        let listener = std::net::TcpListener::bind(settings.listen).map_err(bind_error)?;
        listener.set_nonblocking(true).map_err(bind_error)?;
        let listen = listener.local_addr().map_err(bind_error)?;
        let listener = tokio::net::TcpListener::from_std(listener).map_err(bind_error)?;
        let context = Arc::new(Context {
            gateway: Arc::clone(&self.gateway),
            max_line: self.max_line,
            listen,
            profile: RwLock::new(settings.profile.clone()),
            token: RwLock::new(token),
            sessions: legacy::Sessions::default(),
            shared: shared::Shared::default(),
            stop: self.shutdown.child_token(),
            tracker: self.tracker.clone(),
        });
        self.tracker
            .spawn(accept_loop(listener, Arc::clone(&context)));
        Ok(context)
    }

    /// The bearer token; with `rotate` a new one, which the running face accepts from then on
    /// instead of the old one.
    pub fn token(&self, rotate: bool) -> Result<String, HttpError> {
        let path = self.token_path();
        let token = if rotate {
            token::rotate(&path)?
        } else {
            token::load_or_create(&path)?
        };
        if let Some(running) = &*self.running.lock().unwrap_or_else(|e| e.into_inner()) {
            *running
                .context
                .token
                .write()
                .unwrap_or_else(|e| e.into_inner()) = token.clone();
        }
        Ok(token)
    }

    pub fn status(&self) -> mcp_gateway_proto::HttpInfo {
        let configured = self.gateway.config.get().settings.http.clone();
        let running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        let context = running.as_ref().map(|r| &r.context);
        mcp_gateway_proto::HttpInfo {
            enabled: configured.is_some(),
            listen: configured.as_ref().map(|c| c.listen.to_string()),
            profile: configured.and_then(|c| c.profile),
            url: context.map(|c| format!("http://{}{ENDPOINT}", c.listen)),
            error: self.error.lock().unwrap_or_else(|e| e.into_inner()).clone(),
            sessions: context.map_or(0, |c| c.sessions.count()),
            token_file: self.token_path().display().to_string(),
        }
    }
}

async fn accept_loop(listener: tokio::net::TcpListener, context: Arc<Context>) {
    let mut reap = tokio::time::interval(REAP_EVERY);
    let connections = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(err) => {
                    tracing::warn!("http: accept failed: {err}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = reap.tick() => {
                context.sessions.reap().await;
                context.shared.reap(&context).await;
                continue;
            }
            () = context.stop.cancelled() => break,
        };
        let Ok(permit) = Arc::clone(&connections).try_acquire_owned() else {
            tracing::debug!("http: {MAX_CONNECTIONS} connections open; closing a new one");
            continue;
        };
        let context = Arc::clone(&context);
        let tracker = context.tracker.clone();
        tracker.spawn(async move {
            let _permit = permit;
            let service = hyper::service::service_fn(|request| {
                let context = Arc::clone(&context);
                async move { Ok::<_, std::convert::Infallible>(handle(&context, request).await) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            tokio::pin!(connection);
            tokio::select! {
                served = connection.as_mut() => {
                    if let Err(err) = served {
                        tracing::debug!("http: connection ended: {err}");
                    }
                }
                () = context.stop.cancelled() => {}
            }
        });
    }
    context.sessions.end_all().await;
    context.shared.end_all().await;
}

/// A JSON-RPC error response with `status`, for a request refused before any session saw it.
fn rpc_error(status: StatusCode, id: &Value, code: i64, message: &str) -> Response<Body> {
    let line = jsonrpc::response_line(id, &Err(jsonrpc::error(code, message)));
    sse::json(status, line.trim_end().to_owned())
}

/// The answer to a request that would open a session past [`MAX_SESSIONS`]: `503`, since
/// the face is full for now, not the request wrong; `what` names the kind, `remedy` what frees
/// one.
fn too_many_sessions(id: &Value, what: &str, remedy: &str) -> Response<Body> {
    tracing::warn!("http: refused a new {what}: {MAX_SESSIONS} are open");
    let message = format!("the HTTP face already holds {MAX_SESSIONS} {what}s; {remedy}");
    rpc_error(
        StatusCode::SERVICE_UNAVAILABLE,
        id,
        TOO_MANY_SESSIONS,
        &message,
    )
}

fn plain(status: StatusCode, message: &str) -> Response<Body> {
    let mut response = Response::new(sse::full(format!("{message}\n")));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

fn header_text(headers: &HeaderMap, name: impl header::AsHeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Whether the client accepts `media` (or anything), per its `Accept` header; no header accepts
/// everything.
fn accepts(headers: &HeaderMap, media: &str) -> bool {
    let Some(accept) = header_text(headers, header::ACCEPT) else {
        return true;
    };
    accept.split(',').any(|part| {
        let kind = part.split(';').next().unwrap_or_default().trim();
        kind == media || kind == "*/*"
    })
}

/// Whether the client's `Accept` names `media` itself (an event stream must be asked for).
fn accepts_exactly(headers: &HeaderMap, media: &str) -> bool {
    header_text(headers, header::ACCEPT).is_some_and(|accept| {
        accept
            .split(',')
            .any(|part| part.split(';').next().unwrap_or_default().trim() == media)
    })
}

async fn handle(context: &Arc<Context>, request: Request<Incoming>) -> Response<Body> {
    let headers = request.headers();
    let refused = guard::check_host(header_text(headers, header::HOST), context.listen)
        .and_then(|()| guard::check_origin(header_text(headers, header::ORIGIN), context.listen));
    if let Err(refusal) = refused {
        tracing::warn!("http: refused a request: {refusal}");
        return plain(StatusCode::FORBIDDEN, &refusal.to_string());
    }
    let authorized = {
        let token = context.token.read().unwrap_or_else(|e| e.into_inner());
        token::matches(
            headers
                .get(header::AUTHORIZATION)
                .map(HeaderValue::as_bytes),
            &token,
        )
    };
    if !authorized {
        let mut response = plain(
            StatusCode::UNAUTHORIZED,
            &guard::Refusal::Unauthorized.to_string(),
        );
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"mcp-gateway\""),
        );
        return response;
    }
    if request.uri().path() != ENDPOINT {
        return plain(StatusCode::NOT_FOUND, "the MCP endpoint is /mcp");
    }
    let session = header_text(headers, "mcp-session-id").map(str::to_owned);
    match *request.method() {
        Method::POST => post(context, request, session).await,
        Method::GET => match session {
            Some(id) => context.sessions.get_stream(&id, request.headers()),
            // The 2026-07-28 shape has no GET stream; without a session there is nothing to open.
            None => method_not_allowed(),
        },
        Method::DELETE => match session {
            Some(id) => context.sessions.delete(&id, request.headers()).await,
            None => method_not_allowed(),
        },
        _ => method_not_allowed(),
    }
}

fn method_not_allowed() -> Response<Body> {
    let mut response = plain(
        StatusCode::METHOD_NOT_ALLOWED,
        "use POST, or GET and DELETE with an Mcp-Session-Id",
    );
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("POST, GET, DELETE"));
    response
}

/// One client message, as read from a POST body.
pub(crate) struct Posted {
    /// The body as one line: JSON whitespace outside strings is the only place a raw newline can
    /// be, so turning newlines into spaces changes no value.
    line: String,
    message: Message,
    /// `params`, parsed.
    params: Option<Value>,
}

impl Posted {
    fn kind(&self) -> Kind {
        self.message.kind()
    }

    fn id(&self) -> Value {
        self.message.id.clone().unwrap_or_default()
    }

    fn method(&self) -> &str {
        self.message.method.as_deref().unwrap_or_default()
    }

    fn progress_token(&self) -> Option<&Value> {
        self.params.as_ref()?.get("_meta")?.get("progressToken")
    }

    /// The level a 2026-07-28 request asks to hear log messages at.
    fn log_level(&self) -> Option<crate::downstream::LogLevel> {
        crate::modern::log_level(self.params.as_ref()).and_then(crate::downstream::LogLevel::parse)
    }
}

async fn post(
    context: &Arc<Context>,
    request: Request<Incoming>,
    session: Option<String>,
) -> Response<Body> {
    let (parts, body) = request.into_parts();
    let too_large = || {
        let message = format!("a message may be at most {} bytes", context.max_line);
        plain(StatusCode::PAYLOAD_TOO_LARGE, &message)
    };
    let declared = header_text(&parts.headers, header::CONTENT_LENGTH)
        .and_then(|length| length.parse::<usize>().ok());
    if declared.is_some_and(|length| length > context.max_line) {
        return too_large();
    }
    let body = match Limited::new(body, context.max_line).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(err) if err.is::<http_body_util::LengthLimitError>() => return too_large(),
        Err(err) => {
            tracing::debug!("http: cannot read a request body: {err}");
            return plain(StatusCode::BAD_REQUEST, "cannot read the request body");
        }
    };
    let posted = match parse(&body) {
        Ok(posted) => posted,
        Err(response) => return *response,
    };
    if !accepts(&parts.headers, "application/json") && !accepts(&parts.headers, "text/event-stream")
    {
        return plain(
            StatusCode::NOT_ACCEPTABLE,
            "accept application/json or text/event-stream",
        );
    }
    if let Some(id) = session {
        return context.sessions.post(&id, &parts.headers, posted).await;
    }
    if posted.method() == "initialize" && posted.kind() == Kind::Request {
        return legacy::initialize(context, &parts.headers, posted).await;
    }
    if crate::modern::is_modern(posted.method(), posted.params.as_ref())
        || posted.kind() == Kind::Notification
    {
        return modern::post(context, &parts.headers, posted).await;
    }
    rpc_error(
        StatusCode::BAD_REQUEST,
        &posted.id(),
        code::INVALID_REQUEST,
        "missing Mcp-Session-Id header: send initialize first, or a 2026-07-28 request with its _meta",
    )
}

/// The body as one client message, or the error response for a body that is not one.
fn parse(body: &Bytes) -> Result<Posted, Box<Response<Body>>> {
    let bad = |code, message: &str| {
        Box::new(rpc_error(
            StatusCode::BAD_REQUEST,
            &Value::Null,
            code,
            message,
        ))
    };
    let Ok(text) = std::str::from_utf8(body) else {
        return Err(bad(code::PARSE_ERROR, "the body is not UTF-8"));
    };
    let line = text.replace(['\n', '\r'], " ");
    let message = Message::parse(&line).map_err(|err| {
        let code = match err {
            jsonrpc::ParseError::Batch => code::INVALID_REQUEST,
            jsonrpc::ParseError::Json(_) => code::PARSE_ERROR,
        };
        bad(code, &err.to_string())
    })?;
    if message.kind() == Kind::Invalid {
        let id = message.id.clone().unwrap_or_default();
        return Err(Box::new(rpc_error(
            StatusCode::BAD_REQUEST,
            &id,
            code::INVALID_REQUEST,
            "not a JSON-RPC request, notification or response",
        )));
    }
    let params = message
        .params
        .as_deref()
        .and_then(|p| serde_json::from_str(p.get()).ok());
    Ok(Posted {
        line,
        message,
        params,
    })
}

/// The name the audit log gives an HTTP client: its `clientInfo.name`, marked as HTTP.
fn client_name(info: Option<&Value>) -> String {
    match info.and_then(|i| i.get("name")).and_then(Value::as_str) {
        Some(name) => format!("{name} (http)"),
        None => "http".to_owned(),
    }
}

impl Context {
    fn profile(&self) -> Option<String> {
        self.profile
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}
