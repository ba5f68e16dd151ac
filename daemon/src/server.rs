//! The accept loop: checks who connects, reads the hello line, and hands the connection to an MCP
//! session or to the control handler. Shutdown stops accepting, ends sessions, and removes the
//! containers.

use std::io;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use mcp_gateway_proto::{
    CallRecord, ErrorKind, Hello, HelloReply, MAX_CONTROL_LINE, PROTOCOL_VERSION, Request,
    Response, Role,
};
use tokio::io::AsyncWriteExt;
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::broadcast;
use tokio_util::codec::{FramedRead, LinesCodec};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::gateway::Gateway;
use crate::hangup::Hangup;
use crate::lines::LineCodec;
use crate::{control, session};

/// How long a client has to send its hello before the daemon hangs up.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// What every connection handler can reach.
pub struct Shared {
    pub http: crate::http::Face,
    pub gateway: Arc<Gateway>,
    pub socket: String,
    pub sessions: AtomicU64,
    pub max_mcp_line: usize,
    pub activity: Activity,
}

/// Open connections and when the last one ended, for the idle exit.
#[derive(Default)]
pub struct Activity {
    open: AtomicU64,
    changed: tokio::sync::Notify,
}

impl Activity {
    pub(crate) fn opened(&self) {
        self.open.fetch_add(1, Ordering::SeqCst);
        self.changed.notify_waiters();
    }

    pub(crate) fn closed(&self) {
        self.open.fetch_sub(1, Ordering::SeqCst);
        self.changed.notify_waiters();
    }

    /// Resolves once no connection has been open for `timeout`; never when `timeout` is `None`.
    pub async fn idle(&self, timeout: Option<Duration>) {
        let Some(timeout) = timeout else {
            return std::future::pending().await;
        };
        loop {
            let changed = self.changed.notified();
            if self.open.load(Ordering::SeqCst) == 0 {
                if tokio::time::timeout(timeout, changed).await.is_err() {
                    return;
                }
            } else {
                changed.await;
            }
        }
    }
}

/// Accepts connections until `shutdown` fires, then waits for the handlers to finish.
pub async fn accept_loop(
    listener: tokio::net::UnixListener,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
    tracker: &TaskTracker,
) {
    let uid = nix::unistd::geteuid().as_raw();
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(err) => {
                    // Running out of descriptors is transient; back off instead of spinning.
                    tracing::warn!("accept failed: {err}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        match stream.peer_cred() {
            Ok(cred) if cred.uid() == uid => {}
            Ok(cred) => {
                tracing::warn!(uid = cred.uid(), pid = ?cred.pid(), "refused a connection from another user");
                continue;
            }
            Err(err) => {
                tracing::warn!("refused a connection without peer credentials: {err}");
                continue;
            }
        }
        shared.activity.opened();
        let shared = Arc::clone(&shared);
        let shutdown = shutdown.clone();
        tracker.spawn(async move {
            handle_connection(stream, Arc::clone(&shared), shutdown).await;
            shared.activity.closed();
        });
    }
}

