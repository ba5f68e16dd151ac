//! A `remote` server: an MCP server reached over Streamable HTTP, behind the same
//! [`Upstream`] as a container. The upstream gets a pair of in-memory pipes instead of an attach
//! stream; each line it writes is POSTed on its own (concurrently), and what the server answers
//! (a JSON body, or every `message` event of an event stream) comes back as one line each.
//!
//! The transport follows the legacy Streamable HTTP shape for legacy servers (the
//! `Mcp-Session-Id` the `initialize` answer gave, `MCP-Protocol-Version` after it, a GET stream
//! for what the server says unprompted, a DELETE when the pool is done) and the 2026-07-28 one for
//! modern requests (`MCP-Protocol-Version`, `Mcp-Method`, `Mcp-Name` mirrored from the body).
//! A failed exchange becomes a JSON-RPC error for its request naming the server and the HTTP
//! status; every failure is also a line of the server's [`LogTail`], which is what `server ls`
//! and `server logs` show. A connection that cannot be made, or a legacy stream cut with nothing
//! to resume it from, ends the connection like a container's exit; an expired session (404)
//! ends it too, without counting as a failure, so the next request opens a new session at once.
//!
//! Header values (secrets filled in) live only in this connection's memory, marked sensitive;
//! whatever of a server's answer goes into an error or a log has them blanked out.

mod sse;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode, Uri};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use tokio::io::{AsyncWriteExt, DuplexStream};
use tokio::sync::mpsc;
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;

use super::{Pool, PoolError, Running, Slot};
use crate::config::{RunSettings, ServerDef, remote as template};
use crate::jsonrpc::{self, Kind, Message, code};
use crate::lines::{Line, LineCodec};
use crate::logtail::LogTail;
use crate::modern;
use crate::upstream::Upstream;

/// How long making a TCP connection (before TLS) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a POST that no request waits for (a notification, a response) may take.
const UNANSWERED_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the DELETE that ends a session may take when the pool stops the server.
const DELETE_TIMEOUT: Duration = Duration::from_secs(2);
/// The wait before reconnecting an event stream when the server named none (`retry`).
const DEFAULT_RETRY: Duration = Duration::from_secs(1);
/// How many times a cut stream is resumed before its requests fail.
const RESUMES: u32 = 3;
/// How much of an error body goes into an error message.
const EXCERPT: usize = 200;
/// The size of each in-memory pipe between the upstream and this transport.
const PIPE: usize = 64 * 1024;

type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("header {header}: {reason}")]
    Header { header: String, reason: String },
    #[error("url {0:?} is not a URL")]
    Url(String),
    #[error("cannot load the trusted certificates: {0}")]
    Roots(String),
}

/// Why a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The server could not be reached, or its stream was lost: counts as an exit.
    Failed,
    /// The server no longer knows the session: a new one may start at once.
    Expired,
    /// The pool closed it, or the upstream went away.
    Stopped,
}

/// The pool's handle on one remote connection.
pub struct Remote {
    shared: Arc<Shared>,
}

