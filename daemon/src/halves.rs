//! A stream socket split into halves that wake the daemon only for what it waits on.
//!
//! tokio registers a socket for readability and writability at once, and the kernel signals
//! writability on a Unix socket every time the peer reads from it. On the attach stream that is
//! once per request (the engine reads each line the gateway writes), so a daemon asleep between a
//! request and its answer was woken a third time for nothing. Here the reading half is registered
//! for readability alone, and the writing half writes straight to the socket and registers for
//! writability only while a write would block, for as long as it does.

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use nix::sys::socket::{Shutdown, shutdown};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};

/// Splits a connected, non-blocking stream socket. Each half holds a descriptor of its own;
/// dropping the writing half shuts the socket's sending side down, as tokio's halves do.
pub fn split(socket: OwnedFd) -> io::Result<(ReadHalf, WriteHalf)> {
    let writing = WriteHalf::new(socket.try_clone()?);
    Ok((ReadHalf::new(socket)?, writing))
}

/// Registers `fd` with the runtime for `interest` alone.
pub fn register(fd: OwnedFd, interest: Interest) -> io::Result<AsyncFd<OwnedFd>> {
    // SAFETY: the `AsyncFd` owns the `OwnedFd`, which keeps its descriptor open, and the same
    // one, until both are dropped.
    #[expect(
        unsafe_code,
        reason = "tokio's safe constructors of an AsyncFd are deprecated"
    )]
    unsafe {
        AsyncFd::register_with_interest(fd, interest).map_err(io::Error::from)
    }
}

/// Reads a non-blocking stream socket (or any descriptor `read` takes) registered for readability
/// alone.
pub struct ReadHalf(AsyncFd<OwnedFd>);

/// Writes a non-blocking stream socket, registered for writability only while a write would
/// block. Dropped, it shuts the socket's sending side down.
pub struct WriteHalf {
    socket: OwnedFd,
    /// A registration for writability, held from a write that would block until one succeeds.
    blocked: Option<AsyncFd<OwnedFd>>,
}

impl ReadHalf {
    pub fn new(socket: OwnedFd) -> io::Result<ReadHalf> {
        register(socket, Interest::READABLE).map(ReadHalf)
    }
}

impl WriteHalf {
    pub fn new(socket: OwnedFd) -> WriteHalf {
        WriteHalf {
            socket,
            blocked: None,
        }
    }
}

impl AsFd for WriteHalf {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.socket.as_fd()
    }
}

impl AsyncRead for ReadHalf {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            let mut ready = ready!(self.0.poll_read_ready(cx))?;
            let wanted = buf.remaining();
            match ready.try_io(|socket| read_uninit(socket.as_raw_fd(), buf)) {
                Ok(Ok(n)) => {
                    // A short read emptied the socket: the next bytes come with a new edge, so
                    // waiting for it saves the read that would only say "would block".
                    if n < wanted {
                        ready.clear_ready();
                    }
                    return Poll::Ready(Ok(()));
                }
                Ok(Err(err)) => return Poll::Ready(Err(err)),
                Err(_would_block) => {}
            }
        }
    }
}

impl AsyncWrite for WriteHalf {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            if let Some(blocked) = &self.blocked {
                let mut ready = ready!(blocked.poll_write_ready(cx))?;
                if let Ok(written) = ready.try_io(|socket| Ok(nix::unistd::write(socket, buf)?)) {
                    self.blocked = None;
                    return Poll::Ready(written);
                }
                continue;
            }
            match nix::unistd::write(&self.socket, buf) {
                Err(nix::Error::EAGAIN) => {
                    let duplicate = self.socket.try_clone()?;
                    self.blocked = Some(register(duplicate, Interest::WRITABLE)?);
                }
                written => return Poll::Ready(Ok(written?)),
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(shut_down(&self.socket))
    }
}

impl Drop for WriteHalf {
    fn drop(&mut self) {
        let _ = shut_down(&self.socket);
    }
}

