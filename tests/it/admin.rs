//! `mcpctl` as an administration tool against a running daemon (issue 5): profile editing,
//! server removal, the catalogs and Docker catalog import, `reload` with a file broken by hand,
//! and, with a real engine, profile values, logs (followed too) and restarts.

use mcp_gateway_tests::{Daemon, Start, bin, fingerprint, require_docker};
use serde_json::Value;
use std::io::BufRead;
use std::process::{Command, Stdio};

/// Runs a command that must fail with `code`; returns its stderr.
fn fails(daemon: &Daemon, args: &[&str], code: i32) -> String {
    let output = daemon.ctl(args);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(
        output.status.code(),
        Some(code),
        "mcpctl {args:?}: {stderr}"
    );
    stderr
}

#[test]
fn profiles_are_edited_through_the_daemon() {
    let daemon = Daemon::start(Start::Bound);
    daemon.ctl_ok(&["server", "add", "alpha", "--image", "img:a"]);
    daemon.ctl_ok(&["server", "add", "beta", "--image", "img:b"]);
    daemon.ctl_ok(&["profile", "create", "work", "--server", "alpha"]);
    daemon.ctl_ok(&["profile", "add", "work", "beta"]);
    daemon.ctl_ok(&["profile", "tools", "work", "--allow", "beta.*"]);
    assert!(fails(&daemon, &["profile", "add", "work", "ghost"], 4).contains("ghost"));
    daemon.ctl_ok(&["profile", "remove", "work", "beta"]);
    let work = daemon.ctl_json(&["profile", "show", "work"]);
    assert_eq!(work["servers"], serde_json::json!(["alpha"]));
    assert_eq!(
        work["tools"],
        serde_json::json!([]),
        "beta's rule went with it"
    );

    daemon.ctl_ok(&["profile", "prefix", "work", "on"]);
    daemon.ctl_ok(&["profile", "config", "work", "alpha.MODE=fast"]);
    let work = daemon.ctl_json(&["profile", "show", "work"]);
    assert_eq!(work["prefix"], true);
    assert_eq!(work["config"]["alpha"]["MODE"], "fast");
    let refused = fails(
        &daemon,
        &["profile", "config", "work", "alpha.API_TOKEN=x"],
        4,
    );
    assert!(refused.contains("mcpctl secret set"), "{refused}");
    let text = std::fs::read_to_string(daemon.dir.path().join("config/mcp-gateway/profiles.toml"))
        .unwrap();
    assert!(
        text.contains("[config.work.alpha]") && !text.contains("API_TOKEN"),
        "{text}"
    );

    daemon.ctl_ok(&["profile", "use", "work"]);
    assert!(fails(&daemon, &["profile", "rm", "work"], 4).contains("active"));
    assert!(fails(&daemon, &["profile", "rm", "default"], 4).contains("built in"));
    fails(&daemon, &["profile", "rm", "nope"], 3);
    daemon.ctl_ok(&["profile", "use", "default"]);
    daemon.ctl_ok(&["profile", "rm", "work"]);
    let names: Vec<Value> = daemon.ctl_json(&["profile", "ls"])["profiles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].clone())
        .collect();
    assert_eq!(names, ["default"]);
}

#[test]
fn a_server_in_a_profile_is_removed_only_with_force() {
    let daemon = Daemon::start(Start::Bound);
    daemon.ctl_ok(&["server", "add", "beta", "--image", "img:b"]);
    daemon.ctl_ok(&["profile", "create", "p1", "--server", "beta"]);
    daemon.ctl_ok(&["profile", "create", "p2", "--server", "beta"]);
    let refused = fails(&daemon, &["server", "rm", "beta"], 4);
    assert!(
        refused.contains("p1, p2") && refused.contains("--force"),
        "{refused}"
    );
    let inspected = daemon.ctl_json(&["server", "inspect", "beta"]);
    assert_eq!(inspected["image"], "img:b");
    assert_eq!(
        inspected["profiles"],
        serde_json::json!(["default", "p1", "p2"])
    );
    let out = daemon.ctl_ok(&["server", "rm", "beta", "--force"]);
    assert!(out.contains("p1, p2"), "{out}");
    assert_eq!(
        daemon.ctl_json(&["profile", "show", "p1"])["servers"],
        serde_json::json!([])
    );
    fails(&daemon, &["server", "inspect", "beta"], 3);
    fails(&daemon, &["server", "logs", "beta"], 3);
    fails(&daemon, &["server", "restart", "beta"], 3);
}

#[test]
fn the_catalog_merges_the_built_in_one_and_imports_dockers_yaml() {
    let daemon = Daemon::start(Start::Bound);
    let entry = |name: &str| {
        daemon.ctl_json(&["catalog", "ls"])["entries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == name)
            .cloned()
    };
    let time = entry("time").expect("the built-in catalog offers time");
    assert_eq!(
        (time["builtin"].clone(), time["added"].clone()),
        (true.into(), false.into())
    );
    assert_eq!(
        daemon.ctl_json(&["server", "ls"])["servers"],
        serde_json::json!([])
    );
    daemon.ctl_ok(&["server", "add", "time"]);
    let shown = daemon.ctl_json(&["catalog", "show", "time"]);
    assert_eq!(
        (shown["added"].clone(), shown["image"].clone()),
        (true.into(), "mcp/time".into())
    );
    fails(&daemon, &["catalog", "show", "nosuch"], 3);
    fails(&daemon, &["server", "add", "nosuch"], 4);

    let file = daemon.dir.path().join("docker-catalog.yaml");
    std::fs::write(
        &file,
        "registry:\n  notes:\n    image: example/notes:1\n    env:\n      - name: MODE\n        value: '{{notes.mode}}'\n    secrets:\n      - name: notes.api_key\n        env: NOTES_KEY\n    disableNetwork: true\n  far:\n    remote:\n      url: https://example.com/mcp\n  old:\n    remote:\n      url: https://example.com/sse\n      transport_type: sse\n",
    )
    .unwrap();
    let output = daemon.ctl(&["catalog", "import", file.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("notes: added server notes"), "{stdout}");
    assert!(stdout.contains("left out: env MODE"), "{stdout}");
    assert!(stdout.contains("far: added server far"), "{stdout}");
    assert!(
        stdout.contains("old: not imported: skipped: it speaks the old HTTP+SSE transport"),
        "{stdout}"
    );
    let far = daemon.ctl_json(&["server", "inspect", "far"]);
    assert_eq!(far["origin"], "https://example.com:443", "{far}");
    let notes = daemon.ctl_json(&["server", "inspect", "notes"]);
    assert_eq!(notes["secrets"], serde_json::json!(["NOTES_KEY"]));
    assert_eq!(notes["run"]["network"], "none");

    std::fs::write(&file, "registry:\n  a: [\n").unwrap();
    let broken = fails(&daemon, &["catalog", "import", file.to_str().unwrap()], 1);
    assert!(broken.contains("docker-catalog.yaml:"), "{broken}");
}

#[test]
fn a_file_broken_by_hand_is_reported_by_reload_and_the_last_good_one_stays() {
    let daemon = Daemon::start(Start::Bound);
    daemon.ctl_ok(&["server", "add", "alpha", "--image", "img:a"]);
    let catalog = daemon.dir.path().join("config/mcp-gateway/catalog.toml");
    let good = std::fs::read_to_string(&catalog).unwrap();
    std::fs::write(
        &catalog,
        format!("{good}\n[servers.beta]\nimgae = \"img:b\"\n"),
    )
    .unwrap();
    let stderr = fails(&daemon, &["reload"], 4);
    let expected = format!("{}:", catalog.display());
    assert!(
        stderr.contains(&expected) && stderr.contains("imgae"),
        "{stderr}"
    );
    let servers = daemon.ctl_json(&["server", "ls"]);
    assert_eq!(servers["servers"][0]["name"], "alpha");
    assert_eq!(servers["servers"].as_array().unwrap().len(), 1);
    std::fs::write(
        &catalog,
        format!("{good}\n[servers.beta]\nimage = \"img:b\"\n"),
    )
    .unwrap();
    daemon.ctl_ok(&["reload"]);
    assert_eq!(
        daemon.ctl_json(&["server", "ls"])["servers"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn profile_values_logs_and_restarts_reach_real_containers() {
    if !require_docker() {
        return;
    }
    let daemon = Daemon::start(Start::Bound);
    daemon.add_fixture("fx");
    daemon.ctl_ok(&["profile", "create", "work", "--server", "fx"]);
    daemon.ctl_ok(&["profile", "use", "work"]);
    daemon.ctl_ok(&["profile", "config", "work", "fx.MODE=fast"]);
    let getenv = |name: &str| {
        let argument = format!("name={name}");
        let out = daemon.ctl_json(&["tools", "call", "getenv", &argument]);
        out["result"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(getenv("MODE"), fingerprint("fast"));
    let logs = daemon.ctl_ok(&["server", "logs", "fx"]);
    assert!(logs.contains("work: mcp-fixture fx ready"), "{logs}");

    // Following prints what is kept, then what comes; it ends when mcpctl is stopped.
    let mut follower = Command::new(bin("mcpctl"))
        .args(["server", "logs", "fx", "-f"])
        .envs(daemon.env())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(follower.stdout.take().unwrap()).lines();
    assert!(
        lines
            .next()
            .unwrap()
            .unwrap()
            .contains("mcp-fixture fx ready")
    );

    let container = |d: &Daemon| {
        d.ctl_json(&["server", "inspect", "fx"])["containers"][0]["id"]
            .as_str()
            .map(str::to_owned)
    };
    let first = container(&daemon).expect("a running container");
    let out = daemon.ctl_ok(&["server", "restart", "fx"]);
    assert!(out.contains("stopped 1 containers"), "{out}");
    assert_eq!(container(&daemon), None);
    // A changed value is in the next container.
    daemon.ctl_ok(&["profile", "config", "work", "fx.MODE=slow"]);
    assert_eq!(getenv("MODE"), fingerprint("slow"));
    assert_ne!(container(&daemon).unwrap(), first);
    // The new container's ready line reaches the follower.
    let mut seen = false;
    for line in lines.by_ref() {
        if line.unwrap().contains("mcp-fixture fx ready") {
            seen = true;
            break;
        }
    }
    assert!(seen);
    follower.kill().unwrap();
    follower.wait().unwrap();

    // A value changed while its container runs, and has served calls, replaces the container
    // at the next call: the configuration it was found current against is not today's.
    let second = container(&daemon).unwrap();
    daemon.ctl_ok(&["profile", "config", "work", "fx.MODE=third"]);
    assert_eq!(getenv("MODE"), fingerprint("third"));
    assert_ne!(container(&daemon).unwrap(), second);

    // A broken file leaves the servers working.
    let catalog = daemon.dir.path().join("config/mcp-gateway/catalog.toml");
    std::fs::write(&catalog, "[servers.fx\n").unwrap();
    fails(&daemon, &["reload"], 4);
    assert_eq!(getenv("MODE"), fingerprint("third"));
}
