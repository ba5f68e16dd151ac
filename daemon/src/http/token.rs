//! The HTTP face's bearer token: 32 random bytes as hex in a 0600 file under the configuration
//! directory, made on first need, replaced on request, and compared in constant time.

use std::io::Read;
use std::path::{Path, PathBuf};

use subtle::ConstantTimeEq;

use crate::config::FileError;

/// The token file's name under the configuration directory.
pub const FILE_NAME: &str = "http-token";

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("cannot read the kernel's random source: {0}")]
    Random(std::io::Error),
    #[error(transparent)]
    File(#[from] FileError),
    #[error("{0}: the token file holds no token; run mcpctl http token --rotate")]
    Empty(PathBuf),
}

/// `len` bytes from the kernel's random source, as lowercase hex.
pub fn random_hex(len: usize) -> Result<String, TokenError> {
    let mut bytes = vec![0u8; len];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(TokenError::Random)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The token at `path`, created when the file does not exist yet.
pub fn load_or_create(path: &Path) -> Result<String, TokenError> {
    match crate::config::read_text(path)? {
        Some(text) if !text.trim().is_empty() => Ok(text.trim().to_owned()),
        Some(_) => Err(TokenError::Empty(path.to_owned())),
        None => rotate(path),
    }
}

/// Writes a new token to `path` and returns it.
pub fn rotate(path: &Path) -> Result<String, TokenError> {
    let token = random_hex(32)?;
    crate::config::write_private(path, format!("{token}\n").as_bytes())?;
    Ok(token)
}

/// Whether an `Authorization` header value carries `token`, without an early exit that would
/// tell a guesser how much of it was right.
pub fn matches(header: Option<&[u8]>, token: &str) -> bool {
    let Some(presented) = header.and_then(|h| strip_bearer(h)) else {
        return false;
    };
    presented.ct_eq(token.as_bytes()).into()
}

/// The credentials of a `Bearer` authorization; the scheme is case-insensitive (RFC 9110).
fn strip_bearer(header: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = header.split_at_checked(7)?;
    scheme
        .eq_ignore_ascii_case(b"bearer ")
        .then(|| rest.trim_ascii())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_bearer_token_matches() {
        let token = "abc123";
        assert!(matches(Some(b"Bearer abc123"), token));
        assert!(matches(Some(b"bearer  abc123 "), token));
        assert!(!matches(Some(b"Bearer abc12"), token));
        assert!(!matches(Some(b"Bearer abc1234"), token));
        assert!(!matches(Some(b"Basic abc123"), token));
        assert!(!matches(Some(b"abc123"), token));
        assert!(!matches(None, token));
    }

    #[test]
    fn a_token_is_created_private_once_and_rotated_on_request() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config").join(FILE_NAME);
        let first = load_or_create(&path).unwrap();
        assert_eq!(first.len(), 64);
        assert!(first.bytes().all(|b| b.is_ascii_hexdigit()));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(load_or_create(&path).unwrap(), first);
        let second = rotate(&path).unwrap();
        assert_ne!(second, first);
        assert_eq!(load_or_create(&path).unwrap(), second);
    }
}
