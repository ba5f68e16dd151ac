//! The attach request, made by the daemon itself rather than through bollard: bollard's reader
//! zero-fills its whole read buffer on every read (8 KiB per answer, the largest single cost of
//! a warm call), and its connection cannot be had from it. Here the HTTP upgrade goes through
//! hyper on a connection of our own, and the socket itself is taken back from hyper once the
//! engine switched protocols, so reads and writes are plain socket calls (through
//! [`crate::halves`]) and the frames are taken apart by [`Demux`].

use std::io;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::header::{CONNECTION, HOST, UPGRADE};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpStream, UnixStream};

use super::frames::Demux;
use crate::logtail::LogTail;

/// Where the engine listens, as `DOCKER_HOST` names it: `unix://PATH`, or `tcp://HOST:PORT`
/// (also written `http://`), the schemes bollard speaks without its TLS and SSH features.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    Unix(PathBuf),
    Tcp(String),
}

impl Address {
    pub fn parse(host: &str) -> Option<Address> {
        if let Some(path) = host.strip_prefix("unix://") {
            return Some(Address::Unix(path.into()));
        }
        let authority = host
            .strip_prefix("tcp://")
            .or_else(|| host.strip_prefix("http://"))?;
        Some(Address::Tcp(authority.trim_end_matches('/').to_owned()))
    }
}

/// The container's stdin, and its stdout as a plain byte stream.
pub type Streams = (
    Pin<Box<dyn AsyncWrite + Send>>,
    Pin<Box<dyn AsyncRead + Send>>,
);

#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    #[error("cannot connect to the engine: {0}")]
    Connect(io::Error),
    #[error("{0}")]
    Http(#[from] hyper::Error),
    #[error("the engine answered {status}: {message}")]
    Refused { status: StatusCode, message: String },
}

/// The container's stdin and its demultiplexed stdout, from `POST path` (the attach endpoint
/// with its query) upgraded to the raw stream; stderr goes to `stderr`.
pub async fn attach(
    address: &Address,
    path: &str,
    stderr: Arc<LogTail>,
) -> Result<Streams, AttachError> {
    match address {
        Address::Unix(socket) => {
            let stream = UnixStream::connect(socket)
                .await
                .map_err(AttachError::Connect)?;
            // The engine reads no host from a Unix socket's requests, but HTTP/1.1 needs one.
            let (stream, already) = upgrade(stream, "localhost", path).await?;
            let socket = stream.into_std().map_err(AttachError::Connect)?;
            halves(socket.into(), &already, stderr)
        }
        Address::Tcp(authority) => {
            let stream = TcpStream::connect(authority)
                .await
                .map_err(AttachError::Connect)?;
            // Requests and answers are single small writes, which Nagle's algorithm would hold.
            stream.set_nodelay(true).map_err(AttachError::Connect)?;
            let (stream, already) = upgrade(stream, authority, path).await?;
            let socket = stream.into_std().map_err(AttachError::Connect)?;
            halves(socket.into(), &already, stderr)
        }
    }
}

/// The upgraded connection as the container's stdin and its demultiplexed output, each half
/// registered only for what it waits on (see [`crate::halves`]).
fn halves(socket: OwnedFd, already: &[u8], stderr: Arc<LogTail>) -> Result<Streams, AttachError> {
    let (read, write) = crate::halves::split(socket).map_err(AttachError::Connect)?;
    Ok((Box::pin(write), Box::pin(Demux::new(read, already, stderr))))
}

/// Sends the upgrade request on `stream` and, once the engine switched protocols, takes the
/// stream back from hyper with the bytes hyper read past the answer.
async fn upgrade<S>(stream: S, host: &str, path: &str) -> Result<(S, Bytes), AttachError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    // The connection task ends as soon as it hands the stream to the upgrade.
    tokio::spawn(connection.with_upgrades());
    let request = Request::post(path)
        .header(HOST, host)
        .header(CONNECTION, "Upgrade")
        .header(UPGRADE, "tcp")
        .body(Empty::<Bytes>::new())
        .expect("a request from valid parts");
    let response = sender.send_request(request).await?;
    let status = response.status();
    if status != StatusCode::SWITCHING_PROTOCOLS {
        let body = response.into_body().collect().await?.to_bytes();
        return Err(AttachError::Refused {
            status,
            message: engine_message(&body),
        });
    }
    let upgraded = hyper::upgrade::on(response).await?;
    let parts = upgraded
        .downcast::<TokioIo<S>>()
        .unwrap_or_else(|_| unreachable!("the upgraded connection is the one handed to hyper"));
    Ok((parts.io.into_inner(), parts.read_buf))
}

/// The `message` of the engine's JSON error body, else the body as text.
fn engine_message(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct EngineError {
        message: String,
    }
    match serde_json::from_slice::<EngineError>(body) {
        Ok(error) => error.message,
        Err(_) => String::from_utf8_lossy(body).trim().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_host_names_a_unix_socket_or_a_tcp_address() {
        assert_eq!(
            Address::parse("unix:///run/user/1000/podman/podman.sock"),
            Some(Address::Unix("/run/user/1000/podman/podman.sock".into()))
        );
        assert_eq!(
            Address::parse("tcp://127.0.0.1:2375"),
            Some(Address::Tcp("127.0.0.1:2375".into()))
        );
        assert_eq!(
            Address::parse("http://docker:2375/"),
            Some(Address::Tcp("docker:2375".into()))
        );
        assert_eq!(Address::parse("ssh://host"), None);
        assert_eq!(Address::parse("/var/run/docker.sock"), None);
    }

    #[test]
    fn the_engines_error_message_is_taken_from_its_json() {
        assert_eq!(
            engine_message(br#"{"message":"No such container: abc"}"#),
            "No such container: abc"
        );
        assert_eq!(engine_message(b"page not found\n"), "page not found");
    }
}
