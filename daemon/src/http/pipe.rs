//! An MCP session of the daemon's own (`session::serve`) behind in-memory pipes: the HTTP face
//! writes a client's messages in as lines and reads the session's lines out, so HTTP clients get
//! exactly the gateway that `mcp-shim` clients get.

use std::sync::Arc;

use futures_util::StreamExt;
use tokio::io::{AsyncWriteExt, DuplexStream};
use tokio_util::codec::FramedRead;

use super::Context;
use crate::hangup::Hangup;
use crate::jsonrpc::{self, code};
use crate::lines::{Line, LineCodec, sniff_id};
use crate::session;

/// Bytes buffered in each direction before a writer waits for its reader.
const PIPE_BUFFER: usize = 256 * 1024;
/// What the session's own output may add to the longest message it accepts (ids, tags).
const OUTPUT_HEADROOM: usize = 64 * 1024;

/// The session's input; dropping it (or [`Pipe::close`]) ends the session's input, as a client
/// closing its socket does.
pub struct Pipe {
    input: tokio::sync::Mutex<Option<DuplexStream>>,
}

/// The session's output, line by line.
pub type Output = FramedRead<DuplexStream, LineCodec>;

/// Starts a session for `profile` (`None`: the active one) named `client` in the audit log.
pub fn open(context: &Arc<Context>, profile: Option<String>, client: String) -> (Pipe, Output) {
    let (to_session, session_input) = tokio::io::duplex(PIPE_BUFFER);
    let (session_output, from_session) = tokio::io::duplex(PIPE_BUFFER);
    let lines = FramedRead::new(session_input, LineCodec::new(context.max_line));
    context.tracker.spawn(session::serve(
        lines,
        session_output,
        // An HTTP session ends when the face closes its input (DELETE, idle, disable).
        Hangup::never(),
        profile,
        client,
        Arc::clone(&context.gateway),
        context.stop.clone(),
    ));
    let output = FramedRead::new(
        from_session,
        LineCodec::new(context.max_line + OUTPUT_HEADROOM),
    );
    let pipe = Pipe {
        input: tokio::sync::Mutex::new(Some(to_session)),
    };
    (pipe, output)
}

/// The session's next line; `None` once it has ended. A line too long to pass on becomes an error
/// answer under its id, when the id is readable, so that no HTTP request waits for it forever.
pub async fn next_line(output: &mut Output) -> Option<String> {
    loop {
        match output.next().await? {
            Ok(Line::Text(line)) => return Some(line),
            Ok(Line::Rejected { head, .. }) => {
                tracing::warn!("http: a session wrote a line too long to pass on");
                if let Some(id) = sniff_id(&head) {
                    let error = jsonrpc::error(
                        code::INTERNAL_ERROR,
                        "the answer is longer than the HTTP face passes on",
                    );
                    return Some(
                        jsonrpc::response_line(&id, &Err(error))
                            .trim_end()
                            .to_owned(),
                    );
                }
            }
            Err(err) => {
                tracing::debug!("http: a session's output failed: {err}");
                return None;
            }
        }
    }
}

/// The `notifications/cancelled` a session gets for request `id` whose HTTP client went away.
pub fn cancelled(id: &serde_json::Value) -> String {
    let params =
        serde_json::json!({"requestId": id, "reason": "the HTTP client closed the stream"});
    let line =
        jsonrpc::notification_line("notifications/cancelled", Some(&jsonrpc::to_raw(&params)));
    line.trim_end().to_owned()
}

impl Pipe {
    /// Writes one message (without a newline of its own); false once the session is gone.
    pub async fn send(&self, line: &str) -> bool {
        let mut input = self.input.lock().await;
        let Some(writer) = input.as_mut() else {
            return false;
        };
        let written = async {
            writer.write_all(line.as_bytes()).await?;
            writer.write_all(b"\n").await
        };
        written.await.is_ok()
    }

    /// Ends the session's input: it answers what is in flight, then ends.
    pub async fn close(&self) {
        self.input.lock().await.take();
    }
}
