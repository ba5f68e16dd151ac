//! The checks `mcpctl doctor` makes in the user's own environment, without the daemon: the
//! runtime directory, the socket file, the engine socket, the configuration files (through
//! `mcp-gatewayd --check-config`), the systemd units and the connected clients.

use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use mcp_gateway_proto::Check;

use crate::clients;
use crate::units;

pub const START_DAEMON: &str = "systemctl --user enable --now mcp-gateway.socket (without a \
                                user manager: mcp-gatewayd --socket PATH)";

/// `XDG_RUNTIME_DIR`: set, a directory, this user's, private.
pub fn runtime_dir() -> Check {
    let uid = nix::unistd::getuid().as_raw();
    let Some(dir) = std::env::var_os("XDG_RUNTIME_DIR").filter(|dir| !dir.is_empty()) else {
        return Check::warn(
            "runtime directory",
            format!("XDG_RUNTIME_DIR is not set; mcpctl and mcp-shim fall back to /run/user/{uid}"),
            "log in through a session that sets it (pam_systemd), or export \
             XDG_RUNTIME_DIR=/run/user/$(id -u)",
        );
    };
    let dir = PathBuf::from(dir);
    let fix = "log in through a session that sets it (pam_systemd), or point it at a directory \
               of yours with mode 0700";
    match std::fs::metadata(&dir) {
        Err(err) => Check::fail(
            "runtime directory",
            format!("XDG_RUNTIME_DIR={}: {err}", dir.display()),
            fix,
        ),
        Ok(meta) if !meta.is_dir() => Check::fail(
            "runtime directory",
            format!("XDG_RUNTIME_DIR={} is not a directory", dir.display()),
            fix,
        ),
        Ok(meta) if meta.uid() != uid => Check::fail(
            "runtime directory",
            format!(
                "XDG_RUNTIME_DIR={} belongs to uid {}, not to you ({uid})",
                dir.display(),
                meta.uid()
            ),
            fix,
        ),
        // The socket's own mode keeps others out; a shared directory is still not what the
        // specification asks for.
        Ok(meta) if meta.permissions().mode() & 0o077 != 0 => Check::warn(
            "runtime directory",
            format!(
                "XDG_RUNTIME_DIR={} has mode {:04o}; others can reach what is in it",
                dir.display(),
                meta.permissions().mode() & 0o7777
            ),
            &format!("chmod 700 {}", dir.display()),
        ),
        Ok(_) => Check::ok(
            "runtime directory",
            format!("XDG_RUNTIME_DIR={} is yours and private", dir.display()),
        ),
    }
}

/// The socket file: present, a socket, this user's, and writable by nobody else (writing is
/// what connecting takes).
pub fn socket_file(path: &Path) -> Check {
    let uid = nix::unistd::getuid().as_raw();
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            return Check::fail(
                "socket",
                format!("no socket at {}", path.display()),
                START_DAEMON,
            );
        }
        Err(err) => {
            return Check::fail("socket", format!("{}: {err}", path.display()), START_DAEMON);
        }
    };
    if !meta.file_type().is_socket() {
        return Check::fail(
            "socket",
            format!("{} is not a socket", path.display()),
            &format!("remove it (rm {}), then {START_DAEMON}", path.display()),
        );
    }
    let mode = meta.permissions().mode() & 0o7777;
    if meta.uid() != uid {
        return Check::fail(
            "socket",
            format!(
                "{} belongs to uid {}, not to you ({uid})",
                path.display(),
                meta.uid()
            ),
            "use your own socket: unset MCP_GATEWAY_SOCKET or pass --socket PATH",
        );
    }
    if mode & 0o022 != 0 {
        return Check::fail(
            "socket",
            format!(
                "{} has mode {mode:04o}: other users may connect, and through the daemon \
                 reach the container engine",
                path.display()
            ),
            &format!(
                "chmod 600 {}; mcp-gateway.socket sets SocketMode=0600",
                path.display()
            ),
        );
    }
    Check::ok(
        "socket",
        format!("{} is yours, mode {mode:04o}", path.display()),
    )
}

