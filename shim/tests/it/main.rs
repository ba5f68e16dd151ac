//! `mcp-shim` without a daemon: an MCP client must get an exit status and one stderr line, and
//! never a byte on stdout that it would try to parse as MCP.

mod man_page;

use std::process::Command;

#[test]
fn an_unreachable_daemon_is_exit_69_and_silence_on_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_mcp-shim"))
        .env("MCP_GATEWAY_SOCKET", dir.path().join("absent.sock"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(69));
    assert!(output.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("mcp-shim: cannot connect"), "{stderr}");
}

#[test]
fn usage_errors_are_exit_64() {
    let output = Command::new(env!("CARGO_BIN_EXE_mcp-shim"))
        .arg("--bogus")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(64));
    assert!(output.stdout.is_empty());
    let help = Command::new(env!("CARGO_BIN_EXE_mcp-shim"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(help.status.success());
    assert!(String::from_utf8_lossy(&help.stdout).contains("--profile PROFILE"));
}