/// Reads from `fd` into `buf`'s unfilled part, which is not zeroed first, and marks what was read
/// as filled. The readers above (`FramedRead`) offer uninitialised capacity of 8 KiB and more:
/// zeroing it on every read, as a safe read into `&mut [u8]` must, was a tenth of the daemon's
/// instructions per call.
fn read_uninit(fd: RawFd, buf: &mut ReadBuf<'_>) -> io::Result<usize> {
    #[expect(
        unsafe_code,
        reason = "std and nix read only into initialised memory (`Read::read_buf` is unstable)"
    )]
    // SAFETY: `read` writes at most `unfilled.len()` bytes into `unfilled` and reads none; the
    // `n` bytes it reports are then initialised, which is all `assume_init` is told.
    unsafe {
        let unfilled = buf.unfilled_mut();
        let n = nix::libc::read(fd, unfilled.as_mut_ptr().cast(), unfilled.len());
        let n = usize::try_from(n).map_err(|_| io::Error::last_os_error())?;
        buf.assume_init(n);
        buf.advance(n);
        Ok(n)
    }
}

/// Shuts down the sending side; a socket whose peer is already gone counts as shut down.
fn shut_down(socket: &impl AsFd) -> io::Result<()> {
    match shutdown(socket.as_fd().as_raw_fd(), Shutdown::Write) {
        Ok(()) | Err(nix::Error::ENOTCONN) => Ok(()),
        Err(err) => Err(err.into()),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::os::unix::net::UnixStream;
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    fn pair() -> (std::os::unix::net::UnixStream, (ReadHalf, WriteHalf)) {
        let (ours, theirs) = UnixStream::pair().unwrap();
        ours.set_nonblocking(true).unwrap();
        (theirs, split(ours.into()).unwrap())
    }

    #[tokio::test]
    async fn both_halves_carry_bytes_and_dropping_the_writer_ends_the_peers_input() {
        let (theirs, (mut reader, mut writer)) = pair();
        writer.write_all(b"request\n").await.unwrap();
        std::io::Write::write_all(&mut &theirs, b"answer\n").unwrap();
        let mut answer = [0; 7];
        reader.read_exact(&mut answer).await.unwrap();
        assert_eq!(&answer, b"answer\n");
        drop(writer);
        let mut received = Vec::new();
        std::io::Read::read_to_end(&mut &theirs, &mut received).unwrap();
        assert_eq!(received, b"request\n");
    }

    #[tokio::test]
    async fn a_write_that_would_block_waits_for_the_peer_to_read() {
        let (theirs, (_reader, mut writer)) = pair();
        let line = vec![b'x'; 4 << 20];
        let peer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            let mut received = vec![0; 4 << 20];
            std::io::Read::read_exact(&mut &theirs, &mut received).unwrap();
            received
        });
        tokio::time::timeout(Duration::from_secs(10), writer.write_all(&line))
            .await
            .expect("the blocked write never resumed")
            .unwrap();
        assert!(
            writer.blocked.is_none(),
            "the registration outlived the wait"
        );
        assert_eq!(peer.join().unwrap(), line);
    }

    #[tokio::test]
    async fn only_the_reader_is_registered_and_only_for_readability() {
        use std::os::fd::AsRawFd;
        let (_theirs, (reader, mut writer)) = pair();
        writer.write_all(b"request\n").await.unwrap();
        assert_eq!(epoll_events(writer.socket.as_raw_fd()), None);
        let events = epoll_events(reader.0.as_raw_fd()).expect("the reader is not registered");
        assert_eq!(events & EPOLLOUT, 0, "registered for writability");
        assert_ne!(events & EPOLLIN, 0, "not registered for readability");
    }

    // From <sys/epoll.h>.
    pub(crate) const EPOLLIN: u32 = 0x1;
    pub(crate) const EPOLLOUT: u32 = 0x4;

    /// The events `fd` is registered for in any of this process's epoll instances, as
    /// `/proc/self/fdinfo` shows them ("tfd: FD events: HEX data: ...").
    pub(crate) fn epoll_events(fd: i32) -> Option<u32> {
        let target = fd.to_string();
        let infos = std::fs::read_dir("/proc/self/fdinfo").unwrap();
        let infos = infos.filter_map(|entry| std::fs::read_to_string(entry.unwrap().path()).ok());
        infos.into_iter().find_map(|info| {
            info.lines().find_map(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                match fields[..] {
                    ["tfd:", tfd, "events:", events, ..] if tfd == target => {
                        Some(u32::from_str_radix(events, 16).unwrap())
                    }
                    _ => None,
                }
            })
        })
    }
}
