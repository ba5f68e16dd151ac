//! The user's configuration: global settings, the catalog of servers, the profiles, the active
//! profile, and the secrets.
//!
//! Settings (`config.toml`, only edited by hand), catalog and profiles are TOML files under `$XDG_CONFIG_HOME/mcp-gateway/` that people may edit
//! by hand; the active profile is state under `$XDG_STATE_HOME/mcp-gateway/`. [`ConfigStore`] owns
//! them: `mcpctl` changes go through it, each change is validated, written atomically, and only
//! then becomes the configuration in force. Secrets (`secrets`) live apart from all of these.

mod builtin;
mod files;
mod model;
mod mounts;
mod run;
mod secrets;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

pub use builtin::builtin;
pub use files::{FileError, write_private};
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
    #[error("no server named {0:?} in the catalog")]
    UnknownServer(String),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Secret(#[from] SecretError),
}

/// Reads the configuration files: what they hold, with a broken file taken as empty, and every
/// problem found.
fn read(dirs: &Dirs) -> (Config, Vec<ConfigError>) {
    let mut problems = Vec::new();
    let settings =
        files::read_toml::<Settings>(&dirs.config.join("config.toml")).unwrap_or_else(|err| {
            problems.push(err.into());
            Settings::default()
        });
    let catalog =
        files::read_toml::<Catalog>(&dirs.config.join("catalog.toml")).unwrap_or_else(|err| {
            problems.push(err.into());
            Catalog::default()
        });
    let profiles =
        files::read_toml::<Profiles>(&dirs.config.join("profiles.toml")).unwrap_or_else(|err| {
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
    (config, problems)
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
        let (config, mut problems) = read(&dirs);
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

    /// Reads every file again and puts what they hold in force; when any is broken or the whole
    /// is invalid, the configuration in force stays as it was and the problems are returned.
    pub fn reload(&self) -> Result<(), Vec<ConfigError>> {
        let _guard = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let (config, problems) = read(&self.dirs);
        if !problems.is_empty() {
            return Err(problems);
        }
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(config);
        Ok(())
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
            defined_profile(config, name)?.tools = allow;
            Ok(vec![File::Profiles])
        })
    }

    /// Prefixes every tool of a defined profile (`true`) or only colliding ones.
    pub fn set_profile_prefix(&self, name: &str, prefix: bool) -> Result<(), ConfigError> {
        self.update(|config| {
            defined_profile(config, name)?.prefix = prefix;
            Ok(vec![File::Profiles])
        })
    }

    /// Deletes a defined profile with its configuration values. The active profile is refused:
    /// sessions that name no profile would be left without one.
    pub fn remove_profile(&self, name: &str) -> Result<(), ConfigError> {
        self.update(|config| {
            if config.active == name {
                return Err(ConfigError::Invalid(format!(
                    "profile {name:?} is the active one; make another active first (mcpctl profile use OTHER)"
                )));
            }
            defined_profile(config, name)?;
            config.profiles.profiles.remove(name);
            config.profiles.config.remove(name);
            Ok(vec![File::Profiles])
        })
    }

    /// Adds servers to a defined profile; those it already has are left where they are. Returns
    /// the servers actually added.
    pub fn add_profile_servers(
        &self,
        name: &str,
        servers: &[String],
    ) -> Result<Vec<String>, ConfigError> {
        let mut added = Vec::new();
        self.update(|config| {
            let profile = defined_profile(config, name)?;
            for server in servers {
                if !profile.servers.contains(server) {
                    profile.servers.push(server.clone());
                    added.push(server.clone());
                }
            }
            Ok(vec![File::Profiles])
        })?;
        Ok(added)
    }

    /// Takes servers out of a defined profile, with the allow-list rules and configuration
    /// values that name them.
    pub fn remove_profile_servers(
        &self,
        name: &str,
        servers: &[String],
    ) -> Result<(), ConfigError> {
        self.update(|config| {
            let profile = defined_profile(config, name)?;
            if let Some(absent) = servers.iter().find(|s| !profile.servers.contains(s)) {
                return Err(ConfigError::Invalid(format!(
                    "profile {name:?} has no server {absent:?}"
                )));
            }
            drop_servers(config, name, servers);
            Ok(vec![File::Profiles])
        })
    }

    /// Sets (`Some`) or unsets (`None`) the value `profile` gives `server` as environment variable
    /// `key`. Values that look like secrets are refused: profiles.toml is no place for them.
    pub fn set_profile_config(
        &self,
        name: &str,
        server: &str,
        key: &str,
        value: Option<&str>,
    ) -> Result<(), ConfigError> {
        if let Some(value) = value
            && looks_secret(key, value)
        {
            return Err(ConfigError::Invalid(format!(
                "{server}.{key} looks like a secret; store it with mcpctl secret set {key} and give it to the server with mcpctl server add {server} ... --secret {key}"
            )));
        }
        self.update(|config| {
            defined_profile(config, name)?;
            let servers = config.profiles.config.entry(name.to_owned()).or_default();
            match value {
                Some(value) => {
                    servers
                        .entry(server.to_owned())
                        .or_default()
                        .insert(key.to_owned(), value.to_owned());
                }
                None => {
                    let removed = servers
                        .get_mut(server)
                        .and_then(|values| values.remove(key));
                    if removed.is_none() {
                        return Err(ConfigError::Invalid(format!(
                            "profile {name:?} sets no {server}.{key}"
                        )));
                    }
                }
            }
            prune_config(config);
            Ok(vec![File::Profiles])
        })
    }

    /// Removes a server from the catalog. While defined profiles name it, it is refused unless
    /// `force`, which takes it out of them too. Returns the profiles it was taken out of.
    pub fn remove_server(&self, name: &str, force: bool) -> Result<Vec<String>, ConfigError> {
        let mut users = Vec::new();
        self.update(|config| {
            if !config.catalog.servers.contains_key(name) {
                return Err(ConfigError::UnknownServer(name.to_owned()));
            }
            users = config.profiles_naming(name);
            if !users.is_empty() && !force {
                return Err(ConfigError::Invalid(format!(
                    "server {name:?} is in profiles {}; remove it from them (mcpctl profile remove PROFILE {name}) or use --force",
                    users.join(", ")
                )));
            }
            for profile in &users {
                drop_servers(config, profile, &[name.to_owned()]);
            }
            config.catalog.servers.remove(name);
            let mut touched = vec![File::Catalog];
            if !users.is_empty() {
                touched.push(File::Profiles);
            }
            Ok(touched)
        })?;
        Ok(users)
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

/// A profile defined in the file, for changes; the built-in `default` must be created first.
fn defined_profile<'a>(config: &'a mut Config, name: &str) -> Result<&'a mut Profile, ConfigError> {
    config.profiles.profiles.get_mut(name).ok_or_else(|| {
        if name == DEFAULT_PROFILE {
            ConfigError::Invalid(format!(
                "profile {name:?} is built in; create it with mcpctl profile create first"
            ))
        } else {
            ConfigError::UnknownProfile(name.to_owned())
        }
    })
}

