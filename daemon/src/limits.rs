//! The daemon's open-file limit. Each MCP session holds up to five descriptors (its connection,
//! the stdin and stdout its shim handed over, and the hang-up watch's duplicates), so the soft
//! limit systemd gives services (1024) would cap the daemon at a couple of hundred sessions. The
//! daemon raises its soft limit to the hard one at start, as systemd advises for programs that
//! need many descriptors, and gives the processes it starts the limit it inherited, since some
//! programs misbehave with a large one (`select`, closing every descriptor up to the limit).

use std::sync::OnceLock;

use nix::sys::resource::{Resource, getrlimit, setrlimit};

/// The soft and hard limits the daemon started with.
static INHERITED: OnceLock<(u64, u64)> = OnceLock::new();

/// Raises the soft open-file limit to the hard one; returns the new soft limit.
pub fn raise_open_files() -> nix::Result<u64> {
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    INHERITED.get_or_init(|| (soft, hard));
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard)?;
    }
    Ok(hard)
}

/// The open-file limits to give a child process: the ones the daemon inherited, if it raised
/// its own.
pub fn inherited_open_files() -> Option<(u64, u64)> {
    INHERITED.get().copied()
}
