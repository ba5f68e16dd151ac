//! The reading side of `text/event-stream` as the HTML standard defines it, for a remote server's
//! answers: fields cut at any of CRLF, LF or CR, `data` lines joined, an event dispatched at a
//! blank line, `id` and `retry` reported as they come. (The HTTP face's `sse.rs` only writes
//! streams.)

use std::time::Duration;

/// What a stream said that its reader acts on.
#[derive(Debug, PartialEq, Eq)]
pub enum Item {
    /// The data of a `message` event (the default type); events of other types are skipped.
    Message(String),
    /// The stream's last event id, to resume from with `Last-Event-ID`.
    Id(String),
    /// How long to wait before reconnecting.
    Retry(Duration),
    /// An event's data grew past the limit and was dropped.
    TooLong,
}

pub struct Parser {
    /// The line being read.
    line: Vec<u8>,
    /// The last chunk ended with CR: a LF starting the next one belongs to it.
    after_cr: bool,
    data: String,
    has_data: bool,
    event: String,
    too_long: bool,
    max: usize,
}

impl Parser {
    /// A parser that drops events whose data is longer than `max` bytes.
    pub fn new(max: usize) -> Parser {
        Parser {
            line: Vec::new(),
            after_cr: false,
            data: String::new(),
            has_data: false,
            event: String::new(),
            too_long: false,
            max,
        }
    }

    /// Takes the next chunk of the body and appends what it completes to `out`.
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<Item>) {
        for &byte in chunk {
            if std::mem::take(&mut self.after_cr) && byte == b'\n' {
                continue;
            }
            match byte {
                b'\r' | b'\n' => {
                    self.after_cr = byte == b'\r';
                    let line = std::mem::take(&mut self.line);
                    self.field(&line, out);
                }
                _ if self.line.len() > self.max => self.too_long = true,
                _ => self.line.push(byte),
            }
        }
    }

    fn field(&mut self, line: &[u8], out: &mut Vec<Item>) {
        if line.is_empty() {
            return self.dispatch(out);
        }
        let line = String::from_utf8_lossy(line);
        let (name, value) = match line.split_once(':') {
            Some((name, value)) => (name, value.strip_prefix(' ').unwrap_or(value)),
            None => (line.as_ref(), ""),
        };
        match name {
            // A comment (keep-alive).
            "" => {}
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
                if self.data.len() > self.max {
                    self.too_long = true;
                    self.data.clear();
                }
            }
            "event" => self.event = value.to_owned(),
            "id" if !value.contains('\0') => out.push(Item::Id(value.to_owned())),
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                if let Ok(ms) = value.parse() {
                    out.push(Item::Retry(Duration::from_millis(ms)));
                }
            }
            _ => {}
        }
    }

    fn dispatch(&mut self, out: &mut Vec<Item>) {
        let data = std::mem::take(&mut self.data);
        let event = std::mem::take(&mut self.event);
        let has_data = std::mem::take(&mut self.has_data);
        if std::mem::take(&mut self.too_long) {
            out.push(Item::TooLong);
        } else if has_data && (event.is_empty() || event == "message") {
            out.push(Item::Message(data));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(chunks: &[&[u8]]) -> Vec<Item> {
        let mut parser = Parser::new(64);
        let mut out = Vec::new();
        for chunk in chunks {
            parser.feed(chunk, &mut out);
        }
        out
    }

    #[test]
    fn events_are_cut_whatever_the_line_endings_and_chunks() {
        let whole = b"id: 1\r\ndata: {\"a\":\r\ndata: 1}\r\n\r\n: ping\n\nevent: other\ndata: x\n\ndata:y\r\rretry: 250\n";
        let expected = vec![
            Item::Id("1".into()),
            Item::Message("{\"a\":\n1}".into()),
            Item::Message("y".into()),
            Item::Retry(Duration::from_millis(250)),
        ];
        assert_eq!(parse(&[whole]), expected);
        let bytes: Vec<&[u8]> = whole.chunks(1).collect();
        assert_eq!(parse(&bytes), expected);
    }

    #[test]
    fn a_priming_event_without_data_only_sets_the_id() {
        assert_eq!(
            parse(&[b"id: p0\ndata:\n\n", b"id: e1\n\n"]),
            [
                Item::Id("p0".into()),
                Item::Message(String::new()),
                Item::Id("e1".into())
            ]
        );
    }

    #[test]
    fn overlong_data_is_dropped() {
        let long = format!("data: {}\n\ndata: ok\n\n", "x".repeat(100));
        assert_eq!(
            parse(&[long.as_bytes()]),
            [Item::TooLong, Item::Message("ok".into())]
        );
    }
}