/// Takes `servers` out of `profile`: its list, its allow-list rules and its values.
fn drop_servers(config: &mut Config, profile: &str, servers: &[String]) {
    if let Some(p) = config.profiles.profiles.get_mut(profile) {
        p.servers.retain(|s| !servers.contains(s));
        p.tools.retain(|rule| {
            !rule
                .split_once('.')
                .is_some_and(|(server, _)| servers.iter().any(|s| s == server))
        });
    }
    if let Some(values) = config.profiles.config.get_mut(profile) {
        values.retain(|server, _| !servers.contains(server));
    }
    prune_config(config);
}

/// Drops empty tables of values, so the file holds no `[config.p.s]` headers with nothing in them.
fn prune_config(config: &mut Config) {
    for servers in config.profiles.config.values_mut() {
        servers.retain(|_, values| !values.is_empty());
    }
    config
        .profiles
        .config
        .retain(|_, servers| !servers.is_empty());
}

/// Whether a configuration value looks like a credential, by its key's name or by the secret
/// scanner's rules on its value.
fn looks_secret(key: &str, value: &str) -> bool {
    const WORDS: [&str; 8] = [
        "TOKEN",
        "SECRET",
        "PASSWORD",
        "PASSWD",
        "API_KEY",
        "APIKEY",
        "PRIVATE_KEY",
        "CREDENTIAL",
    ];
    let key = key.to_ascii_uppercase();
    WORDS.iter().any(|word| key.contains(word))
        || !crate::scan::Scanner::default()
            .find(&serde_json::Value::from(value))
            .is_empty()
}

#[derive(Debug, Clone, Copy)]
enum File {
    Catalog,
    Profiles,
    Active,
}

#[cfg(test)]
mod tests;
