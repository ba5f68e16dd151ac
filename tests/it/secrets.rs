//! Secrets end to end: set through `mcpctl` on standard input, declared by a server, seen by the
//! fixture inside its container, and absent from everything else: the container's command, the
//! daemon's log (at trace level), `mcpctl` listings and the configuration files.

use std::process::Command;

use mcp_gateway_tests::{Daemon, Start, fingerprint, fixture_image, require_docker};
use serde_json::Value;

/// A value that cannot turn up anywhere by chance.
fn unique_value(label: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{label}-{}-{nanos}", std::process::id())
}

fn add_server(daemon: &Daemon, name: &str, secrets: &[&str]) {
    let env = format!("MCP_FIXTURE_NAME={name}");
    let mut args = vec![
        "server",
        "add",
        name,
        "--image",
        fixture_image(),
        "--env",
        &env,
    ];
    for secret in secrets {
        args.extend(["--secret", secret]);
    }
    daemon.ctl_ok(&args);
}

/// Whether the fixture's `getenv` says variable `name` holds `value` (it answers a fingerprint,
/// since the gateway withholds results that hold a stored secret).
fn holds(daemon: &Daemon, name: &str, value: &str) -> bool {
    getenv(daemon, name) == fingerprint(value)
}

/// The text the fixture's `getenv` answers for `name`.
fn getenv(daemon: &Daemon, name: &str) -> String {
    let argument = format!("name={name}");
    let out = daemon.ctl_ok(&["--json", "tools", "call", "getenv", &argument]);
    let response: Value = serde_json::from_str(&out).unwrap();
    let result = &response["result"];
    assert_ne!(result["isError"], true, "{result}");
    result["content"][0]["text"].as_str().unwrap().to_owned()
}

fn inspect(id: &str) -> Value {
    let output = Command::new("docker")
        .args(["inspect", id])
        .output()
        .unwrap();
    assert!(output.status.success());
    serde_json::from_slice::<Value>(&output.stdout).unwrap()[0].clone()
}

fn secret_list(daemon: &Daemon) -> Vec<Value> {
    let out = daemon.ctl_ok(&["--json", "secret", "ls"]);
    let response: Value = serde_json::from_str(&out).unwrap();
    response["secrets"].as_array().unwrap().clone()
}

fn find<'a>(list: &'a [Value], name: &str) -> &'a Value {
    list.iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("{name} not in {list:?}"))
}

#[test]
fn a_stored_secret_reaches_the_container_environment_and_nothing_else() {
    if !require_docker() {
        return;
    }
    // Trace level: bollard logs request bodies there, which is where a leak would show.
    let mut daemon = Daemon::start_capturing_stderr(Start::Bound, &[("RUST_LOG", "trace")]);
    let value = unique_value("s3cret");

    let set = daemon.ctl_with_input(
        &["secret", "set", "API_TOKEN"],
        format!("{value}\n").as_bytes(),
    );
    assert!(
        set.status.success(),
        "{}",
        String::from_utf8_lossy(&set.stderr)
    );
    let said =
        String::from_utf8_lossy(&set.stdout).into_owned() + &String::from_utf8_lossy(&set.stderr);
    assert!(said.contains("stored secret API_TOKEN"), "{said}");
    assert!(!said.contains(&value), "{said}");

    add_server(&daemon, "vault", &["API_TOKEN"]);
    assert!(
        holds(&daemon, "API_TOKEN", &value),
        "the typed newline is not part of it"
    );

    let containers = daemon.containers();
    assert_eq!(containers.len(), 1);
    let container = inspect(&containers[0]);
    assert!(
        container["Config"]["Env"]
            .as_array()
            .unwrap()
            .contains(&Value::from(format!("API_TOKEN={value}"))),
        "{}",
        container["Config"]["Env"]
    );
    for field in [
        &container["Path"],
        &container["Args"],
        &container["Name"],
        &container["Config"]["Cmd"],
        &container["Config"]["Entrypoint"],
        &container["Config"]["Labels"],
    ] {
        assert!(!field.to_string().contains(&value), "{field}");
    }

    let listing = daemon.ctl_ok(&["secret", "ls"]);
    assert!(
        listing.contains("API_TOKEN") && listing.contains("store"),
        "{listing}"
    );
    let list = secret_list(&daemon);
    let token = find(&list, "API_TOKEN");
    assert_eq!(token["source"], "store");
    assert_eq!(token["used_by"], serde_json::json!(["vault"]));
    for output in [
        listing,
        daemon.ctl_ok(&["--json", "secret", "ls"]),
        daemon.ctl_ok(&["server", "ls"]),
        daemon.ctl_ok(&["--json", "server", "ls"]),
        daemon.ctl_ok(&["--json", "status"]),
    ] {
        assert!(!output.contains(&value), "{output}");
    }
    let servers: Value = serde_json::from_str(&daemon.ctl_ok(&["--json", "server", "ls"])).unwrap();
    assert_eq!(
        servers["servers"][0]["secrets"],
        serde_json::json!(["API_TOKEN"])
    );

    let config = daemon.dir.path().join("config/mcp-gateway");
    let catalog = std::fs::read_to_string(config.join("catalog.toml")).unwrap();
    assert!(
        catalog.contains("API_TOKEN") && !catalog.contains(&value),
        "{catalog}"
    );
    let store = config.join("secrets.toml");
    use std::os::unix::fs::PermissionsExt;
    let mode =
        |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&store), 0o600);
    assert_eq!(mode(&config), 0o700);

    assert!(daemon.stop());
    let log = daemon.log();
    assert!(log.contains("started"), "the log was captured: {log}");
    assert!(!log.contains(&value), "the secret is in the daemon's log");
}

