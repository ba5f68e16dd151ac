//! Noticing that a client has gone entirely, not just finished sending.
//!
//! `mcp-shim` shuts down its writing side when its client closes stdin and keeps reading the
//! answers still due, so the end of a session's input alone means "no more requests". A client
//! that was killed closes both directions; the kernel then reports a hang-up on the daemon's end
//! (`EPOLLHUP` on a socket, `EPOLLERR` on a pipe's writing end whose reader is gone), which comes
//! without any read or write. [`Hangup::hung_up`] waits for exactly that, on duplicates of the
//! descriptors with registrations of their own, so that waiting never takes a readiness event from
//! the session's writer.

use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};

use futures_util::future::select_all;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

/// A watch on the descriptors that carry one client's answers (its connection, or the stdout it
/// handed over and the connection that must stay open beside it): the client is gone once any of
/// them hangs up. Empty for a session with no descriptor of its own (the HTTP face's), whose end
/// its owner decides.
pub struct Hangup(Vec<AsyncFd<OwnedFd>>);

/// What each duplicate is registered for. The kernel reports `EPOLLHUP` and `EPOLLERR` whatever a
/// registration asks; asking only for `EPOLLPRI`, which neither a pipe nor a Unix stream socket
/// signals, keeps everything else from waking the watch: a socket's peer reading an answer makes
/// it writable again, once per answer. (tokio's `Interest::ERROR` would register for readability,
/// and a peer that only shut down its writing side would look gone.)
const REGISTERED: Interest = Interest::PRIORITY;
/// What the watch waits for: tokio counts a socket's hang-up as "read closed" and a pipe's
/// vanished reader as an error.
const AWAITED: Interest = Interest::PRIORITY.add(Interest::ERROR);

impl Hangup {
    /// Watches each of `fds` (stream sockets, or pipes' writing ends) through a duplicate.
    pub fn watch(fds: &[BorrowedFd<'_>]) -> io::Result<Hangup> {
        fds.iter()
            .map(|fd| crate::halves::register(fd.try_clone_to_owned()?, REGISTERED))
            .collect::<io::Result<_>>()
            .map(Hangup)
    }

    /// A watch that never fires.
    pub fn never() -> Hangup {
        Hangup(Vec::new())
    }

    /// Resolves once the peer of any watched descriptor has closed it.
    pub async fn hung_up(&self) {
        if self.0.is_empty() {
            return std::future::pending().await;
        }
        // Readiness for this interest is only ever a hang-up or an error, and either ends the
        // watch, as would a failure to wait.
        let _ = select_all(self.0.iter().map(|fd| Box::pin(fd.ready(AWAITED)))).await;
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsFd;
    use std::time::Duration;

    use tokio::net::UnixStream;

    use super::*;

    #[tokio::test]
    async fn a_closed_writing_side_is_not_a_hang_up_but_a_closed_peer_is() {
        let (ours, theirs) = UnixStream::pair().unwrap();
        let watch = Hangup::watch(&[ours.as_fd()]).unwrap();
        let theirs = theirs.into_std().unwrap();
        theirs.shutdown(std::net::Shutdown::Write).unwrap();
        let early = tokio::time::timeout(Duration::from_millis(200), watch.hung_up()).await;
        assert!(early.is_err(), "a half-closed peer counted as gone");
        drop(theirs);
        tokio::time::timeout(Duration::from_secs(5), watch.hung_up())
            .await
            .expect("the closed peer was not noticed");
    }

    #[tokio::test]
    async fn a_pipe_whose_reader_is_gone_is_a_hang_up_even_when_full() {
        let (socket, _peer) = UnixStream::pair().unwrap();
        let (reader, writer) = std::io::pipe().unwrap();
        let watch = Hangup::watch(&[socket.as_fd(), writer.as_fd()]).unwrap();
        let writer = tokio::net::unix::pipe::Sender::from_owned_fd(writer.into()).unwrap();
        // Fill the pipe, so that the hang-up comes without the writable edge.
        while writer.try_write(&[0; 4096]).is_ok() {}
        let early = tokio::time::timeout(Duration::from_millis(200), watch.hung_up()).await;
        assert!(early.is_err(), "a full pipe counted as gone");
        drop(reader);
        tokio::time::timeout(Duration::from_secs(5), watch.hung_up())
            .await
            .expect("the pipe's closed reader was not noticed");
    }

    #[tokio::test]
    async fn the_watch_is_registered_for_nothing_a_working_peer_causes() {
        use std::os::fd::AsRawFd;

        use crate::halves::tests::{EPOLLIN, EPOLLOUT, epoll_events};
        let (ours, _theirs) = UnixStream::pair().unwrap();
        let watch = Hangup::watch(&[ours.as_fd()]).unwrap();
        let events = epoll_events(watch.0[0].as_raw_fd()).expect("the watch is not registered");
        assert_eq!(
            events & (EPOLLIN | EPOLLOUT),
            0,
            "registered for {events:#x}"
        );
    }
}
