//! The user's configuration: global settings, the catalog of servers, the profiles, the active
//! profile, and the secrets.
//!
//! Settings (`config.toml`, only edited by hand), catalog and profiles are TOML files under `$XDG_CONFIG_HOME/mcp-gateway/` that people may edit
//! by hand; the active profile is state under `$XDG_STATE_HOME/mcp-gateway/`. [`ConfigStore`] owns
//! them: `mcpctl` changes go through it, each change is validated, written atomically, and only
//! then becomes the configuration in force. Secrets (`secrets`) live apart from all of these.

mod files;
mod model;
mod mounts;
mod run;
mod secrets;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

pub use files::FileError;
pub use model::{Catalog, Config, DEFAULT_PROFILE, Profile, Profiles, ServerDef, validate_name};
pub use run::{Cpus, Memory, Mount, Network, RunSettings, Settings};
pub use secrets::{SecretError, Secrets, Source as SecretSource};

use crate::dirs::Dirs;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(transparent)]
    File(#[from] FileError),
    #[error("no profile named {0:?}")]
    UnknownProfile(String),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Secret(#[from] SecretError),
}

/// The configuration in force, and the files behind it.
pub struct ConfigStore {
    dirs: Dirs,
    /// `secrets.toml` beside the other files, `$CREDENTIALS_DIRECTORY` and the environment.
    pub secrets: Arc<Secrets>,
    current: RwLock<Arc<Config>>,
    /// Serialises read-modify-write cycles so that two concurrent `mcpctl` changes both land.
    writer: Mutex<()>,
}

impl ConfigStore {
    /// Loads the files; a broken file is reported and replaced by an empty configuration, so that
    /// the daemon still starts and `mcpctl` can say what is wrong.
    pub fn load(dirs: Dirs) -> (ConfigStore, Vec<ConfigError>) {
        let mut problems = Vec::new();
        let settings = files::read_toml::<Settings>(&dirs.config.join("config.toml"))
            .unwrap_or_else(|err| {
                problems.push(err.into());
                Settings::default()
            });
        let catalog = files::read_toml::<Catalog>(&dirs.config.join("catalog.toml"))
            .unwrap_or_else(|err| {
                problems.push(err.into());
                Catalog::default()
            });
        let profiles = files::read_toml::<Profiles>(&dirs.config.join("profiles.toml"))
            .unwrap_or_else(|err| {
                problems.push(err.into());
                Profiles::default()
            });
        let active = files::read_text(&dirs.state.join("active-profile"))
            .unwrap_or_else(|err| {
                problems.push(err.into());
                None
            })
            .map(|name| name.trim().to_owned())
            .filter(|name| !name.is_empty())
            .unwrap_or_else(|| DEFAULT_PROFILE.to_owned());
        let mut config = Config {
            settings,
            catalog,
            profiles,
            active,
        };
        if config.profile(&config.active).is_none() {
            problems.push(ConfigError::UnknownProfile(config.active.clone()));
            // Serving the default profile beats refusing every session that names no profile.
            config.active = DEFAULT_PROFILE.to_owned();
        }
        if let Err(err) = config.validate() {
            problems.push(ConfigError::Invalid(err));
        }
        let secrets = Arc::new(Secrets::from_process(dirs.config.join("secrets.toml")));
        if let Err(err) = secrets.check() {
            problems.push(err.into());
        }
        let store = ConfigStore {
            secrets,
            dirs,
            current: RwLock::new(Arc::new(config)),
            writer: Mutex::new(()),
        };
        (store, problems)
    }

    /// A snapshot of the configuration in force.
    pub fn get(&self) -> Arc<Config> {
        Arc::clone(&self.current.read().unwrap_or_else(|e| e.into_inner()))
    }

    pub fn add_server(&self, name: &str, def: ServerDef) -> Result<(), ConfigError> {
        validate_name("server", name).map_err(ConfigError::Invalid)?;
        if def.image.trim().is_empty() {
            return Err(ConfigError::Invalid("the image must not be empty".into()));
        }
        self.update(|config| {
            config.catalog.servers.insert(name.to_owned(), def);
            Ok(vec![File::Catalog])
        })
    }

    pub fn create_profile(&self, name: &str, servers: Vec<String>) -> Result<(), ConfigError> {
        validate_name("profile", name).map_err(ConfigError::Invalid)?;
        self.update(|config| {
            if config.profiles.profiles.contains_key(name) {
                return Err(ConfigError::Invalid(format!(
                    "profile {name:?} already exists"
                )));
            }
            config.profiles.profiles.insert(
                name.to_owned(),
                Profile {
                    servers,
                    prefix: false,
                    tools: Vec::new(),
                    scan: Default::default(),
                    audit_arguments: false,
                },
            );
            Ok(vec![File::Profiles])
        })
    }

    /// Replaces a defined profile's tool allow-list.
    pub fn set_profile_tools(&self, name: &str, allow: Vec<String>) -> Result<(), ConfigError> {
        self.update(|config| {
            let profile = config.profiles.profiles.get_mut(name).ok_or_else(|| {
                if name == DEFAULT_PROFILE {
                    ConfigError::Invalid(format!(
                        "profile {name:?} is built in; create it with mcpctl profile create first"
                    ))
                } else {
                    ConfigError::UnknownProfile(name.to_owned())
                }
            })?;
            profile.tools = allow;
            Ok(vec![File::Profiles])
        })
    }

    pub fn use_profile(&self, name: &str) -> Result<(), ConfigError> {
        self.update(|config| {
            if config.profile(name).is_none() {
                return Err(ConfigError::UnknownProfile(name.to_owned()));
            }
            config.active = name.to_owned();
            Ok(vec![File::Active])
        })
    }

    /// Applies `change` to a copy, validates it, writes the files it touched, then swaps it in.
    fn update(
        &self,
        change: impl FnOnce(&mut Config) -> Result<Vec<File>, ConfigError>,
    ) -> Result<(), ConfigError> {
        let _guard = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let mut config = (*self.get()).clone();
        let touched = change(&mut config)?;
        config.validate().map_err(ConfigError::Invalid)?;
        for file in touched {
            match file {
                File::Catalog => files::write_toml(&self.path(file), &config.catalog)?,
                File::Profiles => files::write_toml(&self.path(file), &config.profiles)?,
                File::Active => files::write_atomic(
                    &self.path(file),
                    format!("{}\n", config.active).as_bytes(),
                )?,
            }
        }
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(config);
        Ok(())
    }

    fn path(&self, file: File) -> PathBuf {
        match file {
            File::Catalog => self.dirs.config.join("catalog.toml"),
            File::Profiles => self.dirs.config.join("profiles.toml"),
            File::Active => self.dirs.state.join("active-profile"),
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum File {
    Catalog,
    Profiles,
    Active,
}

#[cfg(test)]
mod tests;
