//! What the configuration files hold, and the rules a valid configuration follows.

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::kinds;
use super::run::{Cpus, Memory, Mount, Network, Settings};
use crate::scan::ScanMode;

/// The profile that exists without any file: every server of the catalog.
pub const DEFAULT_PROFILE: &str = "default";

/// `catalog.toml`: `[servers.NAME]` tables.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalog {
    #[serde(default, deserialize_with = "kinds::checked_servers")]
    pub servers: BTreeMap<String, ServerDef>,
}

/// How to run one MCP server.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerDef {
    /// What runs the server (`kind`): a container (default), a local process or a remote URL.
    #[serde(default, skip_serializing_if = "ServerKind::is_container")]
    pub kind: ServerKind,
    /// The container image; required for containers and only for them.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub image: String,
    /// Arguments after the image (the container's command); empty means the image's default.
    /// For a process server, the whole argv: the program first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Names of secrets the server gets as environment variables of the same names; the values
    /// are looked up when its container starts (`secrets`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<String>,
    /// Limits over `config.toml`'s defaults (`run`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<Memory>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<Cpus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pids: Option<NonZeroU32>,
    /// No network unless the entry asks for one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<Network>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<Mount>,
    /// Seconds without a request before the container is removed; 0 keeps it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout: Option<u64>,
    /// Who shares a container of the server (`isolation`).
    #[serde(default, skip_serializing_if = "Isolation::is_shared")]
    pub isolation: Isolation,
    /// A remote server's Streamable HTTP endpoint (http or https).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// HTTP headers sent to a remote server; `${NAME}` in a value is the secret NAME, one of
    /// `secrets`, filled in when the connection is made.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// A process server's working directory; `None` is the daemon's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<PathBuf>,
}

/// What runs a server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServerKind {
    /// A container from `image` (the default).
    #[default]
    Container,
    /// A local command speaking MCP on its stdin and stdout; opt-in in `config.toml`.
    Process,
    /// An MCP server at a URL.
    Remote,
}

impl ServerKind {
    pub fn is_container(&self) -> bool {
        *self == ServerKind::Container
    }

    /// The kind as configuration files write it.
    pub fn name(&self) -> &'static str {
        match self {
            ServerKind::Container => "container",
            ServerKind::Process => "process",
            ServerKind::Remote => "remote",
        }
    }
}

/// Which sessions share a container of a server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Isolation {
    /// One container per (profile, server), used by every session of the profile.
    #[default]
    Shared,
    /// One container per client session, removed when the session ends.
    Session,
    /// A fresh container for each call, removed when the call ends.
    Call,
}

impl Isolation {
    pub fn is_shared(&self) -> bool {
        *self == Isolation::Shared
    }
}

/// `profiles.toml`: `[profiles.NAME]` tables, and `[config.PROFILE.SERVER]` tables of the values
/// a profile gives a server.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profiles {
    #[serde(default)]
    pub profiles: BTreeMap<String, Profile>,
    /// Per profile, per server, `KEY = "value"`: environment variables of that profile's
    /// container of the server, over the catalog's `env`. A table of its own rather than a field
    /// of [`Profile`], so a profile's settings and its servers' values stay apart.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config: BTreeMap<String, ServerValues>,
}

/// Per server, the `KEY = "value"` pairs a profile gives it.
pub type ServerValues = BTreeMap<String, BTreeMap<String, String>>;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// The servers this profile serves, in the order their tools are listed.
    #[serde(default)]
    pub servers: Vec<String>,
    /// Prefix every tool with its server's name, not only colliding ones.
    #[serde(default)]
    pub prefix: bool,
    /// The tools clients may see and call, each `server.tool` or `server.*`; empty allows all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<String>,
    /// Whether the audit log keeps each tool call's arguments (after secret redaction).
    #[serde(default, skip_serializing_if = "is_default")]
    pub audit_arguments: bool,
    /// What a tool call carrying a secret gets: `block` (the default) or `redact`.
    #[serde(default, skip_serializing_if = "is_default")]
    pub scan: ScanMode,
}

fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

impl Profile {
    /// Whether the profile's allow-list lets clients see and call `tool` of `server`.
    pub fn allows(&self, server: &str, tool: &str) -> bool {
        self.tools.is_empty()
            || self.tools.iter().any(|rule| {
                rule.split_once('.')
                    .is_some_and(|(s, t)| s == server && (t == "*" || t == tool))
            })
    }
}

