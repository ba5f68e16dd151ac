//! One MCP client session (a connection from `mcp-shim` after its hello): reads the client's
//! JSON-RPC lines, answers what the gateway owns (`initialize`, `ping`, the merged `tools/list`)
//! and routes the rest to the profile's servers.
//!
//! Requests run concurrently, each in its own task, and their answers go back through one writer
//! task in the order they complete. When the client goes away, its unfinished requests are
//! dropped, which releases their places on the servers.

use std::sync::Arc;

use futures_util::StreamExt;
use serde_json::value::RawValue;
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::codec::{FramedRead, LinesCodec, LinesCodecError};
use tokio_util::sync::CancellationToken;

use crate::gateway::Gateway;
use crate::jsonrpc::{self, Kind, Message, ParseError, Reply, code};

/// Protocol revisions a legacy client may negotiate with the gateway, newest first.
const LEGACY_VERSIONS: [&str; 3] = ["2025-11-25", "2025-06-18", "2025-03-26"];

pub struct Session {
    pub profile: String,
    pub gateway: Arc<Gateway>,
    out: mpsc::Sender<String>,
}

/// Serves the session until the client closes its side or the daemon shuts down.
pub async fn serve<R, W>(
    mut lines: FramedRead<R, LinesCodec>,
    writer: W,
    profile: String,
    gateway: Arc<Gateway>,
    shutdown: CancellationToken,
) where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (out, queue) = mpsc::channel(256);
    let writer = tokio::spawn(jsonrpc::write_lines(writer, queue));
    let session = Arc::new(Session {
        profile,
        gateway,
        out,
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
            Some(Ok(line)) => session.dispatch(&line, &mut requests).await,
            Some(Err(LinesCodecError::MaxLineLengthExceeded)) => {
                let max = lines.decoder().max_length();
                session
                    .send(
                        &Value::Null,
                        &Err(jsonrpc::error(
                            code::INVALID_REQUEST,
                            format!("message longer than {max} bytes"),
                        )),
                    )
                    .await;
            }
            Some(Err(LinesCodecError::Io(err))) => {
                tracing::debug!("session read failed: {err}");
                break;
            }
        }
    }
    // A client that closed its input may still wait for answers to what it already sent, unless
    // the daemon is shutting down.
    tokio::select! {
        () = async { while requests.join_next().await.is_some() {} } => {}
        () = shutdown.cancelled() => requests.abort_all(),
    }
    drop(session);
    let _ = writer.await;
}

impl Session {
    async fn send(&self, id: &Value, reply: &Reply) {
        let _ = self.out.send(jsonrpc::response_line(id, reply)).await;
    }

    async fn dispatch(self: &Arc<Self>, line: &str, requests: &mut JoinSet<()>) {
        if line.trim().is_empty() {
            return;
        }
        let message = match Message::parse(line) {
            Ok(message) => message,
            Err(err @ ParseError::Batch) => {
                return self
                    .send(
                        &Value::Null,
                        &Err(jsonrpc::error(code::INVALID_REQUEST, err.to_string())),
                    )
                    .await;
            }
            Err(err @ ParseError::Json(_)) => {
                return self
                    .send(
                        &Value::Null,
                        &Err(jsonrpc::error(code::PARSE_ERROR, err.to_string())),
                    )
                    .await;
            }
        };
        match message.kind() {
            Kind::Request => {
                let session = Arc::clone(self);
                requests.spawn(async move {
                    let id = message.id.clone().unwrap_or_default();
                    let reply = session.handle_request(message).await;
                    session.send(&id, &reply).await;
                });
            }
            Kind::Notification => {
                // `notifications/initialized` needs no action; cancellation and the rest are
                // relayed once the gateway tracks them per server.
                tracing::trace!(method = ?message.method, "client notification");
            }
            Kind::Response => tracing::debug!("client response with no gateway request waiting"),
            Kind::Invalid => {
                let id = message.id.unwrap_or_default();
                self.send(
                    &id,
                    &Err(jsonrpc::error(
                        code::INVALID_REQUEST,
                        "not a JSON-RPC request, notification or response",
                    )),
                )
                .await;
            }
        }
    }

    async fn handle_request(&self, message: Message) -> Reply {
        let method = message.method.as_deref().unwrap_or_default();
        let params = message.params.as_deref();
        match method {
            "initialize" => Ok(initialize_result(params)),
            "ping" => Ok(jsonrpc::empty_object()),
            "tools/list" => self.list_tools().await,
            "tools/call" => match params {
                Some(params) => self
                    .gateway
                    .call_tool(&self.profile, params)
                    .await
                    .unwrap_or_else(|err| Err(err.to_jsonrpc())),
                None => Err(jsonrpc::error(
                    code::INVALID_PARAMS,
                    "tools/call needs params",
                )),
            },
            _ => Err(jsonrpc::error(
                code::METHOD_NOT_FOUND,
                format!("method not found: {method}"),
            )),
        }
    }

    /// The whole merged list in one page; servers that failed are left out and logged.
    async fn list_tools(&self) -> Reply {
        match self.gateway.tool_table(&self.profile).await {
            Ok(table) => {
                let tools: Vec<Value> = table
                    .tools
                    .iter()
                    .map(|t| Value::Object(t.tool.clone()))
                    .collect();
                Ok(jsonrpc::to_raw(&json!({ "tools": tools })))
            }
            Err(err) => Err(err.to_jsonrpc()),
        }
    }
}

/// The gateway's own `initialize` answer: it is one server to the client, whatever it runs.
fn initialize_result(params: Option<&RawValue>) -> Box<RawValue> {
    let requested = params
        .and_then(|p| serde_json::from_str::<Value>(p.get()).ok())
        .and_then(|p| {
            p.get("protocolVersion")
                .and_then(Value::as_str)
                .map(str::to_owned)
        });
    // Echo the client's version when the gateway speaks it, else offer the newest legacy one, as
    // the lifecycle rules ask.
    let version = requested
        .as_deref()
        .filter(|v| LEGACY_VERSIONS.contains(v))
        .unwrap_or(LEGACY_VERSIONS[0]);
    jsonrpc::to_raw(&json!({
        "protocolVersion": version,
        "capabilities": { "tools": { "listChanged": false } },
        "serverInfo": { "name": "mcp-gateway", "version": env!("CARGO_PKG_VERSION") },
    }))
}
