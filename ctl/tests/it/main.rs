//! `mcpctl` without a daemon: the failures a user meets first must be clear and scriptable.

use std::process::Command;

mod clients;

#[test]
fn an_unreachable_daemon_is_exit_69_with_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_mcpctl"))
        .args(["--socket"])
        .arg(dir.path().join("absent.sock"))
        .arg("status")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(69));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("cannot connect to mcp-gatewayd")
            && stderr.contains("systemctl --user start"),
        "{stderr}"
    );
}

#[test]
fn bad_arguments_fail_before_connecting() {
    let output = Command::new(env!("CARGO_BIN_EXE_mcpctl"))
        .args([
            "--socket",
            "/nonexistent",
            "tools",
            "call",
            "echo",
            "novalue",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("expected KEY=VALUE"));
    let unknown = Command::new(env!("CARGO_BIN_EXE_mcpctl"))
        .arg("frobnicate")
        .output()
        .unwrap();
    assert_eq!(unknown.status.code(), Some(2), "clap's usage error");
}
