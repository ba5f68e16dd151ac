//! Servers' stdio over a Unix socket of the daemon's instead of the engine's attach stream.
//!
//! On the attach stream every line goes through the engine and the container's shim, two more
//! processes woken per line each way, and most of a warm call's time. So when the engine is local
//! the daemon makes each container's entrypoint `mcp-launcher` (the `launcher` crate), bind-mounts
//! it and a socket the daemon listens on, and the launcher connects and replaces itself with the
//! server, whose stdin and stdout are then that connection. The attach stream stays: it carries
//! stderr to the server's log, and stdio too when the launcher cannot connect, which it signals
//! with one empty line on stdout before the server starts ([`choose`]).

use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bollard::models::ContainerCreateBody;
use tokio::io::AsyncReadExt;
use tokio::net::UnixListener;
use tokio::sync::oneshot;

use super::attach::Streams;
use crate::logtail::Drained;

/// Where the launcher and the socket appear inside a container.
const PROGRAM_IN_CONTAINER: &str = "/.mcp-gateway/launcher";
const SOCKET_IN_CONTAINER: &str = "/.mcp-gateway/stdio.sock";

/// How long a started container's launcher has to connect or fall back. It does either at once;
/// this bounds an engine that starts the container and then never runs it.
const LAUNCH_TIMEOUT: Duration = Duration::from_secs(30);

/// The ELF program header type of a program interpreter (the dynamic loader).
const PT_INTERP: u32 = 3;

/// The sockets' directories are named for the daemon that made them (`mcp-gateway-stdio.PID.…`),
/// so that one a killed daemon left behind can be told from a running daemon's.
const DIR_PREFIX: &str = "mcp-gateway-stdio.";

/// A launcher the daemon found usable, and the directory of the sockets its containers connect
/// to, removed when the daemon exits.
#[derive(Debug)]
pub struct Launcher {
    program: PathBuf,
    sockets: tempfile::TempDir,
    next: AtomicU64,
}

#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("cannot listen for the server's stdio: {0}")]
    Listen(io::Error),
    #[error("cannot accept the server's stdio connection: {0}")]
    Accept(io::Error),
    #[error("cannot read the container's attach stream: {0}")]
    Attach(io::Error),
    #[error("the container's launcher neither connected nor fell back within {0:?}")]
    Timeout(Duration),
}

impl Launcher {
    /// Checks that `program` is a statically linked executable (a dynamically linked one would
    /// not find its libraries in most images) and makes the sockets' directory in `runtime`.
    pub fn new(program: PathBuf, runtime: &Path) -> Result<Launcher, String> {
        let shown = program.display();
        let file = File::open(&program).map_err(|err| format!("cannot read {shown}: {err}"))?;
        if !is_static_executable(&file) {
            return Err(format!(
                "{shown} is not a statically linked 64-bit executable (launcher/build-static.sh builds one)"
            ));
        }
        sweep(runtime);
        let sockets = tempfile::Builder::new()
            .prefix(&format!("{DIR_PREFIX}{}.", std::process::id()))
            .tempdir_in(runtime)
            .map_err(|err| format!("cannot make a directory in {}: {err}", runtime.display()))?;
        Ok(Launcher {
            program,
            sockets,
            next: AtomicU64::new(0),
        })
    }

    /// A socket for one container's launcher to connect to.
    pub fn listen(&self) -> Result<Listening, LaunchError> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let path = self.sockets.path().join(format!("{n}.sock"));
        let listener = UnixListener::bind(&path).map_err(LaunchError::Listen)?;
        let listening = Listening { listener, path };
        // The server may run as any user of its image; the directory (0700) keeps other users of
        // the host out, and a bind mount reaches the socket without passing through it.
        std::fs::set_permissions(&listening.path, std::fs::Permissions::from_mode(0o666))
            .map_err(LaunchError::Listen)?;
        Ok(listening)
    }

    /// Makes the container `body` describes run `command` (the image's, as the engine would put
    /// it together) through the launcher, which connects to `listening`.
    pub fn wrap(
        &self,
        listening: &Listening,
        command: Vec<String>,
        body: &mut ContainerCreateBody,
    ) {
        let host_config = body.host_config.get_or_insert_default();
        let mounts = host_config.mounts.get_or_insert_default();
        for (source, target) in [
            (&self.program, PROGRAM_IN_CONTAINER),
            (&listening.path, SOCKET_IN_CONTAINER),
        ] {
            mounts.push(super::bind(
                source.display().to_string(),
                target.to_owned(),
                false,
            ));
        }
        body.entrypoint = Some(vec![
            PROGRAM_IN_CONTAINER.to_owned(),
            SOCKET_IN_CONTAINER.to_owned(),
        ]);
        body.cmd = Some(command);
    }
}

