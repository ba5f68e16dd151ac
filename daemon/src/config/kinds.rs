//! What each server kind (`container`, `process`, `remote`) needs and what it refuses: the
//! fields of a catalog entry that have no meaning for its kind are errors, not silently ignored,
//! so a hand edit that mixes kinds up is reported with its line.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{DeserializeSeed, Deserializer, Error, MapAccess, Visitor};

use super::model::{ServerDef, ServerKind};

/// Whether `def`'s fields fit its kind: the reason when they do not.
pub fn check(def: &ServerDef) -> Result<(), String> {
    let kind = def.kind;
    let container = kind == ServerKind::Container;
    // (field, whether the entry sets it, whether it means anything for this kind)
    let fields = [
        ("image", !def.image.is_empty(), container),
        (
            "command",
            !def.command.is_empty(),
            kind != ServerKind::Remote,
        ),
        ("env", !def.env.is_empty(), kind != ServerKind::Remote),
        ("memory", def.memory.is_some(), container),
        ("cpus", def.cpus.is_some(), container),
        ("pids", def.pids.is_some(), container),
        ("network", def.network.is_some(), container),
        ("mounts", !def.mounts.is_empty(), container),
        ("cwd", def.cwd.is_some(), kind == ServerKind::Process),
        ("url", def.url.is_some(), kind == ServerKind::Remote),
        (
            "headers",
            !def.headers.is_empty(),
            kind == ServerKind::Remote,
        ),
        // One connection to a remote endpoint serves every session; the server keeps its own
        // sessions apart.
        (
            "isolation",
            !def.isolation.is_shared(),
            kind != ServerKind::Remote,
        ),
    ];
    if let Some((field, ..)) = fields
        .iter()
        .find(|(_, set, meaningful)| *set && !meaningful)
    {
        return Err(format!(
            "{field} has no meaning for a {} server",
            kind.name()
        ));
    }
    match kind {
        ServerKind::Container if def.image.trim().is_empty() => {
            Err("a container server needs an image".into())
        }
        ServerKind::Process if def.command.first().is_none_or(|p| p.trim().is_empty()) => {
            Err("a process server needs a command, its program first".into())
        }
        ServerKind::Remote => super::remote::validate(def),
        _ => Ok(()),
    }
}

/// Deserializes `[servers.NAME]` tables, checking each against its kind as it is read, so the
/// parser reports the entry's line.
pub fn checked_servers<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<BTreeMap<String, ServerDef>, D::Error> {
    deserializer.deserialize_map(Servers)
}

struct Servers;

impl<'de> Visitor<'de> for Servers {
    type Value = BTreeMap<String, ServerDef>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a table of servers")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut servers = BTreeMap::new();
        while let Some(name) = map.next_key::<String>()? {
            let def = map.next_value_seed(Checked(&name))?;
            servers.insert(name, def);
        }
        Ok(servers)
    }
}

/// One entry, named for its error message.
struct Checked<'a>(&'a str);

impl<'de> DeserializeSeed<'de> for Checked<'_> {
    type Value = ServerDef;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<ServerDef, D::Error> {
        let def = ServerDef::deserialize(deserializer)?;
        check(&def).map_err(|reason| D::Error::custom(format!("servers.{}: {reason}", self.0)))?;
        Ok(def)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(kind: ServerKind) -> ServerDef {
        ServerDef {
            kind,
            ..ServerDef::default()
        }
    }

    #[test]
    fn each_kind_needs_its_own_fields_and_refuses_the_others() {
        assert_eq!(
            check(&def(ServerKind::Container)).unwrap_err(),
            "a container server needs an image"
        );
        let mut process = def(ServerKind::Process);
        assert!(check(&process).unwrap_err().contains("needs a command"));
        process.command = vec!["  ".into()];
        assert!(check(&process).unwrap_err().contains("needs a command"));
        process.command = vec!["server".into(), "--stdio".into()];
        process.cwd = Some("/tmp".into());
        assert_eq!(check(&process), Ok(()));
        for (field, edit) in [
            (
                "image",
                (|d: &mut ServerDef| d.image = "img".into()) as fn(&mut ServerDef),
            ),
            ("memory", |d| {
                d.memory = Some("1g".to_owned().try_into().unwrap())
            }),
            ("pids", |d| d.pids = std::num::NonZeroU32::new(3)),
        ] {
            let mut wrong = process.clone();
            edit(&mut wrong);
            assert_eq!(
                check(&wrong).unwrap_err(),
                format!("{field} has no meaning for a process server")
            );
        }
        let mut container = def(ServerKind::Container);
        container.image = "img".into();
        assert_eq!(check(&container), Ok(()));
        container.cwd = Some("/tmp".into());
        assert_eq!(
            check(&container).unwrap_err(),
            "cwd has no meaning for a container server"
        );
    }

    #[test]
    fn a_bad_entry_fails_the_catalog_with_its_line() {
        let text = "[servers.ok]\nimage = \"img\"\n\n[servers.bad]\nkind = \"process\"\nmounts = [{ source = \"/srv\", target = \"/srv\" }]\ncommand = [\"x\"]\n";
        let err = toml::from_str::<super::super::Catalog>(text).unwrap_err();
        assert_eq!(
            err.message(),
            "servers.bad: mounts has no meaning for a process server"
        );
        let line = 1 + text[..err.span().unwrap().start].matches('\n').count();
        assert_eq!(line, 4);
    }
}
