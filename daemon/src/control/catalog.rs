//! `catalog ls|show`: the user's catalog merged over the built-in one, and `server add NAME`
//! without an image, which copies the built-in entry.

use mcp_gateway_proto::{CatalogEntry, ErrorKind, Response};

use super::{error, run_info};
use crate::config::{ConfigError, ServerDef, builtin};
use crate::gateway::Gateway;

/// Every server of either catalog, by name; the user's entry wins where both have one.
pub fn list(gateway: &Gateway) -> Response {
    let config = gateway.config.get();
    let builtin = builtin();
    let mut names: Vec<&String> = config
        .catalog
        .servers
        .keys()
        .chain(builtin.servers.keys())
        .collect();
    names.sort();
    names.dedup();
    let entries = names
        .into_iter()
        .filter_map(|name| entry(gateway, name))
        .collect();
    Response::Catalog { entries }
}

pub fn show(gateway: &Gateway, name: &str) -> Response {
    match entry(gateway, name) {
        Some(entry) => Response::CatalogEntry(entry),
        None => error(
            ErrorKind::NotFound,
            format!("no server named {name:?} in the catalog or the built-in one"),
        ),
    }
}

fn entry(gateway: &Gateway, name: &str) -> Option<CatalogEntry> {
    let config = gateway.config.get();
    let builtin = builtin();
    let user = config.catalog.servers.get(name);
    let def = user.or_else(|| builtin.servers.get(name))?;
    Some(CatalogEntry {
        name: name.to_owned(),
        image: def.image.clone(),
        description: builtin.descriptions.get(name).cloned(),
        added: user.is_some(),
        builtin: builtin.servers.contains_key(name),
        command: def.command.clone(),
        env: def.env.clone(),
        secrets: def.secrets.clone(),
        run: Some(run_info(
            &config.settings.defaults.resolve(def),
            def.isolation,
        )),
    })
}

/// What `server add` stores: `given` as is when it names an image or is not a container;
/// otherwise the built-in entry of `name` with what `given` sets over it.
pub fn over_builtin(name: &str, given: ServerDef) -> Result<ServerDef, ConfigError> {
    if !given.kind.is_container() || !given.image.trim().is_empty() {
        return Ok(given);
    }
    let Some(base) = builtin().servers.get(name) else {
        return Err(ConfigError::Invalid(format!(
            "no image given, and the built-in catalog has no server {name:?} (see mcpctl catalog ls)"
        )));
    };
    let mut def = base.clone();
    if !given.command.is_empty() {
        def.command = given.command;
    }
    def.env.extend(given.env);
    for secret in given.secrets {
        if !def.secrets.contains(&secret) {
            def.secrets.push(secret);
        }
    }
    def.memory = given.memory.or(def.memory);
    def.cpus = given.cpus.or(def.cpus);
    def.pids = given.pids.or(def.pids);
    def.network = given.network.or(def.network);
    if !given.mounts.is_empty() {
        def.mounts = given.mounts;
    }
    def.idle_timeout = given.idle_timeout.or(def.idle_timeout);
    // Built-in entries are shared; only asking for sessions changes that.
    if !given.isolation.is_shared() {
        def.isolation = given.isolation;
    }
    Ok(def)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn given(image: &str) -> ServerDef {
        ServerDef {
            image: image.into(),
            ..Default::default()
        }
    }

    #[test]
    fn an_add_without_image_copies_the_built_in_entry_under_what_is_given() {
        let mut over = given("");
        over.env.insert("TZ".into(), "UTC".into());
        over.idle_timeout = Some(5);
        let def = over_builtin("time", over).unwrap();
        assert_eq!(def.image, builtin().servers["time"].image);
        assert_eq!(def.env["TZ"], "UTC");
        assert_eq!(def.idle_timeout, Some(5));
        assert_eq!(over_builtin("time", given("x:1")).unwrap().image, "x:1");
        assert!(matches!(
            over_builtin("nosuch", given("")),
            Err(ConfigError::Invalid(m)) if m.contains("catalog ls")
        ));
    }
}