struct Shared {
    server: String,
    url: Uri,
    origin: String,
    /// The entry's headers, secrets filled in and marked sensitive.
    headers: HeaderMap,
    /// The secret values in `headers`, blanked out of anything the server's answers put in an
    /// error message or a log line.
    secrets: Vec<String>,
    client: HttpClient,
    session: Mutex<Option<HeaderValue>>,
    /// The legacy protocol version `initialize` agreed on.
    version: Mutex<Option<HeaderValue>>,
    /// Lines for the upstream to read.
    lines: mpsc::Sender<String>,
    stderr: Arc<LogTail>,
    max_line: usize,
    closed: CancellationToken,
    end: Mutex<Option<End>>,
    /// The POSTs of requests in flight, by the request's id (as JSON text), so that the
    /// upstream's `notifications/cancelled` also drops the exchange.
    posts: Mutex<HashMap<String, CancellationToken>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl Pool {
    /// Connects (profile, server)'s remote server and greets it: the remote counterpart of a
    /// container's start.
    pub(super) async fn launch_remote(
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
        // Secret values reach the header map of this connection and nothing else.
        let secrets = self
            .settings
            .config
            .secrets
            .resolve(&def.secrets)
            .map_err(|err| start_error(err.to_string()))?;
        let stderr = Arc::new(LogTail::new(server));
        slot.lock().stderr = Some(Arc::clone(&stderr));
        let (remote, stdin, stdout) = Remote::connect(
            server,
            def,
            &secrets,
            Arc::clone(&stderr),
            self.settings.max_line,
        )
        .map_err(|err| start_error(err.to_string()))?;
        let seq = self.seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let upstream = Upstream::spawn(
            server,
            (profile, session),
            (stdin, stdout),
            Arc::clone(&stderr),
            self.settings.max_line,
            self.events.clone(),
        );
        if let Err(err) = upstream.handshake(self.settings.start_timeout).await {
            remote.close().await;
            return Err(err.into());
        }
        let origin = remote.shared.origin.clone();
        tracing::info!(profile, server, session, "connected to {origin}");
        let watched = Arc::clone(&remote.shared);
        let watched_slot = Arc::clone(slot);
        let watched_stderr = Arc::clone(&stderr);
        tokio::spawn(async move {
            watched.closed.cancelled().await;
            let end = lock(&watched.end).unwrap_or(End::Stopped);
            match end {
                End::Failed => watched_slot.exited(seq, None, &watched_stderr),
                End::Expired => watched_slot.released(seq),
                End::Stopped => {}
            }
        });
        Ok(Running {
            idle_refs: Arc::strong_count(&upstream),
            upstream,
            container: origin,
            seq,
            def: def.clone(),
            run,
            stderr,
            remote: Some(remote),
        })
    }
}

impl Remote {
    /// Makes the HTTP client for `def` with its headers filled from `secrets`, and starts the
    /// tasks between it and the upstream's pipes (its stdin and stdout, in that order).
    fn connect(
        server: &str,
        def: &ServerDef,
        secrets: &[(String, String)],
        stderr: Arc<LogTail>,
        max_line: usize,
    ) -> Result<(Remote, DuplexStream, DuplexStream), RemoteError> {
        let url_text = def.url.clone().unwrap_or_default();
        let url: Uri = url_text
            .parse()
            .map_err(|_| RemoteError::Url(url_text.clone()))?;
        let mut headers = HeaderMap::new();
        for (name, value) in &def.headers {
            let bad = |reason: &str| RemoteError::Header {
                header: name.clone(),
                reason: reason.to_owned(),
            };
            let filled = template::fill(value, |secret| {
                secrets
                    .iter()
                    .find(|(n, _)| n == secret)
                    .map(|(_, v)| v.as_str())
            })
            .map_err(|reason| bad(&reason))?;
            let mut value = HeaderValue::from_str(&filled)
                .map_err(|_| bad("its value holds characters a header cannot carry"))?;
            value.set_sensitive(true);
            let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| bad("not a name"))?;
            headers.insert(name, value);
        }
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(CONNECT_TIMEOUT));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_native_roots()
            .map_err(|err| RemoteError::Roots(err.to_string()))?
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new()).build(https);
        let (stdin, from_upstream) = tokio::io::duplex(PIPE);
        let (to_upstream, stdout) = tokio::io::duplex(PIPE);
        let (lines, queue) = mpsc::channel(1024);
        let shared = Arc::new(Shared {
            server: server.to_owned(),
            origin: template::origin(&url_text),
            url,
            headers,
            secrets: secrets
                .iter()
                .map(|(_, v)| v.clone())
                .filter(|v| !v.is_empty())
                .collect(),
            client,
            session: Mutex::default(),
            version: Mutex::default(),
            lines,
            stderr,
            max_line,
            closed: CancellationToken::new(),
            end: Mutex::default(),
            posts: Mutex::default(),
        });
        tokio::spawn(write_back(to_upstream, queue, shared.closed.clone()));
        tokio::spawn(read_upstream(Arc::clone(&shared), from_upstream));
        Ok((Remote { shared }, stdin, stdout))
    }

    /// Ends the session (DELETE, when the server gave one) and the connection.
    pub(super) async fn close(&self) {
        let shared = &self.shared;
        let session = lock(&shared.session).clone();
        if let Some(session) = session
            && !shared.closed.is_cancelled()
        {
            let mut request = shared.request(Method::DELETE, Bytes::new());
            request.headers_mut().insert("mcp-session-id", session);
            let sent = tokio::time::timeout(DELETE_TIMEOUT, shared.client.request(request)).await;
            match sent {
                Ok(Ok(response)) if response.status() == StatusCode::METHOD_NOT_ALLOWED => {}
                Ok(Ok(response)) if !response.status().is_success() => shared.log(&format!(
                    "DELETE of the session: HTTP {}",
                    response.status()
                )),
                Ok(Ok(_)) => {}
                Ok(Err(err)) => {
                    shared.log(&format!("DELETE of the session failed: {}", chain(&err)))
                }
                Err(_) => shared.log("DELETE of the session got no answer in time"),
            }
        }
        shared.close(End::Stopped);
    }
}

