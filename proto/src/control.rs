//! Control requests from `mcpctl` and the daemon's responses, one JSON object per line.
//!
//! Every request has exactly one response. Errors carry a closed [`ErrorKind`] that `mcpctl` maps
//! to exit codes, plus a message for people that may change between versions.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A control request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Request {
    /// Daemon health: engine, profile, sessions, containers.
    Status,
    /// Add (or replace) a server definition in the user's catalog.
    ServerAdd {
        name: String,
        /// Empty takes the built-in catalog's entry of the same name, with the other fields
        /// left as that entry has them unless given.
        #[serde(default)]
        image: String,
        #[serde(default)]
        command: Vec<String>,
        #[serde(default)]
        env: BTreeMap<String, String>,
        /// Names of the secrets the server receives as environment variables.
        #[serde(default)]
        secrets: Vec<String>,
        /// Memory limit as Docker writes it (`512m`); `None` takes the daemon's default.
        #[serde(default)]
        memory: Option<String>,
        /// CPU limit in CPUs; `None` takes the daemon's default.
        #[serde(default)]
        cpus: Option<f64>,
        /// Process limit; `None` takes the daemon's default.
        #[serde(default)]
        pids: Option<u32>,
        /// The container's network; `None` is no network.
        #[serde(default)]
        network: Option<Network>,
        /// Host paths bind-mounted into the container.
        #[serde(default)]
        mounts: Vec<MountSpec>,
        /// Seconds without a request before the container is removed (0: never); `None` takes
        /// the daemon's default.
        #[serde(default)]
        idle_timeout: Option<u64>,
        /// Who shares a container of the server; `None` keeps what the entry has (shared).
        #[serde(default)]
        isolation: Option<Isolation>,
        /// A remote server's Streamable HTTP URL; given, the server is of kind `remote` and
        /// `image` must be empty.
        #[serde(default)]
        url: Option<String>,
        /// HTTP headers for a remote server; `${NAME}` in a value names one of `secrets`.
        #[serde(default)]
        headers: BTreeMap<String, String>,
        /// Run `command` as a local process (`kind = "process"`) instead of a container.
        #[serde(default)]
        process: bool,
        /// A process server's working directory.
        #[serde(default)]
        cwd: Option<String>,
    },
    /// Every server in the catalog, with its running containers.
    ServerList,
    /// Remove a server from the catalog; `force` also removes it from the profiles naming it.
    ServerRemove {
        name: String,
        #[serde(default)]
        force: bool,
    },
    /// One server: its definition, effective settings, profiles and containers.
    ServerInspect {
        name: String,
    },
    /// The server's kept stderr lines. With `follow`, the daemon answers with
    /// [`Response::LogLines`] again each time lines arrive, until the client closes the
    /// connection: a follow request is the last request of its connection.
    ServerLogs {
        name: String,
        #[serde(default)]
        follow: bool,
    },
    /// Stop the server's containers; the next request that needs the server starts it again.
    ServerRestart {
        name: String,
    },
    /// Pull the server's image again. Answered by [`Response::PullProgress`] lines while the pull
    /// runs, then one [`Response::Done`] or [`Response::Error`]; the connection stays usable.
    /// Running containers keep their image until they are restarted.
    ServerPull {
        name: String,
    },
    /// Re-read every configuration file; a broken one leaves the configuration in force as is.
    Reload,
    /// The user's catalog merged over the catalog built into the daemon.
    CatalogList,
    CatalogShow {
        name: String,
    },
    /// Create a profile holding the named servers.
    ProfileCreate {
        name: String,
        #[serde(default)]
        servers: Vec<String>,
    },
    /// Make a profile the active one (used by sessions that name no profile).
    ProfileUse {
        name: String,
    },
    ProfileList,
    ProfileShow {
        name: String,
    },
    /// The audit log: the last `limit` calls (of `server`, when given), oldest first. With
    /// `follow`, more [`Response::Calls`] lines come as calls happen, until the client hangs up
    /// (like `server_logs` with `follow`, the connection's last request).
    Calls {
        #[serde(default)]
        server: Option<String>,
        #[serde(default = "default_calls_limit")]
        limit: usize,
        #[serde(default)]
        follow: bool,
    },
    /// Delete a profile; the active one and the built-in `default` cannot be deleted.
    ProfileRemove {
        name: String,
    },
    /// Add servers to a profile.
    ProfileServersAdd {
        name: String,
        servers: Vec<String>,
    },
    /// Take servers out of a profile, with their allow-list rules and configuration values.
    ProfileServersRemove {
        name: String,
        servers: Vec<String>,
    },
    /// Prefix every tool of the profile with its server's name (`true`) or only colliding ones.
    ProfilePrefix {
        name: String,
        prefix: bool,
    },
    /// Set (`Some`) or unset (`None`) a configuration value a profile gives one of its servers.
    ProfileConfig {
        name: String,
        server: String,
        key: String,
        #[serde(default)]
        value: Option<String>,
    },
    /// Replace a profile's tool allow-list (`server.tool` or `server.*`; empty allows every tool).
    ProfileTools {
        name: String,
        #[serde(default)]
        allow: Vec<String>,
    },
    /// The merged tool list of a profile (the active one when `None`).
    ToolsList {
        #[serde(default)]
        profile: Option<String>,
    },
    /// Call a tool by the name the profile exposes.
    ToolsCall {
        #[serde(default)]
        profile: Option<String>,
        name: String,
        #[serde(default)]
        arguments: Map<String, Value>,
    },
    /// Store a secret, replacing one of the same name.
    SecretSet {
        name: String,
        value: SecretValue,
    },
    /// The secrets the daemon can see or a server needs: names and sources, never values.
    SecretList,
    /// Remove a secret from the daemon's store.
    SecretRemove {
        name: String,
    },
    /// The checks of `mcpctl doctor` only the daemon can make: the engine it reaches, the
    /// configuration files, the images of the active profile's servers and the secrets of every
    /// profile's.
    Doctor,
    /// Serve MCP over Streamable HTTP on `listen` (a loopback address unless `force`), for
    /// `profile` or else the active one; persisted in `config.toml` and applied at once. Creates
    /// the bearer token when there is none.
    HttpEnable {
        listen: String,
        #[serde(default)]
        force: bool,
        #[serde(default)]
        profile: Option<String>,
    },
    /// Stop serving HTTP and drop the `[http]` settings; HTTP sessions end.
    HttpDisable,
    /// The bearer token HTTP clients present; `rotate` replaces it first, and requests with the
    /// old one are refused from then on.
    HttpToken {
        #[serde(default)]
        rotate: bool,
    },
    /// Whether and where the HTTP face listens.
    HttpStatus,
    /// A request this daemon does not know, from a newer `mcpctl`.
    #[serde(other)]
    Unknown,
}

