//! Security through the gateway (issue 7): secrets in tool arguments are blocked by default with
//! an error that names the rule and never the secret; the gateway's own stored secrets count.
//! Every call is in the audit log. A connection from another user is refused even when the
//! socket's mode lets it in, and `mcpctl doctor` tells a user the engine refuses how to get in.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use mcp_gateway_tests::{Daemon, Start, bin, first_text, require_docker, wait_for};
use serde_json::json;

/// `nobody` on Debian; any uid other than the daemon's (root here and in CI) would do.
const OTHER_UID: u32 = 65534;

#[test]
fn a_secret_in_tool_arguments_is_blocked_by_rule_name() {
    if !require_docker() {
        return;
    }
    let daemon = Daemon::start(Start::SocketActivated);
    daemon.add_fixture("alpha");
    // Assembled at run time so the repository holds no literal key.
    let key = format!("AKIA{}", "Z".repeat(16));
    let steps = json!([
        {"op": "call_tool", "name": "echo", "arguments": {"text": format!("my key is {key}")}},
        {"op": "call_tool", "name": "echo", "arguments": {"text": "nothing to see"}},
    ]);
    let report = daemon.python_run(&steps, &[]);
    let blocked = &report["steps"][0]["error"];
    assert_eq!(blocked["code"], -32602, "{}", report["steps"][0]);
    let message = blocked["message"].as_str().unwrap();
    assert!(message.contains("aws-access-key-id"), "{message}");
    assert!(
        !message.contains(&key),
        "the error repeats the secret: {message}"
    );
    assert_eq!(first_text(&report["steps"][1]), "nothing to see");
}

#[test]
fn a_stored_secret_is_recognised_in_arguments() {
    if !require_docker() {
        return;
    }
    let daemon = Daemon::start(Start::SocketActivated);
    daemon.add_fixture("alpha");
    let value = "plain-words-but-stored-as-secret";
    let output = daemon.ctl_with_input(&["secret", "set", "MY_TOKEN"], value.as_bytes());
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let steps = json!([
        {"op": "call_tool", "name": "echo", "arguments": {"text": format!("token {value}")}},
    ]);
    let report = daemon.python_run(&steps, &[]);
    let message = report["steps"][0]["error"]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("{report}"));
    assert!(message.contains("stored-secret"), "{message}");
    assert!(!message.contains(value), "{message}");
}

/// Every call is in the audit log, with its client, server, outcome and the rules it tripped,
/// never the secret; `mcpctl calls -f` streams new calls as they happen.
#[test]
fn calls_are_audited_and_followed() {
    if !require_docker() {
        return;
    }
    let daemon = Daemon::start(Start::SocketActivated);
    daemon.add_fixture("alpha");
    let mut follower = std::process::Command::new(mcp_gateway_tests::bin("mcpctl"))
        .args(["--json", "calls", "--follow", "--limit", "0"])
        .envs(daemon.env())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let key = format!("AKIA{}", "Y".repeat(16));
    let steps = json!([
        {"op": "call_tool", "name": "echo", "arguments": {"text": "audited"}},
        {"op": "call_tool", "name": "echo", "arguments": {"text": key}},
        {"op": "call_tool", "name": "nope", "arguments": {}},
    ]);
    daemon.python_run(&steps, &["--client", "auditor"]);

    let out = daemon.ctl_ok(&["--json", "calls"]);
    let calls: serde_json::Value = serde_json::from_str(&out).unwrap();
    let calls = calls["calls"].as_array().unwrap();
    assert_eq!(calls.len(), 3, "{calls:?}");
    assert_eq!(calls[0]["client"], "auditor");
    assert_eq!(calls[0]["server"], "alpha");
    assert_eq!(calls[0]["name"], "echo");
    assert_eq!(calls[0]["outcome"], "ok");
    assert_eq!(calls[1]["outcome"], "blocked");
    assert_eq!(calls[1]["secrets"], json!(["aws-access-key-id"]));
    assert_eq!(calls[2]["outcome"], "error");
    assert_eq!(calls[2]["server"], "");
    let log =
        std::fs::read_to_string(daemon.dir.path().join("state/mcp-gateway/audit.jsonl")).unwrap();
    assert!(!log.contains(&key), "the audit log holds the secret");
    assert!(
        daemon
            .ctl_ok(&["calls", "--server", "nobody"])
            .trim()
            .is_empty()
    );
    let alpha: serde_json::Value =
        serde_json::from_str(&daemon.ctl_ok(&["--json", "calls", "--server", "alpha"])).unwrap();
    let alpha = alpha["calls"].as_array().unwrap();
    let routed = calls.iter().filter(|c| c["server"] == "alpha").count();
    assert!(routed >= 1 && alpha.len() == routed, "{alpha:?}");
    assert!(alpha.iter().all(|c| c["server"] == "alpha"), "{alpha:?}");

    let mut lines =
        std::io::BufRead::lines(std::io::BufReader::new(follower.stdout.take().unwrap()));
    let first: serde_json::Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(first["calls"], json!([]), "the history was asked empty");
    let streamed: Vec<serde_json::Value> = (0..3)
        .map(|_| serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap())
        .collect();
    assert_eq!(streamed[0]["calls"][0]["outcome"], "ok");
    assert_eq!(streamed[2]["calls"][0]["name"], "nope");
    follower.kill().unwrap();
    follower.wait().unwrap();
}

