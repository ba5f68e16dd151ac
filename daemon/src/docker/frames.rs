//! The engine's attach stream taken apart. Without a TTY the engine multiplexes a container's
//! stdout and stderr on the one connection as frames: an 8-byte header (the stream: 0 stdin,
//! 1 stdout, 2 stderr; three zero bytes; the payload's length, big-endian), then the payload.
//! [`Demux`] passes stdout on as a plain byte stream, the MCP stream, and hands stderr to the
//! server's [`LogTail`] as it arrives.
//!
//! It reads the connection into a buffer of its own, initialised once, and copies payloads out:
//! the reader above it (`FramedRead` in the upstream) offers uninitialised capacity, which a
//! reader that writes through `initialize_unfilled` (bollard's did) zero-fills on every read.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, ReadBuf};

use crate::logtail::LogTail;

const HEADER: usize = 8;
/// The read buffer: one read takes several answers of usual size; a larger frame passes through
/// it in pieces, so its size bounds no message.
const BUFFER: usize = 16 * 1024;

const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;

pub struct Demux<R> {
    inner: R,
    buf: Box<[u8]>,
    /// The bytes read and not yet taken are `buf[start..end]`.
    start: usize,
    end: usize,
    /// Within a frame: its stream and how many of its payload bytes are still to come.
    frame: Option<(u8, usize)>,
    stderr: Arc<LogTail>,
}

impl<R> Demux<R> {
    /// `already` holds what was read from the connection before it was handed over (the bytes
    /// after the engine's HTTP answer), the start of the frames.
    pub fn new(inner: R, already: &[u8], stderr: Arc<LogTail>) -> Demux<R> {
        let mut buf = vec![0; BUFFER.max(already.len())].into_boxed_slice();
        buf[..already.len()].copy_from_slice(already);
        Demux {
            inner,
            buf,
            start: 0,
            end: already.len(),
            frame: None,
            stderr,
        }
    }

