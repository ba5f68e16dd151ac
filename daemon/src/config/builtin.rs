//! The catalog compiled into the daemon (`daemon/catalog/default.toml`): well-known servers that
//! `mcpctl catalog ls` offers and `mcpctl server add NAME` copies into the user's catalog. Its
//! entries never run on their own: the implicit `default` profile follows the user's catalog only.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use serde::Deserialize;

use super::ServerDef;

const TEXT: &str = include_str!("../../catalog/default.toml");

/// The built-in catalog's file: the catalog's `[servers.NAME]` tables and a description of each.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Builtin {
    #[serde(default)]
    pub descriptions: BTreeMap<String, String>,
    pub servers: BTreeMap<String, ServerDef>,
}

/// The built-in catalog; a unit test makes sure the compiled-in file parses and is valid.
pub fn builtin() -> &'static Builtin {
    static BUILTIN: LazyLock<Builtin> = LazyLock::new(|| {
        toml::from_str(TEXT).unwrap_or_else(|err| panic!("catalog/default.toml: {err}"))
    });
    &BUILTIN
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Catalog, Config};

    #[test]
    fn the_built_in_catalog_parses_is_valid_and_describes_every_server() {
        let builtin = builtin();
        assert!(builtin.servers.contains_key("time"));
        let config = Config {
            catalog: Catalog {
                servers: builtin.servers.clone(),
            },
            active: crate::config::DEFAULT_PROFILE.into(),
            ..Config::default()
        };
        assert_eq!(config.validate(), Ok(()));
        for (name, def) in &builtin.servers {
            assert!(builtin.descriptions.contains_key(name), "{name}");
            // Offering a host command would let `server add NAME` run one unasked.
            assert!(def.kind.is_container(), "{name} is not a container");
        }
        assert!(
            builtin
                .descriptions
                .keys()
                .all(|n| builtin.servers.contains_key(n))
        );
    }
}