/// A secret's value on its way to the daemon. Its `Debug` prints no value, so that logging a
/// request never leaks one.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretValue(String);

impl SecretValue {
    pub fn new(value: String) -> SecretValue {
        SecretValue(value)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretValue(<redacted>)")
    }
}

/// The answer to a [`Request`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Response {
    /// The request was carried out; `message` says what happened, for people.
    Done {
        message: String,
    },
    Status(StatusInfo),
    Servers {
        servers: Vec<ServerInfo>,
    },
    Profiles {
        profiles: Vec<ProfileInfo>,
    },
    Profile(ProfileInfo),
    Tools {
        profile: String,
        tools: Vec<ToolInfo>,
    },
    /// Audit records, oldest first.
    Calls {
        calls: Vec<CallRecord>,
    },
    /// The raw MCP `CallToolResult` as the server sent it.
    ToolResult {
        result: Value,
    },
    Secrets {
        secrets: Vec<SecretInfo>,
    },
    /// `server inspect`.
    Server(ServerDetail),
    /// `server logs`: a batch of stderr lines, oldest first; repeated while following.
    LogLines {
        lines: Vec<LogLine>,
    },
    /// `server pull`: how far the pull is; repeated until the final `done` or `error`.
    PullProgress(PullInfo),
    Catalog {
        entries: Vec<CatalogEntry>,
    },
    CatalogEntry(CatalogEntry),
    /// `doctor`: one result per check.
    Checks {
        checks: Vec<Check>,
    },
    /// `http status`, and the state after `http enable` or `http disable`.
    Http(crate::http::HttpInfo),
    /// `http token`: the bearer token, printed for the user on purpose.
    HttpToken {
        token: SecretValue,
    },
    Error {
        kind: ErrorKind,
        message: String,
    },
}