impl Shared {
    fn close(&self, end: End) {
        lock(&self.end).get_or_insert(end);
        self.closed.cancel();
    }

    /// A line for the server's log: shown by `server logs`, and in `server ls` once the
    /// connection ends.
    fn log(&self, text: &str) {
        self.stderr
            .push(format!("{}\n", self.redact(text)).as_bytes());
    }

    fn redact(&self, text: &str) -> String {
        let mut text = text.to_owned();
        for secret in &self.secrets {
            text = text.replace(secret.as_str(), "[REDACTED]");
        }
        text
    }

    /// A request to the endpoint with the entry's headers and the session's.
    fn request(&self, method: Method, body: Bytes) -> Request<Full<Bytes>> {
        let mut request = Request::new(Full::new(body));
        *request.method_mut() = method;
        *request.uri_mut() = self.url.clone();
        let headers = request.headers_mut();
        headers.extend(self.headers.clone());
        if let Some(session) = lock(&self.session).clone() {
            headers.insert("mcp-session-id", session);
        }
        if let Some(version) = lock(&self.version).clone() {
            headers.insert("mcp-protocol-version", version);
        }
        request
    }

    /// Hands a message line to the upstream.
    async fn deliver(&self, text: &str) {
        let text = text.trim();
        if text.is_empty() {
            return;
        }
        // A newline outside a JSON string is whitespace and inside one it is escaped, so
        // replacing them keeps the message and makes it one line.
        let line = format!("{}\n", text.replace(['\r', '\n'], " "));
        let _ = self.lines.send(line).await;
    }

    /// Answers the upstream's request `id` with an error naming the server.
    async fn fail(&self, id: &Value, message: &str) {
        let error = jsonrpc::error(
            code::INTERNAL_ERROR,
            format!("remote server {:?}: {}", self.server, self.redact(message)),
        );
        let _ = self
            .lines
            .send(jsonrpc::response_line(id, &Err(error)))
            .await;
    }
}

/// Writes the lines for the upstream into its stdout pipe; once the connection is closed, the
/// lines already queued (errors for its requests) still go, then the pipe ends.
async fn write_back(
    mut pipe: DuplexStream,
    mut queue: mpsc::Receiver<String>,
    closed: CancellationToken,
) {
    loop {
        let line = tokio::select! {
            biased;
            line = queue.recv() => line,
            () = closed.cancelled() => queue.try_recv().ok(),
        };
        let Some(line) = line else { break };
        if pipe.write_all(line.as_bytes()).await.is_err() {
            break;
        }
    }
    let _ = pipe.shutdown().await;
}

