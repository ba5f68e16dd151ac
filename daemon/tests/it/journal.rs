//! Where the daemon logs when `JOURNAL_STREAM` does not name its stderr: the variable was
//! inherited from a parent whose stderr was the journal, so plain lines on stderr are right. The
//! journal side needs a journald; `packaging/check-units.sh` checks it under a user manager with a
//! stand-in journald.

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::process::{Command, Stdio};

use crate::{start_with, terminate};

#[test]
fn an_inherited_journal_stream_leaves_logs_on_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("stderr.log");
    let file = File::create(&log).unwrap();
    let meta = file.metadata().unwrap();
    // The same device and another inode: a stream that is not this stderr.
    let inherited = format!("{}:{}", meta.dev(), meta.ino() + 1);
    let mut command = Command::new(env!("CARGO_BIN_EXE_mcp-gatewayd"));
    command
        .env("JOURNAL_STREAM", inherited)
        .stderr(Stdio::from(file));
    let daemon = start_with(dir.path(), command);
    assert!(terminate(daemon).success());
    let stderr = std::fs::read_to_string(&log).unwrap();
    assert!(stderr.contains("listening on"), "{stderr}");
}
