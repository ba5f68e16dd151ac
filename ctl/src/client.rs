//! The connection to the daemon (one request, one response, repeated) and the mapping from
//! failures to `mcpctl`'s exit statuses.

use std::io::{BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use mcp_gateway_proto::{
    ConnectError, ErrorKind, Hello, MAX_CONTROL_LINE, Request, Response, Role,
};

/// Exit statuses; documented in the README.
pub mod exit {
    pub const FAILURE: u8 = 1;
    pub const NOT_FOUND: u8 = 3;
    pub const INVALID: u8 = 4;
    pub const ENGINE: u8 = 5;
    pub const UPSTREAM: u8 = 6;
    pub const UNAVAILABLE: u8 = 69;
    pub const PROTOCOL: u8 = 76;
}

/// An error the daemon answered with, kept as the error's root so [`exit_status`] finds its kind.
#[derive(Debug)]
pub struct DaemonError {
    pub kind: ErrorKind,
    pub message: String,
}

impl std::fmt::Display for DaemonError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DaemonError {}

pub fn exit_status(err: &anyhow::Error) -> u8 {
    let kind = match (
        err.downcast_ref::<DaemonError>(),
        err.downcast_ref::<ConnectError>(),
    ) {
        (Some(err), _) => err.kind,
        (_, Some(ConnectError::Refused { kind, .. })) => *kind,
        (_, Some(ConnectError::Unreachable { .. })) => return exit::UNAVAILABLE,
        (_, Some(_)) => return exit::PROTOCOL,
        (None, None) => return exit::FAILURE,
    };
    match kind {
        ErrorKind::NotFound => exit::NOT_FOUND,
        ErrorKind::InvalidConfig | ErrorKind::BadRequest => exit::INVALID,
        ErrorKind::Engine => exit::ENGINE,
        ErrorKind::Upstream => exit::UPSTREAM,
        ErrorKind::UnsupportedProtocol | ErrorKind::UnsupportedRequest => exit::PROTOCOL,
        _ => exit::FAILURE,
    }
}

pub struct Client {
    stream: UnixStream,
    reader: BufReader<UnixStream>,
}

impl Client {
    pub fn connect(path: &Path) -> anyhow::Result<Client> {
        let hello = Hello::new(
            Role::Control,
            format!("mcpctl/{}", env!("CARGO_PKG_VERSION")),
        );
        let connection = mcp_gateway_proto::connect(path, &hello, Duration::from_secs(30))?;
        // Tool calls may legitimately take minutes, but a wedged daemon must not hang a script.
        connection
            .stream
            .set_read_timeout(Some(Duration::from_secs(600)))?;
        Ok(Client {
            stream: connection.stream,
            reader: connection.reader,
        })
    }

    /// Sends one request; a daemon error becomes an `Err` holding [`DaemonError`].
    pub fn request(&mut self, request: &Request) -> anyhow::Result<Response> {
        self.send(request)?;
        self.next()
    }

    /// Sends a request answered by a stream of responses (`--follow`), which
    /// [`Client::next`] reads for as long as it takes: no read timeout.
    pub fn stream(&mut self, request: &Request) -> anyhow::Result<()> {
        self.stream.set_read_timeout(None)?;
        self.send(request)
    }

    fn send(&mut self, request: &Request) -> anyhow::Result<()> {
        self.stream
            .write_all(mcp_gateway_proto::encode(request).as_bytes())
            .context("sending to mcp-gatewayd")
    }

    /// The next response.
    pub fn next(&mut self) -> anyhow::Result<Response> {
        let response = mcp_gateway_proto::decode(&mut self.reader, MAX_CONTROL_LINE)
            .context("reading from mcp-gatewayd")?;
        match response {
            Some(Response::Error { kind, message }) => bail!(DaemonError { kind, message }),
            Some(response) => Ok(response),
            None => bail!("mcp-gatewayd closed the connection"),
        }
    }
}
