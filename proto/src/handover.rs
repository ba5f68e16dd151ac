//! Handing an MCP client's stdin and stdout from `mcp-shim` to the daemon.
//!
//! A shim that relays bytes puts a process and two copies on every message's way. Instead, when
//! both of its stdio descriptors are pipes or stream sockets (as every AI client makes them), the
//! shim offers them in its hello; a daemon that accepts says so in its reply, and the shim sends
//! them as one byte with `SCM_RIGHTS` on the same connection. The daemon then reads the client's
//! requests and writes its answers itself, and the shim only waits for the connection to end.
//! After the handover the daemon writes nothing on the connection except, when it cannot use the
//! descriptors, one [`HelloReply::Error`](crate::HelloReply::Error) line before it closes.

use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::sys::socket::{
    ControlMessage, ControlMessageOwned, MsgFlags, SockType, getsockopt, recvmsg, sendmsg, sockopt,
};
use nix::sys::stat::{SFlag, fstat};

/// The byte that carries the descriptors; a message with ancillary data must carry one.
const MARK: u8 = b'\n';

/// What a descriptor handed over is, which decides how the daemon reads or writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StdioKind {
    /// A pipe or FIFO.
    Pipe,
    /// A stream socket (Node's `child_process` gives its children socket pairs).
    Socket,
}

/// Whether `fd` can be handed over, and as what; `None` for a terminal, a file, a datagram
/// socket or anything else the daemon could not poll as a stream.
pub fn stdio_kind(fd: BorrowedFd<'_>) -> Option<StdioKind> {
    let stat = fstat(fd).ok()?;
    let format = SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT;
    if format == SFlag::S_IFIFO {
        Some(StdioKind::Pipe)
    } else if format == SFlag::S_IFSOCK {
        let stream = getsockopt(&fd, sockopt::SockType).ok()? == SockType::Stream;
        stream.then_some(StdioKind::Socket)
    } else {
        None
    }
}

/// Sends `stdin` and `stdout` to the daemon on `socket`.
pub fn send_stdio(
    socket: BorrowedFd<'_>,
    stdin: BorrowedFd<'_>,
    stdout: BorrowedFd<'_>,
) -> io::Result<()> {
    let fds = [stdin.as_raw_fd(), stdout.as_raw_fd()];
    let iov = [IoSlice::new(&[MARK])];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    loop {
        match sendmsg::<()>(socket.as_raw_fd(), &iov, &cmsg, MsgFlags::empty(), None) {
            Ok(1) => return Ok(()),
            Ok(_) => return Err(io::Error::other("the descriptors were not sent")),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(errno) => return Err(errno.into()),
        }
    }
}

/// Receives the client's stdin and stdout from `socket`, in that order. On a non-blocking socket
/// with nothing to read it fails with [`io::ErrorKind::WouldBlock`], so that an async caller can
/// wait for readiness and call it again.
pub fn receive_stdio(socket: BorrowedFd<'_>) -> io::Result<[OwnedFd; 2]> {
    let mut byte = [0u8];
    let mut iov = [IoSliceMut::new(&mut byte)];
    let mut space = nix::cmsg_space!([RawFd; 2]);
    let message = recvmsg::<()>(
        socket.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )?;
    // Own every descriptor that arrived first, so that none leaks whatever else is wrong.
    let mut fds: Vec<OwnedFd> = Vec::new();
    for cmsg in message.cmsgs()? {
        if let ControlMessageOwned::ScmRights(raw) = cmsg {
            // SAFETY: the kernel has just installed these descriptors in this process for this
            // call, and nothing else refers to them.
            #[expect(
                unsafe_code,
                reason = "nix hands received descriptors over as raw numbers"
            )]
            fds.extend(
                raw.into_iter()
                    .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
            );
        }
    }
    if message.bytes == 0 {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    if message.flags.contains(MsgFlags::MSG_CTRUNC) {
        return Err(io::Error::other(
            "more descriptors than stdin and stdout arrived",
        ));
    }
    <[OwnedFd; 2]>::try_from(fds).map_err(|fds| {
        io::Error::other(format!(
            "expected stdin and stdout, got {} descriptors",
            fds.len()
        ))
    })
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixStream;

    use super::*;

    #[test]
    fn pipes_and_stream_sockets_can_be_handed_over_but_files_cannot() {
        let (read, write) = std::io::pipe().unwrap();
        assert_eq!(stdio_kind(read.as_fd()), Some(StdioKind::Pipe));
        assert_eq!(stdio_kind(write.as_fd()), Some(StdioKind::Pipe));
        let (socket, _) = UnixStream::pair().unwrap();
        assert_eq!(stdio_kind(socket.as_fd()), Some(StdioKind::Socket));
        let datagram = std::os::unix::net::UnixDatagram::unbound().unwrap();
        assert_eq!(stdio_kind(datagram.as_fd()), None);
        let device = std::fs::File::open("/dev/null").unwrap();
        assert_eq!(stdio_kind(device.as_fd()), None);
    }

    #[test]
    fn the_descriptors_arrive_in_order_and_work() {
        let (shim, daemon) = UnixStream::pair().unwrap();
        let (stdin_read, mut stdin_write) = std::io::pipe().unwrap();
        let (mut stdout_read, stdout_write) = std::io::pipe().unwrap();
        send_stdio(shim.as_fd(), stdin_read.as_fd(), stdout_write.as_fd()).unwrap();
        drop((stdin_read, stdout_write));
        let [stdin, stdout] = receive_stdio(daemon.as_fd()).unwrap();
        stdin_write.write_all(b"request\n").unwrap();
        let mut line = [0u8; 8];
        std::fs::File::from(stdin).read_exact(&mut line).unwrap();
        assert_eq!(&line, b"request\n");
        std::fs::File::from(stdout).write_all(b"answer\n").unwrap();
        let mut answer = String::new();
        stdout_read.read_to_string(&mut answer).unwrap();
        assert_eq!(answer, "answer\n");
    }

    #[test]
    fn a_message_without_two_descriptors_is_an_error_not_a_leak() {
        let (shim, daemon) = UnixStream::pair().unwrap();
        (&shim).write_all(b"x").unwrap();
        let err = receive_stdio(daemon.as_fd()).unwrap_err();
        assert!(err.to_string().contains("got 0 descriptors"), "{err}");
        drop(shim);
        let eof = receive_stdio(daemon.as_fd()).unwrap_err();
        assert_eq!(eof.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn an_empty_non_blocking_socket_would_block() {
        let (_shim, daemon) = UnixStream::pair().unwrap();
        daemon.set_nonblocking(true).unwrap();
        let err = receive_stdio(daemon.as_fd()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
    }
}
