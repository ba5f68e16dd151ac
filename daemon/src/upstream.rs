//! One connection to an MCP server (today: a container's attached stdio).
//!
//! The gateway speaks to the server with its own request ids, so requests from many client
//! sessions can share one server: [`Upstream::request`] mints an id, parks a oneshot under it, and
//! the reader task hands the server's response to whoever waits. Result bodies stay raw.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::value::RawValue;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot};
use tokio_util::codec::{FramedRead, LinesCodec, LinesCodecError};
use tokio_util::sync::CancellationToken;

use crate::jsonrpc::{self, Kind, Message, Reply, code};
use crate::logtail::LogTail;

/// The protocol revision the gateway asks legacy servers for.
pub const LEGACY_PROTOCOL: &str = "2025-11-25";

#[derive(Debug, Clone, thiserror::Error)]
pub enum UpstreamError {
    #[error("server {server:?} exited{}", stderr_suffix(.stderr))]
    Closed { server: String, stderr: Vec<String> },
    #[error("server {server:?} did not answer {method} within {seconds} s")]
    Timeout {
        server: String,
        method: String,
        seconds: u64,
    },
    #[error("server {server:?} failed to initialize: {reason}")]
    Initialize { server: String, reason: String },
}

fn stderr_suffix(lines: &[String]) -> String {
    if lines.is_empty() {
        String::new()
    } else {
        format!("; its last output: {}", lines.join(" | "))
    }
}

pub struct Upstream {
    name: String,
    outgoing: mpsc::Sender<String>,
    pending: Arc<Mutex<HashMap<u64, oneshot::Sender<Reply>>>>,
    next_id: AtomicU64,
    closed: CancellationToken,
    stderr: Arc<LogTail>,
}

/// Removes a parked request when its caller gives up (timeout, or the client went away).
struct PendingGuard<'a> {
    pending: &'a Mutex<HashMap<u64, oneshot::Sender<Reply>>>,
    id: u64,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.id);
    }
}

impl Upstream {
    /// Starts the reader and writer tasks over the server's stdout and stdin.
    pub fn spawn(
        name: &str,
        stdin: impl AsyncWrite + Send + 'static,
        stdout: impl AsyncRead + Send + 'static,
        stderr: Arc<LogTail>,
        max_line: usize,
    ) -> Arc<Upstream> {
        let (outgoing, queue) = mpsc::channel(1024);
        let upstream = Arc::new(Upstream {
            name: name.to_owned(),
            outgoing,
            pending: Arc::default(),
            next_id: AtomicU64::new(1),
            closed: CancellationToken::new(),
            stderr,
        });
        tokio::spawn(jsonrpc::write_lines(Box::pin(stdin), queue));
        tokio::spawn(read_loop(Arc::clone(&upstream), Box::pin(stdout), max_line));
        upstream
    }

    pub fn is_closed(&self) -> bool {
        self.closed.is_cancelled()
    }

