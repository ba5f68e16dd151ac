//! `mcp-shim`: what an AI client launches as its MCP server. It connects to `mcp-gatewayd` and
//! says hello (role `mcp`, the profile, the client's name). When its stdin and stdout are pipes or
//! stream sockets, as AI clients make them, it then hands both to the daemon, which serves the
//! session on them directly, and waits for the daemon to end it; otherwise (or with `--relay`) it
//! copies bytes both ways between its stdio and the socket until either side ends.
//!
//! It stays tiny and fast to start: no async runtime, no MCP parsing, and nothing written to stdout
//! that did not come from the daemon. Failures are one line on stderr and a distinct exit status.

use std::io::{self, BufRead, Write};
use std::net::Shutdown;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use mcp_gateway_proto::{
    ConnectError, Connection, Hello, HelloReply, MAX_CONTROL_LINE, Role, decode, send_stdio,
    stdio_kind,
};

/// Exit statuses, from sysexits.h so that they mean something to scripts.
const EXIT_USAGE: u8 = 64;
const EXIT_UNAVAILABLE: u8 = 69;
const EXIT_PROTOCOL: u8 = 76;

/// Long enough for a socket-activated daemon to start; short enough that a wedged one is noticed.
const HELLO_TIMEOUT: Duration = Duration::from_secs(30);

const USAGE: &str = "\
usage: mcp-shim [--profile PROFILE] [--client NAME] [--socket PATH] [--relay]

Connects an MCP client (on stdin/stdout) to mcp-gatewayd.

  --profile PROFILE  serve this profile instead of the active one
  --client NAME      the AI client's name, for logs and the audit trail
  --socket PATH      the daemon's socket [env MCP_GATEWAY_SOCKET,
                     default $XDG_RUNTIME_DIR/mcp-gateway.sock]
  --relay            copy the session's bytes through the shim instead of
                     handing stdin and stdout to the daemon
  -h, --help         print this help
  -V, --version      print the version
";

#[derive(Debug)]
struct Args {
    profile: Option<String>,
    client: Option<String>,
    socket: Option<PathBuf>,
    relay: bool,
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(Some(args)) => args,
        Ok(None) => return ExitCode::SUCCESS,
        Err(message) => return fail(EXIT_USAGE, &message),
    };
    let socket = match args
        .socket
        .clone()
        .map_or_else(mcp_gateway_proto::default_socket_path, Ok)
    {
        Ok(path) => path,
        Err(message) => return fail(EXIT_USAGE, &message),
    };
    let mut hello = Hello::new(Role::Mcp, format!("mcp-shim/{}", env!("CARGO_PKG_VERSION")));
    hello.profile = args.profile;
    hello.client_name = args.client;
    hello.hand_over_stdio = !args.relay
        && stdio_kind(io::stdin().as_fd()).is_some()
        && stdio_kind(io::stdout().as_fd()).is_some();
    match mcp_gateway_proto::connect(&socket, &hello, HELLO_TIMEOUT) {
        Ok(connection) if connection.take_stdio => hand_over(connection),
        Ok(connection) => pump(connection),
        Err(err @ ConnectError::Unreachable { .. }) => fail(EXIT_UNAVAILABLE, &err.to_string()),
        Err(err) => fail(EXIT_PROTOCOL, &err.to_string()),
    }
}

fn fail(status: u8, message: &str) -> ExitCode {
    eprintln!("mcp-shim: {message}");
    ExitCode::from(status)
}

fn parse_args(mut argv: impl Iterator<Item = String>) -> Result<Option<Args>, String> {
    let mut args = Args {
        profile: None,
        client: None,
        socket: None,
        relay: false,
    };
    while let Some(arg) = argv.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => {
                (flag.to_owned(), Some(value.to_owned()))
            }
            _ => (arg.clone(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| argv.next())
                .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))
        };
        match flag.as_str() {
            "--profile" => args.profile = Some(value()?),
            "--client" => args.client = Some(value()?),
            "--socket" => args.socket = Some(PathBuf::from(value()?)),
            "--relay" if inline.is_none() => args.relay = true,
            "-h" | "--help" => {
                print!("{USAGE}");
                return Ok(None);
            }
            "-V" | "--version" => {
                println!("mcp-shim {}", env!("CARGO_PKG_VERSION"));
                return Ok(None);
            }
            _ => return Err(format!("unexpected argument {arg:?}\n{USAGE}")),
        }
    }
    Ok(Some(args))
}

