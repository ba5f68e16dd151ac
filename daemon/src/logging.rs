//! Logging to the journal when stderr is connected to it, plain stderr otherwise.
//!
//! Checking `JOURNAL_STREAM` for presence is not enough: child processes inherit it. systemd.exec(5)
//! says to compare its `device:inode` with stderr's, which is what [`stderr_is_journal`] does.

use std::io::IsTerminal;
use std::os::fd::AsFd;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Installs the global subscriber; `RUST_LOG` overrides the default level (`info`).
///
/// bollard logs whole request bodies at debug and trace level, and a container's create request
/// holds its environment, secrets included: bollard is held at `info` whatever `RUST_LOG` says.
pub fn init() {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info"))
        .add_directive(BOLLARD_CAP.parse().expect("a valid directive"));
    let journald = stderr_is_journal()
        .then(|| tracing_journald::layer().ok())
        .flatten()
        .map(|layer| layer.with_syslog_identifier("mcp-gatewayd".to_owned()));
    let stderr = journald.is_none().then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::stderr().is_terminal())
    });
    // A second init (tests running `run` in-process) keeps the first subscriber.
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(journald)
        .with(stderr)
        .try_init();
}

const BOLLARD_CAP: &str = "bollard=info";

fn stderr_is_journal() -> bool {
    let Some(stream) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Ok(stat) = nix::sys::stat::fstat(std::io::stderr().as_fd()) else {
        return false;
    };
    stream.to_string_lossy() == format!("{}:{}", stat.st_dev, stat.st_ino)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bollard_cap_parses() {
        assert!(
            BOLLARD_CAP
                .parse::<tracing_subscriber::filter::Directive>()
                .is_ok()
        );
    }
}