/// Why a request failed; stable across versions, unlike messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorKind {
    /// The line was not a valid message of this protocol.
    BadRequest,
    /// The request is valid in a newer protocol but this daemon does not implement it.
    UnsupportedRequest,
    /// The hello named a protocol version this daemon does not speak.
    UnsupportedProtocol,
    /// A named server, profile or tool does not exist.
    NotFound,
    /// The request would produce an invalid configuration.
    InvalidConfig,
    /// The container engine is unreachable or refused an operation.
    Engine,
    /// An MCP server failed: did not start, crashed, answered with an error, or timed out.
    Upstream,
    /// A bug or an unexpected failure inside the daemon.
    Internal,
    /// An error kind from a newer daemon.
    #[serde(other)]
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusInfo {
    /// `mcp-gatewayd/<version>`.
    pub server: String,
    pub pid: u32,
    pub socket: String,
    pub active_profile: String,
    /// Whether the container engine answered its last ping.
    pub engine_reachable: bool,
    /// The engine's version, or why it is unreachable.
    pub engine: String,
    pub sessions: u64,
    pub containers: u64,
    /// The catalog's servers and their containers by state; zero from older daemons.
    #[serde(default)]
    pub servers: ServerCounts,
    /// What is on disk and not in force: a file broken by hand (`PATH:LINE: reason`) or edited
    /// and not yet reloaded. Empty when the files are the configuration in force.
    #[serde(default)]
    pub config_problems: Vec<String>,
    /// The images being pulled now.
    #[serde(default)]
    pub pulls: Vec<PullInfo>,
}

/// How many servers there are and what their containers are doing, for `status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ServerCounts {
    /// Servers in the user's catalog.
    pub catalog: u64,
    /// Servers of the active profile.
    pub active_profile: u64,
    /// (profile, server) containers by state, as `server ls` shows them.
    pub starting: u64,
    pub running: u64,
    pub backoff: u64,
    pub stopped: u64,
}

/// One check of `mcpctl doctor`: what was found and, when it is not `ok`, how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    /// What was checked, as `engine` or `image fetch`.
    pub name: String,
    pub status: CheckStatus,
    pub message: String,
    /// A command or step that fixes a `warn` or `fail`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    pub fn ok(name: &str, message: String) -> Check {
        Check::new(name, CheckStatus::Ok, message, None)
    }

    pub fn warn(name: &str, message: String, fix: &str) -> Check {
        Check::new(name, CheckStatus::Warn, message, Some(fix))
    }

    pub fn fail(name: &str, message: String, fix: &str) -> Check {
        Check::new(name, CheckStatus::Fail, message, Some(fix))
    }

    fn new(name: &str, status: CheckStatus, message: String, fix: Option<&str>) -> Check {
        Check {
            name: name.to_owned(),
            status,
            message,
            fix: fix.map(str::to_owned),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum CheckStatus {
    Ok,
    /// Works, but not as it should (or could not be checked).
    Warn,
    /// Broken: `mcpctl doctor` exits 1.
    Fail,
    /// A status from a newer daemon.
    #[serde(other)]
    Unknown,
}

/// An image pull in progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullInfo {
    pub image: String,
    /// The engine's last progress message (`Downloading`, `Pull complete`, …).
    pub status: String,
    /// The share of the image's bytes downloaded, once the engine has told their size.
    #[serde(default)]
    pub percent: Option<u8>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerInfo {
    pub name: String,
    /// What runs it; containers when an older daemon does not say.
    #[serde(default)]
    pub kind: ServerKind,
    pub image: String,
    #[serde(default)]
    pub command: Vec<String>,
    /// Names of the environment variables set for the server; values are not sent.
    #[serde(default)]
    pub env: Vec<String>,
    /// Names of the secrets the server receives.
    #[serde(default)]
    pub secrets: Vec<String>,
    /// The profiles in which a container of this server is running now.
    #[serde(default)]
    pub running_in: Vec<String>,
    /// The limits and settings the server runs with, defaults applied; `None` from older daemons.
    #[serde(default)]
    pub run: Option<RunInfo>,
    /// The server's container per profile that has used it since the daemon started.
    #[serde(default)]
    pub containers: Vec<ContainerInfo>,
    /// The pull of the server's image, while one runs.
    #[serde(default)]
    pub pulling: Option<PullInfo>,
    /// A remote server's `scheme://host:port` (never its path, query or headers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
}

/// A container's network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Network {
    /// No network at all (the default).
    None,
    /// The engine's default network.
    Default,
    /// A network by name.
    Named(String),
}

/// Which sessions share a container of a server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Isolation {
    /// One container per (profile, server), used by every session of the profile.
    #[default]
    Shared,
    /// One container per client session, removed when the session ends.
    Session,
    /// A fresh container for each call, removed when the call ends.
    Call,
}

