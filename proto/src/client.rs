//! The client side of opening a connection, shared by `mcpctl` and `mcp-shim`: connect, make sure
//! the daemon runs as this user, say hello, read the answer.

use std::io::{self, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::{ErrorKind, Hello, HelloReply, LineError, MAX_CONTROL_LINE, decode, encode};

/// An accepted connection. `reader` may already hold bytes that followed the daemon's hello.
pub struct Connection {
    pub stream: UnixStream,
    pub reader: BufReader<UnixStream>,
    /// The daemon takes the stdin and stdout the hello offered (see [`crate::send_stdio`]).
    pub take_stdio: bool,
}

#[derive(Debug)]
pub enum ConnectError {
    /// Nothing answers on the socket.
    Unreachable { path: PathBuf, source: io::Error },
    /// The socket belongs to another user: a wrong `XDG_RUNTIME_DIR` or a planted socket must not
    /// receive this user's traffic.
    WrongOwner { owner: u32, me: u32 },
    /// The daemon answered the hello with an error.
    Refused { kind: ErrorKind, message: String },
    /// The daemon hung up, or said something that is not a hello.
    Protocol(String),
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnectError::Unreachable { path, source } => write!(
                f,
                "cannot connect to mcp-gatewayd at {}: {source}; start it with: systemctl --user start mcp-gateway.socket",
                path.display()
            ),
            ConnectError::WrongOwner { owner, me } => {
                write!(
                    f,
                    "the socket belongs to uid {owner}, not to this user (uid {me})"
                )
            }
            ConnectError::Refused { message, .. } => {
                write!(f, "mcp-gatewayd refused the connection: {message}")
            }
            ConnectError::Protocol(message) => write!(f, "{message}"),
        }
    }
}

impl std::error::Error for ConnectError {}

/// Connects and completes the hello, waiting at most `timeout` for the daemon's answer (a
/// socket-activated daemon answers only once it has started).
pub fn connect(path: &Path, hello: &Hello, timeout: Duration) -> Result<Connection, ConnectError> {
    let unreachable = |source| ConnectError::Unreachable {
        path: path.to_owned(),
        source,
    };
    let protocol =
        |err: io::Error| ConnectError::Protocol(format!("talking to mcp-gatewayd: {err}"));
    let stream = UnixStream::connect(path).map_err(unreachable)?;
    check_owner(&stream)?;
    (&stream)
        .write_all(encode(hello).as_bytes())
        .map_err(protocol)?;
    stream.set_read_timeout(Some(timeout)).map_err(protocol)?;
    let mut reader = BufReader::new(stream.try_clone().map_err(protocol)?);
    let reply = decode::<HelloReply>(&mut reader, MAX_CONTROL_LINE);
    stream.set_read_timeout(None).map_err(protocol)?;
    match reply {
        Ok(Some(HelloReply::Hello { take_stdio, .. })) => Ok(Connection {
            stream,
            reader,
            take_stdio,
        }),
        Ok(Some(HelloReply::Error { kind, message })) => {
            Err(ConnectError::Refused { kind, message })
        }
        Ok(None) => Err(ConnectError::Protocol(
            "mcp-gatewayd closed the connection during the hello".into(),
        )),
        Err(LineError::Io(err)) if err.kind() == io::ErrorKind::WouldBlock => {
            Err(ConnectError::Protocol(format!(
                "mcp-gatewayd did not answer within {} s; see: systemctl --user status mcp-gateway",
                timeout.as_secs()
            )))
        }
        Err(err) => Err(ConnectError::Protocol(format!(
            "no valid hello from mcp-gatewayd: {err}"
        ))),
    }
}

fn check_owner(stream: &UnixStream) -> Result<(), ConnectError> {
    use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
    let cred = getsockopt(stream, PeerCredentials)
        .map_err(|err| ConnectError::Protocol(format!("cannot check the daemon's user: {err}")))?;
    let me = nix::unistd::geteuid().as_raw();
    if cred.uid() == me {
        Ok(())
    } else {
        Err(ConnectError::WrongOwner {
            owner: cred.uid(),
            me,
        })
    }
}
