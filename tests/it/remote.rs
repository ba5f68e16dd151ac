//! The `remote` server kind end to end: the Python SDK's own Streamable HTTP server
//! (`tests/py/remote_server.py`, MCPServer under uvicorn on a free loopback port, refusing
//! requests without the bearer token) behind the gateway, reached by the SDK's client over
//! `mcp-shim`. Both eras: the server as the SDK makes it (2026-07-28 requests, stateless) and as
//! a server built before 2026-07-28 (a session, a GET stream, a DELETE at the end).

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mcp_gateway_tests::{Daemon, Start, first_text, require_docker, wait_for, workspace};
use serde_json::{Value, json};

/// The token the server expects; a value that turns up nowhere by chance.
fn unique_token() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("remote-tok-{}-{nanos}", std::process::id())
}

/// One run of `remote_server.py`.
struct RemoteServer {
    port: u16,
    token: String,
    options: Vec<String>,
    record: PathBuf,
    child: Option<Child>,
}

impl RemoteServer {
    fn start(dir: &Path, token: &str, options: &[&str]) -> RemoteServer {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let mut server = RemoteServer {
            port,
            token: token.to_owned(),
            options: options.iter().map(|o| (*o).to_owned()).collect(),
            record: dir.join(format!("requests-{port}.jsonl")),
            child: None,
        };
        server.launch();
        server
    }