/// What runs a server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServerKind {
    #[default]
    Container,
    /// A local process the daemon runs (`command`).
    Process,
    /// An MCP server at a URL.
    Remote,
}

/// A bind mount from the host, read-only unless `writable`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountSpec {
    pub source: String,
    pub target: String,
    #[serde(default)]
    pub writable: bool,
}

/// What a server's containers run with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    /// Memory limit as Docker writes it (`512m`).
    pub memory: String,
    pub cpus: f64,
    pub pids: u32,
    pub network: Network,
    #[serde(default)]
    pub mounts: Vec<MountSpec>,
    /// Seconds without a request before the container is removed; `None`: never.
    #[serde(default)]
    pub idle_timeout: Option<u64>,
    #[serde(default)]
    pub isolation: Isolation,
}

/// One (profile, server) container as the pool sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerInfo {
    pub profile: String,
    /// The client session whose own container this is (`isolation = "session"`); `None` for a
    /// container the profile's sessions share.
    #[serde(default)]
    pub session: Option<u64>,
    /// How many connected sessions use the container.
    #[serde(default)]
    pub sessions: u32,
    pub state: ContainerState,
    /// The engine's id while a container exists.
    #[serde(default)]
    pub id: Option<String>,
    /// Seconds since the running container started.
    #[serde(default)]
    pub uptime_secs: Option<u64>,
    /// Seconds since a request last went to the server.
    #[serde(default)]
    pub last_used_secs: Option<u64>,
    /// Containers started after a failure since the daemon started.
    #[serde(default)]
    pub restarts: u32,
    /// Why the last container failed, with the server's last stderr lines.
    #[serde(default)]
    pub last_error: Option<String>,
    /// In `backoff`: seconds until the next start is allowed.
    #[serde(default)]
    pub retry_in_secs: Option<u64>,
    /// The protocol the server speaks (`legacy` or `2026-07-28`), once it has started.
    #[serde(default)]
    pub era: Option<String>,
    /// Times the running server's unprompted output went past its budget, so that the gateway
    /// read it more slowly.
    #[serde(default)]
    pub throttled: u32,
    /// Whether the gateway is holding off reading the server now, for its budget.
    #[serde(default)]
    pub paused: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ContainerState {
    Starting,
    Running,
    /// The server failed; the next start waits until `retry_in_secs` has passed.
    Backoff,
    /// No container: never started, stopped when idle, or failed without a backoff.
    Stopped,
    #[serde(other)]
    Unknown,
}

/// A server as `server inspect` shows it: [`ServerInfo`] with values and where it is used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerDetail {
    #[serde(flatten)]
    pub info: ServerInfo,
    /// The catalog's environment with values (secrets are never here: they are only named).
    #[serde(default)]
    pub env_values: BTreeMap<String, String>,
    /// The profiles that name this server.
    #[serde(default)]
    pub profiles: Vec<String>,
    /// Per profile, the configuration values it gives this server (as environment variables).
    #[serde(default)]
    pub profile_config: BTreeMap<String, BTreeMap<String, String>>,
}

/// One stderr line of a server's container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    /// The profile whose container wrote it.
    pub profile: String,
    pub line: String,
}