    /// Takes what the buffer holds, header by header: stdout into `out` while it has room,
    /// stderr to the log, stdin (never sent to an attached client) dropped. Stops at a partial
    /// header.
    fn take(&mut self, out: &mut ReadBuf<'_>) -> io::Result<()> {
        while self.start < self.end && out.remaining() > 0 {
            let available = &self.buf[self.start..self.end];
            match self.frame {
                None => {
                    let Some(header) = available.first_chunk::<HEADER>() else {
                        break;
                    };
                    let stream = header[0];
                    if stream > STDERR {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!("attach stream frame for an unknown stream {stream}"),
                        ));
                    }
                    let len = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
                    self.frame = Some((stream, usize::try_from(len).unwrap_or(usize::MAX)));
                    self.start += HEADER;
                }
                Some((stream, left)) => {
                    let mut n = left.min(available.len());
                    match stream {
                        STDOUT => {
                            n = n.min(out.remaining());
                            out.put_slice(&available[..n]);
                        }
                        STDERR => self.stderr.push(&available[..n]),
                        _ => debug_assert_eq!(stream, STDIN),
                    }
                    self.start += n;
                    self.frame = (left > n).then_some((stream, left - n));
                }
            }
        }
        Ok(())
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for Demux<R> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            let before = out.filled().len();
            this.take(out)?;
            if out.filled().len() > before || out.remaining() == 0 {
                return Poll::Ready(Ok(()));
            }
            // Everything was taken but a partial header, which moves to the front.
            this.buf.copy_within(this.start..this.end, 0);
            this.end -= this.start;
            this.start = 0;
            // The buffer is initialised, so this read writes into it without zeroing it first.
            let mut read = ReadBuf::new(&mut this.buf[this.end..]);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut read))?;
            let n = read.filled().len();
            if n == 0 {
                // The end of the stream; a frame cut short by it ends the output as well.
                return Poll::Ready(Ok(()));
            }
            this.end += n;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use bytes::Bytes;
    use tokio::io::AsyncReadExt;
    use tokio_util::io::StreamReader;

    fn frame(stream: u8, payload: &[u8]) -> Vec<u8> {
        let len = u32::try_from(payload.len()).unwrap();
        let mut frame = vec![stream, 0, 0, 0];
        frame.extend_from_slice(&len.to_be_bytes());
        frame.extend_from_slice(payload);
        frame
    }

    /// What the demultiplexer gives as stdout and the stderr lines it logs, for `wire` arriving
    /// in reads of `chunk` bytes (`already` of them before the connection) and read out through
    /// a buffer of `out` bytes.
    async fn demux(
        wire: &[u8],
        already: usize,
        chunk: usize,
        out: usize,
    ) -> (Vec<u8>, Vec<String>) {
        let chunks: Vec<io::Result<Bytes>> = wire[already..]
            .chunks(chunk)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        let reader = StreamReader::new(futures_util::stream::iter(chunks));
        let tail = Arc::new(LogTail::new("test"));
        let mut demux = Demux::new(reader, &wire[..already], Arc::clone(&tail));
        let mut stdout = Vec::new();
        let mut buf = vec![0; out];
        loop {
            let n = demux.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            stdout.extend_from_slice(&buf[..n]);
        }
        (stdout, tail.last(usize::MAX))
    }

    fn mixed() -> Vec<u8> {
        let mut wire = frame(STDOUT, b"{\"id\":1}\n{\"id\"");
        wire.extend(frame(STDERR, b"starting\nhalf a "));
        wire.extend(frame(STDOUT, b":2}\n"));
        wire.extend(frame(STDIN, b"never stdout"));
        wire.extend(frame(STDOUT, b""));
        wire.extend(frame(STDERR, b"line\n"));
        wire.extend(frame(STDOUT, b"{\"id\":3}\n"));
        wire
    }

    #[tokio::test]
    async fn stdout_is_joined_and_stderr_logged_however_the_reads_split_frames() {
        let wire = mixed();
        for chunk in [1, 3, 7, 8, 9, 16, wire.len()] {
            for out in [1, 5, 8192] {
                for already in [0, 5, 12] {
                    let (stdout, stderr) = demux(&wire, already, chunk, out).await;
                    assert_eq!(
                        stdout, b"{\"id\":1}\n{\"id\":2}\n{\"id\":3}\n",
                        "reads of {chunk}, buffer of {out}, {already} bytes already read"
                    );
                    assert_eq!(stderr, ["starting", "half a line"]);
                }
            }
        }
    }

    #[tokio::test]
    async fn frames_larger_than_the_buffer_pass_whole() {
        let big: Vec<u8> = (0..5 * BUFFER + 3).map(|i| b"0123456789"[i % 10]).collect();
        let mut wire = frame(STDOUT, &big);
        wire.extend(frame(STDERR, &[b'e'; 3 * BUFFER]));
        wire.extend(frame(STDERR, b"\n"));
        wire.extend(frame(STDOUT, b"after\n"));
        let mut expected = big.clone();
        expected.extend_from_slice(b"after\n");
        for chunk in [1000, BUFFER + 1, wire.len()] {
            let (stdout, stderr) = demux(&wire, 0, chunk, 8192).await;
            assert!(stdout == expected, "reads of {chunk}");
            // The log cuts a long line; it is still one line.
            assert_eq!(stderr.len(), 1);
            assert!(stderr[0].bytes().all(|b| b == b'e'));
        }
    }

    #[tokio::test]
    async fn a_frame_cut_short_ends_the_stream_and_an_unknown_stream_is_an_error() {
        let mut wire = frame(STDOUT, b"whole\n");
        wire.extend(&frame(STDOUT, b"cut short")[..12]);
        assert_eq!(demux(&wire, 0, 4, 64).await.0, b"whole\ncut ");

        let reader = StreamReader::new(futures_util::stream::iter([Ok::<_, io::Error>(
            Bytes::from(frame(3, b"x")),
        )]));
        let mut demux = Demux::new(reader, &[], Arc::new(LogTail::new("test")));
        let err = demux.read(&mut [0; 64]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }
}