    fn launch(&mut self) {
        let child = Command::new("python3")
            .arg(workspace().join("tests/py/remote_server.py"))
            .arg("--port")
            .arg(self.port.to_string())
            .arg("--record")
            .arg(&self.record)
            .args(&self.options)
            .env("REMOTE_TOKEN", &self.token)
            .stdin(Stdio::null())
            .spawn()
            .expect("start remote_server.py");
        self.child = Some(child);
        let port = self.port;
        wait_for(Duration::from_secs(20), || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
    }

    fn url(&self, scheme: &str) -> String {
        format!("{scheme}://127.0.0.1:{}/mcp", self.port)
    }

    /// SIGKILLs the server.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The requests the server received so far.
    fn requests(&self) -> Vec<Value> {
        // Tool notes are mixed in; callers look for what they need.
        std::fs::read_to_string(&self.record)
            .unwrap_or_default()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }
}

impl Drop for RemoteServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A daemon with its log kept, the token stored as secret `REMOTE_TOKEN`.
fn daemon(token: &str, env: &[(&str, &str)]) -> Daemon {
    let mut env = env.to_vec();
    env.push(("RUST_LOG", "trace"));
    let daemon = Daemon::start_capturing_stderr(Start::Bound, &env);
    let set = daemon.ctl_with_input(&["secret", "set", "REMOTE_TOKEN"], token.as_bytes());
    assert!(set.status.success(), "{set:?}");
    daemon
}

fn add_remote(daemon: &Daemon, name: &str, url: &str) {
    daemon.ctl_ok(&[
        "server",
        "add",
        name,
        "--url",
        url,
        "--header",
        "Authorization=Bearer ${REMOTE_TOKEN}",
        "--secret",
        "REMOTE_TOKEN",
    ]);
}

fn call(name: &str, arguments: Value) -> Value {
    json!({"op": "call_tool", "name": name, "arguments": arguments})
}

fn tool_names(report: &Value) -> Vec<String> {
    report["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("no tools in {report}"))
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect()
}

/// Lists and calls the remote tools, with progress and a log message, and returns the report.
fn list_and_call(daemon: &Daemon) -> Value {
    let steps = json!([
        {"op": "list_tools"},
        call("echo", json!({"text": "over http"})),
        {"op": "call_tool", "name": "progress", "arguments": {"steps": 3}, "progress": true},
        {"op": "sleep", "ms": 300},
    ]);
    let report = daemon.python_run(&steps, &[]);
    let steps = &report["steps"];
    let names = tool_names(&steps[0]);
    for tool in ["echo", "progress", "slow", "pid"] {
        assert!(names.contains(&tool.to_owned()), "{tool} not in {names:?}");
    }
    assert_eq!(first_text(&steps[1]), "over http", "{}", steps[1]);
    assert_eq!(first_text(&steps[2]), "3 steps", "{}", steps[2]);
    let progress = steps[2]["progress"].as_array().unwrap();
    assert_eq!(progress.len(), 3, "{}", steps[2]);
    assert_eq!(progress[2]["progress"], 3.0);
    report
}

#[test]
fn a_modern_remote_server_is_listed_and_called_through_the_gateway() {
    let token = unique_token();
    let daemon = daemon(&token, &[]);
    let server = RemoteServer::start(daemon.dir.path(), &token, &[]);
    add_remote(&daemon, "web", &server.url("http"));
    list_and_call(&daemon);
    let requests = server.requests();
    let posts: Vec<&Value> = requests.iter().filter(|r| r["method"] == "POST").collect();
    assert!(!posts.is_empty());
    for post in &posts {
        assert_eq!(post["auth"], true, "{post}");
        assert_eq!(post["session"], false, "{post}");
    }
    // Every 2026-07-28 request names its method and version in headers.
    assert!(
        posts
            .iter()
            .any(|p| p["mcp_method"] == "tools/call" && p["version"] == "2026-07-28"),
        "{requests:?}"
    );
    assert!(
        !requests.iter().any(|r| r["method"] == "GET"),
        "{requests:?}"
    );
    let web = daemon.server_entry("web");
    let origin = format!("http://127.0.0.1:{}", server.port);
    assert_eq!(web["origin"], origin.as_str(), "{web}");
    assert_eq!(web["containers"][0]["state"], "running", "{web}");
    assert_eq!(web["containers"][0]["era"], "2026-07-28", "{web}");
    assert!(daemon.ctl_ok(&["server", "ls"]).contains(&origin));
    let shown = daemon.ctl_ok(&["catalog", "show", "web"]);
    assert!(shown.contains(&format!("remote:    {origin}")), "{shown}");
}

#[test]
fn a_legacy_remote_server_gets_a_session_a_stream_and_a_delete() {
    let token = unique_token();
    let daemon = daemon(&token, &[]);
    let server = RemoteServer::start(daemon.dir.path(), &token, &["--legacy"]);
    add_remote(&daemon, "web", &server.url("http"));
    let report = list_and_call(&daemon);
    let logs: Vec<&Value> = report["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["method"] == "notifications/message")
        .collect();
    assert!(
        logs.iter().any(|n| n["params"]["data"] == "progress done"),
        "{:?}",
        report["notifications"]
    );
    let web = daemon.server_entry("web");
    assert_eq!(web["containers"][0]["era"], "legacy", "{web}");
    let requests = server.requests();
    assert!(
        requests
            .iter()
            .any(|r| r["method"] == "POST" && r["session"] == true && r["version"] == "2025-11-25"),
        "{requests:?}"
    );
    assert!(
        requests
            .iter()
            .any(|r| r["method"] == "GET" && r["session"] == true),
        "no GET stream in {requests:?}"
    );
    daemon.ctl_ok(&["server", "restart", "web"]);
    let deleted = server
        .requests()
        .iter()
        .any(|r| r["method"] == "DELETE" && r["session"] == true && r["auth"] == true);
    assert!(deleted, "no DELETE in {:?}", server.requests());
}

#[test]
fn the_header_secret_reaches_the_server_and_nothing_else() {
    let token = unique_token();
    let daemon = daemon(&token, &[]);
    let server = RemoteServer::start(daemon.dir.path(), &token, &["--legacy"]);
    add_remote(&daemon, "web", &server.url("http"));
    // The server refuses any request without the token, so an answer shows it arrived.
    list_and_call(&daemon);
    let mut seen = vec![
        daemon.log(),
        daemon.ctl_ok(&["--json", "server", "ls"]),
        daemon.ctl_ok(&["server", "inspect", "web"]),
        daemon.ctl_ok(&["server", "logs", "web"]),
        daemon.ctl_ok(&["--json", "secret", "ls"]),
    ];
    for file in [
        "config/mcp-gateway/catalog.toml",
        "config/mcp-gateway/profiles.toml",
    ] {
        seen.push(std::fs::read_to_string(daemon.dir.path().join(file)).unwrap_or_default());
    }
    for text in &seen {
        assert!(!text.contains(&token), "the token leaked into {text}");
    }
    let catalog =
        std::fs::read_to_string(daemon.dir.path().join("config/mcp-gateway/catalog.toml")).unwrap();
    assert!(catalog.contains("${REMOTE_TOKEN}"), "{catalog}");
    // No container for a remote server.
    assert!(daemon.containers().is_empty(), "{:?}", daemon.containers());
}

#[test]
fn a_wrong_secret_gets_a_clear_error_naming_the_server_and_the_status() {
    let token = unique_token();
    let wrong = format!("{token}-wrong");
    let daemon = daemon(&wrong, &[]);
    let server = RemoteServer::start(daemon.dir.path(), &token, &[]);
    add_remote(&daemon, "web", &server.url("http"));
    let report = daemon.python_run(&json!([call("echo", json!({"text": "x"}))]), &[]);
    let text = report["steps"][0].to_string();
    assert!(
        text.contains("\\\"web\\\"") || text.contains("web"),
        "{text}"
    );
    assert!(text.contains("401"), "{text}");
    assert!(!text.contains(&wrong), "{text}");
    let web = daemon.server_entry("web");
    let error = web["containers"][0]["last_error"].to_string();
    assert!(error.contains("401"), "{web}");
    assert!(!error.contains(&wrong), "{web}");
    let logs = daemon.ctl_ok(&["server", "logs", "web"]);
    assert!(logs.contains("HTTP 401"), "{logs}");
    assert!(!daemon.log().contains(&wrong));
}

/// A remote server killed mid-call: the call fails at once, and once the server is back (and the
/// 1 s backoff over) the next call opens a new session on the new process.
#[test]
fn a_killed_remote_server_fails_the_call_at_once_and_a_restarted_one_serves_again() {
    let token = unique_token();
    let daemon = daemon(&token, &[]);
    let mut server = RemoteServer::start(daemon.dir.path(), &token, &["--legacy"]);
    add_remote(&daemon, "web", &server.url("http"));
    let first = daemon.python_run(&json!([call("pid", json!({}))]), &[]);
    let first_pid = first_text(&first["steps"][0]).to_owned();
    let steps = json!([
        {"op": "concurrent", "steps": [
            call("slow", json!({"seconds": 30})),
            {"op": "sleep", "ms": 0},
        ]},
    ]);
    let client = daemon.python_client(&steps, &[]);
    // Wait until the call is in flight at the server.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !server.requests().iter().any(|r| r["tool"] == "slow") {
        assert!(
            Instant::now() < deadline,
            "the call never reached the server: {:?}\n{}",
            server.requests(),
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let killed = Instant::now();
    server.kill();
    let report = mcp_gateway_tests::client_report(client);
    assert!(
        killed.elapsed() < Duration::from_secs(10),
        "{:?}",
        killed.elapsed()
    );
    let failed = &report["steps"][0][0];
    assert!(
        failed["error"].is_object() || failed["isError"] == true,
        "{failed}"
    );
    assert!(failed.to_string().contains("web"), "{failed}");
    server.launch();
    // The backoff after the failure is one second.
    std::thread::sleep(Duration::from_millis(1200));
    let again = daemon.python_run(&json!([call("pid", json!({}))]), &[]);
    let second_pid = first_text(&again["steps"][0]).to_owned();
    assert!(!second_pid.is_empty(), "{again}");
    assert_ne!(first_pid, second_pid);
    let web = daemon.server_entry("web");
    assert_eq!(web["containers"][0]["restarts"], 1, "{web}");
}

/// Writes a CA and a certificate for 127.0.0.1 it signed; returns (CA, certificate, key).
fn certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let run = |args: &[&str]| {
        let output = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl");
        assert!(output.status.success(), "openssl {args:?}: {output:?}");
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=mcp-gateway test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ]);
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        "san.ext",
        "-out",
        "server.pem",
    ]);
    (
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("server.key"),
    )
}

