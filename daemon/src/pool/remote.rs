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

mod exchange;
mod sse;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::Full;
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use tokio::io::{AsyncWriteExt, DuplexStream};
use tokio::sync::mpsc;
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;

use super::{Instance, Pool, PoolError, Running, Slot};
use crate::config::{RunSettings, ServerDef, remote as template};
use crate::jsonrpc::{self, Kind, Message, code};
use crate::lines::{Line, LineCodec};
use crate::logtail::LogTail;
use crate::upstream::Upstream;

/// How long making a TCP connection (before TLS) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a POST that no request waits for (a notification, a response) may take.
const UNANSWERED_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the DELETE that ends a session may take when the pool stops the server.
const DELETE_TIMEOUT: Duration = Duration::from_secs(2);
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
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn launch_remote(
        &self,
        slot: &Arc<Slot>,
        (profile, server, session): (&str, &str, Option<u64>),
        seq: u64,
        def: &ServerDef,
        run: RunSettings,
        secrets: &[(String, String)],
        stderr: Arc<LogTail>,
    ) -> Result<Running, PoolError> {
        let start_error = |reason: String| PoolError::Start {
            server: server.to_owned(),
            reason,
        };
        slot.lock().stderr = Some(Arc::clone(&stderr));
        // Secret values reach the header map of this connection and nothing else.
        let (remote, stdin, stdout) = Remote::connect(
            server,
            def,
            secrets,
            Arc::clone(&stderr),
            self.settings.max_line,
        )
        .map_err(|err| start_error(err.to_string()))?;
        let upstream = Upstream::spawn(
            server,
            (profile, session),
            (stdin, stdout),
            Arc::clone(&stderr),
            self.settings.max_line,
            self.events.open(),
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
            instance: Instance::Remote(remote),
            seq,
            def: def.clone(),
            run,
            checked: std::sync::Weak::new(),
            stderr,
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
                Ok(Err(err)) => shared.log(&format!(
                    "DELETE of the session failed: {}",
                    exchange::chain(&err)
                )),
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
        let post = exchange::send(&shared, Bytes::from(text), &message);
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