/// A socket one container's launcher connects to; dropped, its file is removed (the container's
/// bind mount holds the file open for as long as it needs it, which is only until it connects).
#[derive(Debug)]
pub struct Listening {
    listener: UnixListener,
    path: PathBuf,
}

impl Drop for Listening {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The server's stdio: the launcher's connection when it makes one, else the attach stream once
/// the launcher's empty line has been read from it (or the stream has ended: a container that
/// exited at once, whose end the upstream then reports). With the socket chosen, the attach
/// stream's stdin is closed and its output read on by a task of its own, which hands stderr to
/// the log until the container exits; the socket's end waits for that task, so that a server that
/// fails is reported with its last lines.
pub async fn choose(listening: Listening, attached: Streams) -> Result<Streams, LaunchError> {
    let (stdin, mut stdout) = attached;
    let mut first = [0u8; 1];
    let chosen = tokio::time::timeout(LAUNCH_TIMEOUT, async {
        tokio::select! {
            accepted = listening.listener.accept() => accepted.map(Some).map_err(LaunchError::Accept),
            read = stdout.read(&mut first) => read.map(|_| None).map_err(LaunchError::Attach),
        }
    })
    .await
    .map_err(|_| LaunchError::Timeout(LAUNCH_TIMEOUT))??;
    let Some((stream, _)) = chosen else {
        return Ok((stdin, stdout));
    };
    drop(stdin);
    let (drained_tx, drained_rx) = oneshot::channel();
    tokio::spawn(async move {
        if let Err(err) = tokio::io::copy(&mut stdout, &mut tokio::io::sink()).await {
            tracing::debug!("the attach stream of a server with socket stdio ended: {err}");
        }
        let _ = drained_tx.send(());
    });
    let socket = stream.into_std().map_err(LaunchError::Accept)?;
    let (read, write) = crate::halves::split(socket.into()).map_err(LaunchError::Accept)?;
    Ok((Box::pin(write), Box::pin(Drained::new(read, drained_rx))))
}

/// Removes the sockets' directories in `runtime` whose daemon is gone (killed before it could
/// remove its own): empty, or holding the socket of a container that had not connected yet.
fn sweep(runtime: &Path) {
    let Ok(entries) = std::fs::read_dir(runtime) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let pid = name
            .to_str()
            .and_then(|name| name.strip_prefix(DIR_PREFIX))
            .and_then(|rest| rest.split('.').next())
            .and_then(|pid| pid.parse::<u32>().ok());
        if let Some(pid) = pid
            && !Path::new(&format!("/proc/{pid}")).exists()
        {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Whether `file` is a 64-bit little-endian ELF executable without a program interpreter: one
/// that runs in an image holding nothing else. Only its header and program headers are read.
fn is_static_executable(file: &File) -> bool {
    let mut header = [0u8; 64];
    // The magic, class 2 (64-bit), data 1 (little-endian).
    if file.read_exact_at(&mut header, 0).is_err() || !header.starts_with(b"\x7fELF\x02\x01") {
        return false;
    }
    let u16_at = |at: usize| usize::from(u16::from_le_bytes([header[at], header[at + 1]]));
    let mut phoff = [0u8; 8];
    phoff.copy_from_slice(&header[0x20..0x28]);
    let (phoff, phentsize, phnum) = (u64::from_le_bytes(phoff), u16_at(0x36), u16_at(0x38));
    if phnum == 0 {
        return true;
    }
    // Each program header starts with its type, four bytes.
    let mut table = vec![0u8; phentsize * phnum];
    if phentsize < 4 || file.read_exact_at(&mut table, phoff).is_err() {
        return false;
    }
    table
        .chunks_exact(phentsize)
        .all(|entry| u32::from_le_bytes([entry[0], entry[1], entry[2], entry[3]]) != PT_INTERP)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::logtail::LogTail;

    /// [`is_static_executable`] of a file holding `bytes`.
    fn is_static(bytes: &[u8]) -> bool {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), bytes).unwrap();
        is_static_executable(file.as_file())
    }

    #[test]
    fn only_an_executable_without_an_interpreter_counts_as_static() {
        let this_test = File::open(std::env::current_exe().unwrap()).unwrap();
        assert!(
            !is_static_executable(&this_test),
            "a test binary links libc"
        );
        assert!(!is_static(b"#!/bin/sh\n"));
        assert!(!is_static(b"\x7fELF\x02\x01"));
        // A header with no program headers at all: nothing asks for an interpreter.
        let mut bare = vec![0u8; 64];
        bare[..6].copy_from_slice(b"\x7fELF\x02\x01");
        assert!(is_static(&bare));
        // One program header, of type PT_INTERP.
        bare[0x20] = 64;
        bare[0x36] = 56;
        bare[0x38] = 1;
        bare.resize(64 + 56, 0);
        bare[64] = 3;
        assert!(!is_static(&bare));
        bare[64] = 1;
        assert!(is_static(&bare));
        // Program headers past the end of the file, or where no offset reaches.
        bare[0x20..0x28].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(!is_static(&bare));
    }

    #[test]
    fn only_the_socket_directories_of_daemons_gone_are_swept() {
        let runtime = tempfile::tempdir().unwrap();
        let mut exited = std::process::Command::new("true").spawn().unwrap();
        exited.wait().unwrap();
        let gone = runtime
            .path()
            .join(format!("{DIR_PREFIX}{}.abc", exited.id()));
        let running = runtime
            .path()
            .join(format!("{DIR_PREFIX}{}.abc", std::process::id()));
        let other = runtime.path().join("mcp-gateway.sock.d");
        for dir in [&gone, &running, &other] {
            std::fs::create_dir(dir).unwrap();
        }
        std::fs::write(gone.join("0.sock"), b"").unwrap();
        sweep(runtime.path());
        assert!(!gone.exists());
        assert!(running.exists() && other.exists());
    }

    fn launcher(dir: &Path) -> Launcher {
        Launcher {
            program: "/unused".into(),
            sockets: tempfile::tempdir_in(dir).unwrap(),
            next: AtomicU64::new(0),
        }
    }

    /// An attach stream whose stdout carries `output`, as the engine frames it, and whose stdin
    /// is the returned peer's.
    fn attach_stream(output: &[u8]) -> (Streams, tokio::io::DuplexStream) {
        let mut framed = Vec::new();
        if !output.is_empty() {
            framed.extend_from_slice(&[1, 0, 0, 0]);
            framed.extend_from_slice(&u32::try_from(output.len()).unwrap().to_be_bytes());
            framed.extend_from_slice(output);
        }
        let (ours, theirs) = tokio::io::duplex(1024);
        let (read, write) = tokio::io::split(ours);
        let stdout =
            super::super::frames::Demux::new(read, &framed, Arc::new(LogTail::new("test")));
        ((Box::pin(write), Box::pin(stdout)), theirs)
    }

    #[tokio::test]
    async fn a_connection_is_chosen_and_the_socket_file_removed() {
        let dir = tempfile::tempdir().unwrap();
        let launcher = launcher(dir.path());
        let listening = launcher.listen().unwrap();
        let path = listening.path.clone();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o666);
        let (attached, _engine) = attach_stream(b"");
        let server = tokio::spawn(async move {
            let mut server = tokio::net::UnixStream::connect(&path).await.unwrap();
            server.write_all(b"{\"id\":1}\n").await.unwrap();
            let mut request = [0u8; 8];
            server.read_exact(&mut request).await.unwrap();
            request
        });
        let (mut stdin, mut stdout) = choose(listening, attached).await.unwrap();
        let mut answer = [0u8; 9];
        stdout.read_exact(&mut answer).await.unwrap();
        assert_eq!(&answer, b"{\"id\":1}\n");
        stdin.write_all(b"request\n").await.unwrap();
        assert_eq!(&server.await.unwrap(), b"request\n");
        assert_eq!(
            std::fs::read_dir(launcher.sockets.path()).unwrap().count(),
            0
        );
    }

