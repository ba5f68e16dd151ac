//! The lines on their way to one peer (a client, or a server's stdin), and the task that writes
//! those that had to wait.
//!
//! A line for a peer whose stream has room is written at once by whoever sends it: an answer by
//! the session's own task, so an answer costs no hand-off to another task. Only a line that would
//! block, that comes while earlier ones still wait, or that its sender asks to batch, is queued,
//! and the outbox's writer task writes the queue in order, several lines per write. The queue has
//! bounds (a count of lines, and a count of bytes that a dropping sender chooses): `send` waits
//! for room, `offer` drops, so a client that does not read its notifications holds up no server.

use std::collections::VecDeque;
use std::pin::{Pin, pin};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::Notify;

/// Bytes the writer task puts in one write when several lines wait (a longer line goes alone).
const BATCH: usize = 64 * 1024;

/// The peer's stream. It must not buffer what it takes (a pipe, a socket, an in-memory pipe):
/// the outbox is the buffer, and nothing is flushed.
type Sink = Pin<Box<dyn AsyncWrite + Send>>;

pub struct Outbox {
    state: Mutex<State>,
    /// Wakes the writer task: a line was queued, or the outbox closed.
    work: Notify,
    /// Wakes the senders waiting for room, when some is made or none will be.
    room: Notify,
    /// Lines that may wait before `send` waits for room and `offer` drops.
    max_lines: usize,
}

/// Who writes a line the stream has room for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum By {
    /// Its sender, at once.
    Sender,
    /// The writer task, with the lines sent after it.
    Task,
}

/// What the writer task does next.
enum Next {
    Write(Sink, Vec<u8>, usize),
    Wait,
    /// The outbox closed with nothing left to write.
    Shut(Sink),
    Stop,
}

struct State {
    /// The stream, here while the writer task is not writing; the task holds it while it writes.
    sink: Option<Sink>,
    /// Lines not yet written, oldest first; the first from byte `offset` on (a write may end
    /// inside a character).
    queue: VecDeque<Vec<u8>>,
    offset: usize,
    /// Lines and bytes queued or in the writer task's hands: what a peer that does not read
    /// has made the daemon hold.
    lines: usize,
    bytes: usize,
    /// No line is taken any more (the session or the server's connection ended); the queue is
    /// written before the stream is shut down.
    closed: bool,
    /// A write failed: the peer is gone and nothing more is written.
    broken: bool,
}

impl Outbox {
    /// An outbox writing to `sink` that holds up to `max_lines` waiting, and its writer task, to
    /// be spawned.
    pub fn new(
        sink: impl AsyncWrite + Send + 'static,
        max_lines: usize,
    ) -> (Arc<Outbox>, impl Future<Output = ()> + Send + 'static) {
        let outbox = Arc::new(Outbox {
            state: Mutex::new(State {
                sink: Some(Box::pin(sink)),
                queue: VecDeque::new(),
                offset: 0,
                lines: 0,
                bytes: 0,
                closed: false,
                broken: false,
            }),
            work: Notify::new(),
            room: Notify::new(),
            max_lines,
        });
        (Arc::clone(&outbox), outbox.write_queued())
    }

    /// Sends `line`, waiting while the outbox is full: answers are never dropped. False when
    /// the peer is gone or the outbox closed.
    pub async fn send(&self, line: String) -> bool {
        self.send_as(line, By::Sender).await
    }

    /// [`Outbox::send`], but left to the writer task even when the stream has room, so that the
    /// lines sent in one turn of the runtime go out in one write (and, on an attach stream, are
    /// one read of the engine's).
    pub async fn send_batched(&self, line: String) -> bool {
        self.send_as(line, By::Task).await
    }

    async fn send_as(&self, mut line: String, by: By) -> bool {
        loop {
            line = match self.try_send(line, by) {
                Ok(sent) => return sent,
                Err(line) => line,
            };
            // Enabled before the state is read again, so room made in between is not missed.
            let mut room = pin!(self.room.notified());
            room.as_mut().enable();
            line = match self.try_send(line, by) {
                Ok(sent) => return sent,
                Err(line) => line,
            };
            room.await;
        }
    }

    /// Sends `line` if there is room: whether it was sent, or the line back when it must wait.
    fn try_send(&self, line: String, by: By) -> Result<bool, String> {
        let mut state = self.lock();
        if state.closed || state.broken {
            return Ok(false);
        }
        if state.lines >= self.max_lines {
            return Err(line);
        }
        Ok(self.put(&mut state, line, by))
    }

