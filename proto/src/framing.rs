//! Newline-delimited JSON framing with a bounded line length.
//!
//! Every reader of this socket caps its lines: an unbounded reader lets one bad peer exhaust the
//! daemon's memory. The daemon's async readers use the same limits through `tokio-util`'s
//! `LinesCodec`; this module serves the synchronous clients.

use std::io::BufRead;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// The longest control line (hello, requests, responses) a reader accepts.
pub const MAX_CONTROL_LINE: usize = 1024 * 1024;

/// The default longest MCP message line; MCP results (file contents, images) can be large.
pub const MAX_MCP_LINE: usize = 16 * 1024 * 1024;

#[derive(Debug)]
pub enum LineError {
    Io(std::io::Error),
    TooLong { max: usize },
    Json(serde_json::Error),
}

impl std::fmt::Display for LineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LineError::Io(err) => write!(f, "{err}"),
            LineError::TooLong { max } => write!(f, "line longer than {max} bytes"),
            LineError::Json(err) => write!(f, "invalid message: {err}"),
        }
    }
}

impl std::error::Error for LineError {}

/// Serializes a message as one line, newline included.
pub fn encode<T: Serialize>(message: &T) -> String {
    // Serializing these plain data types cannot fail: no maps with non-string keys, no I/O.
    let mut line = serde_json::to_string(message).unwrap_or_default();
    line.push('\n');
    line
}

/// Reads one line of at most `max` bytes and parses it; `Ok(None)` at end of stream.
pub fn decode<T: DeserializeOwned>(
    reader: &mut impl BufRead,
    max: usize,
) -> Result<Option<T>, LineError> {
    let mut line = Vec::new();
    loop {
        let available = reader.fill_buf().map_err(LineError::Io)?;
        if available.is_empty() {
            if line.is_empty() {
                return Ok(None);
            }
            break;
        }
        let (chunk, done) = match available.iter().position(|&b| b == b'\n') {
            Some(end) => (&available[..end], true),
            None => (available, false),
        };
        if line.len() + chunk.len() > max {
            return Err(LineError::TooLong { max });
        }
        line.extend_from_slice(chunk);
        let consumed = chunk.len() + usize::from(done);
        reader.consume(consumed);
        if done {
            break;
        }
    }
    serde_json::from_slice(&line)
        .map(Some)
        .map_err(LineError::Json)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ErrorKind, Hello, HelloReply, Request, Response, Role};

    #[test]
    fn hello_round_trips_and_keeps_its_wire_spelling() {
        let mut hello = Hello::new(Role::Mcp, "mcp-shim/0.1.0");
        hello.profile = Some("work".into());
        let line = encode(&hello);
        assert_eq!(
            line,
            "{\"type\":\"hello\",\"proto\":1,\"role\":\"mcp\",\"client\":\"mcp-shim/0.1.0\",\"profile\":\"work\"}\n"
        );
        let back: Hello = decode(&mut line.as_bytes(), MAX_CONTROL_LINE)
            .unwrap()
            .unwrap();
        assert_eq!(back, hello);
    }

    #[test]
    fn unknown_request_and_error_kind_from_newer_peers_still_parse() {
        let request: Request = decode(&mut &b"{\"type\":\"teleport\",\"to\":\"mars\"}\n"[..], 100)
            .unwrap()
            .unwrap();
        assert_eq!(request, Request::Unknown);
        let reply: HelloReply = decode(
            &mut &b"{\"type\":\"error\",\"kind\":\"quantum\",\"message\":\"m\"}"[..],
            100,
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            reply,
            HelloReply::Error {
                kind: ErrorKind::Unknown,
                message: "m".into()
            }
        );
    }

    #[test]
    fn requests_default_their_optional_fields() {
        let request: Request = decode(
            &mut &b"{\"type\":\"tools_call\",\"name\":\"echo\"}\n"[..],
            100,
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            request,
            Request::ToolsCall {
                profile: None,
                name: "echo".into(),
                arguments: Default::default()
            }
        );
        let response = Response::Done {
            message: "ok".into(),
        };
        assert_eq!(
            encode(&response),
            "{\"type\":\"done\",\"message\":\"ok\"}\n"
        );
    }

    #[test]
    fn oversized_lines_are_refused_without_reading_on() {
        let long = format!("\"{}\"\nnext", "x".repeat(50));
        let err = decode::<String>(&mut long.as_bytes(), 10).unwrap_err();
        assert!(matches!(err, LineError::TooLong { max: 10 }), "{err}");
    }

    #[test]
    fn end_of_stream_is_none_and_a_last_line_without_newline_counts() {
        assert!(decode::<Request>(&mut &b""[..], 10).unwrap().is_none());
        let status: Request = decode(&mut &b"{\"type\":\"status\"}"[..], 100)
            .unwrap()
            .unwrap();
        assert_eq!(status, Request::Status);
    }
}
