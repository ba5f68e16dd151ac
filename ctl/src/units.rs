//! The systemd user units of mcp-gateway as `systemctl --user` reports them, for `status` and
//! `doctor`. Many places run no user manager (containers, `su` shells, CI): that is an answer
//! too, not a failure of `mcpctl`.

use std::process::Command;

/// The units the packages install.
pub const UNITS: [&str; 2] = ["mcp-gateway.socket", "mcp-gateway.service"];

/// One unit's state, in systemd's words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unit {
    pub name: String,
    /// `loaded`, or `not-found` when the unit is not installed.
    pub load: String,
    /// `enabled`, `disabled`, `static`, …; empty when not installed.
    pub file_state: String,
    /// `active`, `inactive`, `failed`, …
    pub active: String,
}

impl Unit {
    pub fn installed(&self) -> bool {
        self.load == "loaded"
    }

    /// `enabled, active` or `not installed`.
    pub fn summary(&self) -> String {
        if !self.installed() {
            return "not installed".into();
        }
        format!("{}, {}", self.file_state, self.active)
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "unit": self.name,
            "load": self.load,
            "file_state": self.file_state,
            "active": self.active,
        })
    }
}

/// The units' states, or why `systemctl --user` cannot tell.
pub fn query() -> Result<Vec<Unit>, String> {
    let output = Command::new("systemctl")
        .args([
            "--user",
            "show",
            "--property=Id,LoadState,UnitFileState,ActiveState",
        ])
        .args(UNITS)
        .output()
        .map_err(|err| format!("cannot run systemctl: {err}"))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(format!(
            "systemctl --user: {}",
            stderr.lines().next().unwrap_or("failed").trim()
        ));
    }
    Ok(parse(&String::from_utf8_lossy(&output.stdout)))
}

/// `systemctl show` prints one `KEY=VALUE` block per unit, blocks separated by a blank line.
fn parse(text: &str) -> Vec<Unit> {
    text.split("\n\n")
        .filter(|block| !block.trim().is_empty())
        .map(|block| {
            let value = |key: &str| {
                block
                    .lines()
                    .find_map(|line| line.strip_prefix(key)?.strip_prefix('='))
                    .unwrap_or("")
                    .to_owned()
            };
            Unit {
                name: value("Id"),
                load: value("LoadState"),
                file_state: value("UnitFileState"),
                active: value("ActiveState"),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn systemctl_show_blocks_become_units() {
        let text = "Id=mcp-gateway.socket\nLoadState=loaded\nActiveState=active\n\
                    UnitFileState=enabled\n\nId=mcp-gateway.service\nLoadState=not-found\n\
                    ActiveState=inactive\nUnitFileState=\n";
        let units = parse(text);
        assert_eq!(units.len(), 2);
        assert_eq!(units[0].summary(), "enabled, active");
        assert!(!units[1].installed());
        assert_eq!(units[1].summary(), "not installed");
    }
}