async fn handle_connection(stream: UnixStream, shared: Arc<Shared>, shutdown: CancellationToken) {
    let (read, write) = stream.into_split();
    let mut reader = FramedRead::new(read, LinesCodec::new_with_max_length(MAX_CONTROL_LINE));
    let mut writer = write;
    let hello = match tokio::time::timeout(HELLO_TIMEOUT, reader.next()).await {
        Ok(Some(Ok(line))) => {
            serde_json::from_str::<Hello>(&line).map_err(|err| format!("invalid hello: {err}"))
        }
        Ok(Some(Err(err))) => Err(format!("invalid hello: {err}")),
        Ok(None) => return,
        Err(_) => Err(format!("no hello within {} s", HELLO_TIMEOUT.as_secs())),
    };
    let refuse = |kind, message: String| HelloReply::Error { kind, message };
    let hello = match hello {
        Ok(hello) if hello.proto == PROTOCOL_VERSION => hello,
        Ok(hello) => {
            let message = format!(
                "protocol {} is not supported (this daemon speaks {PROTOCOL_VERSION})",
                hello.proto
            );
            send_line(
                &mut writer,
                &refuse(ErrorKind::UnsupportedProtocol, message),
            )
            .await;
            return;
        }
        Err(message) => {
            send_line(&mut writer, &refuse(ErrorKind::BadRequest, message)).await;
            return;
        }
    };
    match hello.role {
        Role::Control => {
            send_line(&mut writer, &accepted(None, false)).await;
            // An idle `mcpctl` connection must not hold up the daemon's exit.
            tokio::select! {
                () = serve_control(reader, writer, &shared) => {}
                () = shutdown.cancelled() => {}
            }
        }
        Role::Mcp => {
            let config = shared.gateway.config.get();
            let profile = hello
                .profile
                .clone()
                .unwrap_or_else(|| config.active.clone());
            if config.profile(&profile).is_none() {
                let message = format!("no profile named {profile:?}");
                send_line(&mut writer, &refuse(ErrorKind::NotFound, message)).await;
                return;
            }
            let take_stdio = hello.hand_over_stdio;
            // A relayed session is watched on its connection, which can fail before anything is
            // promised; a handed-over one is watched once its descriptors have arrived.
            let relay_hangup = if take_stdio {
                None
            } else {
                match Hangup::watch(&[reader.get_ref().as_ref().as_fd()]) {
                    Ok(hangup) => Some(hangup),
                    Err(err) => {
                        let message = format!("cannot watch the connection: {err}");
                        send_line(&mut writer, &refuse(ErrorKind::Internal, message)).await;
                        return;
                    }
                }
            };
            send_line(&mut writer, &accepted(Some(profile.clone()), take_stdio)).await;
            let session = Opened {
                profile: hello.profile.clone(),
                client: hello.client_name.clone().unwrap_or(hello.client.clone()),
                gateway: Arc::clone(&shared.gateway),
                max_line: shared.max_mcp_line,
                shutdown,
            };
            tracing::info!(profile, client = %hello.client, handed_over = take_stdio, "session opened");
            shared.sessions.fetch_add(1, Ordering::Relaxed);
            match relay_hangup {
                None => serve_handed_over(reader, writer, session).await,
                Some(hangup) => {
                    // Bytes the client sent right after its hello may already sit in the
                    // reader's buffer, so the MCP session continues on the same reader with the
                    // MCP line limit.
                    let reader = reader.map_decoder(|_| LineCodec::new(session.max_line));
                    session.serve(reader, writer, hangup).await;
                }
            }
            shared.sessions.fetch_sub(1, Ordering::Relaxed);
            tracing::info!(profile, client = %hello.client, "session closed");
        }
    }
}

/// What a session is opened with, whichever way its bytes come.
struct Opened {
    profile: Option<String>,
    client: String,
    gateway: Arc<Gateway>,
    /// The MCP line limit of the session's input.
    max_line: usize,
    shutdown: CancellationToken,
}

impl Opened {
    async fn serve<R, W>(self, lines: FramedRead<R, LineCodec>, writer: W, hangup: Hangup)
    where
        R: tokio::io::AsyncRead + Unpin,
        W: tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        session::serve(
            lines,
            writer,
            hangup,
            self.profile,
            self.client,
            self.gateway,
            self.shutdown,
        )
        .await;
    }
}

