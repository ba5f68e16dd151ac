//! Reading and writing configuration files: atomic writes, and parse errors that name the file,
//! the line and the reason.

use std::fs::Permissions;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Formatted as `PATH:LINE: reason`, the way compilers report, so editors can jump to it.
    #[error("{path}:{line}: {reason}")]
    Parse {
        path: PathBuf,
        line: usize,
        reason: String,
    },
}

/// Reads a file that may not exist yet.
pub fn read_text(path: &Path) -> Result<Option<String>, FileError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(FileError::Io {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Parses a TOML file; a missing file is the type's default.
pub fn read_toml<T: DeserializeOwned + Default>(path: &Path) -> Result<T, FileError> {
    parse_toml(path, read_text(path)?.as_deref())
}

/// Parses the text of the TOML file at `path` (`None`: the file is missing, which is the type's
/// default).
pub fn parse_toml<T: DeserializeOwned + Default>(
    path: &Path,
    text: Option<&str>,
) -> Result<T, FileError> {
    let Some(text) = text else {
        return Ok(T::default());
    };
    toml::from_str(text).map_err(|err| {
        let line = err
            .span()
            .map_or(1, |span| 1 + text[..span.start].matches('\n').count());
        FileError::Parse {
            path: path.to_owned(),
            line,
            reason: err.message().to_owned(),
        }
    })
}

/// Writes `value` as TOML and returns the text written.
pub fn write_toml<T: Serialize>(path: &Path, value: &T) -> Result<String, FileError> {
    let text = toml::to_string_pretty(value).map_err(|err| FileError::Parse {
        path: path.to_owned(),
        line: 0,
        reason: err.to_string(),
    })?;
    write_atomic(path, text.as_bytes())?;
    Ok(text)
}

/// What a file held when the configuration in force was read from it or written to it, to
/// notice an edit by hand since. The content's length and hash, not its modification time: an
/// editor can save twice within the time stamp's resolution, and the files are small.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stamp {
    Absent,
    Content {
        len: usize,
        hash: u64,
    },
    /// The file could not be read or parsed, so nothing in force came from it: any content on
    /// disk differs from what is in force.
    Unread,
}

impl Stamp {
    pub fn of(text: Option<&str>) -> Stamp {
        use std::hash::{Hash, Hasher};
        match text {
            None => Stamp::Absent,
            Some(text) => {
                // SipHash with fixed keys: the same text always gives the same hash.
                let mut hasher = std::hash::DefaultHasher::new();
                text.hash(&mut hasher);
                Stamp::Content {
                    len: text.len(),
                    hash: hasher.finish(),
                }
            }
        }
    }

    /// Whether a file stamped `self` when it was read still holds that: never for a file that
    /// could not be read, on either side.
    pub fn unchanged(self, now: Stamp) -> bool {
        self != Stamp::Unread && self == now
    }

    /// The stamp of what `path` holds now.
    pub fn on_disk(path: &Path) -> Stamp {
        read_text(path).map_or(Stamp::Unread, |text| Stamp::of(text.as_deref()))
    }
}

/// Writes through a temporary file in the same directory, fsynced, then renamed over the target,
/// and fsyncs the directory: a crash at any point leaves either the old or the new file.
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<(), FileError> {
    replace(path, contents, false)
}

/// [`write_atomic`] for what only the user may read: the file is 0600 from its first byte and its
/// directory is made 0700.
pub fn write_private(path: &Path, contents: &[u8]) -> Result<(), FileError> {
    replace(path, contents, true)
}

fn replace(path: &Path, contents: &[u8], private: bool) -> Result<(), FileError> {
    let io_err = |source| FileError::Io {
        path: path.to_owned(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io_err)?;
    if private {
        std::fs::set_permissions(dir, Permissions::from_mode(0o700)).map_err(io_err)?;
    }
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = dir.join(format!(".{file_name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        if private {
            options.mode(0o600);
        }
        let mut file = options.open(&temp)?;
        if private {
            // A temporary file left by a crash keeps its mode through `truncate`.
            file.set_permissions(Permissions::from_mode(0o600))?;
        }
        file.write_all(contents)?;
        file.sync_all()?;
        std::fs::rename(&temp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result.map_err(io_err)
}
