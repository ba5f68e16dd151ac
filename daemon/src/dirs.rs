//! The XDG directories the daemon reads and writes.

use std::path::PathBuf;

/// Where configuration (catalog, profiles) and state (active profile) live.
#[derive(Debug, Clone)]
pub struct Dirs {
    /// `$XDG_CONFIG_HOME/mcp-gateway`: files people may edit by hand.
    pub config: PathBuf,
    /// `$XDG_STATE_HOME/mcp-gateway`: what the daemon remembers between runs.
    pub state: PathBuf,
}

impl Dirs {
    /// Resolves the directories from the environment, falling back to `$HOME` as the XDG base
    /// directory specification says.
    pub fn from_env() -> Result<Dirs, String> {
        let base = |var: &str, fallback: &str| -> Result<PathBuf, String> {
            if let Some(dir) = std::env::var_os(var).filter(|d| !d.is_empty()) {
                return Ok(PathBuf::from(dir));
            }
            match std::env::var_os("HOME").filter(|d| !d.is_empty()) {
                Some(home) => Ok(PathBuf::from(home).join(fallback)),
                None => Err(format!("neither {var} nor HOME is set")),
            }
        };
        Ok(Dirs {
            config: base("XDG_CONFIG_HOME", ".config")?.join("mcp-gateway"),
            state: base("XDG_STATE_HOME", ".local/state")?.join("mcp-gateway"),
        })
    }
}

/// `$XDG_RUNTIME_DIR`, else the temporary directory: where the files of this run go (the servers'
/// stdio sockets).
pub fn runtime() -> PathBuf {
    std::env::var_os("XDG_RUNTIME_DIR")
        .filter(|dir| !dir.is_empty())
        .map_or_else(std::env::temp_dir, PathBuf::from)
}
