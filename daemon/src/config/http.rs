//! `config.toml`'s `[http]` table: where the optional Streamable HTTP face listens and which
//! profile it serves. `mcpctl http enable` and `disable` change only this table, so the rest of a
//! hand-edited `config.toml` (comments included) stays as the user wrote it.

use std::net::SocketAddr;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::files::{self, FileError};

/// `[http]`: present means enabled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    /// `IP:PORT`; a loopback address unless `allow_non_loopback`.
    pub listen: SocketAddr,
    /// The profile HTTP clients get; absent follows the active profile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// Set by `mcpctl http enable --force`: the user accepted a non-loopback address.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_non_loopback: bool,
}

impl HttpSettings {
    /// Refuses a non-loopback address the user did not force.
    pub fn validate(&self) -> Result<(), String> {
        if !self.listen.ip().is_loopback() && !self.allow_non_loopback {
            return Err(format!(
                "[http] listen = \"{}\" is not a loopback address; anyone who can reach it may try the token (use --force to accept that)",
                self.listen
            ));
        }
        Ok(())
    }
}

/// Replaces (`Some`) or removes (`None`) the `[http]` table of `config.toml` at `path`, keeping
/// everything else of the file as it is; returns the text written.
pub fn write(path: &Path, http: Option<&HttpSettings>) -> Result<String, FileError> {
    let text = files::read_text(path)?.unwrap_or_default();
    let parse_error = |reason: String| FileError::Parse {
        path: path.to_owned(),
        line: 0,
        reason,
    };
    let mut document: toml_edit::DocumentMut = text
        .parse()
        .map_err(|err: toml_edit::TomlError| parse_error(err.message().to_owned()))?;
    match http {
        Some(http) => {
            let table: toml_edit::DocumentMut = toml::to_string(http)
                .map_err(|err| parse_error(err.to_string()))?
                .parse()
                .map_err(|err: toml_edit::TomlError| parse_error(err.message().to_owned()))?;
            document.insert("http", toml_edit::Item::Table(table.as_table().clone()));
        }
        None => {
            document.remove("http");
        }
    }
    let text = document.to_string();
    files::write_atomic(path, text.as_bytes())?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(listen: &str) -> HttpSettings {
        HttpSettings {
            listen: listen.parse().unwrap(),
            profile: Some("work".into()),
            allow_non_loopback: false,
        }
    }

    #[test]
    fn only_loopback_addresses_pass_unless_forced() {
        assert!(settings("127.0.0.1:8080").validate().is_ok());
        assert!(settings("[::1]:8080").validate().is_ok());
        let open = settings("0.0.0.0:8080");
        assert!(open.validate().unwrap_err().contains("--force"));
        let forced = HttpSettings {
            allow_non_loopback: true,
            ..open
        };
        assert!(forced.validate().is_ok());
    }

    #[test]
    fn the_table_is_written_and_removed_around_the_rest_of_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        let original = "# my limits\n[defaults]\nmemory = \"1g\" # enough\n";
        std::fs::write(&path, original).unwrap();
        write(&path, Some(&settings("127.0.0.1:8080"))).unwrap();
        let written = std::fs::read_to_string(&path).unwrap();
        assert!(written.starts_with(original), "{written}");
        let parsed: super::super::Settings = toml::from_str(&written).unwrap();
        assert_eq!(parsed.http, Some(settings("127.0.0.1:8080")));
        write(&path, None).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), original);
    }
}