/// A server of `catalog ls`: from the user's catalog, the built-in one, or both.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CatalogEntry {
    pub name: String,
    pub image: String,
    #[serde(default)]
    pub description: Option<String>,
    /// Whether the user's catalog holds it (added, or imported); otherwise it is only offered by
    /// the built-in catalog, and `mcpctl server add NAME` adds it.
    pub added: bool,
    /// Whether the built-in catalog has an entry of this name.
    pub builtin: bool,
    #[serde(default)]
    pub command: Vec<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub secrets: Vec<String>,
    /// The limits and settings it runs (or would run) with, defaults applied.
    #[serde(default)]
    pub run: Option<RunInfo>,
    /// A remote server's `scheme://host:port` (never its path, query or headers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfileInfo {
    pub name: String,
    pub servers: Vec<String>,
    pub active: bool,
    /// Whether every tool name is prefixed with its server's name, not only colliding ones.
    #[serde(default)]
    pub prefix: bool,
    /// True for the built-in `default` profile while no file defines it.
    #[serde(default)]
    pub implicit: bool,
    /// The tools clients may see (`server.tool` or `server.*`); empty means every tool.
    #[serde(default)]
    pub tools: Vec<String>,
    /// Per server, the configuration values the profile gives it as environment variables.
    #[serde(default)]
    pub config: BTreeMap<String, BTreeMap<String, String>>,
}

fn default_calls_limit() -> usize {
    50
}

/// One line of the audit log (`$XDG_STATE_HOME/mcp-gateway/audit.jsonl`): a `tools/call`,
/// `prompts/get`, `resources/read` or `completion/complete` through the gateway. It never holds a
/// secret: scanning hits name their rule only, and arguments are kept only when the profile asks
/// (`audit_arguments`), after redaction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallRecord {
    /// RFC 3339, UTC, milliseconds.
    pub time: String,
    pub profile: String,
    /// The client's name from its hello (`mcp-shim --client`), or `mcpctl`.
    pub client: String,
    /// The server the call went to; empty when it was refused before routing.
    #[serde(default)]
    pub server: String,
    pub method: String,
    /// The tool or prompt name, or the resource URI, as the client gave it.
    pub name: String,
    pub duration_ms: f64,
    /// `ok`, `tool_error` (a result with `isError`), `error`, `blocked` or `cancelled`.
    pub outcome: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub request_bytes: usize,
    pub response_bytes: usize,
    /// Secret-scanning rules that matched, in arguments or result.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolInfo {
    /// The name the profile exposes (possibly `<server>__<tool>`).
    pub name: String,
    pub server: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// A secret as `mcpctl secret ls` shows it: never its value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretInfo {
    pub name: String,
    /// Where the value servers get comes from; `None` when a server needs it and none is set.
    #[serde(default)]
    pub source: Option<SecretSource>,
    /// Other places that also hold a value for this name, hidden by `source`.
    #[serde(default)]
    pub shadowed: Vec<SecretSource>,
    /// The servers of the catalog that declare this secret.
    #[serde(default)]
    pub used_by: Vec<String>,
}

/// Secret names become environment variable names inside containers, so they keep to the portable
/// form of those: a letter or `_`, then letters, digits or `_`, 128 characters at most.
pub fn validate_secret_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if first_ok && chars.all(|c| c.is_ascii_alphanumeric() || c == '_') && name.len() <= 128 {
        Ok(())
    } else {
        Err(format!(
            "invalid secret name {name:?}: use up to 128 letters, digits or '_', not starting with a digit"
        ))
    }
}

/// Where a secret's value can come from, in the order the daemon looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum SecretSource {
    /// The daemon's store, written by `mcpctl secret set`.
    Store,
    /// A systemd credential: a file in `$CREDENTIALS_DIRECTORY`.
    Credential,
    /// The daemon's environment variable `MCP_GATEWAY_SECRET_<NAME>`.
    Env,
    /// A source from a newer daemon.
    #[serde(other)]
    Unknown,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_values_travel_as_strings_and_never_print() {
        let request = Request::SecretSet {
            name: "TOKEN".into(),
            value: SecretValue::new("hunter2".into()),
        };
        let line = serde_json::to_string(&request).unwrap();
        assert_eq!(
            line,
            r#"{"type":"secret_set","name":"TOKEN","value":"hunter2"}"#
        );
        assert_eq!(serde_json::from_str::<Request>(&line).unwrap(), request);
        assert!(!format!("{request:?}").contains("hunter2"));
    }

    #[test]
    fn secret_names_are_environment_variable_names() {
        for good in ["GITHUB_TOKEN", "_x", "a1"] {
            assert_eq!(validate_secret_name(good), Ok(()));
        }
        for bad in ["", "1A", "A-B", "A B", "A=B", "é", &"A".repeat(129)] {
            assert!(validate_secret_name(bad).is_err(), "{bad:?}");
        }
    }
}
