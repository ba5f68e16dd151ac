//! The checks of `mcpctl doctor` that need the daemon's view: the engine as the daemon reaches it
//! (its environment may differ from the shell's), the configuration files against what is in
//! force, the images of the active profile's servers and the secrets of every profile's. Also
//! the server counts `status` shows.

use std::collections::BTreeSet;

use mcp_gateway_proto::{Check, Response, ServerCounts};

use crate::config::{SecretError, ServerDef};
use crate::gateway::Gateway;
use crate::pool::SlotPhase;

pub async fn checks(gateway: &Gateway) -> Response {
    let mut checks = vec![configuration(gateway)];
    let config = gateway.config.get();
    let servers_of = |profiles: &[String]| -> Vec<(String, ServerDef)> {
        let names: BTreeSet<String> = profiles
            .iter()
            .filter_map(|profile| config.profile(profile))
            .flat_map(|profile| profile.servers)
            .collect();
        names
            .into_iter()
            .filter_map(|name| {
                let def = config.catalog.servers.get(&name)?.clone();
                Some((name, def))
            })
            .collect()
    };
    // Images are checked for what clients get by default; a missing secret stops a server in
    // any profile a client may name.
    let mut active = servers_of(std::slice::from_ref(&config.active));
    // Only containers have images.
    active.retain(|(_, def)| def.kind.is_container());
    let in_profiles = servers_of(&config.profile_names());
    let engine = gateway.pool.engine_status().await;
    checks.push(match &engine {
        Ok(description) => Check::ok("engine", format!("mcp-gatewayd reaches {description}")),
        Err(reason) => Check::fail(
            "engine",
            format!("mcp-gatewayd cannot reach the container engine: {reason}"),
            "start the engine (sudo systemctl start docker), or give mcp-gatewayd access to it: \
             the docker group (sudo usermod -aG docker $USER, then log in again) or Podman's \
             socket (systemctl --user enable --now podman.socket); DOCKER_HOST names another",
        ),
    });
    // Only containers have images; a process or remote server has none to check.
    let containers: Vec<_> = active
        .iter()
        .filter(|(_, def)| def.kind.is_container())
        .cloned()
        .collect();
    checks.extend(images(gateway, &config.active, &containers, engine.is_ok()).await);
    checks.extend(secrets(gateway, &in_profiles));
    Response::Checks { checks }
}

/// The server counts of `status`.
pub fn server_counts(gateway: &Gateway) -> ServerCounts {
    let config = gateway.config.get();
    let mut counts = ServerCounts {
        catalog: config.catalog.servers.len() as u64,
        active_profile: config
            .profile(&config.active)
            .map_or(0, |profile| profile.servers.len() as u64),
        ..ServerCounts::default()
    };
    for status in gateway.pool.statuses() {
        *match status.state {
            SlotPhase::Starting => &mut counts.starting,
            SlotPhase::Running => &mut counts.running,
            SlotPhase::Backoff => &mut counts.backoff,
            SlotPhase::Stopped => &mut counts.stopped,
        } += 1;
    }
    counts
}

fn configuration(gateway: &Gateway) -> Check {
    let problems = gateway.config.problems();
    if problems.is_empty() {
        return Check::ok(
            "configuration",
            "the files are the configuration in force".into(),
        );
    }
    let message = problems
        .iter()
        .map(|problem| problem.message.as_str())
        .collect::<Vec<_>>()
        .join("; ");
    if problems.iter().any(|problem| problem.broken) {
        Check::fail(
            "configuration",
            format!("{message} (the last good configuration stays in force)"),
            "correct the file at that line, then run mcpctl reload",
        )
    } else {
        Check::warn("configuration", message, "mcpctl reload")
    }
}

async fn images(
    gateway: &Gateway,
    profile: &str,
    servers: &[(String, ServerDef)],
    engine_reachable: bool,
) -> Vec<Check> {
    if servers.is_empty() {
        return Vec::new();
    }
    let engine = match gateway.pool.engine().await {
        Ok(engine) if engine_reachable => engine,
        _ => {
            return vec![Check::warn(
                "images",
                "not checked: the engine is unreachable".into(),
                "fix the engine check first",
            )];
        }
    };
    let mut checks = Vec::new();
    for (name, def) in servers {
        match engine.ready_image(&def.image).await {
            Ok(Some(_)) => {}
            // A missing image is pulled on first need, so it is worth knowing, not broken.
            Ok(None) => checks.push(Check::warn(
                &format!("image {name}"),
                format!(
                    "image {} of server {name} is not present locally; it is pulled on first need",
                    def.image
                ),
                &format!("mcpctl server pull {name}"),
            )),
            Err(err) => checks.push(Check::fail(
                &format!("image {name}"),
                format!("cannot look up image {} of server {name}: {err}", def.image),
                "check the engine's state (docker info)",
            )),
        }
    }
    if checks.is_empty() {
        checks.push(Check::ok(
            "images",
            format!(
                "the {} servers of profile {profile} have their images",
                servers.len()
            ),
        ));
    }
    checks
}

fn secrets(gateway: &Gateway, servers: &[(String, ServerDef)]) -> Vec<Check> {
    let mut checks = Vec::new();
    let mut declared = 0;
    for (server, def) in servers {
        for name in &def.secrets {
            declared += 1;
            // Only whether a value resolves: the value itself goes nowhere.
            match gateway.config.secrets.resolve(std::slice::from_ref(name)) {
                Ok(_) => {}
                Err(SecretError::Missing(_)) => checks.push(Check::fail(
                    &format!("secret {name}"),
                    format!("server {server} needs secret {name}, which is not set"),
                    &format!("mcpctl secret set {name}"),
                )),
                Err(err) => checks.push(Check::fail(
                    &format!("secret {name}"),
                    format!("cannot read secret {name} of server {server}: {err}"),
                    "correct the secret store, then run mcpctl secret ls",
                )),
            }
        }
    }
    if checks.is_empty() && declared > 0 {
        checks.push(Check::ok(
            "secrets",
            format!("the {declared} secrets the profiles' servers declare are set"),
        ));
    }
    checks
}
