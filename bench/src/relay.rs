//! `mcp-bench-relay`: a process between a client's pipes and a container's attach stream that
//! does nothing but copy, for the benchmark's floor of any gateway that is a process of its own.
//! It parses no JSON and keeps no state: one blocking thread copies stdin to the stream, the main
//! thread copies the stream's stdout frames to stdout. What it adds to the direct path is the
//! price of one more process on the way (two more wake-ups and four more copies per call), which
//! `mcp-gatewayd` pays too before doing any work of its own.
//!
//! Usage: `mcp-bench-relay ENGINE_SOCKET CONTAINER_ID` with the container created (stdin open,
//! no TTY) and not yet started: the relay attaches, then starts it, so no output is missed.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [socket, container] = &args[..] else {
        eprintln!("usage: mcp-bench-relay ENGINE_SOCKET CONTAINER_ID");
        return ExitCode::from(2);
    };
    match relay(socket, container) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("mcp-bench-relay: {err}");
            ExitCode::FAILURE
        }
    }
}

fn relay(socket: &str, container: &str) -> std::io::Result<()> {
    let mut attach = UnixStream::connect(socket)?;
    let path = format!("/containers/{container}/attach?stream=1&stdin=1&stdout=1&stderr=1");
    let mut stream = BufReader::with_capacity(16 * 1024, attach.try_clone()?);
    post(
        &mut attach,
        &mut stream,
        &path,
        "101",
        "Connection: Upgrade\r\nUpgrade: tcp\r\n",
    )?;
    let mut start = UnixStream::connect(socket)?;
    let mut answer = BufReader::new(start.try_clone()?);
    post(
        &mut start,
        &mut answer,
        &format!("/containers/{container}/start"),
        "204",
        "",
    )?;

    let mut input = attach.try_clone()?;
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut std::io::stdin().lock(), &mut input);
        let _ = input.shutdown(std::net::Shutdown::Write);
    });
    let mut stdout = std::io::stdout().lock();
    let mut header = [0u8; 8];
    let mut payload = Vec::new();
    loop {
        match stream.read_exact(&mut header) {
            Err(err) if err.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            other => other?,
        }
        let len = u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize;
        payload.resize(len, 0);
        stream.read_exact(&mut payload)?;
        if header[0] == 1 {
            stdout.write_all(&payload)?;
            stdout.flush()?;
        }
    }
}

/// Sends `POST path` and reads the answer's head, which must have `status`; the connection's
/// reader is left at the first byte after it.
fn post(
    connection: &mut UnixStream,
    reader: &mut BufReader<UnixStream>,
    path: &str,
    status: &str,
    headers: &str,
) -> std::io::Result<()> {
    write!(
        connection,
        "POST {path} HTTP/1.1\r\nHost: localhost\r\n{headers}\r\n"
    )?;
    let mut line = String::new();
    reader.read_line(&mut line)?;
    if line.split_whitespace().nth(1) != Some(status) {
        return Err(std::io::Error::other(format!(
            "POST {path}: the engine answered {}",
            line.trim()
        )));
    }
    while line != "\r\n" {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
    }
    Ok(())
}
