//! `mcpctl client`: points AI clients at mcp-gateway by editing their own configuration files.
//! This needs no daemon: the files belong to the clients, not to mcp-gatewayd.
//!
//! Each known client (`table`) keeps its MCP servers in one file and format: JSON or JSONC
//! (`json`), TOML (`toml_file`) or YAML (`yaml`). An edit changes only the entry named
//! [`ENTRY_NAME`] and keeps the rest of the text as it was, comments and key order included. Before
//! anything is written, the edited text is parsed again and compared with the original: unless the
//! only difference is our entry, the file is left alone (`document`). Writing is atomic, keeps the
//! file's mode, and keeps one backup of the file as it was before mcpctl first changed it
//! (`files`).

mod document;
mod files;
mod json;
mod table;
mod toml_file;
mod yaml;

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::cli::ClientName;
pub use document::Launch;
pub use table::Client;

/// The name of the entry mcpctl writes into every client's configuration.
pub const ENTRY_NAME: &str = "mcp-gateway";

/// Where a client keeps its servers, under one top-level key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    /// An object keyed by server name: `KEY.mcp-gateway`.
    Map(&'static str),
    /// A list of objects that carry their own `name`: the item of `KEY` named `mcp-gateway`.
    NamedList(&'static str),
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A file that does not parse; `PATH:LINE: reason` when the parser knows the line.
    #[error("{}{}: {reason}", path.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
    Syntax {
        path: PathBuf,
        line: Option<usize>,
        reason: String,
    },
    /// A file that parses but is not shaped as the client expects (say, `mcpServers` is a list).
    #[error("{}: {reason}", path.display())]
    Shape { path: PathBuf, reason: String },
    /// The edit would have changed more than our entry; a bug, caught before writing.
    #[error(
        "{}: editing this file would change more than the {ENTRY_NAME} entry ({reason}); it is left untouched",
        path.display()
    )]
    Unsafe { path: PathBuf, reason: String },
    #[error(
        "{}: the file kept changing while mcpctl edited it; close the client and try again",
        path.display()
    )]
    Busy { path: PathBuf },
    #[error("cannot find mcp-shim next to {} or on PATH; install it first", exe.display())]
    NoShim { exe: PathBuf },
    #[error("{0}")]
    Environment(String),
}

/// One client's configuration as found on disk.
#[derive(Debug)]
pub struct Status {
    pub client: Client,
    pub path: PathBuf,
    pub exists: bool,
    /// Our entry, when the file has one.
    pub connected: Option<Launch>,
    /// Why the file could not be read, when it could not.
    pub error: Option<ClientError>,
}

/// What a connect or disconnect did.
#[derive(Debug)]
pub struct Change {
    pub path: PathBuf,
    /// False when the file already was as asked, and was not written.
    pub changed: bool,
    /// The backup of the file as it was before mcpctl first changed it, if there is one.
    pub backup: Option<PathBuf>,
}

/// The environment that decides where clients keep their files.
pub struct Env {
    pub home: PathBuf,
    /// `$XDG_CONFIG_HOME`, or `~/.config`.
    pub config_home: PathBuf,
    var: fn(&str) -> Option<PathBuf>,
}

impl Env {
    pub fn from_process() -> Result<Env, ClientError> {
        let home = absolute_var("HOME").ok_or_else(|| {
            ClientError::Environment("HOME is not set to an absolute path".into())
        })?;
        let config_home = absolute_var("XDG_CONFIG_HOME").unwrap_or_else(|| home.join(".config"));
        Ok(Env {
            home,
            config_home,
            var: absolute_var,
        })
    }

    /// An environment variable holding an absolute path, if set.
    fn var(&self, name: &str) -> Option<PathBuf> {
        (self.var)(name)
    }
}

/// The XDG specification says relative paths in these variables are invalid and to be ignored.
fn absolute_var(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .map(PathBuf::from)
        .filter(|path| path.is_absolute())
}

pub fn client(name: ClientName) -> Client {
    table::get(name)
}

/// Every known client, in the command line's order.
pub fn all() -> impl Iterator<Item = Client> {
    table::all()
}