/// Reads the lines the upstream writes and POSTs each one in a task of its own.
async fn read_upstream(shared: Arc<Shared>, pipe: DuplexStream) {
    let mut lines = FramedRead::new(pipe, LineCodec::new(shared.max_line));
    loop {
        let line = tokio::select! {
            line = lines.next() => line,
            () = shared.closed.cancelled() => return,
        };
        match line {
            Some(Ok(Line::Text(text))) if !text.trim().is_empty() => match Message::parse(&text) {
                Ok(message) => dispatch(&shared, text, message),
                Err(err) => tracing::warn!(server = %shared.server, "not sent: {err}"),
            },
            Some(Ok(Line::Rejected { reason, .. })) => {
                tracing::warn!(server = %shared.server, ?reason, "not sent: a line it cannot take")
            }
            Some(Ok(Line::Text(_))) => {}
            Some(Err(_)) | None => break,
        }
    }
    // The upstream is gone: nothing will read what the server says.
    shared.close(End::Stopped);
}

fn dispatch(shared: &Arc<Shared>, text: String, message: Message) {
    let kind = message.kind();
    let cancelled = (message.method.as_deref() == Some("notifications/cancelled"))
        .then(|| {
            let params: Value = serde_json::from_str(message.params.as_deref()?.get()).ok()?;
            params.get("requestId").map(Value::to_string)
        })
        .flatten();
    let token = shared.closed.child_token();
    let key = match (&kind, &message.id) {
        (Kind::Request, Some(id)) => {
            let key = id.to_string();
            lock(&shared.posts).insert(key.clone(), token.clone());
            Some(key)
        }
        _ => None,
    };
    let shared = Arc::clone(shared);
    let cancelled_post = cancelled.and_then(|request| lock(&shared.posts).remove(&request));
    tokio::spawn(async move {
        let post = exchange(&shared, Bytes::from(text), &message);
        if kind == Kind::Request {
            tokio::select! {
                () = post => {}
                () = token.cancelled() => {}
            }
        } else {
            tokio::select! {
                _ = tokio::time::timeout(UNANSWERED_TIMEOUT, post) => {}
                () = token.cancelled() => {}
            }
        }
        if let Some(key) = key {
            lock(&shared.posts).remove(&key);
        }
    });
    // The server is told (the POST above) and the exchange it is about dropped.
    if let Some(post) = cancelled_post {
        post.cancel();
    }
}

/// Where an event stream stands: what to resume from and how long to wait first.
struct StreamState {
    last_id: Option<HeaderValue>,
    retry: Duration,
}

/// How reading an event stream ended.
enum Outcome {
    /// The answer to the request it was read for came.
    Answered,
    /// The server ended the stream.
    Ended,
    /// The stream broke.
    Cut(String),
}

/// POSTs one upstream line and hands back what the server answers.
async fn exchange(shared: &Arc<Shared>, body: Bytes, message: &Message) {
    let method = message.method.as_deref().unwrap_or("a response");
    let id = match message.kind() {
        Kind::Request => message.id.clone(),
        _ => None,
    };
    let mut request = shared.request(Method::POST, body);
    let headers = request.headers_mut();
    headers.insert(
        header::ACCEPT,
        HeaderValue::from_static("application/json, text/event-stream"),
    );
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some(method) = &message.method {
        modern_headers(headers, method, message.params.as_deref());
    }
    let response = match shared.client.request(request).await {
        Ok(response) => response,
        Err(err) => {
            let reason = format!("cannot reach {}: {}", shared.origin, chain(&err));
            shared.log(&format!("POST {method}: {reason}"));
            if let Some(id) = &id {
                shared.fail(id, &reason).await;
            }
            shared.close(End::Failed);
            return;
        }
    };
    let status = response.status();
    if method == "initialize"
        && status.is_success()
        && let Some(session) = response.headers().get("mcp-session-id")
    {
        *lock(&shared.session) = Some(session.clone());
    }
    if status == StatusCode::NOT_FOUND && method != "initialize" && lock(&shared.session).is_some()
    {
        shared.log(&format!("POST {method}: HTTP 404: the session expired"));
        if let Some(id) = &id {
            let reason = "the session expired; the next request starts a new one";
            shared.fail(id, reason).await;
        }
        shared.close(End::Expired);
        return;
    }
    if !status.is_success() {
        return refused(shared, response, id.as_ref(), method).await;
    }
    let Some(id) = id else {
        if method == "notifications/initialized" {
            tokio::spawn(listen(Arc::clone(shared)));
        }
        return;
    };
    if is_event_stream(&response) {
        return stream_answer(shared, response.into_body(), &id, method).await;
    }
    match http_body_util::Limited::new(response.into_body(), shared.max_line)
        .collect()
        .await
    {
        Ok(body) => {
            let body = body.to_bytes();
            let text = String::from_utf8_lossy(&body);
            match serde_json::from_str::<Vec<&serde_json::value::RawValue>>(&text) {
                Ok(batch) => {
                    for message in batch {
                        shared.answer(method, message.get()).await;
                    }
                }
                Err(_) => shared.answer(method, &text).await,
            }
        }
        Err(err) => {
            let reason = format!("the answer to {method} could not be read: {err}");
            shared.log(&format!("POST {method}: {reason}"));
            shared.fail(&id, &reason).await;
        }
    }
}