    /// Sends `line` unless the outbox is full, or `budget` bytes would be passed; a line alone
    /// is always taken, however long. False when the line was dropped.
    pub fn offer(&self, line: String, budget: usize) -> bool {
        let mut state = self.lock();
        let fits = state.lines < self.max_lines
            && (state.bytes == 0 || state.bytes + line.len() <= budget);
        if state.closed || state.broken || !fits {
            return false;
        }
        self.put(&mut state, line, By::Sender)
    }

    /// Takes no more lines; the writer task (if it still runs) writes those queued and then
    /// shuts the stream down.
    pub fn close(&self) {
        self.lock().closed = true;
        self.work.notify_one();
        self.room.notify_waiters();
    }

    /// Bytes waiting to be written.
    #[cfg(test)]
    pub fn waiting(&self) -> usize {
        self.lock().bytes
    }

    /// Writes `line` now if nothing waits before it and the stream takes it, else queues what
    /// the stream did not take for the writer task. False when the stream broke.
    fn put(&self, state: &mut State, line: String, by: By) -> bool {
        let mut written = 0;
        if by == By::Sender
            && state.queue.is_empty()
            && let Some(sink) = state.sink.as_mut()
        {
            match write_now(sink, line.as_bytes()) {
                Ok(n) if n == line.len() => return true,
                Ok(n) => written = n,
                Err(err) => {
                    self.break_off(state, &err);
                    return false;
                }
            }
        }
        if state.queue.is_empty() {
            state.offset = written;
        }
        state.lines += 1;
        state.bytes += line.len() - written;
        state.queue.push_back(line.into_bytes());
        self.work.notify_one();
        true
    }

    /// The writer task: writes what is queued, in order, until the outbox is closed and its
    /// queue written, or a write fails.
    async fn write_queued(self: Arc<Self>) {
        loop {
            // Made before the state is read: a line queued in between leaves its permit.
            let work = self.work.notified();
            let next = self.next_batch();
            match next {
                Next::Wait => work.await,
                Next::Write(mut sink, batch, lines) => {
                    let result = sink.write_all(&batch).await;
                    let mut state = self.lock();
                    match result {
                        Ok(()) => {
                            state.lines -= lines;
                            state.bytes -= batch.len();
                            state.sink = Some(sink);
                            self.room.notify_waiters();
                        }
                        Err(err) => self.break_off(&mut state, &err),
                    }
                }
                Next::Shut(mut sink) => {
                    let _ = sink.shutdown().await;
                    return;
                }
                Next::Stop => return,
            }
        }
    }

    /// What the writer task does next: the stream and the front of the queue, as one text for
    /// one write of up to [`BATCH`] bytes, with its count of lines; else wait, or end.
    fn next_batch(&self) -> Next {
        let mut state = self.lock();
        if state.broken {
            return Next::Stop;
        }
        let Some(first) = state.queue.pop_front() else {
            return match state.sink.take() {
                Some(sink) if state.closed => Next::Shut(sink),
                sink => {
                    state.sink = sink;
                    Next::Wait
                }
            };
        };
        let Some(sink) = state.sink.take() else {
            return Next::Stop;
        };
        let mut batch = first;
        batch.drain(..std::mem::take(&mut state.offset));
        let mut lines = 1;
        while let Some(next) = state.queue.front()
            && batch.len() + next.len() <= BATCH
        {
            batch.extend_from_slice(next);
            state.queue.pop_front();
            lines += 1;
        }
        Next::Write(sink, batch, lines)
    }

    /// Gives up on a peer whose stream failed: what waits is dropped, and senders learn it.
    fn break_off(&self, state: &mut State, err: &std::io::Error) {
        tracing::debug!("writing to the peer failed: {err}");
        state.broken = true;
        state.queue.clear();
        state.lines = 0;
        state.bytes = 0;
        self.room.notify_waiters();
        self.work.notify_one();
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Writes as much of `bytes` as the stream takes without waiting: its count, or the error that
/// says the stream is broken (a stream that takes nothing of a line is, too).
fn write_now(sink: &mut Sink, mut bytes: &[u8]) -> std::io::Result<usize> {
    let mut cx = Context::from_waker(Waker::noop());
    let len = bytes.len();
    while !bytes.is_empty() {
        match sink.as_mut().poll_write(&mut cx, bytes) {
            Poll::Ready(Ok(0)) => return Err(std::io::ErrorKind::WriteZero.into()),
            Poll::Ready(Ok(n)) => bytes = &bytes[n..],
            Poll::Ready(Err(err)) if err.kind() == std::io::ErrorKind::Interrupted => {}
            Poll::Ready(Err(err)) => return Err(err),
            // The stream registered the no-op waker; the writer task polls it again with its own.
            Poll::Pending => break,
        }
    }
    Ok(len - bytes.len())
}

#[cfg(test)]
mod tests;