#[test]
fn https_trusts_the_ca_that_ssl_cert_file_names_and_no_other() {
    let token = unique_token();
    let scratch = tempfile::tempdir().unwrap();
    let (ca, cert, key) = certificates(scratch.path());
    let cert = cert.display().to_string();
    let key = key.display().to_string();
    let server = RemoteServer::start(
        scratch.path(),
        &token,
        &["--certfile", &cert, "--keyfile", &key],
    );
    let trusting = daemon(&token, &[("SSL_CERT_FILE", ca.to_str().unwrap())]);
    add_remote(&trusting, "web", &server.url("https"));
    list_and_call(&trusting);
    // The system's roots do not include the test CA.
    let other = daemon(&token, &[]);
    add_remote(&other, "web", &server.url("https"));
    let report = other.python_run(&json!([call("echo", json!({"text": "x"}))]), &[]);
    let text = report["steps"][0].to_string();
    assert!(
        text.contains("web") && text.contains("certificate"),
        "{text}"
    );
}

#[test]
fn a_remote_and_a_container_server_serve_one_profile() {
    if !require_docker() {
        return;
    }
    let token = unique_token();
    let daemon = daemon(&token, &[]);
    let server = RemoteServer::start(daemon.dir.path(), &token, &[]);
    add_remote(&daemon, "web", &server.url("http"));
    daemon.add_fixture("box");
    daemon.ctl_ok(&[
        "profile", "create", "mixed", "--server", "web", "--server", "box",
    ]);
    let steps = json!([
        {"op": "list_tools"},
        call("web__echo", json!({"text": "from the remote"})),
        call("box__echo", json!({"text": "from the container"})),
        call("pid", json!({})),
        call("whoami", json!({})),
    ]);
    let report = daemon.python_run(&steps, &["--profile", "mixed"]);
    let steps = &report["steps"];
    let names = tool_names(&steps[0]);
    assert!(names.contains(&"web__echo".to_owned()), "{names:?}");
    assert!(names.contains(&"box__echo".to_owned()), "{names:?}");
    assert_eq!(first_text(&steps[1]), "from the remote", "{}", steps[1]);
    assert!(
        first_text(&steps[2]).contains("from the container"),
        "{}",
        steps[2]
    );
    assert!(first_text(&steps[3]).parse::<u32>().is_ok(), "{}", steps[3]);
    assert!(first_text(&steps[4]).contains("box"), "{}", steps[4]);
    let containers = daemon.containers();
    assert_eq!(containers.len(), 1, "{containers:?}");
    // The remote server's secret is nowhere in the container server's definition.
    let inspect = Command::new("docker")
        .arg("inspect")
        .arg(&containers[0])
        .output()
        .unwrap();
    assert!(inspect.status.success());
    assert!(!String::from_utf8_lossy(&inspect.stdout).contains(&token));
}

