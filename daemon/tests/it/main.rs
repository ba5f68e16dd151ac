//! The daemon binary on its own: binding, the hello, refusing a second instance, leaving no socket
//! behind, and the systemd side (`activation`: sockets passed as fd 3, idle exit; `journal`: where
//! logs go; `http`: the HTTP face against the idle exit). No container engine is needed (it
//! points at one that does not exist).

mod activation;
mod http;
mod journal;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A control client's hello.
const HELLO: &str = "{\"type\":\"hello\",\"proto\":1,\"role\":\"control\",\"client\":\"test\"}\n";

fn start(dir: &Path) -> Child {
    let mut command = Command::new(env!("CARGO_BIN_EXE_mcp-gatewayd"));
    command.stderr(Stdio::piped());
    start_with(dir, command)
}

/// Starts `command` (the daemon) on `dir/gw.sock` with private directories and an engine that
/// does not exist, and waits until it accepts connections.
fn start_with(dir: &Path, mut command: Command) -> Child {
    let child = command
        .arg("--socket")
        .arg(dir.join("gw.sock"))
        .env("XDG_CONFIG_HOME", dir.join("config"))
        .env("XDG_STATE_HOME", dir.join("state"))
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .env_remove("LISTEN_FDS")
        .spawn()
        .unwrap();
    let start = Instant::now();
    while UnixStream::connect(dir.join("gw.sock")).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the daemon did not start"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    child
}

fn say(dir: &Path, line: &str) -> String {
    let mut stream = UnixStream::connect(dir.join("gw.sock")).unwrap();
    stream.write_all(line.as_bytes()).unwrap();
    let mut answer = String::new();
    BufReader::new(stream).read_line(&mut answer).unwrap();
    answer
}

/// `systemd-socket-activate` to run the daemon on `dir/gw.sock` with `--idle-timeout 1`, private
/// directories and an engine that does not exist; `pass` names more variables to hand through.
fn activated(dir: &Path, pass: &[&str]) -> Command {
    let mut command = Command::new("systemd-socket-activate");
    command.arg("--listen").arg(dir.join("gw.sock"));
    for name in ["XDG_CONFIG_HOME", "XDG_STATE_HOME", "DOCKER_HOST"]
        .iter()
        .chain(pass)
    {
        command.args(["-E", name]);
    }
    command
        .arg(env!("CARGO_BIN_EXE_mcp-gatewayd"))
        .args(["--idle-timeout", "1"])
        .env("XDG_CONFIG_HOME", dir.join("config"))
        .env("XDG_STATE_HOME", dir.join("state"))
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .stderr(Stdio::null());
    command
}

/// Waits until the activator listens on `dir/gw.sock`.
fn wait_for_socket(dir: &Path) {
    let start = Instant::now();
    while !dir.join("gw.sock").exists() {
        assert!(start.elapsed() < Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn terminate(mut child: Child) -> std::process::ExitStatus {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    child.wait().unwrap()
}

#[test]
fn binds_a_private_socket_answers_hellos_and_removes_it_at_exit() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = start(dir.path());
    let mode = std::fs::metadata(dir.path().join("gw.sock"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0, "socket mode {mode:o} lets others in");

    let accepted = say(dir.path(), HELLO);
    assert!(
        accepted.starts_with("{\"type\":\"hello\",\"proto\":1,"),
        "{accepted}"
    );
    let wrong_version = say(
        dir.path(),
        "{\"type\":\"hello\",\"proto\":99,\"role\":\"control\",\"client\":\"test\"}\n",
    );
    assert!(
        wrong_version.contains("\"kind\":\"unsupported_protocol\""),
        "{wrong_version}"
    );
    let garbage = say(dir.path(), "hello?\n");
    assert!(garbage.contains("\"kind\":\"bad_request\""), "{garbage}");

    let second = Command::new(env!("CARGO_BIN_EXE_mcp-gatewayd"))
        .arg("--socket")
        .arg(dir.path().join("gw.sock"))
        .output()
        .unwrap();
    assert!(!second.status.success());
    assert!(String::from_utf8_lossy(&second.stderr).contains("another daemon already listens"));

    assert!(terminate(daemon).success());
    assert!(
        !dir.path().join("gw.sock").exists(),
        "a socket the daemon bound is removed at exit"
    );
}

#[test]
fn a_stale_socket_file_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    drop(std::os::unix::net::UnixListener::bind(dir.path().join("gw.sock")).unwrap());
    assert!(dir.path().join("gw.sock").exists());
    let daemon = start(dir.path());
    assert!(terminate(daemon).success());
}

/// Under `systemd-socket-activate` (the socket passed as fd 3, as systemd does) the daemon tells
/// its manager READY, pings the watchdog, and after the idle time says STOPPING and exits 0.
#[test]
fn socket_activated_daemon_notifies_pings_and_exits_when_idle() {
    let dir = tempfile::tempdir().unwrap();
    let notify_path = dir.path().join("notify.sock");
    let notify = std::os::unix::net::UnixDatagram::bind(&notify_path).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut activator = activated(dir.path(), &["NOTIFY_SOCKET", "WATCHDOG_USEC"])
        .env("NOTIFY_SOCKET", &notify_path)
        .env("WATCHDOG_USEC", "200000")
        .spawn()
        .unwrap();
    wait_for_socket(dir.path());
    // The first connection makes the activator start the daemon.
    let answer = say(dir.path(), HELLO);
    assert!(answer.contains("\"type\":\"hello\""), "{answer}");

    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !seen.iter().any(|m: &String| m.contains("STOPPING=1")) {
        let n = notify.recv(&mut buf).expect("the daemon stopped notifying");
        seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    let ready = seen
        .iter()
        .position(|m| m.contains("READY=1"))
        .expect("READY=1");
    assert!(
        seen[ready].contains("STATUS=accepting connections"),
        "{seen:?}"
    );
    assert!(
        seen.iter().any(|m| m.trim_end() == "WATCHDOG=1"),
        "watchdog pings at half of 200 ms: {seen:?}"
    );
    assert!(
        seen.last().unwrap().contains("STATUS=idle, exiting"),
        "{seen:?}"
    );
    let status = activator.wait().unwrap();
    assert!(
        status.success(),
        "idle exit is a clean exit, so Restart=on-failure stays quiet: {status}"
    );
    assert!(
        dir.path().join("gw.sock").exists(),
        "the activated socket belongs to the activator"
    );
}
