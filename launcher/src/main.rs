//! `mcp-launcher SOCKET PROGRAM [ARGS...]`: the entrypoint mcp-gatewayd gives a server's
//! container. It connects to the daemon's Unix socket, bind-mounted at `SOCKET`, and replaces
//! itself with the server, whose stdin and stdout are then that connection. The server's requests
//! and answers so go straight between the daemon and the server instead of through the engine's
//! attach stream, which copies every line through the engine and its container shim.
//!
//! When it cannot connect (an engine in a virtual machine, where a host socket does not reach, or
//! a security module that forbids it) it writes one empty line to stdout and runs the server on
//! the stdio it was given, the attach stream: the daemon waits for either the connection or that
//! line before it sends anything. Its own messages go to stderr, which the daemon keeps as the
//! server's log.

use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitCode, Stdio};

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let (Some(socket), Some(program)) = (args.next(), args.next()) else {
        eprintln!("usage: mcp-launcher SOCKET PROGRAM [ARGS...]");
        return ExitCode::from(2);
    };
    let mut command = Command::new(&program);
    command.args(args);
    match UnixStream::connect(&socket).and_then(|stream| Ok((stream.try_clone()?, stream))) {
        Ok((input, output)) => {
            command
                .stdin(Stdio::from(OwnedFd::from(input)))
                .stdout(Stdio::from(OwnedFd::from(output)));
        }
        Err(err) => {
            eprintln!(
                "mcp-launcher: cannot connect to {}: {err}; the server's stdio stays on the engine's attach stream",
                socket.display()
            );
            if let Err(err) = std::io::stdout().write_all(b"\n") {
                eprintln!("mcp-launcher: cannot write to stdout: {err}");
                return ExitCode::from(1);
            }
        }
    }
    // Only returns when the program could not be run.
    let err = command.exec();
    eprintln!("mcp-launcher: cannot run {}: {err}", program.display());
    ExitCode::from(127)
}