/// Reads a client's file and reports whether mcp-gateway is in it.
pub fn status(client: Client, env: &Env) -> Status {
    let path = client.path(env);
    let mut status = Status {
        client,
        path: path.clone(),
        exists: false,
        connected: None,
        error: None,
    };
    match files::read(&path).and_then(|text| match text {
        Some(text) => Ok(Some(client.parse(&path, &text)?)),
        None => Ok(None),
    }) {
        Ok(None) => {}
        Ok(Some(doc)) => {
            status.exists = true;
            match document::find(&doc, client.location()) {
                Ok(entry) => status.connected = entry.map(Launch::of),
                Err(reason) => status.error = Some(ClientError::Shape { path, reason }),
            }
        }
        Err(err) => {
            status.exists = !matches!(err, ClientError::Io { .. });
            status.error = Some(err);
        }
    }
    status
}

/// Writes our entry, launching `launch`, into the client's file.
pub fn connect(client: &Client, env: &Env, launch: &Launch) -> Result<Change, ClientError> {
    let entry = client.entry(launch);
    edit(client, env, |text, doc| {
        if document::find(doc, client.location())? == Some(&entry) {
            return Ok(None);
        }
        Ok(Some((client.set(text, &entry)?, Some(entry.clone()))))
    })
}

/// Removes our entry from the client's file, if it is there.
pub fn disconnect(client: &Client, env: &Env) -> Result<Change, ClientError> {
    edit(client, env, |text, doc| {
        if document::find(doc, client.location())?.is_none() {
            return Ok(None);
        }
        Ok(Some((client.remove(text)?, None)))
    })
}

/// The edit an operation asks for: the new text and the entry it must hold, or `None` when the
/// file is already as asked.
type Edit = Option<(String, Option<Value>)>;

/// Reads, edits, checks and writes the client's file. A file that changes between the read and
/// the write (the client itself saving it) is read and edited again, a few times at most.
fn edit(
    client: &Client,
    env: &Env,
    mut change: impl FnMut(&str, &Value) -> Result<Edit, String>,
) -> Result<Change, ClientError> {
    let path = client.path(env);
    for _ in 0..3 {
        let original = files::read(&path)?;
        let text = original.as_deref().unwrap_or(client.skeleton());
        let before = client.parse(&path, text)?;
        let shape = |reason| ClientError::Shape {
            path: path.clone(),
            reason,
        };
        let Some((edited, entry)) = change(text, &before).map_err(shape)? else {
            return Ok(Change {
                backup: files::existing_backup(&path),
                path,
                changed: false,
            });
        };
        let after = client
            .parse(&path, &edited)
            .map_err(|err| ClientError::Unsafe {
                path: path.clone(),
                reason: format!("the result does not parse: {err}"),
            })?;
        document::check(&before, &after, client.location(), entry.as_ref()).map_err(|reason| {
            ClientError::Unsafe {
                path: path.clone(),
                reason,
            }
        })?;
        match files::write(&path, original.as_deref(), &edited)? {
            files::Written::Done { backup } => {
                return Ok(Change {
                    path,
                    changed: true,
                    backup,
                });
            }
            files::Written::Raced => continue,
        }
    }
    Err(ClientError::Busy { path })
}

/// The `mcp-shim` a client should launch: the one next to this `mcpctl`, else the first on `PATH`.
/// Its absolute path is written, so that clients started without the user's `PATH` find it.
pub fn find_shim() -> Result<PathBuf, ClientError> {
    let exe = std::env::current_exe().map_err(|source| ClientError::Io {
        path: PathBuf::from("/proc/self/exe"),
        source,
    })?;
    find_program(&exe, "mcp-shim").ok_or(ClientError::NoShim { exe })
}

/// The program `name` next to `exe` (this `mcpctl`), else the first executable `name` on `PATH`,
/// as an absolute path.
pub fn find_program(exe: &Path, name: &str) -> Option<PathBuf> {
    let beside = exe.with_file_name(name);
    if is_executable(&beside) {
        return Some(beside);
    }
    let cwd = std::env::current_dir().unwrap_or_default();
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .filter(|dir| !dir.as_os_str().is_empty())
        .map(|dir| cwd.join(dir).join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}
