//! Secrets: values that servers receive as environment variables of their container, and that
//! appear nowhere else (not in the catalog or profiles, logs, error messages, `mcpctl` output or a
//! container's command).
//!
//! A value comes from the first of three places that has one:
//! 1. the store, `secrets.toml` in the configuration directory (0600, directory 0700), written by
//!    `mcpctl secret set` through the daemon;
//! 2. a systemd credential, the file `$CREDENTIALS_DIRECTORY/NAME` (`LoadCredential=` and
//!    friends in the unit);
//! 3. the daemon's environment variable `MCP_GATEWAY_SECRET_NAME`.
//!
//! The store comes first because it is what the user changes at run time with `mcpctl`, and a
//! change should take effect without editing the unit; the unit's credentials come before the
//! environment because they are the systemd way of passing secrets, the environment the last
//! resort. One final newline is dropped from a credential file, as from a value typed into
//! `mcpctl`: `echo TOKEN > file` should give `TOKEN`.
//!
//! The store is read from disk on every use, so that a hand edit takes effect at once and a store
//! that does not parse is never overwritten with a partial copy.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::files::{self, FileError};

/// The prefix of the environment variables the daemon takes secrets from.
pub const ENV_PREFIX: &str = "MCP_GATEWAY_SECRET_";

const HEADER: &str = "# Secrets of mcp-gateway, written by mcp-gatewayd (`mcpctl secret set`).\n\
                      # Keep this file private (mode 0600).\n\n";

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error(transparent)]
    File(#[from] FileError),
    #[error("{0}")]
    InvalidName(String),
    #[error("no secret named {0:?} in the store")]
    NotInStore(String),
    #[error(
        "secret {0:?} is not set: set it with `mcpctl secret set {0}`, as the systemd credential {0}, or as the daemon's environment variable {ENV_PREFIX}{0}"
    )]
    Missing(String),
}

/// Where a value was found, in the order they are looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Source {
    Store,
    Credential,
    Env,
}

/// `secrets.toml`.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoreFile {
    #[serde(default)]
    secrets: BTreeMap<String, String>,
}

pub struct Secrets {
    store: PathBuf,
    credentials: Option<PathBuf>,
    env: BTreeMap<String, String>,
    /// Serialises read-modify-write cycles of the store.
    writer: Mutex<()>,
}

impl Secrets {
    /// `env` holds the daemon's `MCP_GATEWAY_SECRET_*` variables, by secret name.
    pub fn new(
        store: PathBuf,
        credentials: Option<PathBuf>,
        env: BTreeMap<String, String>,
    ) -> Secrets {
        Secrets {
            store,
            credentials,
            env,
            writer: Mutex::new(()),
        }
    }

    /// Secrets from this process's environment and `$CREDENTIALS_DIRECTORY`, and the store at
    /// `store`.
    pub fn from_process(store: PathBuf) -> Secrets {
        let env = std::env::vars()
            .filter_map(|(key, value)| {
                let name = key.strip_prefix(ENV_PREFIX)?;
                (mcp_gateway_proto::validate_secret_name(name).is_ok())
                    .then(|| (name.to_owned(), value))
            })
            .collect();
        let credentials = std::env::var_os("CREDENTIALS_DIRECTORY")
            .map(PathBuf::from)
            .filter(|dir| dir.is_absolute());
        Secrets::new(store, credentials, env)
    }

    /// Checks that the store parses, for the report at start-up.
    pub fn check(&self) -> Result<(), SecretError> {
        self.read_store().map(drop)
    }

    pub fn set(&self, name: &str, value: &str) -> Result<(), SecretError> {
        mcp_gateway_proto::validate_secret_name(name).map_err(SecretError::InvalidName)?;
        let _guard = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let mut secrets = self.read_store()?;
        secrets.insert(name.to_owned(), value.to_owned());
        self.write_store(secrets)
    }