/// The engine as this user reaches it: `DOCKER_HOST` when it is a Unix socket, else Docker's
/// socket, then Podman's user socket (the daemon's own order).
pub fn local_engine() -> Check {
    let host = std::env::var("DOCKER_HOST")
        .ok()
        .filter(|host| !host.is_empty());
    let candidates = match &host {
        Some(host) => match host.strip_prefix("unix://") {
            Some(path) => vec![PathBuf::from(path)],
            None => {
                return Check::warn(
                    "engine",
                    format!("DOCKER_HOST={host} is not checked without the daemon"),
                    "start the daemon, then run mcpctl doctor again",
                );
            }
        },
        None => {
            let mut candidates = vec![PathBuf::from("/var/run/docker.sock")];
            if let Some(dir) = std::env::var_os("XDG_RUNTIME_DIR").filter(|dir| !dir.is_empty()) {
                candidates.push(PathBuf::from(dir).join("podman/podman.sock"));
            }
            candidates
        }
    };
    let mut absent = Vec::new();
    for path in &candidates {
        match ping(path) {
            Ok(()) => {
                return Check::ok("engine", format!("an engine answers on {}", path.display()));
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                absent.push(path.display().to_string());
            }
            Err(err) if err.kind() == std::io::ErrorKind::PermissionDenied => {
                return Check::fail(
                    "engine",
                    format!("{}: permission denied", path.display()),
                    &docker_group_fix(),
                );
            }
            Err(err) => {
                return Check::fail(
                    "engine",
                    format!("no engine answers on {}: {err}", path.display()),
                    "start it: sudo systemctl start docker (Podman: systemctl --user enable \
                     --now podman.socket)",
                );
            }
        }
    }
    Check::fail(
        "engine",
        format!("no engine socket: {} absent", absent.join(", ")),
        "install and start an engine: sudo apt-get install docker.io, or Podman with \
         systemctl --user enable --now podman.socket; DOCKER_HOST names another",
    )
}

/// Docker's `GET /_ping` over the socket.
fn ping(path: &Path) -> std::io::Result<()> {
    let mut stream = UnixStream::connect(path)?;
    stream.set_read_timeout(Some(Duration::from_secs(3)))?;
    stream.set_write_timeout(Some(Duration::from_secs(3)))?;
    stream.write_all(b"GET /_ping HTTP/1.0\r\nHost: engine\r\n\r\n")?;
    let mut answer = Vec::new();
    stream.take(4096).read_to_end(&mut answer)?;
    let answer = String::from_utf8_lossy(&answer);
    let status = answer.lines().next().unwrap_or("");
    if status.starts_with("HTTP/1.") && status.split(' ').nth(1) == Some("200") {
        Ok(())
    } else {
        Err(std::io::Error::other(format!(
            "it answered {status:?} to a ping"
        )))
    }
}

/// Joining the `docker` group, or, for a member whose session predates joining, logging in again.
fn docker_group_fix() -> String {
    let group = nix::unistd::Group::from_name("docker").ok().flatten();
    let user = nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten();
    match (group, user) {
        (Some(group), Some(user)) if group.mem.contains(&user.name) => {
            let current = nix::unistd::getgroups().unwrap_or_default();
            if current.contains(&group.gid) {
                "check the socket's group and mode (ls -l /var/run/docker.sock)".into()
            } else {
                "you are in the docker group, but this session started before: log in again \
                 (or newgrp docker), then systemctl --user restart mcp-gateway.service"
                    .into()
            }
        }
        _ => "sudo usermod -aG docker $USER, then log in again (or use Podman's user socket: \
              systemctl --user enable --now podman.socket)"
            .into(),
    }
}

/// Without a daemon, the files are read by `mcp-gatewayd --check-config`: one parser for both.
pub fn local_configuration() -> Check {
    let exe = std::env::current_exe().unwrap_or_default();
    let Some(daemon) = clients::find_program(&exe, "mcp-gatewayd") else {
        return Check::warn(
            "configuration",
            "not checked: mcp-gatewayd is neither next to mcpctl nor on PATH".into(),
            "install mcp-gatewayd, or start the daemon and run mcpctl doctor again",
        );
    };
    match Command::new(&daemon).arg("--check-config").output() {
        Ok(output) if output.status.success() => {
            Check::ok("configuration", "the files read cleanly".into())
        }
        Ok(output) => {
            let stdout = String::from_utf8_lossy(&output.stdout);
            let problems: Vec<&str> = stdout.lines().collect();
            let message = if problems.is_empty() {
                String::from_utf8_lossy(&output.stderr).trim().to_owned()
            } else {
                problems.join("; ")
            };
            Check::fail(
                "configuration",
                message,
                "correct the file at that line; the daemon reads it when it starts",
            )
        }
        Err(err) => Check::warn(
            "configuration",
            format!("not checked: cannot run {}: {err}", daemon.display()),
            "start the daemon, then run mcpctl doctor again",
        ),
    }
}

