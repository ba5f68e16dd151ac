//! `kind = "process"` end to end (issue 9): the fixture binary run by the daemon itself, reached
//! by the Python SDK over `mcp-shim`; refused until `config.toml` opts in; a crash reported with
//! its stderr and restarted; idle removal, shutdown and a SIGKILLed daemon leaving no process or
//! zombie (`/proc`); a process server and a container server in one profile; secrets in its
//! environment but not its argv nor the daemon's other variables; mistyped entries reported with
//! their line. Only the test mixing in a container needs Docker.

use std::time::Duration;

use mcp_gateway_tests::{
    Daemon, Start, bin, children, fingerprint, first_text, require_docker, wait_for,
};
use serde_json::json;

/// A variable of the daemon's own environment that no process server may see.
const DAEMON_ONLY: (&str, &str) = ("MCP_TEST_DAEMON_ONLY", "daemon-private-value");

/// A daemon whose `config.toml` lets process servers run (or not).
fn daemon(enabled: bool) -> Daemon {
    let daemon = Daemon::start_with_env(Start::Bound, &[DAEMON_ONLY]);
    if enabled {
        write_config(&daemon, "config.toml", "[process]\nenabled = true\n");
        daemon.ctl_ok(&["reload"]);
    }
    daemon
}

fn write_config(daemon: &Daemon, file: &str, text: &str) {
    let dir = daemon.dir.path().join("config/mcp-gateway");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(file), text).unwrap();
}

/// Adds the fixture binary as process server `name` with `extra` flags before `--`.
fn add_process(daemon: &Daemon, name: &str, extra: &[&str]) {
    let identity = format!("MCP_FIXTURE_NAME={name}");
    let fixture = bin("mcp-fixture").display().to_string();
    let mut args = vec!["server", "add", name, "--process", "--env", &identity];
    args.extend_from_slice(extra);
    args.extend(["--", &fixture]);
    daemon.ctl_ok(&args);
}

/// The pid `server ls` shows for `server`'s running process in the default profile.
fn pid_of(daemon: &Daemon, server: &str) -> u32 {
    let entry = daemon.server_entry(server);
    let id = entry["containers"][0]["id"].as_str().unwrap_or_default();
    id.strip_prefix("pid ")
        .and_then(|pid| pid.parse().ok())
        .unwrap_or_else(|| panic!("no pid in {entry}"))
}

/// Whether `pid` is gone: no process, not even a zombie.
fn gone(pid: u32) -> bool {
    !std::path::Path::new(&format!("/proc/{pid}")).exists()
}

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn an_sdk_client_calls_a_process_server_and_server_ls_shows_its_pid() {
    let daemon = daemon(true);
    add_process(&daemon, "local", &[]);
    let report = daemon.python_run(
        &json!([
            {"op": "call_tool", "name": "echo", "arguments": {"text": "from a process"}},
            {"op": "call_tool", "name": "local_info", "arguments": {}},
        ]),
        &[],
    );
    let steps = report["steps"].as_array().unwrap();
    assert_eq!(first_text(&steps[0]), "from a process", "{report}");
    assert!(first_text(&steps[1]).contains("local"), "{report}");
    let entry = daemon.server_entry("local");
    assert_eq!(entry["kind"], "process", "{entry}");
    assert_eq!(entry["containers"][0]["state"], "running", "{entry}");
    let pid = pid_of(&daemon, "local");
    let parent = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let ppid: u32 = parent
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        Some(ppid),
        daemon.pid(),
        "the daemon runs the server itself"
    );
    let text = daemon.ctl_ok(&["server", "ls"]);
    assert!(
        text.contains("process /") && text.contains("mcp-fixture"),
        "{text}"
    );
    // No container was involved.
    assert!(daemon.containers().is_empty());
}

#[test]
fn process_servers_are_refused_until_config_toml_enables_them() {
    let daemon = daemon(false);
    add_process(&daemon, "local", &[]);
    let refused = daemon.ctl(&["tools", "call", "echo", "text=x"]);
    assert!(!refused.status.success());
    let message = stderr(&refused);
    assert!(
        message.contains("[process]")
            && message.contains("enabled = true")
            && message.contains("config.toml"),
        "{message}"
    );
    // The fix applies at once, without a backoff.
    write_config(&daemon, "config.toml", "[process]\nenabled = true\n");
    daemon.ctl_ok(&["reload"]);
    let echoed = daemon.ctl_ok(&["tools", "call", "echo", "text=now"]);
    assert!(echoed.contains("now"), "{echoed}");
}