    pub fn remove(&self, name: &str) -> Result<(), SecretError> {
        let _guard = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let mut secrets = self.read_store()?;
        if secrets.remove(name).is_none() {
            return Err(SecretError::NotInStore(name.to_owned()));
        }
        self.write_store(secrets)
    }

    /// The environment a server declaring `names` gets, in the order declared; the first name
    /// without a value is an error.
    pub fn resolve(&self, names: &[String]) -> Result<Vec<(String, String)>, SecretError> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let store = self.read_store()?;
        names
            .iter()
            .map(|name| {
                let value = match store.get(name) {
                    Some(value) => value.clone(),
                    None => match self.credential(name)? {
                        Some(value) => value,
                        None => self
                            .env
                            .get(name)
                            .cloned()
                            .ok_or_else(|| SecretError::Missing(name.clone()))?,
                    },
                };
                Ok((name.clone(), value))
            })
            .collect()
    }

    /// The value of every secret any source holds, for the secret scanner to look for.
    pub fn values(&self) -> Result<Vec<String>, SecretError> {
        let names: Vec<String> = self.list()?.into_keys().collect();
        Ok(self
            .resolve(&names)?
            .into_iter()
            .map(|(_, value)| value)
            .collect())
    }

    /// Every name any source holds, with the sources that hold it, first the one that counts.
    pub fn list(&self) -> Result<BTreeMap<String, Vec<Source>>, SecretError> {
        let mut names: BTreeMap<String, Vec<Source>> = BTreeMap::new();
        for name in self.read_store()?.into_keys() {
            names.entry(name).or_default().push(Source::Store);
        }
        for name in self.credential_names()? {
            names.entry(name).or_default().push(Source::Credential);
        }
        for name in self.env.keys() {
            names.entry(name.clone()).or_default().push(Source::Env);
        }
        Ok(names)
    }

    fn read_store(&self) -> Result<BTreeMap<String, String>, SecretError> {
        if let Ok(meta) = std::fs::metadata(&self.store)
            && meta.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(
                "{} can be read by other users; `chmod 600` it",
                self.store.display()
            );
        }
        Ok(files::read_toml::<StoreFile>(&self.store)?.secrets)
    }

    fn write_store(&self, secrets: BTreeMap<String, String>) -> Result<(), SecretError> {
        let text =
            toml::to_string_pretty(&StoreFile { secrets }).map_err(|err| FileError::Parse {
                path: self.store.clone(),
                line: 0,
                reason: err.to_string(),
            })?;
        files::write_private(&self.store, format!("{HEADER}{text}").as_bytes())?;
        Ok(())
    }

    fn credential(&self, name: &str) -> Result<Option<String>, SecretError> {
        let Some(dir) = &self.credentials else {
            return Ok(None);
        };
        let path = dir.join(name);
        let Some(mut value) = files::read_text(&path)? else {
            return Ok(None);
        };
        if value.ends_with('\n') {
            value.pop();
            if value.ends_with('\r') {
                value.pop();
            }
        }
        Ok(Some(value))
    }

    /// The credentials whose file names can be secret names; systemd may pass others.
    fn credential_names(&self) -> Result<Vec<String>, SecretError> {
        let Some(dir) = &self.credentials else {
            return Ok(Vec::new());
        };
        let entries = std::fs::read_dir(dir).map_err(|source| io(dir, source))?;
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| io(dir, source))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if entry.path().is_file() && mcp_gateway_proto::validate_secret_name(&name).is_ok() {
                names.push(name);
            }
        }
        Ok(names)
    }
}