pub fn units_check() -> Check {
    let units = match units::query() {
        Ok(units) => units,
        Err(reason) => {
            return Check::warn(
                "units",
                format!("not checked: {reason}"),
                "none needed without a systemd user manager; the daemon then runs by hand \
                 (mcp-gatewayd --socket PATH)",
            );
        }
    };
    let summary = units
        .iter()
        .map(|unit| format!("{} {}", unit.name, unit.summary()))
        .collect::<Vec<_>>()
        .join("; ");
    let socket = units.iter().find(|unit| unit.name == units::UNITS[0]);
    let service = units.iter().find(|unit| unit.name == units::UNITS[1]);
    match (socket, service) {
        (Some(socket), Some(service)) if socket.installed() && service.installed() => {
            if socket.active == "failed" || service.active == "failed" {
                Check::fail(
                    "units",
                    summary,
                    "journalctl --user -u mcp-gateway.service, then systemctl --user restart \
                     mcp-gateway.socket",
                )
            } else if socket.file_state != "enabled" || socket.active != "active" {
                Check::warn(
                    "units",
                    summary,
                    "systemctl --user enable --now mcp-gateway.socket",
                )
            } else {
                Check::ok("units", summary)
            }
        }
        _ => Check::warn(
            "units",
            summary,
            "install the package (or bash packaging/dev-setup.sh), then systemctl --user \
             daemon-reload",
        ),
    }
}

/// Connected clients whose `mcp-shim` is gone (moved, uninstalled): they fail to start it.
pub fn client_checks() -> Vec<Check> {
    let env = match clients::Env::from_process() {
        Ok(env) => env,
        Err(err) => {
            return vec![Check::warn(
                "clients",
                format!("not checked: {err}"),
                "set HOME",
            )];
        }
    };
    let mut connected = 0;
    let mut checks = Vec::new();
    for status in clients::all().map(|client| clients::status(client, &env)) {
        let id = status.client.id();
        if let Some(err) = &status.error {
            checks.push(Check::warn(
                &format!("client {id}"),
                err.to_string(),
                "correct the file, then mcpctl client connect again",
            ));
            continue;
        }
        let Some(launch) = &status.connected else {
            continue;
        };
        connected += 1;
        if !Path::new(&launch.command).exists() {
            checks.push(Check::fail(
                &format!("client {id}"),
                format!(
                    "{} launches {}, which does not exist",
                    status.path.display(),
                    launch.command
                ),
                &format!("mcpctl client connect {id}"),
            ));
        }
    }
    if checks.is_empty() {
        let message = match connected {
            0 => "none connected (mcpctl client connect CLIENT)".to_owned(),
            n => format!("{n} connected, each launching an mcp-shim that exists"),
        };
        checks.push(Check::ok("clients", message));
    }
    checks
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcp_gateway_proto::CheckStatus;

    #[test]
    fn the_socket_must_be_a_socket_nobody_else_may_write_to() {
        let dir = tempfile::tempdir().unwrap();
        let absent = socket_file(&dir.path().join("absent.sock"));
        assert_eq!(absent.status, CheckStatus::Fail);
        assert!(
            absent
                .fix
                .unwrap()
                .contains("systemctl --user enable --now")
        );

        let plain = dir.path().join("plain");
        std::fs::write(&plain, "").unwrap();
        let not_socket = socket_file(&plain);
        assert_eq!(not_socket.status, CheckStatus::Fail);
        assert!(
            not_socket.message.contains("not a socket"),
            "{not_socket:?}"
        );

        let path = dir.path().join("gw.sock");
        let _listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(socket_file(&path).status, CheckStatus::Ok);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
        let open = socket_file(&path);
        assert_eq!(open.status, CheckStatus::Fail);
        assert!(
            open.message.contains("0666") && open.fix.unwrap().contains("chmod 600"),
            "{}",
            open.message
        );
    }
}
