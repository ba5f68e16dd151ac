//! The stdin and stdout an MCP client's `mcp-shim` hands over (see the protocol crate's
//! `handover`): received on the shim's connection, checked, and made into the session's input and
//! output, so that the client's requests reach the daemon without a relay in between.
//!
//! A pipe becomes a tokio pipe end and a stream socket one of [`crate::halves`]' halves (any
//! stream socket reads and writes alike; Node gives its children socket pairs, and such a half does
//! not wake the daemon each time the client reads an answer); both are put in non-blocking mode,
//! which is a flag of the open file the client's own end does not share.

use std::io;
use std::os::fd::{AsFd, OwnedFd};

use mcp_gateway_proto::{StdioKind, receive_stdio, stdio_kind};
use tokio::io::Interest;
use tokio::net::UnixStream;
use tokio::net::unix::pipe;
use tokio_util::either::Either;

use crate::halves::{ReadHalf, WriteHalf};

/// What the session reads the client's requests from.
pub type Input = Either<pipe::Receiver, ReadHalf>;
/// What the session writes its answers to.
pub type Output = Either<pipe::Sender, WriteHalf>;

/// A client's stdio, ready to serve a session on.
pub struct Stdio {
    pub input: Input,
    pub output: Output,
}

/// Waits for the shim to send its stdin and stdout on `connection`, then opens them.
pub async fn receive(connection: &UnixStream) -> io::Result<Stdio> {
    let [stdin, stdout] = connection
        .async_io(Interest::READABLE, || receive_stdio(connection.as_fd()))
        .await?;
    let input = match stdio_kind(stdin.as_fd()) {
        Some(StdioKind::Pipe) => Either::Left(pipe::Receiver::from_owned_fd(stdin)?),
        Some(StdioKind::Socket) => Either::Right(ReadHalf::new(nonblocking(stdin)?)?),
        None => return Err(not_a_stream("stdin")),
    };
    let output = match stdio_kind(stdout.as_fd()) {
        Some(StdioKind::Pipe) => Either::Left(pipe::Sender::from_owned_fd(stdout)?),
        Some(StdioKind::Socket) => Either::Right(WriteHalf::new(nonblocking(stdout)?)),
        None => return Err(not_a_stream("stdout")),
    };
    Ok(Stdio { input, output })
}

fn nonblocking(socket: OwnedFd) -> io::Result<OwnedFd> {
    let socket = std::os::unix::net::UnixStream::from(socket);
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

fn not_a_stream(which: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{which} is neither a pipe nor a stream socket"),
    )
}

impl Stdio {
    /// The descriptor a hang-up of the client shows on: the one its answers go to.
    pub fn output_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        match &self.output {
            Either::Left(pipe) => pipe.as_fd(),
            Either::Right(socket) => socket.as_fd(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsFd;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test]
    async fn pipes_and_sockets_handed_over_carry_the_session() {
        let (shim, daemon) = UnixStream::pair().unwrap();
        let (stdin_read, stdin_write) = std::io::pipe().unwrap();
        let (client_out, stdout) = std::os::unix::net::UnixStream::pair().unwrap();
        mcp_gateway_proto::send_stdio(shim.as_fd(), stdin_read.as_fd(), stdout.as_fd()).unwrap();
        drop((stdin_read, stdout));
        let mut stdio = receive(&daemon).await.unwrap();
        assert!(matches!(stdio.input, Either::Left(_)));
        assert!(matches!(stdio.output, Either::Right(_)));
        std::io::Write::write_all(&mut &stdin_write, b"ping\n").unwrap();
        let mut line = [0u8; 5];
        stdio.input.read_exact(&mut line).await.unwrap();
        assert_eq!(&line, b"ping\n");
        stdio.output.write_all(b"pong\n").await.unwrap();
        let mut answer = [0u8; 5];
        std::io::Read::read_exact(&mut &client_out, &mut answer).unwrap();
        assert_eq!(&answer, b"pong\n");
    }

    #[tokio::test]
    async fn a_file_handed_over_is_refused() {
        let (shim, daemon) = UnixStream::pair().unwrap();
        let null = std::fs::File::open("/dev/null").unwrap();
        mcp_gateway_proto::send_stdio(shim.as_fd(), null.as_fd(), null.as_fd()).unwrap();
        let err = receive(&daemon)
            .await
            .err()
            .expect("a file was taken as stdin");
        assert_eq!(
            err.to_string(),
            "stdin is neither a pipe nor a stream socket"
        );
    }
}