fn io(path: &Path, source: std::io::Error) -> SecretError {
    SecretError::File(FileError::Io {
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets(dir: &Path, env: &[(&str, &str)]) -> Secrets {
        std::fs::create_dir_all(dir.join("creds")).unwrap();
        Secrets::new(
            dir.join("config/secrets.toml"),
            Some(dir.join("creds")),
            env.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn the_store_is_private_and_keeps_values_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let secrets = secrets(dir.path(), &[]);
        let tricky = "p@ss \"word\"\n\\ with = and # and ünïcode";
        secrets.set("TOKEN", tricky).unwrap();
        secrets.set("OTHER", "x").unwrap();
        let store = dir.path().join("config/secrets.toml");
        assert_eq!(mode(&store), 0o600);
        assert_eq!(mode(store.parent().unwrap()), 0o700);
        let names = ["TOKEN".to_owned(), "OTHER".to_owned()];
        assert_eq!(
            secrets.resolve(&names).unwrap(),
            [
                ("TOKEN".to_owned(), tricky.to_owned()),
                ("OTHER".to_owned(), "x".to_owned())
            ]
        );
        secrets.remove("OTHER").unwrap();
        assert!(matches!(
            secrets.remove("OTHER"),
            Err(SecretError::NotInStore(_))
        ));
        assert!(matches!(
            secrets.set("BAD-NAME", "x"),
            Err(SecretError::InvalidName(_))
        ));
        let reread = Secrets::new(store, None, BTreeMap::new());
        assert_eq!(
            reread.list().unwrap().into_keys().collect::<Vec<_>>(),
            ["TOKEN"]
        );
    }

    #[test]
    fn store_then_credential_then_environment() {
        let dir = tempfile::tempdir().unwrap();
        let secrets = secrets(
            dir.path(),
            &[("A", "env-a"), ("B", "env-b"), ("C", "env-c")],
        );
        std::fs::write(dir.path().join("creds/A"), "cred-a\n").unwrap();
        std::fs::write(dir.path().join("creds/B"), "cred-b\n").unwrap();
        std::fs::write(dir.path().join("creds/not-a-name"), "x").unwrap();
        secrets.set("A", "store-a").unwrap();
        let names: Vec<String> = ["A", "B", "C"].map(String::from).into();
        let values: Vec<_> = secrets
            .resolve(&names)
            .unwrap()
            .into_iter()
            .map(|(_, v)| v)
            .collect();
        assert_eq!(values, ["store-a", "cred-b", "env-c"]);
        let list = secrets.list().unwrap();
        assert_eq!(list["A"], [Source::Store, Source::Credential, Source::Env]);
        assert_eq!(list["B"], [Source::Credential, Source::Env]);
        assert_eq!(list["C"], [Source::Env]);
        assert!(!list.contains_key("not-a-name"));
    }

    #[test]
    fn a_missing_secret_is_named_without_any_value() {
        let dir = tempfile::tempdir().unwrap();
        let secrets = secrets(dir.path(), &[]);
        secrets.set("PRESENT", "sekrit-value").unwrap();
        let err = secrets
            .resolve(&["PRESENT".into(), "ABSENT".into()])
            .unwrap_err();
        let message = err.to_string();
        assert!(message.contains("\"ABSENT\" is not set"), "{message}");
        assert!(message.contains("MCP_GATEWAY_SECRET_ABSENT"), "{message}");
        assert!(!message.contains("sekrit"), "{message}");
    }

    #[test]
    fn a_broken_store_is_reported_and_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let secrets = secrets(dir.path(), &[]);
        let store = dir.path().join("config/secrets.toml");
        std::fs::create_dir_all(store.parent().unwrap()).unwrap();
        let broken = "[secrets]\nKEEP = \"value-of-keep\"\nBROKEN = value-not-quoted\n";
        std::fs::write(&store, broken).unwrap();
        let err = secrets.set("NEW", "x").unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("{}:3: ", store.display())),
            "{err}"
        );
        assert!(
            !err.contains("value-not-quoted") && !err.contains("value-of-keep"),
            "{err}"
        );
        assert_eq!(std::fs::read_to_string(&store).unwrap(), broken);
        assert!(secrets.check().is_err());
    }
}
