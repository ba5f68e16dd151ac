//! The stderr of one MCP server: forwarded to the daemon's log line by line, and the last lines
//! kept so that a server that fails at start can be reported with what it said, and so that
//! `mcpctl server logs` can show them (and follow them, by asking again for what came since).

use std::collections::VecDeque;
use std::sync::Mutex;

/// How many stderr lines are kept per server.
const KEEP_LINES: usize = 200;
/// A line longer than this is cut, so a server writing binary junk cannot grow the buffer.
const MAX_LINE: usize = 4096;

pub struct LogTail {
    server: String,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    lines: VecDeque<String>,
    partial: Vec<u8>,
    /// Lines kept since the start, dropped ones included: the position [`LogTail::since`] counts.
    total: u64,
}

impl LogTail {
    pub fn new(server: &str) -> LogTail {
        LogTail {
            server: server.to_owned(),
            inner: Mutex::new(Inner::default()),
        }
    }

    /// Takes a chunk of stderr output, which may hold several lines or part of one.
    pub fn push(&self, chunk: &[u8]) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        for &byte in chunk {
            if byte == b'\n' {
                let line = std::mem::take(&mut inner.partial);
                self.keep(&mut inner, &line);
            } else if inner.partial.len() < MAX_LINE {
                inner.partial.push(byte);
            }
        }
    }

    fn keep(&self, inner: &mut Inner, line: &[u8]) {
        let line = String::from_utf8_lossy(line)
            .trim_end_matches('\r')
            .to_owned();
        tracing::info!(target: "mcp_gatewayd::server_stderr", server = %self.server, "{line}");
        if inner.lines.len() == KEEP_LINES {
            inner.lines.pop_front();
        }
        inner.lines.push_back(line);
        inner.total += 1;
    }

    /// The kept lines after the first `seen` lines ever kept, and the position to ask from next.
    /// Lines dropped before they were asked for are skipped.
    pub fn since(&self, seen: u64) -> (Vec<String>, u64) {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let first_kept = inner.total - inner.lines.len() as u64;
        let skip = seen.saturating_sub(first_kept);
        let lines = inner
            .lines
            .iter()
            .skip(usize::try_from(skip).unwrap_or(usize::MAX))
            .cloned()
            .collect();
        (lines, inner.total)
    }

    /// The last `n` complete lines, oldest first.
    pub fn last(&self, n: usize) -> Vec<String> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner
            .lines
            .iter()
            .skip(inner.lines.len().saturating_sub(n))
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_across_chunks_are_joined_and_old_ones_dropped() {
        let tail = LogTail::new("t");
        tail.push(b"one\ntw");
        tail.push(b"o\r\nthree");
        assert_eq!(tail.last(5), ["one", "two"]);
        for i in 0..KEEP_LINES + 3 {
            tail.push(format!("{i}\n").as_bytes());
        }
        let kept = tail.last(KEEP_LINES + 10);
        assert_eq!(kept.len(), KEEP_LINES);
        assert_eq!(kept.last().unwrap(), &(KEEP_LINES + 2).to_string());
    }

    #[test]
    fn since_returns_what_came_after_a_position_and_skips_dropped_lines() {
        let tail = LogTail::new("t");
        tail.push(b"a\nb\n");
        let (lines, seen) = tail.since(0);
        assert_eq!((lines, seen), (vec!["a".to_owned(), "b".to_owned()], 2));
        tail.push(b"c\n");
        assert_eq!(tail.since(seen), (vec!["c".to_owned()], 3));
        assert_eq!(tail.since(3), (vec![], 3));
        for i in 0..KEEP_LINES {
            tail.push(format!("{i}\n").as_bytes());
        }
        let (lines, seen) = tail.since(3);
        assert_eq!((lines.len(), seen), (KEEP_LINES, KEEP_LINES as u64 + 3));
        assert_eq!(lines[0], "0");
    }
}