    #[tokio::test]
    async fn the_launchers_empty_line_keeps_the_attach_stream() {
        let dir = tempfile::tempdir().unwrap();
        let launcher = launcher(dir.path());
        let listening = launcher.listen().unwrap();
        let (attached, mut engine) = attach_stream(b"\n{\"id\":1}\n");
        let (mut stdin, mut stdout) = choose(listening, attached).await.unwrap();
        let mut answer = [0u8; 9];
        stdout.read_exact(&mut answer).await.unwrap();
        assert_eq!(&answer, b"{\"id\":1}\n", "the empty line is taken off");
        stdin.write_all(b"request\n").await.unwrap();
        let mut request = [0u8; 8];
        engine.read_exact(&mut request).await.unwrap();
        assert_eq!(&request, b"request\n");
    }

    #[tokio::test]
    async fn a_container_gone_before_its_launcher_chose_leaves_the_ended_attach_stream() {
        let dir = tempfile::tempdir().unwrap();
        let launcher = launcher(dir.path());
        let listening = launcher.listen().unwrap();
        let (attached, engine) = attach_stream(b"");
        drop(engine);
        let (_stdin, mut stdout) = choose(listening, attached).await.unwrap();
        let mut rest = Vec::new();
        assert_eq!(stdout.read_to_end(&mut rest).await.unwrap(), 0);
    }
}
