//! `mcpctl status`: the daemon's answer (engine, socket, active profile, servers, image pulls,
//! files not in force) with the systemd units as `systemctl --user` sees them beside it.

use mcp_gateway_proto::{Request, Response, StatusInfo};
use serde_json::Value;

use crate::client::Client;
use crate::units;

pub fn run(client: &mut Client, json: bool) -> anyhow::Result<()> {
    let response = client.request(&Request::Status)?;
    let Response::Status(status) = &response else {
        anyhow::bail!("mcp-gatewayd answered status with {response:?}");
    };
    let units = units::query();
    if json {
        // The daemon's object as it is, with the units added: older scripts keep working.
        let mut value = serde_json::to_value(&response)?;
        value["units"] = match &units {
            Ok(units) => Value::Array(units.iter().map(units::Unit::to_json).collect()),
            Err(reason) => serde_json::json!({ "unavailable": reason }),
        };
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    print(status, &units);
    Ok(())
}

fn print(status: &StatusInfo, units: &Result<Vec<units::Unit>, String>) {
    println!("daemon:          {} (pid {})", status.server, status.pid);
    println!("socket:          {}", status.socket);
    let state = if status.engine_reachable {
        ""
    } else {
        "unreachable: "
    };
    println!("engine:          {state}{}", status.engine);
    let units = match units {
        Ok(units) => units
            .iter()
            .map(|unit| format!("{} {}", unit.name, unit.summary()))
            .collect::<Vec<_>>()
            .join("; "),
        Err(reason) => format!("not known ({reason})"),
    };
    println!("units:           {units}");
    println!("active profile:  {}", status.active_profile);
    let servers = &status.servers;
    println!(
        "servers:         {} in the catalog, {} in the active profile",
        servers.catalog, servers.active_profile
    );
    println!(
        "containers:      {} running, {} starting, {} in backoff, {} stopped",
        servers.running, servers.starting, servers.backoff, servers.stopped
    );
    for pull in &status.pulls {
        println!("pull:            {}", crate::commands::pull_summary(pull));
    }
    println!("sessions:        {}", status.sessions);
    if status.config_problems.is_empty() {
        println!("configuration:   the files are in force");
    } else {
        println!("configuration:   not in force:");
        for problem in &status.config_problems {
            println!("  {problem}");
        }
    }
}
