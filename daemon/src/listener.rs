//! Obtains the listening socket: from systemd (`LISTEN_FDS`) when socket-activated, otherwise by
//! binding a path. Must run before the tokio runtime exists (see `main.rs`).

use std::io;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use listenfd::ListenFd;
use nix::sys::stat::{Mode, umask};

/// A listening socket and who owns its path.
#[derive(Debug)]
pub struct Listener {
    pub socket: UnixListener,
    /// The path we bound and must unlink at exit; `None` when systemd owns the socket, which must
    /// survive us so that the next connection re-activates the daemon.
    pub bound_path: Option<PathBuf>,
    /// For status output.
    pub description: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error("the socket passed by systemd is unusable: {0}")]
    Activation(io::Error),
    #[error("{0}")]
    NoPath(String),
    #[error("another daemon already listens on {0}")]
    InUse(PathBuf),
    #[error("cannot bind {path}: {source}")]
    Bind { path: PathBuf, source: io::Error },
}

/// Takes the systemd-passed socket if there is one, else binds `path` (or the default path).
pub fn take_or_bind(path: Option<&Path>) -> Result<Listener, ListenError> {
    let mut fds = ListenFd::from_env();
    if let Some(socket) = fds.take_unix_listener(0).map_err(ListenError::Activation)? {
        socket
            .set_nonblocking(true)
            .map_err(ListenError::Activation)?;
        let description = socket
            .local_addr()
            .ok()
            .and_then(|addr| addr.as_pathname().map(|p| p.display().to_string()))
            .unwrap_or_else(|| "socket from systemd".to_owned());
        if path.is_some() {
            tracing::warn!(
                "socket-activated: ignoring --socket/{}",
                mcp_gateway_proto::SOCKET_ENV
            );
        }
        return Ok(Listener {
            socket,
            bound_path: None,
            description,
        });
    }
    let path = match path {
        Some(path) => path.to_owned(),
        None => mcp_gateway_proto::default_socket_path().map_err(ListenError::NoPath)?,
    };
    bind(&path)
}

fn bind(path: &Path) -> Result<Listener, ListenError> {
    let bind_err = |source| ListenError::Bind {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        create_private_dir(dir).map_err(bind_err)?;
    }
    remove_stale_socket(path)?;
    // Only this user may connect: the socket is the one door to an engine that is root-equivalent.
    // The process has a single thread here, so changing the umask races with nothing.
    let old = umask(Mode::S_IRWXG | Mode::S_IRWXO);
    let bound = UnixListener::bind(path);
    umask(old);
    let socket = bound.map_err(bind_err)?;
    socket.set_nonblocking(true).map_err(bind_err)?;
    Ok(Listener {
        socket,
        bound_path: Some(path.to_owned()),
        description: path.display().to_string(),
    })
}

fn create_private_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.exists() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// Removes a socket file left by a daemon that died, but never one a live daemon answers on.
fn remove_stale_socket(path: &Path) -> Result<(), ListenError> {
    match UnixStream::connect(path) {
        Ok(_) => Err(ListenError::InUse(path.to_owned())),
        Err(err) if err.kind() == io::ErrorKind::ConnectionRefused => std::fs::remove_file(path)
            .map_err(|source| ListenError::Bind {
                path: path.to_owned(),
                source,
            }),
        Err(_) => Ok(()),
    }
}
