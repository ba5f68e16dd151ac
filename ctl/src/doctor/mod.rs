//! `mcpctl doctor`: checks the setup and suggests a fix for each problem. What needs no daemon is
//! checked in `local` (runtime directory, socket file, engine access, units, configuration files
//! through `mcp-gatewayd --check-config`, clients); the daemon adds its own view (the engine it
//! reaches, files against what is in force, images of the active profile, secrets). A daemon
//! that is not running is one failed check, and the local checks still run.

mod local;

use std::path::{Path, PathBuf};

use mcp_gateway_proto::{Check, CheckStatus, Request, Response};

use crate::client::Client;
use local::{
    START_DAEMON, client_checks, local_configuration, local_engine, runtime_dir, socket_file,
    units_check,
};

pub fn run(socket: Option<PathBuf>, json: bool) -> anyhow::Result<()> {
    let mut checks = vec![runtime_dir()];
    let socket = match socket {
        Some(path) => Ok(path),
        None => mcp_gateway_proto::default_socket_path(),
    };
    match &socket {
        Ok(path) => checks.push(socket_file(path)),
        Err(reason) => checks.push(Check::fail(
            "socket",
            reason.clone(),
            "export XDG_RUNTIME_DIR",
        )),
    }
    let daemon = socket
        .map_err(anyhow::Error::msg)
        .and_then(|path| Ok((Client::connect(&path)?, path)));
    match daemon {
        Ok((mut client, path)) => checks.extend(with_daemon(&mut client, &path)),
        Err(err) => {
            checks.push(Check::fail("daemon", format!("{err:#}"), START_DAEMON));
            checks.push(local_engine());
            checks.push(local_configuration());
            checks.push(Check::warn(
                "images and secrets",
                "not checked: they need the daemon".into(),
                "start the daemon, then run mcpctl doctor again",
            ));
        }
    }
    checks.push(units_check());
    checks.extend(client_checks());
    print(&checks, json)?;
    let failed = checks
        .iter()
        .filter(|check| check.status == CheckStatus::Fail)
        .count();
    if failed > 0 {
        anyhow::bail!("{failed} checks failed");
    }
    Ok(())
}

fn print(checks: &[Check], json: bool) -> anyhow::Result<()> {
    if json {
        let ok = checks.iter().all(|check| check.status != CheckStatus::Fail);
        let value = serde_json::json!({ "ok": ok, "checks": checks });
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    for check in checks {
        let status = match check.status {
            CheckStatus::Ok => "ok",
            CheckStatus::Warn => "warn",
            CheckStatus::Fail => "fail",
            _ => "?",
        };
        let fix = check
            .fix
            .as_ref()
            .map(|fix| format!("\n       fix: {fix}"))
            .unwrap_or_default();
        println!("{status:<5}  {}: {}{fix}", check.name, check.message);
    }
    Ok(())
}

/// The daemon answers: its own checks, and the local engine diagnosis when it cannot reach the
/// engine, since the reason (a group, a socket) is usually visible from here.
fn with_daemon(client: &mut Client, path: &Path) -> Vec<Check> {
    let mut checks = Vec::new();
    match client.request(&Request::Status) {
        Ok(Response::Status(status)) => checks.push(Check::ok(
            "daemon",
            format!(
                "{} (pid {}) answers on {}",
                status.server,
                status.pid,
                path.display()
            ),
        )),
        Ok(other) => checks.push(Check::fail(
            "daemon",
            format!("answered status with {other:?}"),
            "restart it: systemctl --user restart mcp-gateway.service",
        )),
        Err(err) => checks.push(Check::fail("daemon", format!("{err:#}"), START_DAEMON)),
    }
    match client.request(&Request::Doctor) {
        Ok(Response::Checks { checks: theirs }) => {
            for check in theirs {
                if check.name == "engine" && check.status == CheckStatus::Fail {
                    checks.push(daemon_engine_failed(check));
                } else {
                    checks.push(check);
                }
            }
        }
        Ok(other) => checks.push(Check::warn(
            "daemon checks",
            format!("unexpected answer {other:?}"),
            "update mcp-gatewayd to mcpctl's version",
        )),
        Err(err) => checks.push(Check::warn(
            "daemon checks",
            format!("not made: {err:#}"),
            "update mcp-gatewayd to mcpctl's version and restart it",
        )),
    }
    checks
}

fn daemon_engine_failed(mut check: Check) -> Check {
    let local = local_engine();
    if local.status == CheckStatus::Ok {
        check.fix = Some(format!(
            "mcpctl reaches the engine ({}) but mcp-gatewayd does not: its environment differs \
             (DOCKER_HOST, or the groups it started with: after joining the docker group run \
             systemctl --user restart mcp-gateway.service)",
            local.message
        ));
    } else if local.fix.is_some() {
        check.message = format!("{}; here: {}", check.message, local.message);
        check.fix = local.fix;
    }
    check
}
