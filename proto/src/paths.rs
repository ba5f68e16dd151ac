//! Where the daemon's socket lives, the same answer for all three binaries.

use std::path::PathBuf;

/// Overrides the socket path for every binary (`--socket` overrides it in turn).
pub const SOCKET_ENV: &str = "MCP_GATEWAY_SOCKET";

/// `$MCP_GATEWAY_SOCKET`, else `$XDG_RUNTIME_DIR/mcp-gateway.sock` (what the systemd socket unit
/// binds as `%t/mcp-gateway.sock`).
///
/// There is no fallback to `/tmp`: a world-writable directory would let another user plant a
/// socket, and the runtime directory is the private, per-user place systemd provides.
pub fn default_socket_path() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os(SOCKET_ENV).filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(path));
    }
    match std::env::var_os("XDG_RUNTIME_DIR").filter(|p| !p.is_empty()) {
        Some(dir) => Ok(PathBuf::from(dir).join("mcp-gateway.sock")),
        None => Err(format!(
            "neither {SOCKET_ENV} nor XDG_RUNTIME_DIR is set; pass --socket PATH"
        )),
    }
}
