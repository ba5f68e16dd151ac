//! The user's configuration: global settings, the catalog of servers, the profiles, the active
//! profile, and the secrets.
//!
//! Settings (`config.toml`, edited by hand except for its `[http]` table), catalog and profiles
//! are TOML files under `$XDG_CONFIG_HOME/mcp-gateway/` that people may edit by hand; the active profile is state under `$XDG_STATE_HOME/mcp-gateway/`. [`ConfigStore`] owns
//! them: `mcpctl` changes go through it, each change is validated, written atomically, and only
//! then becomes the configuration in force. Secrets (`secrets`) live apart from all of these.

mod builtin;
mod files;
mod http;
mod kinds;
mod model;
mod mounts;
pub mod remote;
mod run;
mod secrets;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

pub use builtin::builtin;
use files::Stamp;
pub use files::{FileError, read_text, write_private};
pub use http::HttpSettings;
pub use model::{
    Catalog, Config, DEFAULT_PROFILE, Isolation, Profile, Profiles, ServerDef, ServerKind,
    validate_name,
};
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
    #[error(
        "{} was edited by hand and is not in force, and the files do not read cleanly:\n{problems}\nfix them and run mcpctl reload; nothing was changed",
        path.display()
    )]
    EditedOnDisk { path: PathBuf, problems: String },
}

/// What the configuration files hold, read together.
struct Read {
    /// A broken file is taken as empty here.
    config: Config,
    problems: Vec<ConfigError>,
    stamps: Stamps,
}

/// The stamp of each file the configuration in force came from.
#[derive(Debug, Clone, Copy)]
struct Stamps {
    settings: Stamp,
    catalog: Stamp,
    profiles: Stamp,
    active: Stamp,
}

impl Stamps {
    fn get(&mut self, file: File) -> &mut Stamp {
        match file {
            File::Settings => &mut self.settings,
            File::Catalog => &mut self.catalog,
            File::Profiles => &mut self.profiles,
            File::Active => &mut self.active,
        }
    }
}

/// Reads one TOML file and stamps it; a broken one is the type's default and a problem.
fn read_file<T: serde::de::DeserializeOwned + Default>(
    path: &std::path::Path,
    problems: &mut Vec<ConfigError>,
) -> (T, Stamp) {
    let parsed = files::read_text(path).and_then(|text| {
        Ok((
            files::parse_toml(path, text.as_deref())?,
            Stamp::of(text.as_deref()),
        ))
    });
    parsed.unwrap_or_else(|err| {
        problems.push(err.into());
        (T::default(), Stamp::Unread)
    })
}

/// Reads the configuration files: what they hold, with a broken file taken as empty, and every
/// problem found.
fn read(dirs: &Dirs) -> Read {
    let mut problems = Vec::new();
    let (settings, settings_stamp) =
        read_file::<Settings>(&File::Settings.path(dirs), &mut problems);
    let (catalog, catalog_stamp) = read_file::<Catalog>(&File::Catalog.path(dirs), &mut problems);
    let (profiles, profiles_stamp) =
        read_file::<Profiles>(&File::Profiles.path(dirs), &mut problems);
    let (active, active_stamp) = match files::read_text(&File::Active.path(dirs)) {
        Ok(text) => (text.clone(), Stamp::of(text.as_deref())),
        Err(err) => {
            problems.push(err.into());
            (None, Stamp::Unread)
        }
    };
    let active = active
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| DEFAULT_PROFILE.to_owned());
    let mut config = Config {
        settings,
        catalog,
        profiles,
        active,
    };
    // With a file taken as empty, what the whole lacks follows from that file's problem and
    // would only repeat it.
    let whole_known = problems.is_empty();
    if config.profile(&config.active).is_none() {
        if whole_known {
            problems.push(ConfigError::UnknownProfile(config.active.clone()));
        }
        // Serving the default profile beats refusing every session that names no profile. The
        // file keeps its stamp: `mcpctl profile use`, the fix, may overwrite it.
        config.active = DEFAULT_PROFILE.to_owned();
    }
    if whole_known && let Err(err) = config.validate() {
        problems.push(ConfigError::Invalid(err));
    }
    Read {
        config,
        problems,
        stamps: Stamps {
            settings: settings_stamp,
            catalog: catalog_stamp,
            profiles: profiles_stamp,
            active: active_stamp,
        },
    }
}