/// Runs `program ARGS` as [`OTHER_UID`] with a bare environment.
fn as_other_user(program: &Path, args: &[&str]) -> Output {
    Command::new("setpriv")
        .arg(format!("--reuid={OTHER_UID}"))
        .arg(format!("--regid={OTHER_UID}"))
        .arg("--clear-groups")
        .arg("--")
        .arg(program)
        .args(args)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .output()
        .expect("run setpriv")
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("the daemon's fd table")
        .count()
}

/// The socket's mode loosened by hand (0666, every directory above it traversable) lets another
/// user connect, but not in: `mcp-shim` and `mcpctl` run as `nobody` exit with their protocol
/// status and say whose socket it is, a raw client that skips that check gets its connection
/// closed without a byte, the daemon logs each refusal with the uid, keeps no descriptor for
/// them, and still serves its own user.
#[test]
fn another_user_is_refused_even_through_a_loosened_socket() {
    let daemon = Daemon::start_capturing_stderr(Start::Bound, &[]);
    let pid = daemon.pid().expect("the daemon runs");
    // Settle the daemon's own descriptors (engine connection attempts, the audit log) first.
    daemon.ctl_ok(&["status"]);
    let before = open_fds(pid);

    // The test's binaries may sit below a directory `nobody` cannot enter.
    let bins = tempfile::tempdir().unwrap();
    std::fs::set_permissions(bins.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let copy = |name: &str| {
        let to = bins.path().join(name);
        std::fs::copy(bin(name), &to).unwrap();
        std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o755)).unwrap();
        to
    };
    let (shim, ctl) = (copy("mcp-shim"), copy("mcpctl"));
    for dir in [daemon.dir.path(), &daemon.dir.path().join("run")] {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o711)).unwrap();
    }
    std::fs::set_permissions(&daemon.socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    let socket = daemon.socket.to_str().unwrap();

    let refused = format!("the socket belongs to uid 0, not to this user (uid {OTHER_UID})");
    for (program, args) in [
        (&shim, vec!["--socket", socket]),
        (&ctl, vec!["--socket", socket, "status"]),
    ] {
        let output = as_other_user(program, &args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(76), "{program:?}: {stderr}");
        assert!(stderr.contains(&refused), "{program:?}: {stderr}");
        assert!(output.stdout.is_empty(), "{program:?} wrote to stdout");
    }

    // A raw client does not check the daemon's uid: it says hello and waits for an answer. The
    // daemon may close before the hello arrives (a broken pipe) or with it unread (a reset).
    let raw = format!(
        r#"
import socket
s = socket.socket(socket.AF_UNIX)
s.settimeout(10)
s.connect({socket:?})
try:
    s.sendall(b'{{"type":"hello","proto":1,"role":"control","client":"raw"}}\n')
    print(repr(s.recv(4096)))
except (BrokenPipeError, ConnectionResetError):
    print("closed")
"#
    );
    let output = as_other_user(Path::new("/usr/bin/python3"), &["-c", &raw]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        ["b''", "closed"].contains(&stdout.trim()),
        "the daemon answered another user: {stdout}"
    );

    let uid = format!("uid={OTHER_UID}");
    wait_for(Duration::from_secs(10), || {
        daemon.log().matches(&uid).count() >= 3
    });
    for line in daemon.log().lines().filter(|l| l.contains(&uid)) {
        assert!(
            line.contains("refused a connection from another user"),
            "{line}"
        );
    }
    wait_for(Duration::from_secs(10), || open_fds(pid) <= before);

    let mut client = daemon.raw_client(&[]);
    let result = client.initialize("2025-11-25", json!({}));
    assert_eq!(result["serverInfo"]["name"], "mcp-gateway", "{result}");
    client.request(json!(2), "tools/list", json!({}));
    assert_eq!(client.response(&json!(2))["result"]["tools"], json!([]));
    let status: serde_json::Value =
        serde_json::from_str(&daemon.ctl_ok(&["--json", "status"])).unwrap();
    assert_eq!(status["sessions"], 1, "{status}");
}

/// `mcpctl doctor` run by a user outside the `docker` group names the group as the fix: the
/// engine socket is there, answers its own users, and refuses this one.
#[test]
fn doctor_tells_a_user_outside_the_docker_group_to_join_it() {
    if !require_docker() {
        return;
    }
    let socket = Path::new("/var/run/docker.sock");
    let mode = std::fs::metadata(socket)
        .expect("Docker's socket (this test needs the engine on its default socket)")
        .permissions()
        .mode();
    assert_eq!(
        mode & 0o006,
        0,
        "{} is open to every user (mode {mode:o}); the refusal cannot happen",
        socket.display()
    );
    let bins = tempfile::tempdir().unwrap();
    std::fs::set_permissions(bins.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let ctl = bins.path().join("mcpctl");
    std::fs::copy(bin("mcpctl"), &ctl).unwrap();

    let output = as_other_user(&ctl, &["--json", "doctor"]);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let engine = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|check| check["name"] == "engine")
        .expect("an engine check");
    assert_eq!(engine["status"], "fail", "{engine}");
    assert_eq!(
        engine["message"],
        format!("{}: permission denied", socket.display()),
        "{engine}"
    );
    assert!(
        engine["fix"]
            .as_str()
            .unwrap()
            .starts_with("sudo usermod -aG docker $USER, then log in again"),
        "{engine}"
    );
}