/// Sends stdin and stdout to the daemon, keeps no copy of them (so that the daemon closing stdout
/// is the client's end of the session), and waits for the connection to end. A line from the
/// daemon now is its refusal of the descriptors.
fn hand_over(connection: Connection) -> ExitCode {
    let Connection {
        stream, mut reader, ..
    } = connection;
    if let Err(err) = send_stdio(stream.as_fd(), io::stdin().as_fd(), io::stdout().as_fd()) {
        return fail(
            EXIT_UNAVAILABLE,
            &format!("cannot hand stdin and stdout to mcp-gatewayd: {err}"),
        );
    }
    let released = std::fs::File::options()
        .read(true)
        .write(true)
        .open("/dev/null")
        .and_then(|null| {
            nix::unistd::dup2_stdin(&null)?;
            nix::unistd::dup2_stdout(&null)?;
            Ok(())
        });
    if let Err(err) = released {
        return fail(
            EXIT_UNAVAILABLE,
            &format!("cannot release stdin and stdout: {err}"),
        );
    }
    match decode::<HelloReply>(&mut reader, MAX_CONTROL_LINE) {
        Ok(None) => ExitCode::SUCCESS,
        Ok(Some(HelloReply::Error { message, .. })) => fail(
            EXIT_PROTOCOL,
            &format!("mcp-gatewayd refused stdin and stdout: {message}"),
        ),
        Ok(Some(reply)) => fail(
            EXIT_PROTOCOL,
            &format!("unexpected message from mcp-gatewayd: {reply:?}"),
        ),
        Err(err) => fail(
            EXIT_UNAVAILABLE,
            &format!("connection to mcp-gatewayd failed: {err}"),
        ),
    }
}

/// Copies stdin to the daemon on a second thread, and the daemon's output to stdout here. The
/// daemon closing its side ends the shim, even while stdin stays open.
fn pump(connection: Connection) -> ExitCode {
    let Connection {
        stream: to_daemon,
        reader: mut from_daemon,
        ..
    } = connection;
    std::thread::spawn(move || {
        let mut to_daemon = &to_daemon;
        let _ = io::copy(&mut io::stdin().lock(), &mut to_daemon);
        // End of input: let the daemon finish what is in flight, then it closes its side.
        let _ = to_daemon.shutdown(Shutdown::Write);
    });
    let mut stdout = io::stdout().lock();
    loop {
        let chunk = match from_daemon.fill_buf() {
            Ok([]) => return ExitCode::SUCCESS,
            Ok(chunk) => chunk,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => {
                return fail(
                    EXIT_UNAVAILABLE,
                    &format!("connection to mcp-gatewayd failed: {err}"),
                );
            }
        };
        let len = chunk.len();
        if stdout
            .write_all(chunk)
            .and_then(|()| stdout.flush())
            .is_err()
        {
            // The client stopped reading; nobody is left to serve.
            return ExitCode::SUCCESS;
        }
        from_daemon.consume(len);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Option<Args>, String> {
        parse_args(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn flags_take_separate_or_inline_values() {
        let args = parse(&[
            "--profile",
            "work",
            "--client=claude-code",
            "--socket",
            "/s",
        ])
        .unwrap()
        .unwrap();
        assert_eq!(args.profile.as_deref(), Some("work"));
        assert_eq!(args.client.as_deref(), Some("claude-code"));
        assert_eq!(args.socket, Some(PathBuf::from("/s")));
        assert!(!args.relay);
        assert!(parse(&["--relay"]).unwrap().unwrap().relay);
    }

    #[test]
    fn bad_arguments_are_usage_errors() {
        assert!(parse(&["--profile"]).unwrap_err().contains("needs a value"));
        assert!(
            parse(&["--relay=yes"])
                .unwrap_err()
                .contains("unexpected argument")
        );
        assert!(
            parse(&["stray"])
                .unwrap_err()
                .contains("unexpected argument")
        );
    }
}
