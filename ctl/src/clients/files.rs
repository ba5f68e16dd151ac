//! Reading and replacing a client's configuration file safely.
//!
//! - Atomic: the new text goes to a temporary file in the same directory, is fsynced and renamed
//!   over the old one, and the directory is fsynced; a crash leaves the old file or the new one.
//! - The file keeps its permission bits; a file mcpctl creates is private (0600), in directories
//!   it creates 0700, since clients' configurations often end up holding tokens.
//! - A symbolic link (dotfiles kept in a repository) is followed: the file it points to is
//!   replaced, and the link stays.
//! - One backup, `FILE.mcp-gateway.bak` beside the file, holds the file as it was before mcpctl
//!   first changed it. It is written once and never overwritten, so connecting and disconnecting
//!   repeatedly cannot replace the user's original with a file mcpctl wrote.
//! - Clients rewrite their own files (Claude Code saves `~/.claude.json` often): just before the
//!   rename, the file is read again, and if it is no longer what the edit started from, nothing is
//!   replaced and the caller starts over.

use std::fs::{self, DirBuilder, OpenOptions, Permissions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::ClientError;

/// The mode of a configuration file mcpctl creates.
const NEW_FILE_MODE: u32 = 0o600;

pub enum Written {
    Done {
        backup: Option<PathBuf>,
    },
    /// The file changed since it was read; nothing was written.
    Raced,
}

/// The file's text, or `None` when it does not exist.
pub fn read(path: &Path) -> Result<Option<String>, ClientError> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(err) if err.kind() == ErrorKind::NotFound => Ok(None),
        Err(source) => Err(io(path, source)),
    }
}

/// The backup of the file at `path`, if one exists.
pub fn existing_backup(path: &Path) -> Option<PathBuf> {
    let backup = backup_path(&real_path(path).ok()?);
    backup.exists().then_some(backup)
}

/// Replaces the file at `path`, which held `original` when it was read (`None`: did not exist),
/// with `text`.
pub fn write(path: &Path, original: Option<&str>, text: &str) -> Result<Written, ClientError> {
    let target = real_path(path)?;
    let dir = target.parent().unwrap_or(Path::new("/"));
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| io(dir, source))?;
    let mode = match original {
        Some(_) => match fs::metadata(&target) {
            Ok(meta) => meta.permissions().mode() & 0o7777,
            Err(err) if err.kind() == ErrorKind::NotFound => return Ok(Written::Raced),
            Err(source) => return Err(io(&target, source)),
        },
        None => NEW_FILE_MODE,
    };
    let temp = sibling(&target, |name| {
        format!(".{name}.mcp-gateway-{}.tmp", std::process::id())
    });
    write_synced(&temp, text, mode).inspect_err(|_| {
        let _ = fs::remove_file(&temp);
    })?;
    let replaced = (|| {
        if read(&target)?.as_deref() != original {
            return Ok(Written::Raced);
        }
        let backup = backup_path(&target);
        let backup = match original {
            Some(original) if !backup.exists() => {
                write_synced(&backup, original, mode)?;
                Some(backup)
            }
            _ => backup.exists().then_some(backup),
        };
        fs::rename(&temp, &target).map_err(|source| io(&target, source))?;
        fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|source| io(dir, source))?;
        Ok(Written::Done { backup })
    })();
    if !matches!(replaced, Ok(Written::Done { .. })) {
        let _ = fs::remove_file(&temp);
    }
    replaced
}

/// Writes a new file with exactly `mode` (not reduced by the umask) and fsyncs it.
fn write_synced(path: &Path, text: &str, mode: u32) -> Result<(), ClientError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|source| io(path, source))?;
    file.set_permissions(Permissions::from_mode(mode))
        .and_then(|()| file.write_all(text.as_bytes()))
        .and_then(|()| file.sync_all())
        .map_err(|source| io(path, source))
}

/// The file a path names, through any symbolic links; the path itself when it does not exist.
fn real_path(path: &Path) -> Result<PathBuf, ClientError> {
    match fs::canonicalize(path) {
        Ok(real) => Ok(real),
        Err(err) if err.kind() == ErrorKind::NotFound => {
            if path.is_symlink() {
                return Err(io(
                    path,
                    std::io::Error::new(
                        ErrorKind::NotFound,
                        "a symbolic link to a file that does not exist",
                    ),
                ));
            }
            Ok(path.to_owned())
        }
        Err(source) => Err(io(path, source)),
    }
}

fn backup_path(target: &Path) -> PathBuf {
    sibling(target, |name| format!("{name}.mcp-gateway.bak"))
}

fn sibling(path: &Path, name: impl FnOnce(&str) -> String) -> PathBuf {
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(name(&file_name))
}

fn io(path: &Path, source: std::io::Error) -> ClientError {
    ClientError::Io {
        path: path.to_owned(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn a_new_file_is_private_and_has_no_backup() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new/dir/config.json");
        let Written::Done { backup } = write(&path, None, "{}\n").unwrap() else {
            panic!("raced");
        };
        assert_eq!(backup, None);
        assert_eq!(fs::read_to_string(&path).unwrap(), "{}\n");
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);
    }

    #[test]
    fn the_first_backup_stays_and_the_mode_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        fs::write(&path, "original").unwrap();
        fs::set_permissions(&path, Permissions::from_mode(0o640)).unwrap();
        let Written::Done { backup } = write(&path, Some("original"), "first").unwrap() else {
            panic!("raced");
        };
        let backup = backup.unwrap();
        assert_eq!(backup, dir.path().join("config.json.mcp-gateway.bak"));
        write(&path, Some("first"), "second").unwrap();
        assert_eq!(fs::read_to_string(&backup).unwrap(), "original");
        assert_eq!(fs::read_to_string(&path).unwrap(), "second");
        assert_eq!(mode(&path), 0o640);
        assert_eq!(mode(&backup), 0o640);
        assert_eq!(existing_backup(&path), Some(backup));
        let leftovers: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|n| n.to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[test]
    fn a_file_changed_since_it_was_read_is_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        fs::write(&path, "changed by the client").unwrap();
        assert!(matches!(
            write(&path, Some("as read"), "edited").unwrap(),
            Written::Raced
        ));
        assert_eq!(fs::read_to_string(&path).unwrap(), "changed by the client");
        assert_eq!(existing_backup(&path), None);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_symbolic_link_is_followed_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("dotfiles/settings.json");
        fs::create_dir_all(real.parent().unwrap()).unwrap();
        fs::write(&real, "old").unwrap();
        let link = dir.path().join("settings.json");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        write(&link, Some("old"), "new").unwrap();
        assert!(link.is_symlink());
        assert_eq!(fs::read_to_string(&real).unwrap(), "new");
        assert!(
            dir.path()
                .join("dotfiles/settings.json.mcp-gateway.bak")
                .exists()
        );
        let dangling = dir.path().join("dangling.json");
        std::os::unix::fs::symlink(dir.path().join("absent"), &dangling).unwrap();
        assert!(write(&dangling, None, "x").is_err());
    }
}