/// One gateway's own HTTP face as another's remote server: the Python server behind daemon
/// `inner`, whose face daemon `outer` reaches with the face's token as its header secret.
#[test]
fn one_gateways_http_face_serves_another_as_a_remote_server() {
    let token = unique_token();
    let inner = daemon(&token, &[]);
    let server = RemoteServer::start(inner.dir.path(), &token, &[]);
    add_remote(&inner, "web", &server.url("http"));
    let face = inner.ctl_json(&["http", "enable", "--listen", "127.0.0.1:0"]);
    let url = face["url"].as_str().expect("the face listens");
    let face_token = inner.ctl_ok(&["http", "token"]).trim().to_owned();
    let outer = daemon(&face_token, &[]);
    add_remote(&outer, "inner", url);
    list_and_call(&outer);
    let listed = outer.server_entry("inner");
    assert_eq!(listed["containers"][0]["state"], "running", "{listed}");
}

/// A server that closes a call's event stream mid-call (SEP-1699 polling): the gateway resumes it
/// with GET and `Last-Event-ID` and the call gets its answer and all its progress.
#[test]
fn a_stream_the_server_closes_is_resumed_from_its_last_event() {
    let token = unique_token();
    let daemon = daemon(&token, &[]);
    let server = RemoteServer::start(daemon.dir.path(), &token, &["--legacy", "--resumable"]);
    add_remote(&daemon, "web", &server.url("http"));
    let steps = json!([
        {"op": "call_tool", "name": "polled", "arguments": {}, "progress": true},
    ]);
    let report = daemon.python_run(&steps, &[]);
    let step = &report["steps"][0];
    assert_eq!(first_text(step), "resumed", "{step}");
    assert_eq!(step["progress"].as_array().map(Vec::len), Some(2), "{step}");
    let requests = server.requests();
    assert!(
        requests.iter().filter(|r| r["method"] == "GET").count() >= 2,
        "no resuming GET besides the server's stream in {requests:?}"
    );
}

/// A legacy server restarted between calls no longer knows the session: the call that finds out
/// (404) fails saying so, and the next one opens a new session at once, with no backoff.
#[test]
fn a_session_the_server_forgot_is_replaced_without_backoff() {
    let token = unique_token();
    let daemon = daemon(&token, &[]);
    let mut server = RemoteServer::start(daemon.dir.path(), &token, &["--legacy"]);
    add_remote(&daemon, "web", &server.url("http"));
    let first = daemon.python_run(&json!([call("pid", json!({}))]), &[]);
    let first_pid = first_text(&first["steps"][0]).to_owned();
    server.kill();
    server.launch();
    let report = daemon.python_run(
        &json!([call("pid", json!({})), call("pid", json!({}))]),
        &[],
    );
    let expired = report["steps"][0].to_string();
    assert!(expired.contains("session expired"), "{expired}");
    let second_pid = first_text(&report["steps"][1]).to_owned();
    assert!(second_pid.parse::<u32>().is_ok(), "{}", report["steps"][1]);
    assert_ne!(first_pid, second_pid);
    let web = daemon.server_entry("web");
    assert_eq!(web["containers"][0]["restarts"], 0, "{web}");
    assert_eq!(web["containers"][0]["state"], "running", "{web}");
}
