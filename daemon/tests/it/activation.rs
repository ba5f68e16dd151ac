//! Socket activation without systemd-socket-activate: the test holds the listening socket, as
//! systemd does, and starts the daemon with it as fd 3 and `LISTEN_FDS`/`LISTEN_PID` set for the
//! daemon's own pid. That lets it check what systemd relies on: the daemon uses the socket it is
//! given, never unlinks it, and after an idle exit leaves queued connections to the next start.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::{UnixDatagram, UnixListener, UnixStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{HELLO, say, terminate};

/// Starts the daemon with `listener` as fd 3. `LISTEN_PID` must be the daemon's pid, which only
/// the child knows: a shell moves the socket from its stdin to fd 3, sets `LISTEN_PID=$$` and
/// execs the daemon, which keeps the shell's pid. `listen_pid` overrides that value.
fn activate(listener: &UnixListener, dir: &Path, listen_pid: Option<&str>, args: &[&str]) -> Child {
    let socket = OwnedFd::from(listener.try_clone().unwrap());
    let script = format!(
        "exec 3<&0 </dev/null; LISTEN_FDS=1 LISTEN_PID={} exec \"$@\"",
        listen_pid.unwrap_or("$$")
    );
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg("sh")
        .arg(env!("CARGO_BIN_EXE_mcp-gatewayd"))
        .args(args)
        .stdin(Stdio::from(socket))
        .stderr(Stdio::null())
        .env("XDG_CONFIG_HOME", dir.join("config"))
        .env("XDG_STATE_HOME", dir.join("state"))
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .env("NOTIFY_SOCKET", dir.join("notify.sock"))
        // A socket from the manager wins over a configured path, which must stay unbound.
        .env("MCP_GATEWAY_SOCKET", dir.join("configured.sock"))
        .env_remove("LISTEN_FDS")
        .env_remove("LISTEN_PID")
        .spawn()
        .unwrap()
}

/// A fake `NOTIFY_SOCKET`: the messages the daemon sends its service manager.
struct Manager(UnixDatagram);

impl Manager {
    fn bind(dir: &Path) -> Manager {
        let socket = UnixDatagram::bind(dir.join("notify.sock")).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        Manager(socket)
    }

    /// Reads messages until one contains `state`.
    fn wait_for(&self, state: &str) {
        let mut buf = [0u8; 4096];
        loop {
            let n = self
                .0
                .recv(&mut buf)
                .unwrap_or_else(|err| panic!("no {state} from the daemon: {err}"));
            if String::from_utf8_lossy(&buf[..n]).contains(state) {
                return;
            }
        }
    }
}

fn wait_exit(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(start.elapsed() < limit, "the daemon did not exit");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Connects and says hello without waiting for the answer, as a client that arrives while no
/// daemon runs: the connection waits in the listening socket's queue.
fn queue_hello(path: &Path) -> UnixStream {
    let mut stream = UnixStream::connect(path).expect("the held socket queues the connection");
    stream.write_all(HELLO.as_bytes()).unwrap();
    stream
}

/// Reads the hello reply on a queued connection.
fn hello_reply(stream: &UnixStream) -> String {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).unwrap();
    line
}

#[test]
fn a_socket_passed_as_fd_3_is_served_and_left_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gw.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let manager = Manager::bind(dir.path());
    let daemon = activate(&listener, dir.path(), None, &[]);
    manager.wait_for("READY=1");

    let answer = say(dir.path(), HELLO);
    assert!(answer.starts_with("{\"type\":\"hello\""), "{answer}");
    assert!(
        !dir.path().join("configured.sock").exists(),
        "socket-activated, the daemon binds nothing itself"
    );

    assert!(terminate(daemon).success());
    assert!(
        path.exists(),
        "the daemon never unlinks a socket it was given"
    );
    queue_hello(&path);
}

#[test]
fn listen_fds_meant_for_another_process_are_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let listener = UnixListener::bind(dir.path().join("gw.sock")).unwrap();
    let manager = Manager::bind(dir.path());
    // LISTEN_PID names pid 1, so the descriptors were not passed to the daemon (it inherited the
    // variables from a parent that was activated): it binds the configured path instead.
    let daemon = activate(&listener, dir.path(), Some("1"), &[]);
    manager.wait_for("READY=1");
    assert!(dir.path().join("configured.sock").exists());
    let mut stream = UnixStream::connect(dir.path().join("configured.sock")).unwrap();
    stream.write_all(HELLO.as_bytes()).unwrap();
    assert!(hello_reply(&stream).starts_with("{\"type\":\"hello\""));
    drop(stream);
    assert!(terminate(daemon).success());
}

/// An idle daemon exits, and a connection that arrives while it exits or after it has exited
/// waits in the socket's queue until the next activation serves it: none is refused or lost.
#[test]
fn after_an_idle_exit_the_next_activation_serves_queued_connections() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gw.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let manager = Manager::bind(dir.path());

    let mut first = activate(&listener, dir.path(), None, &["--idle-timeout", "1"]);
    manager.wait_for("READY=1");
    assert!(say(dir.path(), HELLO).starts_with("{\"type\":\"hello\""));
    manager.wait_for("STOPPING=1");
    let during_exit = queue_hello(&path);
    let status = wait_exit(&mut first, Duration::from_secs(15));
    assert!(status.success(), "an idle exit is a clean exit: {status}");
    let after_exit = queue_hello(&path);

    // Nobody has answered the queued connections, and nobody has closed them.
    during_exit
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    match (&during_exit).read(&mut [0u8; 1]) {
        Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {}
        other => {
            panic!("a queued connection was answered or closed by the exiting daemon: {other:?}")
        }
    }

    // What systemd does when the socket becomes readable and the service is not running.
    let second = activate(&listener, dir.path(), None, &[]);
    for stream in [&during_exit, &after_exit] {
        let reply = hello_reply(stream);
        assert!(reply.starts_with("{\"type\":\"hello\""), "{reply}");
    }
    drop((during_exit, after_exit));
    assert!(terminate(second).success());
}