    /// Sends a request and waits for its reply.
    pub async fn request(
        &self,
        method: &str,
        params: Option<&RawValue>,
        timeout: Duration,
    ) -> Result<Reply, UpstreamError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, tx);
        let _guard = PendingGuard {
            pending: &self.pending,
            id,
        };
        if self.is_closed()
            || self
                .outgoing
                .send(jsonrpc::request_line(id, method, params))
                .await
                .is_err()
        {
            return Err(self.closed_error());
        }
        tokio::select! {
            reply = rx => reply.map_err(|_| self.closed_error()),
            () = tokio::time::sleep(timeout) => {
                let cancel = serde_json::json!({"requestId": id, "reason": "timed out in the gateway"});
                self.notify("notifications/cancelled", Some(&jsonrpc::to_raw(&cancel))).await;
                Err(UpstreamError::Timeout {
                    server: self.name.clone(),
                    method: method.to_owned(),
                    seconds: timeout.as_secs(),
                })
            }
        }
    }

    pub async fn notify(&self, method: &str, params: Option<&RawValue>) {
        let _ = self
            .outgoing
            .send(jsonrpc::notification_line(method, params))
            .await;
    }

    /// The legacy handshake: `initialize`, then `notifications/initialized`.
    pub async fn initialize(&self, timeout: Duration) -> Result<(), UpstreamError> {
        let params = serde_json::json!({
            "protocolVersion": LEGACY_PROTOCOL,
            "capabilities": {},
            "clientInfo": {"name": "mcp-gateway", "version": env!("CARGO_PKG_VERSION")},
        });
        let failed = |reason: String| UpstreamError::Initialize {
            server: self.name.clone(),
            reason,
        };
        if let Err(error) = self
            .request("initialize", Some(&jsonrpc::to_raw(&params)), timeout)
            .await?
        {
            return Err(failed(error.get().to_owned()));
        }
        self.notify("notifications/initialized", None).await;
        Ok(())
    }

    fn closed_error(&self) -> UpstreamError {
        UpstreamError::Closed {
            server: self.name.clone(),
            stderr: self.stderr.last(5),
        }
    }

    fn deliver(&self, message: Message) {
        let Some(id) = message.id.as_ref().and_then(serde_json::Value::as_u64) else {
            tracing::warn!(server = %self.name, "response with an id the gateway never sent");
            return;
        };
        let waiter = self
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
        let reply = match (message.result, message.error) {
            (_, Some(error)) => Err(error),
            (Some(result), None) => Ok(result),
            (None, None) => Ok(jsonrpc::empty_object()),
        };
        match waiter {
            Some(waiter) => drop(waiter.send(reply)),
            None => tracing::debug!(server = %self.name, id, "late or unknown response dropped"),
        }
    }

    /// Requests from the server to the client. Only `ping` is answered for now; the rest get an
    /// error so the server never waits forever.
    async fn answer_server_request(&self, message: Message) {
        let id = message.id.unwrap_or_default();
        let method = message.method.unwrap_or_default();
        let reply = if method == "ping" {
            Ok(jsonrpc::empty_object())
        } else {
            Err(jsonrpc::error(
                code::METHOD_NOT_FOUND,
                format!("{method} is not relayed by the gateway"),
            ))
        };
        let _ = self
            .outgoing
            .send(jsonrpc::response_line(&id, &reply))
            .await;
    }
}

async fn read_loop(
    upstream: Arc<Upstream>,
    stdout: std::pin::Pin<Box<dyn AsyncRead + Send>>,
    max_line: usize,
) {
    let mut lines = FramedRead::new(stdout, LinesCodec::new_with_max_length(max_line));
    while let Some(line) = lines.next().await {
        let line = match line {
            Ok(line) => line,
            Err(LinesCodecError::MaxLineLengthExceeded) => {
                tracing::warn!(server = %upstream.name, "dropped an output line longer than {max_line} bytes");
                continue;
            }
            Err(LinesCodecError::Io(err)) => {
                tracing::warn!(server = %upstream.name, "reading the server's output failed: {err}");
                break;
            }
        };
        if line.trim().is_empty() {
            continue;
        }
        let message = match Message::parse(&line) {
            Ok(message) => message,
            Err(err) => {
                tracing::warn!(server = %upstream.name, "ignored a line that is not MCP: {err}");
                continue;
            }
        };
        match message.kind() {
            Kind::Response => upstream.deliver(message),
            Kind::Request => upstream.answer_server_request(message).await,
            Kind::Notification => {
                tracing::debug!(server = %upstream.name, method = ?message.method, "notification not relayed yet");
            }
            Kind::Invalid => {
                tracing::warn!(server = %upstream.name, "ignored an invalid JSON-RPC message")
            }
        }
    }
    upstream.closed.cancel();
    // Everyone still waiting learns at once that no answer will come.
    upstream
        .pending
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clear();
}

#[cfg(test)]
mod tests;
