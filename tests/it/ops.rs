//! Operations through `mcpctl` against a real daemon: `status` with its server counts and the
//! files not in force, a hand edit not yet reloaded (kept by the next change, or the change
//! refused while the file is broken), and `doctor` with and without a daemon.

use std::os::unix::fs::PermissionsExt;

use mcp_gateway_tests::{Daemon, Start, engine_answers, fixture_image, require_docker};
use serde_json::Value;

/// `mcpctl --json doctor`: its exit status and its checks by name.
fn doctor(daemon: &Daemon) -> (Option<i32>, Vec<Value>) {
    let output = daemon.ctl(&["--json", "doctor"]);
    let report: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|err| {
        panic!(
            "doctor printed no JSON ({err}): {}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    assert_eq!(
        report["ok"].as_bool(),
        Some(output.status.success()),
        "{report}"
    );
    (
        output.status.code(),
        report["checks"].as_array().unwrap().clone(),
    )
}

fn check<'a>(checks: &'a [Value], name: &str) -> &'a Value {
    checks
        .iter()
        .find(|check| check["name"] == name)
        .unwrap_or_else(|| panic!("no check {name:?} in {checks:?}"))
}

#[test]
fn status_counts_servers_and_names_files_not_in_force() {
    let daemon = Daemon::start(Start::Bound);
    daemon.ctl_ok(&["server", "add", "alpha", "--image", "img:a"]);
    daemon.ctl_ok(&["server", "add", "beta", "--image", "img:b"]);
    daemon.ctl_ok(&["profile", "create", "work", "--server", "alpha"]);
    daemon.ctl_ok(&["profile", "use", "work"]);
    let status = daemon.ctl_json(&["status"]);
    assert_eq!(status["servers"]["catalog"], 2, "{status}");
    assert_eq!(status["servers"]["active_profile"], 1, "{status}");
    assert_eq!(status["servers"]["running"], 0, "{status}");
    assert_eq!(status["config_problems"], serde_json::json!([]));
    assert!(
        status["units"].is_array() || status["units"]["unavailable"].is_string(),
        "{status}"
    );

    let profiles = daemon.dir.path().join("config/mcp-gateway/profiles.toml");
    let good = std::fs::read_to_string(&profiles).unwrap();
    std::fs::write(&profiles, format!("{good}\n[profiles.play\nservers = []\n")).unwrap();
    let status = daemon.ctl_json(&["status"]);
    let problems = status["config_problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1, "{status}");
    let expected = format!("{}:", profiles.display());
    assert!(
        problems[0].as_str().unwrap().starts_with(&expected),
        "{status}"
    );
    let text = daemon.ctl_ok(&["status"]);
    assert!(
        text.contains("configuration:   not in force:") && text.contains(&expected),
        "{text}"
    );
    assert!(
        text.contains("servers:         2 in the catalog, 1 in the active profile"),
        "{text}"
    );

    std::fs::write(&profiles, &good).unwrap();
    let text = daemon.ctl_ok(&["status"]);
    assert!(
        text.contains("configuration:   the files are in force"),
        "{text}"
    );
}

#[test]
fn a_hand_edit_not_reloaded_survives_the_next_change_or_stops_it_while_broken() {
    let daemon = Daemon::start(Start::Bound);
    daemon.ctl_ok(&["server", "add", "alpha", "--image", "img:a"]);
    let catalog = daemon.dir.path().join("config/mcp-gateway/catalog.toml");
    let good = std::fs::read_to_string(&catalog).unwrap();

    // Parses: the daemon reads it first, and the change lands on top of it.
    std::fs::write(
        &catalog,
        format!("{good}\n[servers.beta]\nimage = \"img:b\"\n"),
    )
    .unwrap();
    let status = daemon.ctl_json(&["status"]);
    assert!(
        status["config_problems"][0]
            .as_str()
            .unwrap()
            .contains("mcpctl reload"),
        "{status}"
    );
    daemon.ctl_ok(&["server", "add", "gamma", "--image", "img:g"]);
    let names: Vec<Value> = daemon.ctl_json(&["server", "ls"])["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].clone())
        .collect();
    assert_eq!(names, ["alpha", "beta", "gamma"]);
    let text = std::fs::read_to_string(&catalog).unwrap();
    assert!(
        text.contains("[servers.beta]") && text.contains("[servers.gamma]"),
        "{text}"
    );

    // Does not parse: a change to that file is refused (exit 4) and the file stays as typed.
    let broken = format!("{text}\n[servers.delta]\nimgae = \"img:d\"\n");
    std::fs::write(&catalog, &broken).unwrap();
    let output = daemon.ctl(&["server", "add", "epsilon", "--image", "img:e"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(4), "{stderr}");
    assert!(
        stderr.contains(&format!("{} was edited by hand", catalog.display()))
            && stderr.contains("imgae")
            && stderr.contains("mcpctl reload"),
        "{stderr}"
    );
    assert_eq!(std::fs::read_to_string(&catalog).unwrap(), broken);
    // Changes to other files go on; the configuration in force is the last good one.
    daemon.ctl_ok(&["profile", "create", "work", "--server", "alpha"]);
    assert_eq!(
        daemon.ctl_json(&["server", "ls"])["servers"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    std::fs::write(&catalog, broken.replace("imgae", "image")).unwrap();
    daemon.ctl_ok(&["server", "add", "epsilon", "--image", "img:e"]);
    assert_eq!(
        daemon.ctl_json(&["server", "ls"])["servers"]
            .as_array()
            .unwrap()
            .len(),
        5
    );
}

#[test]
fn doctor_without_a_daemon_says_so_and_still_checks_the_files() {
    let mut daemon = Daemon::start(Start::Bound);
    daemon.ctl_ok(&["server", "add", "alpha", "--image", "img:a"]);
    assert!(daemon.stop());
    let (code, checks) = doctor(&daemon);
    assert_eq!(code, Some(1), "{checks:?}");
    let down = check(&checks, "daemon");
    assert_eq!(down["status"], "fail");
    assert!(
        down["fix"]
            .as_str()
            .unwrap()
            .contains("systemctl --user enable --now mcp-gateway.socket"),
        "{down}"
    );
    assert_eq!(check(&checks, "socket")["status"], "fail");
    assert_eq!(check(&checks, "configuration")["status"], "ok");
    // Without the daemon, mcpctl pings the engine itself; it must agree with the docker CLI.
    if std::env::var_os("DOCKER_HOST").is_none() {
        let engine = check(&checks, "engine");
        assert_eq!(engine["status"] == "ok", engine_answers(), "{engine}");
    }
    assert_eq!(check(&checks, "images and secrets")["status"], "warn");
    assert!(
        ["ok", "warn"].contains(&check(&checks, "units")["status"].as_str().unwrap()),
        "{checks:?}"
    );

    let catalog = daemon.dir.path().join("config/mcp-gateway/catalog.toml");
    std::fs::write(
        &catalog,
        "[servers.alpha]\nimage = \"img:a\"\nmemroy = \"1g\"\n",
    )
    .unwrap();
    let (_, checks) = doctor(&daemon);
    let config = check(&checks, "configuration");
    assert_eq!(config["status"], "fail");
    let message = config["message"].as_str().unwrap();
    assert!(
        message.starts_with(&format!("{}:3: ", catalog.display())),
        "{config}"
    );

    // One line per check in text, each failure with its fix.
    let output = daemon.ctl(&["doctor"]);
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.lines().any(|l| l.starts_with("fail   daemon: ")),
        "{text}"
    );
    assert!(
        text.contains("fix: systemctl --user enable --now"),
        "{text}"
    );
}

#[test]
fn doctor_finds_images_to_pull_unset_secrets_and_clients_whose_shim_is_gone() {
    if !require_docker() {
        return;
    }
    let daemon = Daemon::start(Start::Bound);
    let run_dir = daemon.dir.path().join("run");
    std::fs::set_permissions(&run_dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    daemon.ctl_ok(&["server", "add", "fx", "--image", fixture_image()]);
    daemon.ctl_ok(&[
        "server",
        "add",
        "ghost",
        "--image",
        "mcp-gateway-absent:doctor",
        "--secret",
        "DOCTOR_TOKEN",
    ]);
    let cursor = daemon.dir.path().join("home/.cursor/mcp.json");
    std::fs::create_dir_all(cursor.parent().unwrap()).unwrap();
    std::fs::write(
        &cursor,
        r#"{"mcpServers": {"mcp-gateway": {"command": "/gone/mcp-shim", "args": ["--client", "cursor"]}}}"#,
    )
    .unwrap();

    let (code, checks) = doctor(&daemon);
    assert_eq!(code, Some(1), "{checks:?}");
    for ok in [
        "runtime directory",
        "socket",
        "daemon",
        "engine",
        "configuration",
    ] {
        assert_eq!(check(&checks, ok)["status"], "ok", "{checks:?}");
    }
    let image = check(&checks, "image ghost");
    assert_eq!(image["status"], "warn");
    assert_eq!(image["fix"], "mcpctl server pull ghost", "{image}");
    assert!(
        image["message"]
            .as_str()
            .unwrap()
            .contains("mcp-gateway-absent:doctor"),
        "{image}"
    );
    assert!(checks.iter().all(|c| c["name"] != "image fx"), "{checks:?}");
    let secret = check(&checks, "secret DOCTOR_TOKEN");
    assert_eq!(secret["status"], "fail");
    assert_eq!(secret["fix"], "mcpctl secret set DOCTOR_TOKEN");
    let client = check(&checks, "client cursor");
    assert_eq!(client["status"], "fail");
    assert!(
        client["message"]
            .as_str()
            .unwrap()
            .contains("/gone/mcp-shim"),
        "{client}"
    );

    // Each fix, applied, clears its check.
    daemon.ctl_ok(&["server", "rm", "ghost"]);
    daemon.ctl_ok(&["client", "connect", "cursor"]);
    let (code, checks) = doctor(&daemon);
    assert_eq!(code, Some(0), "{checks:?}");
    assert_eq!(check(&checks, "images")["status"], "ok");
    assert_eq!(check(&checks, "clients")["status"], "ok");
    assert!(checks.iter().all(|c| c["status"] != "fail"), "{checks:?}");
}

/// `profile use` changes what a connected client that named no profile sees, without a restart:
/// it is told `list_changed` and its next list is the new profile's.
#[test]
fn profile_use_switches_connected_clients_live() {
    if !require_docker() {
        return;
    }
    let daemon = Daemon::start(Start::Bound);
    daemon.add_fixture("alpha");
    daemon.add_fixture("beta");
    daemon.ctl_ok(&["profile", "create", "one", "--server", "alpha"]);
    daemon.ctl_ok(&["profile", "create", "two", "--server", "beta"]);
    daemon.ctl_ok(&["profile", "use", "one"]);
    let mut client = daemon.raw_client(&[]);
    client.initialize("2025-11-25", serde_json::json!({}));
    let tools = |client: &mut mcp_gateway_tests::RawClient, id: i64| -> Vec<String> {
        client.request(serde_json::json!(id), "tools/list", serde_json::json!({}));
        client.response(&serde_json::json!(id))["result"]["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let before = tools(&mut client, 1);
    assert!(before.contains(&"alpha_info".to_owned()), "{before:?}");

    daemon.ctl_ok(&["profile", "use", "two"]);
    let changed = client.wait(mcp_gateway_tests::ANSWER_TIMEOUT, |m| {
        m["method"] == "notifications/tools/list_changed"
    });
    assert!(changed.is_some(), "no list_changed; seen {:?}", client.seen);
    let after = tools(&mut client, 2);
    assert!(
        after.contains(&"beta_info".to_owned()) && !after.contains(&"alpha_info".to_owned()),
        "{after:?}"
    );
}
