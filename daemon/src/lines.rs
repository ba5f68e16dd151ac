//! Newline-delimited framing for MCP streams, with a length limit that still lets the gateway
//! answer an oversized message.
//!
//! `tokio_util`'s `LinesCodec` throws an overlong line away whole, so its request id is lost and
//! the sender waits forever for an answer. This codec keeps the first bytes of such a line, where
//! the `id` member almost always sits, and [`sniff_id`] recovers it so the peer gets an error for
//! exactly that request.

use bytes::{Buf, BytesMut};
use serde_json::Value;
use tokio_util::codec::Decoder;

/// How much of an overlong line is kept to look for its id.
const HEAD: usize = 4096;

#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    Text(String),
    /// A line longer than the limit (or not UTF-8); `head` is its beginning.
    Rejected {
        head: Vec<u8>,
        reason: Reject,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reject {
    TooLong,
    NotUtf8,
}

pub struct LineCodec {
    max: usize,
    /// While skipping the rest of an overlong line: the head kept so far.
    discarding: Option<Vec<u8>>,
    /// Bytes of the buffer already searched for a newline.
    searched: usize,
}

impl LineCodec {
    pub fn new(max: usize) -> LineCodec {
        LineCodec {
            max,
            discarding: None,
            searched: 0,
        }
    }

    pub fn max(&self) -> usize {
        self.max
    }
}

impl Decoder for LineCodec {
    type Item = Line;
    type Error = std::io::Error;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Line>, std::io::Error> {
        loop {
            let newline = memchr::memchr(b'\n', &buf[self.searched..]);
            match (newline, self.discarding.as_mut()) {
                (Some(at), Some(head)) => {
                    let end = self.searched + at;
                    keep_head(head, &buf[..end]);
                    buf.advance(end + 1);
                    self.searched = 0;
                    let head = self.discarding.take().unwrap_or_default();
                    return Ok(Some(Line::Rejected {
                        head,
                        reason: Reject::TooLong,
                    }));
                }
                (None, Some(head)) => {
                    keep_head(head, buf);
                    buf.clear();
                    self.searched = 0;
                    return Ok(None);
                }
                (Some(at), None) => {
                    let end = self.searched + at;
                    self.searched = 0;
                    if end > self.max {
                        let head = buf[..end.min(HEAD)].to_vec();
                        buf.advance(end + 1);
                        return Ok(Some(Line::Rejected {
                            head,
                            reason: Reject::TooLong,
                        }));
                    }
                    let line = buf.split_to(end + 1);
                    let line = line.strip_suffix(b"\n").unwrap_or(&line);
                    let line = line.strip_suffix(b"\r").unwrap_or(line);
                    return Ok(Some(match std::str::from_utf8(line) {
                        Ok(text) => Line::Text(text.to_owned()),
                        Err(_) => Line::Rejected {
                            head: line[..line.len().min(HEAD)].to_vec(),
                            reason: Reject::NotUtf8,
                        },
                    }));
                }
                (None, None) if buf.len() > self.max => {
                    self.discarding = Some(Vec::with_capacity(HEAD));
                }
                (None, None) => {
                    self.searched = buf.len();
                    return Ok(None);
                }
            }
        }
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<Line>, std::io::Error> {
        if let Some(line) = self.decode(buf)? {
            return Ok(Some(line));
        }
        // A last line without its newline still counts, as it does for `LinesCodec`.
        if buf.is_empty() && self.discarding.is_none() {
            return Ok(None);
        }
        buf.extend_from_slice(b"\n");
        self.decode(buf)
    }
}

fn keep_head(head: &mut Vec<u8>, bytes: &[u8]) {
    let room = HEAD.saturating_sub(head.len());
    head.extend_from_slice(&bytes[..bytes.len().min(room)]);
}

/// The `id` of a JSON-RPC message from the first bytes of its text, when it is a top-level member
/// whose value (a number or a string) is complete within those bytes.
pub fn sniff_id(head: &[u8]) -> Option<Value> {
    let text = String::from_utf8_lossy(head);
    let mut chars = text.char_indices().peekable();
    let mut depth = 0usize;
    // Whether the last string closed at depth 1 was the key "id", and a ':' followed it.
    let mut last_key_is_id = false;
    let mut expecting_value = false;
    while let Some((at, c)) = chars.next() {
        match c {
            '"' => {
                let start = at + 1;
                let mut escaped = false;
                let mut end = None;
                for (i, c) in chars.by_ref() {
                    if escaped {
                        escaped = false;
                    } else if c == '\\' {
                        escaped = true;
                    } else if c == '"' {
                        end = Some(i);
                        break;
                    }
                }
                let end = end?;
                if depth == 1 && expecting_value && last_key_is_id {
                    return serde_json::from_str(&text[at..=end]).ok();
                }
                last_key_is_id = depth == 1 && !expecting_value && &text[start..end] == "id";
                expecting_value = false;
            }
            '{' | '[' => {
                depth += 1;
                expecting_value = false;
            }
            '}' | ']' => depth = depth.saturating_sub(1),
            ':' if depth == 1 => expecting_value = true,
            ',' => {
                expecting_value = false;
                last_key_is_id = false;
            }
            c if depth == 1 && expecting_value && last_key_is_id && !c.is_whitespace() => {
                let rest = &text[at..];
                // A number cut off by the end of the head could be another number.
                let end = rest.find([',', '}', ' ', '\n'])?;
                return match serde_json::from_str::<Value>(&rest[..end]) {
                    Ok(id @ (Value::Number(_) | Value::Null)) => Some(id),
                    _ => None,
                };
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(max: usize, input: &[u8]) -> Vec<Line> {
        let mut codec = LineCodec::new(max);
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        // Feed in small pieces, as a socket would.
        for chunk in input.chunks(7) {
            buf.extend_from_slice(chunk);
            while let Some(line) = codec.decode(&mut buf).unwrap() {
                out.push(line);
            }
        }
        while let Some(line) = codec.decode_eof(&mut buf).unwrap() {
            out.push(line);
        }
        out
    }

    #[test]
    fn lines_within_the_limit_pass_and_long_ones_keep_their_head() {
        let long = format!("{{\"id\":42,\"x\":\"{}\"}}", "a".repeat(100));
        let input = format!("first\r\n{long}\nlast");
        let lines = decode_all(32, input.as_bytes());
        assert_eq!(lines[0], Line::Text("first".into()));
        match &lines[1] {
            Line::Rejected { head, reason } => {
                assert_eq!(*reason, Reject::TooLong);
                assert!(head.starts_with(b"{\"id\":42"));
                assert_eq!(sniff_id(head), Some(Value::from(42)));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(lines[2], Line::Text("last".into()));
        assert_eq!(lines.len(), 3);
    }

    #[test]
    fn invalid_utf8_is_rejected_not_fatal() {
        let lines = decode_all(100, b"{\"id\":\"a\",\"x\":\"\xff\"}\nok\n");
        assert!(matches!(
            &lines[0],
            Line::Rejected {
                reason: Reject::NotUtf8,
                ..
            }
        ));
        assert_eq!(lines[1], Line::Text("ok".into()));
    }

    #[test]
    fn ids_are_found_only_at_the_top_level() {
        let sniff = |s: &str| sniff_id(s.as_bytes());
        assert_eq!(sniff(r#"{"jsonrpc":"2.0","id":7,"method""#), Some(7.into()));
        assert_eq!(
            sniff(r#"{"jsonrpc":"2.0", "id" : "a\"b","#),
            Some("a\"b".into())
        );
        assert_eq!(
            sniff(r#"{"method":"x","params":{"id":3},"id":4}"#),
            Some(4.into())
        );
        assert_eq!(sniff(r#"{"method":"x","params":{"id":3},"i"#), None);
        assert_eq!(sniff(r#"{"method":"id","x":1}"#), None);
        assert_eq!(sniff(r#"{"id":12345"#), None);
        assert_eq!(sniff(r#"{"id":null,"#), Some(Value::Null));
    }
}