/// An HTTP error for a POST: a JSON-RPC error the server put in the body for this request is
/// its answer (2026-07-28 servers answer unknown methods with 404 and `-32601`); anything else
/// becomes an error naming the status.
async fn refused(shared: &Shared, response: Response<Incoming>, id: Option<&Value>, method: &str) {
    let status = response.status();
    let body = http_body_util::Limited::new(response.into_body(), shared.max_line)
        .collect()
        .await
        .map(|body| body.to_bytes())
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&body);
    let excerpt = excerpt(&text);
    // The era probe is refused by every legacy server; that is an answer, not a failure.
    if method == "server/discover" && status.is_client_error() {
        tracing::debug!(server = %shared.server, "the era probe got HTTP {status}: a legacy server");
    } else {
        shared.log(&format!("POST {method}: HTTP {status}: {excerpt}"));
    }
    let Some(id) = id else { return };
    if answers(&text, id) {
        return shared.answer(method, &text).await;
    }
    let mut reason = format!("answered {method} with HTTP {status}");
    if !excerpt.is_empty() {
        reason.push_str(&format!(": {excerpt}"));
    }
    shared.fail(id, &reason).await;
}

/// Reads the event stream of a request's POST until its answer, resuming a cut stream with
/// `Last-Event-ID` when the server gave ids; without them the request fails.
async fn stream_answer(shared: &Arc<Shared>, body: Incoming, id: &Value, method: &str) {
    let mut state = StreamState {
        last_id: None,
        retry: DEFAULT_RETRY,
    };
    let mut body = body;
    let mut resumes = 0;
    loop {
        let why = match read_events(shared, body, &mut state, Some((id, method))).await {
            Outcome::Answered => return,
            Outcome::Ended => "the event stream ended before the answer".to_owned(),
            Outcome::Cut(reason) => format!("the event stream was cut: {reason}"),
        };
        let last_id = state.last_id.clone().filter(|_| resumes < RESUMES);
        let Some(last_id) = last_id else {
            shared.log(&format!("POST {method}: {why}"));
            shared.fail(id, &format!("{why} of {method}")).await;
            // A legacy session that lost messages is not trusted further; a 2026-07-28
            // request only loses itself.
            if lock(&shared.session).is_some() {
                shared.close(End::Failed);
            }
            return;
        };
        resumes += 1;
        tokio::time::sleep(state.retry).await;
        let mut request = shared.request(Method::GET, Bytes::new());
        request.headers_mut().insert(
            header::ACCEPT,
            HeaderValue::from_static("text/event-stream"),
        );
        request.headers_mut().insert("last-event-id", last_id);
        body = match shared.client.request(request).await {
            Ok(response) if response.status().is_success() && is_event_stream(&response) => {
                response.into_body()
            }
            Ok(response) => {
                let reason = format!("{why}, and resuming it got HTTP {}", response.status());
                shared.log(&format!("POST {method}: {reason}"));
                return shared.fail(id, &reason).await;
            }
            Err(err) => {
                let reason = format!("{why}, and resuming it failed: {}", chain(&err));
                shared.log(&format!("POST {method}: {reason}"));
                return shared.fail(id, &reason).await;
            }
        };
    }
}