#[test]
fn a_crashed_process_server_fails_its_call_with_its_stderr_and_starts_again() {
    let daemon = daemon(true);
    add_process(&daemon, "local", &[]);
    daemon.ctl_ok(&["tools", "call", "echo", "text=before"]);
    let first = pid_of(&daemon, "local");
    let crash = daemon.ctl(&["tools", "call", "crash"]);
    assert!(!crash.status.success());
    let message = stderr(&crash);
    assert!(message.contains("crash requested"), "{message}");
    wait_for(Duration::from_secs(5), || gone(first));
    wait_for(Duration::from_secs(5), || {
        daemon.server_entry("local")["containers"][0]["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("exited with status 3"))
    });
    // After the first backoff (1 s) the next call starts a new process.
    std::thread::sleep(Duration::from_millis(1200));
    let echoed = daemon.ctl_ok(&["tools", "call", "echo", "text=after"]);
    assert!(echoed.contains("after"), "{echoed}");
    let entry = daemon.server_entry("local");
    assert_eq!(entry["containers"][0]["restarts"], 1, "{entry}");
    assert_ne!(pid_of(&daemon, "local"), first);
    // `server logs` shows the stderr of the running process, as for a container.
    let logs = daemon.ctl_ok(&["server", "logs", "local"]);
    assert!(logs.contains("mcp-fixture local ready"), "{logs}");
}

#[test]
fn idle_removal_and_shutdown_leave_no_process_or_zombie() {
    let mut daemon = daemon(true);
    add_process(&daemon, "local", &["--idle-timeout", "1"]);
    let daemon_pid = daemon.pid().unwrap();
    daemon.ctl_ok(&["tools", "call", "echo", "text=one"]);
    let first = pid_of(&daemon, "local");
    assert_eq!(children(daemon_pid).unwrap(), (1, 0));
    wait_for(Duration::from_secs(10), || gone(first));
    assert_eq!(children(daemon_pid).unwrap(), (0, 0));
    daemon.ctl_ok(&["tools", "call", "echo", "text=two"]);
    let second = pid_of(&daemon, "local");
    assert_ne!(first, second);
    assert!(daemon.stop(), "the daemon stopped cleanly");
    assert!(gone(second), "the server outlived the daemon's shutdown");
}

#[test]
fn a_sigkilled_daemon_takes_its_process_server_with_it() {
    let mut daemon = daemon(true);
    // A shell that would outlive its server's end of input (it sleeps on after the fixture
    // exits), so only the parent-death signal can end it when the daemon is killed.
    let script = format!("{}; sleep 600", bin("mcp-fixture").display());
    daemon.ctl_ok(&[
        "server",
        "add",
        "local",
        "--process",
        "--env",
        "MCP_FIXTURE_NAME=local",
        "--",
        "/bin/sh",
        "-c",
        &script,
    ]);
    daemon.ctl_ok(&["tools", "call", "echo", "text=x"]);
    let pid = pid_of(&daemon, "local");
    daemon.kill();
    wait_for(Duration::from_secs(5), || gone(pid));
}

#[test]
fn secrets_reach_a_process_servers_environment_but_not_its_argv() {
    let daemon = daemon(true);
    let secret = format!("process-secret-{}", std::process::id());
    let set = daemon.ctl_with_input(&["secret", "set", "API_TOKEN"], secret.as_bytes());
    assert!(set.status.success(), "{}", stderr(&set));
    add_process(
        &daemon,
        "local",
        &["--secret", "API_TOKEN", "--env", "PLAIN=1"],
    );
    let getenv = |name: &str| {
        let argument = format!("name={name}");
        let out = daemon.ctl_json(&["tools", "call", "getenv", &argument]);
        out["result"]["content"][0]["text"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(getenv("API_TOKEN"), fingerprint(&secret));
    assert_eq!(getenv("PLAIN"), fingerprint("1"));
    let pid = pid_of(&daemon, "local");
    let argv = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    assert!(!String::from_utf8_lossy(&argv).contains(&secret));
    let environ = String::from_utf8_lossy(&std::fs::read(format!("/proc/{pid}/environ")).unwrap())
        .into_owned();
    let names: Vec<&str> = environ
        .split('\0')
        .filter_map(|kv| kv.split_once('=').map(|(k, _)| k))
        .collect();
    assert!(
        names.contains(&"API_TOKEN") && names.contains(&"HOME"),
        "{names:?}"
    );
    // The daemon's own environment stays with the daemon.
    assert!(!names.contains(&DAEMON_ONLY.0), "{names:?}");
    assert!(!names.contains(&"RUST_LOG"), "{names:?}");
}

#[test]
fn a_process_server_and_a_container_server_serve_one_profile() {
    if !require_docker() {
        return;
    }
    let daemon = daemon(true);
    daemon.add_fixture("boxed");
    add_process(&daemon, "local", &[]);
    let report = daemon.python_run(
        &json!([
            {"op": "call_tool", "name": "boxed_info", "arguments": {}},
            {"op": "call_tool", "name": "local_info", "arguments": {}},
        ]),
        &[],
    );
    let steps = report["steps"].as_array().unwrap();
    assert!(first_text(&steps[0]).contains("boxed"), "{report}");
    assert!(first_text(&steps[1]).contains("local"), "{report}");
    assert_eq!(daemon.containers().len(), 1);
    assert!(pid_of(&daemon, "local") > 0);
    assert_eq!(daemon.server_entry("boxed")["kind"], "container");
}

#[test]
fn mistyped_process_entries_are_reported_with_their_line() {
    let daemon = daemon(true);
    for (text, line, reason) in [
        (
            "[servers.local]\nkind = \"proces\"\ncommand = [\"/bin/true\"]\n",
            2,
            "unknown variant",
        ),
        (
            "[servers.other]\nimage = \"x\"\n\n[servers.local]\nkind = \"process\"\nimage = \"x\"\ncommand = [\"/bin/true\"]\n",
            4,
            "servers.local: image has no meaning for a process server",
        ),
        (
            "[servers.local]\nkind = \"process\"\n",
            1,
            "servers.local: a process server needs a command",
        ),
    ] {
        write_config(&daemon, "catalog.toml", text);
        let reload = daemon.ctl(&["reload"]);
        assert_eq!(reload.status.code(), Some(4), "{text}");
        let message = stderr(&reload);
        assert!(
            message.contains(&format!("catalog.toml:{line}: ")) && message.contains(reason),
            "{text}: {message}"
        );
    }
}

#[test]
fn a_per_call_process_server_runs_a_fresh_process_for_each_call() {
    let daemon = daemon(true);
    add_process(&daemon, "local", &["--isolation", "call"]);
    let daemon_pid = daemon.pid().unwrap();
    for _ in 0..2 {
        let out = daemon.ctl_json(&["tools", "call", "bump"]);
        let text = out["result"]["content"][0]["text"]
            .as_str()
            .unwrap_or_default();
        assert!(text.starts_with("counter 1 "), "{out}");
    }
    // What stays is the listing process alone, and no zombie.
    wait_for(Duration::from_secs(10), || {
        children(daemon_pid).unwrap() == (1, 0)
    });
}

/// The processes whose command line is exactly `argv`.
fn processes_running(argv: &[&str]) -> Vec<u32> {
    let wanted: Vec<u8> = argv
        .iter()
        .flat_map(|a| [a.as_bytes(), b"\0"].concat())
        .collect();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c == wanted))
        .collect()
}

#[test]
fn stopping_a_process_server_also_ends_what_it_started() {
    let mut daemon = daemon(true);
    let fixture = bin("mcp-fixture").display().to_string();
    // A sleep no other test runs, started by the server's shell before it becomes the server.
    let seconds = (300_000 + std::process::id()).to_string();
    let script = format!("sleep {seconds} & exec {fixture}");
    daemon.ctl_ok(&[
        "server",
        "add",
        "local",
        "--process",
        "--env",
        "MCP_FIXTURE_NAME=local",
        "--",
        "/bin/sh",
        "-c",
        &script,
    ]);
    daemon.ctl_ok(&["tools", "call", "echo", "text=x"]);
    let sleeper = ["sleep", seconds.as_str()];
    wait_for(Duration::from_secs(5), || {
        processes_running(&sleeper).len() == 1
    });
    assert!(daemon.stop());
    wait_for(Duration::from_secs(5), || {
        processes_running(&sleeper).is_empty()
    });
}

/// The tool names `mcpctl tools ls` prints (a listing that warms nothing, so a server that is
/// not running is listed from the cache when its entry is good).
fn listed_tools(daemon: &Daemon) -> String {
    daemon.ctl_ok(&["tools", "ls"])
}

#[test]
fn a_process_servers_lists_are_cached_until_its_program_changes() {
    let mut daemon = Daemon::start_capturing_stderr(Start::Bound, &[]);
    write_config(&daemon, "config.toml", "[process]\nenabled = true\n");
    daemon.ctl_ok(&["reload"]);
    // A copy of the fixture, so that this test can change the program file.
    let program = daemon.dir.path().join("home/fixture");
    std::fs::copy(bin("mcp-fixture"), &program).unwrap();
    let program_arg = program.display().to_string();
    daemon.ctl_ok(&[
        "server",
        "add",
        "local",
        "--process",
        "--env",
        "MCP_FIXTURE_NAME=local",
        "--",
        &program_arg,
    ]);
    assert!(listed_tools(&daemon).contains("local_info"));
    let entry = daemon
        .dir
        .path()
        .join("state/mcp-gateway/lists/default/local.json");
    wait_for(Duration::from_secs(10), || entry.exists());
    assert!(daemon.stop());

    let offset = daemon.log().len();
    daemon.relaunch(Start::Bound);
    assert!(listed_tools(&daemon).contains("local_info"));
    let log = &daemon.log()[offset..];
    assert!(log.contains("tools from the list cache"), "{log}");
    assert!(daemon.stop());

    // A rebuilt program (here: a new modification time) is another server.
    let file = std::fs::File::options().write(true).open(&program).unwrap();
    file.set_modified(std::time::SystemTime::now() + Duration::from_secs(60))
        .unwrap();
    drop(file);
    let offset = daemon.log().len();
    daemon.relaunch(Start::Bound);
    assert!(listed_tools(&daemon).contains("local_info"));
    let log = &daemon.log()[offset..];
    assert!(!log.contains("from the list cache"), "{log}");
}
