//! `mcpctl client ls|connect|disconnect`: runs the `clients` operations and prints their outcome,
//! as text for people or, with `--json`, as JSON for scripts.

use std::path::Path;

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::cli::ClientCommand;
use crate::clients::{self, Change, Client, Env, Launch};

pub fn run(command: ClientCommand, json: bool) -> anyhow::Result<()> {
    let env = Env::from_process()?;
    match command {
        ClientCommand::Ls => list(&env, json),
        ClientCommand::Connect { client, profile } => {
            if let Some(profile) = &profile
                && (profile.is_empty() || profile.starts_with('-'))
            {
                bail!("--profile {profile:?}: not a profile name");
            }
            let shim = clients::find_shim()?;
            let shim = shim
                .to_str()
                .with_context(|| format!("{}: the path is not UTF-8", shim.display()))?;
            let client = clients::client(client);
            let launch = Launch::shim(shim, client.id(), profile.as_deref());
            let change = clients::connect(&client, &env, &launch)?;
            if json {
                return print_json(&change_json(&client, &change));
            }
            if change.changed {
                println!(
                    "connected {} to mcp-gateway in {}; restart {} to pick it up",
                    client.id(),
                    change.path.display(),
                    client.title
                );
            } else {
                println!(
                    "{} is already connected in {}",
                    client.id(),
                    change.path.display()
                );
            }
            print_backup(&change);
            Ok(())
        }
        ClientCommand::Disconnect { client } => {
            let client = clients::client(client);
            let change = clients::disconnect(&client, &env)?;
            if json {
                return print_json(&change_json(&client, &change));
            }
            if change.changed {
                println!(
                    "disconnected {}: removed mcp-gateway from {}",
                    client.id(),
                    change.path.display()
                );
            } else {
                println!(
                    "{} is not connected in {}",
                    client.id(),
                    change.path.display()
                );
            }
            print_backup(&change);
            Ok(())
        }
    }
}

fn list(env: &Env, json: bool) -> anyhow::Result<()> {
    let statuses: Vec<_> = clients::all().map(|c| clients::status(c, env)).collect();
    if json {
        let rows = statuses
            .iter()
            .map(|s| {
                json!({
                    "client": s.client.id(),
                    "path": s.path.display().to_string(),
                    "exists": s.exists,
                    "connected": s.connected.is_some(),
                    "profile": s.connected.as_ref().and_then(Launch::profile),
                    "command": s.connected.as_ref().map(|l| &l.command),
                    "error": s.error.as_ref().map(ToString::to_string),
                })
            })
            .collect();
        return print_json(&Value::Array(rows));
    }
    println!(
        "{:<16} {:<10} {:<16} CONFIGURATION",
        "CLIENT", "CONNECTED", "PROFILE"
    );
    for status in &statuses {
        let (connected, profile) = match (&status.error, &status.connected) {
            (Some(_), _) => ("error", String::new()),
            (None, Some(launch)) => ("yes", launch.profile().unwrap_or("(active)").to_owned()),
            (None, None) => ("no", String::new()),
        };
        let mut file = match &status.error {
            Some(err) => err.to_string(),
            None if !status.exists => format!("{} (absent)", status.path.display()),
            None => status.path.display().to_string(),
        };
        if let Some(launch) = &status.connected
            && !Path::new(&launch.command).exists()
        {
            file.push_str(&format!(" [{} does not exist]", launch.command));
        }
        println!(
            "{:<16} {connected:<10} {profile:<16} {file}",
            status.client.id()
        );
    }
    Ok(())
}

fn change_json(client: &Client, change: &Change) -> Value {
    json!({
        "client": client.id(),
        "path": change.path.display().to_string(),
        "changed": change.changed,
        "backup": change.backup.as_ref().map(|b| b.display().to_string()),
    })
}

fn print_backup(change: &Change) {
    if let Some(backup) = change.backup.as_ref().filter(|_| change.changed) {
        println!(
            "the file as it was before mcpctl first changed it: {}",
            backup.display()
        );
    }
}

fn print_json(value: &Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}