/// A difference between the files and the configuration in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskProblem {
    pub message: String,
    /// The file does not read cleanly (`PATH:LINE: reason`); otherwise it was only edited and
    /// `mcpctl reload` puts it in force.
    pub broken: bool,
}

/// The configuration in force, and the files behind it.
pub struct ConfigStore {
    dirs: Dirs,
    /// `secrets.toml` beside the other files, `$CREDENTIALS_DIRECTORY` and the environment.
    pub secrets: Arc<Secrets>,
    current: RwLock<Arc<Config>>,
    /// What the files held when `current` was read from or written to them.
    stamps: Mutex<Stamps>,
    /// Serialises read-modify-write cycles so that two concurrent `mcpctl` changes both land.
    writer: Mutex<()>,
    /// The order of changes made through [`ConfigStore::in_turn`]: the order they asked in.
    turn: Arc<tokio::sync::Mutex<()>>,
}

impl ConfigStore {
    /// Loads the files; a broken file is reported and replaced by an empty configuration, so that
    /// the daemon still starts and `mcpctl` can say what is wrong.
    pub fn load(dirs: Dirs) -> (ConfigStore, Vec<ConfigError>) {
        let Read {
            config,
            mut problems,
            stamps,
        } = read(&dirs);
        let secrets = Arc::new(Secrets::from_process(dirs.config.join("secrets.toml")));
        if let Err(err) = secrets.check() {
            problems.push(err.into());
        }
        let store = ConfigStore {
            secrets,
            dirs,
            current: RwLock::new(Arc::new(config)),
            stamps: Mutex::new(stamps),
            writer: Mutex::new(()),
            turn: Arc::default(),
        };
        (store, problems)
    }