/// Hands every `message` event of `body` to the upstream, until the stream ends or, with
/// `answer_for`, that request's answer came.
async fn read_events(
    shared: &Shared,
    mut body: Incoming,
    state: &mut StreamState,
    answer_for: Option<(&Value, &str)>,
) -> Outcome {
    let mut parser = sse::Parser::new(shared.max_line);
    let mut items = Vec::new();
    let method = answer_for.map_or("", |(_, method)| method);
    loop {
        match body.frame().await {
            None => return Outcome::Ended,
            Some(Err(err)) => return Outcome::Cut(chain(&err)),
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    parser.feed(&data, &mut items);
                }
            }
        }
        for item in items.drain(..) {
            match item {
                sse::Item::Message(text) => {
                    let answered = answer_for.is_some_and(|(id, _)| answers(&text, id));
                    shared.answer(method, &text).await;
                    if answered {
                        return Outcome::Answered;
                    }
                }
                sse::Item::Id(id) => {
                    state.last_id = HeaderValue::from_str(&id).ok().filter(|_| !id.is_empty())
                }
                sse::Item::Retry(retry) => state.retry = retry,
                sse::Item::TooLong => {
                    shared.log("dropped an event longer than the line limit");
                    if let Some((id, method)) = answer_for {
                        let reason =
                            format!("sent an event longer than the line limit for {method}");
                        shared.fail(id, &reason).await;
                        return Outcome::Answered;
                    }
                }
            }
        }
    }
}

/// The stream of what a legacy server says unprompted, opened once the session is initialized
/// and reopened when the server ends it; a `405` means the server offers none.
async fn listen(shared: Arc<Shared>) {
    let mut state = StreamState {
        last_id: None,
        retry: DEFAULT_RETRY,
    };
    loop {
        let mut request = shared.request(Method::GET, Bytes::new());
        request.headers_mut().insert(
            header::ACCEPT,
            HeaderValue::from_static("text/event-stream"),
        );
        if let Some(last_id) = state.last_id.clone() {
            request.headers_mut().insert("last-event-id", last_id);
        }
        let opened = Instant::now();
        let response = tokio::select! {
            response = shared.client.request(request) => response,
            () = shared.closed.cancelled() => return,
        };
        match response {
            Ok(response) if response.status() == StatusCode::METHOD_NOT_ALLOWED => {
                tracing::debug!(server = %shared.server, "no stream of server messages (405)");
                return;
            }
            Ok(response) if !response.status().is_success() || !is_event_stream(&response) => {
                shared.log(&format!(
                    "GET of the server's message stream: HTTP {}",
                    response.status()
                ));
                return;
            }
            Ok(response) => {
                let outcome = tokio::select! {
                    outcome = read_events(&shared, response.into_body(), &mut state, None) => outcome,
                    () = shared.closed.cancelled() => return,
                };
                if let Outcome::Cut(reason) = outcome {
                    shared.log(&format!("the server's message stream was cut: {reason}"));
                }
            }
            Err(err) => {
                shared.log(&format!(
                    "GET of the server's message stream: cannot reach {}: {}",
                    shared.origin,
                    chain(&err)
                ));
                return;
            }
        }
        // A server that ends the stream at once is asked again no more than once a retry.
        let wait = state
            .retry
            .saturating_sub(opened.elapsed())
            .max(state.retry / 2);
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = shared.closed.cancelled() => return,
        }
    }
}

impl Shared {
    /// Hands a message of the server to the upstream; the answer to `initialize` also gives the
    /// protocol version every later request names.
    async fn answer(&self, method: &str, text: &str) {
        if method == "initialize"
            && let Ok(message) = Message::parse(text)
            && let Some(result) = message.result
            && let Ok(result) = serde_json::from_str::<Value>(result.get())
            && let Some(version) = result.get("protocolVersion").and_then(Value::as_str)
            && let Ok(version) = HeaderValue::from_str(version)
        {
            *lock(&self.version) = Some(version);
        }
        self.deliver(text).await;
    }
}

