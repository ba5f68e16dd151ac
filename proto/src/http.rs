//! What `mcpctl http` shows of the daemon's optional Streamable HTTP face.

use serde::{Deserialize, Serialize};

/// The HTTP face as configured and as running.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpInfo {
    /// Whether `config.toml` has an `[http]` table.
    pub enabled: bool,
    /// The configured address, `HOST:PORT`.
    #[serde(default)]
    pub listen: Option<String>,
    /// The profile HTTP clients get; `None` follows the active profile.
    #[serde(default)]
    pub profile: Option<String>,
    /// The endpoint while the face listens (`http://ADDR/mcp`).
    #[serde(default)]
    pub url: Option<String>,
    /// Why an enabled face is not listening (the address was taken, say).
    #[serde(default)]
    pub error: Option<String>,
    /// Legacy-era HTTP sessions open now.
    #[serde(default)]
    pub sessions: u64,
    /// Where the bearer token is kept.
    pub token_file: String,
}