#[test]
fn credentials_and_the_environment_supply_secrets_in_their_order() {
    if !require_docker() {
        return;
    }
    let credentials = tempfile::tempdir().unwrap();
    std::fs::write(credentials.path().join("CRED_TOKEN"), "from-credential\n").unwrap();
    let credentials_dir = credentials.path().display().to_string();
    let daemon = Daemon::start_with_env(
        Start::Bound,
        &[
            ("CREDENTIALS_DIRECTORY", &credentials_dir),
            ("MCP_GATEWAY_SECRET_CRED_TOKEN", "hidden-by-the-credential"),
            ("MCP_GATEWAY_SECRET_ENV_TOKEN", "from-env"),
        ],
    );
    add_server(&daemon, "creds", &["CRED_TOKEN", "ENV_TOKEN"]);
    assert!(holds(&daemon, "CRED_TOKEN", "from-credential"));
    assert!(holds(&daemon, "ENV_TOKEN", "from-env"));

    let list = secret_list(&daemon);
    let cred = find(&list, "CRED_TOKEN");
    assert_eq!(cred["source"], "credential");
    assert_eq!(cred["shadowed"], serde_json::json!(["env"]));
    assert_eq!(cred["used_by"], serde_json::json!(["creds"]));
    assert_eq!(find(&list, "ENV_TOKEN")["source"], "env");
    let listing = daemon.ctl_ok(&["secret", "ls"]);
    for value in ["from-credential", "hidden-by-the-credential", "from-env"] {
        assert!(!listing.contains(value), "{listing}");
    }

    let rm = daemon.ctl(&["secret", "rm", "CRED_TOKEN"]);
    assert_eq!(rm.status.code(), Some(3), "only the store can be changed");
}

#[test]
fn a_missing_secret_stops_the_start_and_names_only_the_secret() {
    if !require_docker() {
        return;
    }
    let daemon = Daemon::start(Start::Bound);
    add_server(&daemon, "needy", &["ABSENT_TOKEN"]);
    let call = daemon.ctl(&["tools", "call", "getenv", "name=ABSENT_TOKEN"]);
    assert_eq!(call.status.code(), Some(6), "an MCP server failed");
    let stderr = String::from_utf8_lossy(&call.stderr);
    assert!(
        stderr.contains("ABSENT_TOKEN") && stderr.contains("is not set"),
        "{stderr}"
    );
    assert!(daemon.containers().is_empty(), "nothing was started");
    let list = secret_list(&daemon);
    let absent = find(&list, "ABSENT_TOKEN");
    assert_eq!(absent["source"], Value::Null);
    assert_eq!(absent["used_by"], serde_json::json!(["needy"]));

    let set = daemon.ctl_with_input(&["secret", "set", "ABSENT_TOKEN"], b"late");
    assert!(set.status.success());
    assert!(
        holds(&daemon, "ABSENT_TOKEN", "late"),
        "the next need starts it"
    );

    daemon.ctl_ok(&["secret", "rm", "ABSENT_TOKEN"]);
    assert_eq!(
        daemon.ctl(&["secret", "rm", "ABSENT_TOKEN"]).status.code(),
        Some(3)
    );
    let empty = daemon.ctl_with_input(&["secret", "set", "EMPTY"], b"\n");
    assert_eq!(empty.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&empty.stderr).contains("empty"));
    let bad = daemon.ctl_with_input(&["secret", "set", "NOT-A-NAME"], b"x");
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("invalid secret name"));
    let bad_server = daemon.ctl(&[
        "server",
        "add",
        "bad",
        "--image",
        fixture_image(),
        "--secret",
        "1BAD",
    ]);
    assert_eq!(bad_server.status.code(), Some(4));
}
