//! mcp-launcher run as the daemon runs it, on the host: its program's stdio is the daemon's
//! socket when that answers, else the launcher's own stdio after one empty line.

use std::io::{Read, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::process::{Command, Output, Stdio};

const LAUNCHER: &str = env!("CARGO_BIN_EXE_mcp-launcher");

/// Runs the launcher with `args`, `input` on its stdin, and waits for it.
fn launch(args: &[&str], input: &[u8]) -> Output {
    let mut child = Command::new(LAUNCHER)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the launcher starts");
    match child.stdin.take().unwrap().write_all(input) {
        Ok(()) => {}
        // Once the program's stdin is the socket, nothing reads the launcher's own.
        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => {}
        Err(err) => panic!("cannot write to the launcher: {err}"),
    }
    child.wait_with_output().unwrap()
}

#[test]
fn the_program_talks_over_the_socket_when_it_answers() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("stdio.sock");
    let listener = UnixListener::bind(&socket).unwrap();
    let daemon = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        stream.write_all(b"over the socket\n").unwrap();
        stream.shutdown(Shutdown::Write).unwrap();
        let mut echoed = String::new();
        stream.read_to_string(&mut echoed).unwrap();
        echoed
    });
    let output = launch(
        &[socket.to_str().unwrap(), "cat"],
        b"on the launcher's own stdin\n",
    );
    assert!(output.status.success(), "{output:?}");
    assert_eq!(daemon.join().unwrap(), "over the socket\n");
    assert!(output.stdout.is_empty(), "{output:?}");
    assert!(output.stderr.is_empty(), "{output:?}");
}

#[test]
fn without_the_socket_the_program_keeps_the_launchers_stdio_after_an_empty_line() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("absent.sock");
    let output = launch(&[socket.to_str().unwrap(), "cat"], b"on stdin\n");
    assert!(output.status.success(), "{output:?}");
    assert_eq!(String::from_utf8_lossy(&output.stdout), "\non stdin\n");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("cannot connect to {}", socket.display()))
            && stderr.contains("attach stream"),
        "{stderr}"
    );
}

#[test]
fn a_program_that_cannot_run_is_reported_with_status_127() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("stdio.sock");
    let _listener = UnixListener::bind(&socket).unwrap();
    let missing = Path::new("/nonexistent/server");
    let output = launch(&[socket.to_str().unwrap(), missing.to_str().unwrap()], b"");
    assert_eq!(output.status.code(), Some(127), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("cannot run /nonexistent/server"),
        "{stderr}"
    );
}

#[test]
fn without_a_program_it_prints_its_usage() {
    let output = launch(&["/run/stdio.sock"], b"");
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stderr).starts_with("usage: mcp-launcher"));
}