/// The 2026-07-28 routing headers of a modern request or notification: the version its `_meta`
/// names, its method and, for the requests that name something, that name.
fn modern_headers(
    headers: &mut HeaderMap,
    method: &str,
    params: Option<&serde_json::value::RawValue>,
) {
    let Some(params) = params.filter(|p| p.get().contains(modern::PROTOCOL_KEY)) else {
        return;
    };
    let Ok(params) = serde_json::from_str::<Value>(params.get()) else {
        return;
    };
    if !modern::is_modern(method, Some(&params)) {
        return;
    }
    let version = params
        .get("_meta")
        .and_then(|m| m.get(modern::PROTOCOL_KEY))
        .and_then(Value::as_str)
        .and_then(header_value);
    if let Some(version) = version {
        headers.insert("mcp-protocol-version", version);
    }
    if let Some(method) = header_value(method) {
        headers.insert("mcp-method", method);
    }
    let name = modern::name_field(method)
        .and_then(|field| params.get(field))
        .and_then(Value::as_str)
        .and_then(header_value);
    if let Some(name) = name {
        headers.insert("mcp-name", name);
    }
}

/// `value` as a header: as it is when it is printable ASCII without edge spaces, else in the
/// `=?base64?…?=` form the 2026-07-28 transport defines.
fn header_value(value: &str) -> Option<HeaderValue> {
    let plain = value.bytes().all(|b| (0x20..0x7f).contains(&b))
        && !value.starts_with(' ')
        && !value.ends_with(' ');
    if plain {
        HeaderValue::from_str(value).ok()
    } else {
        let encoded = base64::engine::general_purpose::STANDARD.encode(value);
        HeaderValue::from_str(&format!("=?base64?{encoded}?=")).ok()
    }
}

fn is_event_stream<B>(response: &Response<B>) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("text/event-stream"))
}

/// Whether `text` is the response to request `id`.
fn answers(text: &str, id: &Value) -> bool {
    Message::parse(text)
        .is_ok_and(|message| message.kind() == Kind::Response && message.id.as_ref() == Some(id))
}

/// The start of an error body, on one line and without control characters.
fn excerpt(text: &str) -> String {
    let words: Vec<&str> = text
        .split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|w| !w.is_empty())
        .collect();
    let flat = words.join(" ");
    let mut cut: String = flat.chars().take(EXCERPT).collect();
    if cut.len() < flat.len() {
        cut.push('…');
    }
    cut
}

/// An error with its causes, which hyper's client errors need to say anything useful.
fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_outside_plain_ascii_are_encoded() {
        assert_eq!(header_value("echo").unwrap(), "echo");
        assert_eq!(header_value("héllo").unwrap(), "=?base64?aMOpbGxv?=");
        assert_eq!(header_value(" x").unwrap(), "=?base64?IHg=?=");
    }

    #[test]
    fn modern_requests_carry_their_routing_headers() {
        let params = serde_json::value::RawValue::from_string(format!(
            r#"{{"name":"echo","_meta":{{"{}":"2026-07-28"}}}}"#,
            modern::PROTOCOL_KEY
        ))
        .unwrap();
        let mut headers = HeaderMap::new();
        modern_headers(&mut headers, "tools/call", Some(&params));
        assert_eq!(headers["mcp-protocol-version"], "2026-07-28");
        assert_eq!(headers["mcp-method"], "tools/call");
        assert_eq!(headers["mcp-name"], "echo");
        let legacy = serde_json::value::RawValue::from_string(r#"{"name":"echo"}"#.into()).unwrap();
        let mut headers = HeaderMap::new();
        modern_headers(&mut headers, "tools/call", Some(&legacy));
        assert!(headers.is_empty());
    }

    #[test]
    fn excerpts_are_one_short_line() {
        assert_eq!(excerpt("  bad\r\n\ttoken\u{7}  "), "bad token");
        let long = "x".repeat(500);
        assert_eq!(excerpt(&long).chars().count(), EXCERPT + 1);
    }
}
