//! Where the daemon's socket lives, the same answer for all three binaries.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::PathBuf;

/// Overrides the socket path for every binary (`--socket` overrides it in turn).
pub const SOCKET_ENV: &str = "MCP_GATEWAY_SOCKET";

/// `$MCP_GATEWAY_SOCKET`, else `$XDG_RUNTIME_DIR/mcp-gateway.sock` (what the systemd socket unit
/// binds as `%t/mcp-gateway.sock`).
///
/// When `XDG_RUNTIME_DIR` is unset (a `su` shell, a container, a cron job), `/run/user/UID` is used
/// if it is this user's private directory, which is what systemd would have set. There is no
/// fallback to `/tmp`: in a world-writable directory another user could plant a socket.
pub fn default_socket_path() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os(SOCKET_ENV).filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(path));
    }
    if let Some(dir) = std::env::var_os("XDG_RUNTIME_DIR").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(dir).join("mcp-gateway.sock"));
    }
    let uid = nix::unistd::geteuid().as_raw();
    let dir = PathBuf::from(format!("/run/user/{uid}"));
    match std::fs::metadata(&dir) {
        Ok(meta)
            if meta.is_dir() && meta.uid() == uid && meta.permissions().mode() & 0o077 == 0 =>
        {
            Ok(dir.join("mcp-gateway.sock"))
        }
        _ => Err(format!(
            "XDG_RUNTIME_DIR is not set and {} is not this user's private directory; set {SOCKET_ENV} or pass --socket PATH",
            dir.display()
        )),
    }
}
