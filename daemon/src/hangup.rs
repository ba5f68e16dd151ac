//! Noticing that a client has gone entirely, not just finished sending.
//!
//! `mcp-shim` shuts down its writing side when its client closes stdin and keeps reading the
//! answers still due, so the end of a session's input alone means "no more requests". A client
//! that was killed closes both directions; the kernel then reports a hang-up on the daemon's end
//! (`EPOLLHUP`), which comes without any read or write. [`hung_up`] waits for exactly that, on a
//! duplicate of the socket's descriptor with a registration of its own, so that waiting never
//! takes a readiness event from the session's writer.

use std::io;
use std::os::fd::AsFd;

use tokio::io::Interest;
use tokio::net::UnixStream;

/// A watch on one connection for its peer's hang-up; `None` for a session with no socket of its
/// own (the HTTP face's), whose end its owner decides.
pub struct Hangup(Option<UnixStream>);

impl Hangup {
    /// Watches the connection behind `socket`.
    pub fn watch(socket: &UnixStream) -> io::Result<Hangup> {
        let fd = socket.as_fd().try_clone_to_owned()?;
        let duplicate = UnixStream::from_std(std::os::unix::net::UnixStream::from(fd))?;
        Ok(Hangup(Some(duplicate)))
    }

    /// A watch that never fires.
    pub fn never() -> Hangup {
        Hangup(None)
    }

    /// Resolves once the peer has closed both directions of the connection.
    pub async fn hung_up(&self) {
        let Some(socket) = &self.0 else {
            return std::future::pending().await;
        };
        loop {
            let Ok(ready) = socket.ready(Interest::WRITABLE).await else {
                return;
            };
            if ready.is_write_closed() {
                return;
            }
            // Writable is the usual state; once it is cleared, only the next edge (a hang-up, or
            // room again after a full buffer) wakes this watch. The registration is its own.
            let _ = socket.try_io(Interest::WRITABLE, || {
                Err::<(), _>(io::ErrorKind::WouldBlock.into())
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_closed_writing_side_is_not_a_hang_up_but_a_closed_peer_is() {
        let (ours, theirs) = UnixStream::pair().unwrap();
        let watch = Hangup::watch(&ours).unwrap();
        let theirs = theirs.into_std().unwrap();
        theirs.shutdown(std::net::Shutdown::Write).unwrap();
        let early = tokio::time::timeout(Duration::from_millis(200), watch.hung_up()).await;
        assert!(early.is_err(), "a half-closed peer counted as gone");
        drop(theirs);
        tokio::time::timeout(Duration::from_secs(5), watch.hung_up())
            .await
            .expect("the closed peer was not noticed");
    }
}