    /// Runs `change` (a change of the store, or a reload) on tokio's blocking pool once every
    /// change that asked before it has finished. A change reads and fsyncs files, which a slow
    /// disk makes long, and the daemon's one runtime thread serves every session meanwhile. The
    /// turn is a fair lock taken on the runtime, so changes apply and persist in the order they
    /// arrived (the blocking pool alone would race them for `writer`); the blocking task holds
    /// it until it is done, even when the caller stops waiting.
    pub async fn in_turn<T: Send + 'static>(
        self: &Arc<Self>,
        change: impl FnOnce(&ConfigStore) -> T + Send + 'static,
    ) -> T {
        let turn = Arc::clone(&self.turn).lock_owned().await;
        let store = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let _turn = turn;
            change(&store)
        })
        .await
        .unwrap_or_else(|err| std::panic::resume_unwind(err.into_panic()))
    }

    /// Reads every file again and puts what they hold in force; when any is broken or the whole
    /// is invalid, the configuration in force stays as it was and the problems are returned.
    pub fn reload(&self) -> Result<(), Vec<ConfigError>> {
        let _guard = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let read = read(&self.dirs);
        if !read.problems.is_empty() {
            return Err(read.problems);
        }
        self.put_in_force(read.config, read.stamps);
        Ok(())
    }

    /// What is on disk and not in force, for `status` and `doctor`: the problems of files that
    /// do not read cleanly (a file broken at start included), or the files edited since and
    /// waiting for `mcpctl reload`. Empty when the files are what is in force.
    pub fn problems(&self) -> Vec<DiskProblem> {
        let mut problems = Vec::new();
        let changed = self.changed_on_disk(&self.stamps());
        if !changed.is_empty() {
            let read = read(&self.dirs);
            if read.problems.is_empty() {
                problems.extend(changed.iter().map(|file| DiskProblem {
                    message: format!(
                        "{}: edited since it was read; mcpctl reload puts it in force",
                        file.path(&self.dirs).display()
                    ),
                    broken: false,
                }));
            } else {
                problems.extend(read.problems.iter().map(|err| DiskProblem {
                    message: err.to_string(),
                    broken: true,
                }));
            }
        }
        if let Err(err) = self.secrets.check() {
            problems.push(DiskProblem {
                message: err.to_string(),
                broken: true,
            });
        }
        problems
    }

    fn stamps(&self) -> Stamps {
        *self.stamps.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The files that no longer hold what the configuration in force was read from or wrote.
    fn changed_on_disk(&self, stamps: &Stamps) -> Vec<File> {
        let mut stamps = *stamps;
        File::ALL
            .into_iter()
            .filter(|&file| {
                !stamps
                    .get(file)
                    .unchanged(Stamp::on_disk(&file.path(&self.dirs)))
            })
            .collect()
    }

    fn put_in_force(&self, config: Config, stamps: Stamps) {
        *self.stamps.lock().unwrap_or_else(|e| e.into_inner()) = stamps;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(config);
    }

    /// Where `config.toml` is, for messages that tell the user what to edit.
    pub fn settings_path(&self) -> PathBuf {
        File::Settings.path(&self.dirs)
    }

    /// A snapshot of the configuration in force.
    pub fn get(&self) -> Arc<Config> {
        Arc::clone(&self.current.read().unwrap_or_else(|e| e.into_inner()))
    }

    pub fn add_server(&self, name: &str, def: ServerDef) -> Result<(), ConfigError> {
        validate_name("server", name).map_err(ConfigError::Invalid)?;
        kinds::check(&def).map_err(|err| ConfigError::Invalid(format!("servers.{name}: {err}")))?;
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

    /// Puts `[http]` in `config.toml` (`Some`) or takes it out (`None`), and in force.
    pub fn set_http(&self, http: Option<HttpSettings>) -> Result<(), ConfigError> {
        self.update(|config| {
            config.settings.http = http;
            Ok(vec![File::Settings])
        })
    }

    /// The configuration directory, where the HTTP face keeps its token.
    pub fn config_dir(&self) -> &std::path::Path {
        &self.dirs.config
    }

    /// Applies `change` to a copy, validates it, writes the files it touched, then swaps it in.
    ///
    /// A file edited by hand since it was last read or written is not overwritten with what is
    /// in force: when every file reads cleanly, the files are put in force first (as `reload`
    /// would) and the change applies to them; otherwise a change that would write an edited file
    /// is refused, naming it and `mcpctl reload`.
    fn update(
        &self,
        change: impl FnOnce(&mut Config) -> Result<Vec<File>, ConfigError>,
    ) -> Result<(), ConfigError> {
        let _guard = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let mut base = self.get();
        let mut stamps = self.stamps();
        let mut edited = self.changed_on_disk(&stamps);
        let mut unread = Vec::new();
        if !edited.is_empty() {
            let read = read(&self.dirs);
            if read.problems.is_empty() {
                tracing::info!(
                    "reading the configuration again before changing it: {} changed on disk",
                    edited
                        .iter()
                        .map(|file| file.path(&self.dirs).display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                base = Arc::new(read.config);
                stamps = read.stamps;
                edited.clear();
            } else {
                unread = read.problems;
            }
        }
        let mut config = (*base).clone();
        let touched = change(&mut config)?;
        if let Some(&file) = touched.iter().find(|file| edited.contains(file)) {
            let problems: Vec<String> = unread.iter().map(ToString::to_string).collect();
            return Err(ConfigError::EditedOnDisk {
                path: file.path(&self.dirs),
                problems: problems.join("\n"),
            });
        }
        config.validate().map_err(ConfigError::Invalid)?;
        for file in touched {
            let path = file.path(&self.dirs);
            let text = match file {
                File::Catalog => files::write_toml(&path, &config.catalog)?,
                File::Profiles => files::write_toml(&path, &config.profiles)?,
                File::Active => {
                    let text = format!("{}\n", config.active);
                    files::write_atomic(&path, text.as_bytes())?;
                    text
                }
                File::Settings => http::write(&path, config.settings.http.as_ref())?,
            };
            *stamps.get(file) = Stamp::of(Some(&text));
        }
        self.put_in_force(config, stamps);
        Ok(())
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

/// The files the configuration is read from; `mcpctl` changes all but `config.toml`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum File {
    /// Only its `[http]` table is ever written.
    Settings,
    Catalog,
    Profiles,
    Active,
}

impl File {
    const ALL: [File; 4] = [File::Settings, File::Catalog, File::Profiles, File::Active];

    fn path(self, dirs: &Dirs) -> PathBuf {
        match self {
            File::Settings => dirs.config.join("config.toml"),
            File::Catalog => dirs.config.join("catalog.toml"),
            File::Profiles => dirs.config.join("profiles.toml"),
            File::Active => dirs.state.join("active-profile"),
        }
    }
}

#[cfg(test)]
mod tests;