/// Serves a session on the stdin and stdout its shim hands over. The connection stays open
/// beside them until the session ends, so that the shim lives as long as the session; either the
/// shim going (its connection hangs up) or the client going (its stdout does) ends it.
async fn serve_handed_over(
    reader: FramedRead<OwnedReadHalf, LinesCodec>,
    mut writer: OwnedWriteHalf,
    session: Opened,
) {
    let socket = reader.get_ref().as_ref();
    let received = if reader.read_buffer().is_empty() {
        tokio::time::timeout(HELLO_TIMEOUT, crate::stdio::receive(socket))
            .await
            .unwrap_or_else(|_| Err(io::Error::other("stdin and stdout did not arrive in time")))
    } else {
        Err(io::Error::other(
            "bytes came where stdin and stdout were due",
        ))
    };
    let watched = received.and_then(|stdio| {
        let hangup = Hangup::watch(&[socket.as_fd(), stdio.output_fd()])?;
        Ok((stdio, hangup))
    });
    match watched {
        Ok((stdio, hangup)) => {
            let lines = FramedRead::new(stdio.input, LineCodec::new(session.max_line));
            session.serve(lines, stdio.output, hangup).await;
        }
        Err(err) => {
            tracing::warn!("cannot take a session's stdin and stdout: {err}");
            let message = format!("cannot take stdin and stdout: {err}");
            let refusal = HelloReply::Error {
                kind: ErrorKind::BadRequest,
                message,
            };
            send_line(&mut writer, &refusal).await;
        }
    }
}

fn accepted(profile: Option<String>, take_stdio: bool) -> HelloReply {
    HelloReply::Hello {
        proto: PROTOCOL_VERSION,
        server: format!("mcp-gatewayd/{}", env!("CARGO_PKG_VERSION")),
        profile,
        take_stdio,
    }
}

async fn serve_control(
    mut reader: FramedRead<OwnedReadHalf, LinesCodec>,
    mut writer: OwnedWriteHalf,
    shared: &Shared,
) {
    while let Some(line) = reader.next().await {
        let response = match line {
            Ok(line) => match serde_json::from_str::<Request>(&line) {
                Ok(Request::Calls {
                    server,
                    limit,
                    follow: true,
                }) => {
                    return follow_calls(&mut reader, &mut writer, shared, server, limit).await;
                }
                // Following streams responses until the client leaves: the connection's last.
                Ok(Request::ServerLogs { name, follow: true }) => {
                    return control::follow_logs(&shared.gateway, &name, &mut reader, &mut writer)
                        .await;
                }
                // Progress lines first, then the answer; the connection goes on after it.
                Ok(Request::ServerPull { name }) => {
                    if !control::pull_image(&shared.gateway, &name, &mut writer).await {
                        return;
                    }
                    continue;
                }
                Ok(request) => control::handle(shared, request).await,
                Err(err) => Response::Error {
                    kind: ErrorKind::BadRequest,
                    message: format!("invalid request: {err}"),
                },
            },
            Err(err) => Response::Error {
                kind: ErrorKind::BadRequest,
                message: format!("invalid request: {err}"),
            },
        };
        send_line(&mut writer, &response).await;
    }
}

/// `mcpctl calls -f`: the last calls, then each new one as it is recorded, until the client
/// goes away.
async fn follow_calls(
    reader: &mut FramedRead<OwnedReadHalf, LinesCodec>,
    writer: &mut OwnedWriteHalf,
    shared: &Shared,
    server: Option<String>,
    limit: usize,
) {
    let audit = shared.gateway.audit();
    let wanted = |record: &CallRecord| server.as_ref().is_none_or(|s| &record.server == s);
    // Subscribe first, so that no call falls between the history and the feed.
    let mut feed = audit.follow();
    let calls = audit.last(limit, wanted);
    if !send_line(writer, &Response::Calls { calls }).await {
        return;
    }
    loop {
        let record = tokio::select! {
            record = feed.recv() => record,
            // The client closing its end is how it stops following; what it sends is ignored.
            line = reader.next() => match line {
                Some(_) => continue,
                None => return,
            },
        };
        match record {
            Ok(record) if wanted(&record) => {
                let calls = vec![record];
                if !send_line(writer, &Response::Calls { calls }).await {
                    return;
                }
            }
            Ok(_) => {}
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                tracing::debug!("a follower of the audit log missed {missed} calls");
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// Writes one line; false when the client is gone.
pub(crate) async fn send_line<T: serde::Serialize>(
    writer: &mut OwnedWriteHalf,
    message: &T,
) -> bool {
    let line = mcp_gateway_proto::encode(message);
    match writer.write_all(line.as_bytes()).await {
        Ok(()) => true,
        Err(err) => {
            tracing::debug!("cannot answer a client: {err}");
            false
        }
    }
}