/// Everything in force at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Config {
    /// `config.toml`.
    pub settings: Settings,
    pub catalog: Catalog,
    pub profiles: Profiles,
    pub active: String,
}

impl Config {
    /// The named profile; `default` exists even when no file defines it, holding every server in
    /// the catalog, so that `mcpctl server add` alone makes a server reachable.
    pub fn profile(&self, name: &str) -> Option<Profile> {
        match self.profiles.profiles.get(name) {
            Some(profile) => Some(profile.clone()),
            None if name == DEFAULT_PROFILE => Some(Profile {
                servers: self.catalog.servers.keys().cloned().collect(),
                prefix: false,
                tools: Vec::new(),
                audit_arguments: false,
                scan: ScanMode::Block,
            }),
            None => None,
        }
    }

    /// The configuration values `profile` gives `server`; empty when there are none.
    pub fn server_values(&self, profile: &str, server: &str) -> BTreeMap<String, String> {
        self.profiles
            .config
            .get(profile)
            .and_then(|servers| servers.get(server))
            .cloned()
            .unwrap_or_default()
    }

    /// The profiles (defined in the file) that name `server`.
    pub fn profiles_naming(&self, server: &str) -> Vec<String> {
        self.profiles
            .profiles
            .iter()
            .filter(|(_, profile)| profile.servers.iter().any(|s| s == server))
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// Every profile name: the defined ones plus the implicit `default`.
    pub fn profile_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.profiles.profiles.keys().cloned().collect();
        if !self.profiles.profiles.contains_key(DEFAULT_PROFILE) {
            names.insert(0, DEFAULT_PROFILE.to_owned());
        }
        names
    }

    pub fn validate(&self) -> Result<(), String> {
        if let Some(http) = &self.settings.http {
            http.validate()?;
        }
        for (name, def) in &self.catalog.servers {
            validate_name("server", name)?;
            kinds::check(def).map_err(|reason| format!("servers.{name}: {reason}"))?;
            for secret in &def.secrets {
                mcp_gateway_proto::validate_secret_name(secret)
                    .map_err(|err| format!("server {name:?}: {err}"))?;
                if def.env.contains_key(secret) {
                    return Err(format!(
                        "server {name:?} sets {secret} both as a plain variable and as a secret"
                    ));
                }
            }
        }
        for (name, profile) in &self.profiles.profiles {
            validate_name("profile", name)?;
            for server in &profile.servers {
                if !self.catalog.servers.contains_key(server) {
                    return Err(format!(
                        "profile {name:?} names {server:?}, which is not in the catalog"
                    ));
                }
            }
            for rule in &profile.tools {
                let server = rule.split_once('.').map(|(s, _)| s);
                if !server.is_some_and(|s| profile.servers.iter().any(|p| p == s)) {
                    return Err(format!(
                        "profile {name:?} allows {rule:?}: write server.tool or server.*, with a server of the profile"
                    ));
                }
            }
        }
        for (name, servers) in &self.profiles.config {
            let Some(profile) = self.profile(name) else {
                return Err(format!(
                    "configuration values for profile {name:?}, which does not exist"
                ));
            };
            for (server, values) in servers {
                if !profile.servers.contains(server) {
                    return Err(format!(
                        "profile {name:?} configures {server:?}, which is not one of its servers"
                    ));
                }
                let def = &self.catalog.servers[server];
                for key in values.keys() {
                    mcp_gateway_proto::validate_secret_name(key).map_err(|_| {
                        format!(
                            "profile {name:?} configures {server}.{key}: a key is an environment variable name (letters, digits, '_')"
                        )
                    })?;
                    if def.secrets.contains(key) {
                        return Err(format!(
                            "profile {name:?} configures {server}.{key}, which is a secret of {server}"
                        ));
                    }
                }
            }
        }
        if self.profile(&self.active).is_none() {
            return Err(format!(
                "the active profile {:?} does not exist",
                self.active
            ));
        }
        Ok(())
    }
}

/// Server and profile names end up in container names and tool prefixes, so they keep to
/// characters that are valid in both: `[A-Za-z0-9][A-Za-z0-9_.-]{0,62}`.
pub fn validate_name(what: &str, name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if first_ok && rest_ok && name.len() <= 63 {
        Ok(())
    } else {
        Err(format!(
            "invalid {what} name {name:?}: use up to 63 letters, digits, '_', '.' or '-', starting with a letter or digit"
        ))
    }
}
