//! The stderr of one MCP server: forwarded to the daemon's log line by line, and the last lines
//! kept so that a server that fails at start can be reported with what it said, and so that
//! `mcpctl server logs` can show them (and follow them, by asking again for what came since).
//! [`Drained`] makes the end of a server's stdout wait for its stderr when the two come apart.

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, ReadBuf};
use tokio::sync::oneshot;

/// How many stderr lines are kept per server.
const KEEP_LINES: usize = 200;
/// A line longer than this is cut, so a server writing binary junk cannot grow the buffer.
const MAX_LINE: usize = 4096;

/// How long the end of a server's stdout waits for the rest of its stderr, so that requests
/// failed by its exit carry its last words.
const STDERR_DRAIN: Duration = Duration::from_millis(500);

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

/// A server's stdout whose end waits (briefly) for the end of its stderr, which comes another
/// way (a pipe of its own, the attach stream beside a launcher's socket) and so may lag behind.
/// An end is nothing more to read, or an error: a server that exits with a request unread
/// resets a socket.
pub struct Drained<R> {
    inner: R,
    /// Until the stream's end has been passed on: the wait for the end of stderr.
    stderr: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
    /// The stream's end, held while stderr drains.
    end: Option<io::Result<()>>,
}

impl<R> Drained<R> {
    /// `drained` is sent (or dropped) once all of the server's stderr is in its tail.
    pub fn new(inner: R, drained: oneshot::Receiver<()>) -> Drained<R> {
        Drained {
            inner,
            stderr: Some(Box::pin(async move {
                let _ = tokio::time::timeout(STDERR_DRAIN, drained).await;
            })),
            end: None,
        }
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for Drained<R> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let Some(drained) = &mut this.stderr else {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        };
        if this.end.is_none() {
            let before = buf.filled().len();
            let read = ready!(Pin::new(&mut this.inner).poll_read(cx, buf));
            if read.is_ok() && buf.filled().len() > before {
                return Poll::Ready(read);
            }
            this.end = Some(read);
        }
        ready!(drained.as_mut().poll(cx));
        this.stderr = None;
        Poll::Ready(this.end.take().unwrap_or(Ok(())))
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncReadExt;

    use super::*;

    /// A socket whose peer exited with a request unread.
    struct Reset;

    impl AsyncRead for Reset {
        fn poll_read(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            _: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            Poll::Ready(Err(io::ErrorKind::ConnectionReset.into()))
        }
    }

    /// Reads `inner`'s end through a `Drained`, checks that the read waits while stderr has not
    /// drained, then lets it drain and returns what the read gave.
    async fn end_after_drain<R: AsyncRead + Unpin>(inner: R) -> io::Result<usize> {
        let (drained, waited) = oneshot::channel();
        let mut stdout = Drained::new(inner, waited);
        let mut buf = [0u8; 8];
        let mut read = std::pin::pin!(stdout.read(&mut buf));
        let early = tokio::time::timeout(Duration::from_millis(50), &mut read).await;
        assert!(early.is_err(), "the end came before stderr drained");
        drained.send(()).unwrap();
        read.await
    }

    #[tokio::test]
    async fn the_end_of_stdout_waits_for_stderr_to_drain() {
        assert_eq!(end_after_drain(tokio::io::empty()).await.unwrap(), 0);
        let reset = end_after_drain(Reset).await.unwrap_err();
        assert_eq!(reset.kind(), io::ErrorKind::ConnectionReset);
    }

    #[tokio::test]
    async fn what_stdout_holds_is_read_without_waiting() {
        let (_drained, waited) = oneshot::channel::<()>();
        let mut stdout = Drained::new(&b"answer\n"[..], waited);
        let mut buf = [0u8; 7];
        stdout.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"answer\n");
    }

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
