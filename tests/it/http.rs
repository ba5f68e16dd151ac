//! The Streamable HTTP face (issue 7): `mcpctl http enable` on a loopback port, then curl for
//! the exact statuses and headers (401 without the token, 403 for a foreign Host or Origin, 413,
//! 400 for routing headers (`Mcp-Param-*` included) that contradict the body, the session caps,
//! both eras' happy paths, an `input_required`
//! retry in a later POST, concurrent POSTs with one id) and the Python SDK's
//! Streamable HTTP client, legacy and 2026-07-28, listing and calling tools through it.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use mcp_gateway_tests::{Daemon, Start, first_text, require_docker, wait_for};
use serde_json::{Value, json};

/// One HTTP exchange as curl saw it.
struct Reply {
    status: u16,
    /// The header block, lowercased.
    headers: String,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            (key.trim() == name).then(|| value.trim())
        })
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|err| panic!("not JSON ({err}): {}", self.body))
    }

    /// The `data:` lines of an event stream, parsed.
    fn events(&self) -> Vec<Value> {
        self.body
            .lines()
            .filter_map(|line| line.strip_prefix("data: "))
            .map(|data| serde_json::from_str(data).unwrap())
            .collect()
    }
}

fn curl(args: &[&str]) -> Reply {
    let output = Command::new("curl")
        .args(["-s", "-i", "--max-time", "60"])
        .args(args)
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status in {text:?}"));
    Reply {
        status,
        headers: head.to_ascii_lowercase(),
        body: body.to_owned(),
    }
}

/// A daemon with its HTTP face on a free loopback port.
struct Face {
    daemon: Daemon,
    url: String,
    token: String,
}

impl Face {
    fn start() -> Face {
        let daemon = Daemon::start(Start::SocketActivated);
        Face::enable(daemon)
    }

    fn enable(daemon: Daemon) -> Face {
        let status: Value = serde_json::from_str(&daemon.ctl_ok(&[
            "--json",
            "http",
            "enable",
            "--listen",
            "127.0.0.1:0",
        ]))
        .unwrap();
        let url = status["url"].as_str().expect("listening").to_owned();
        let token = daemon.ctl_ok(&["http", "token"]).trim().to_owned();
        Face { daemon, url, token }
    }

    /// `curl -X POST URL` with the token, the MCP `Accept` and `extra` arguments.
    fn post(&self, body: &Value, extra: &[&str]) -> Reply {
        let auth = format!("Authorization: Bearer {}", self.token);
        let body = body.to_string();
        let mut args = vec![
            "-X",
            "POST",
            self.url.as_str(),
            "-H",
            auth.as_str(),
            "-H",
            "Accept: application/json, text/event-stream",
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            body.as_str(),
        ];
        args.extend_from_slice(extra);
        curl(&args)
    }

    /// A legacy session opened with `initialize`; returns its id.
    fn initialize(&self, client: &str) -> String {
        let reply = self.post(
            &json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
                "protocolVersion": "2025-11-25", "capabilities": {},
                "clientInfo": {"name": client, "version": "1"}}}),
            &[],
        );
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(reply.json()["result"]["protocolVersion"], "2025-11-25");
        let id = reply.header("mcp-session-id").expect("a session id");
        assert!(id.len() >= 32, "a random session id: {id}");
        id.to_owned()
    }
}

fn modern_meta(client: &str) -> Value {
    json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": client, "version": "1"},
    })
}

const MODERN_VERSION: &str = "MCP-Protocol-Version: 2026-07-28";

#[test]
fn requests_without_the_token_or_from_foreign_pages_are_refused() {
    let face = Face::start();
    let ping = json!({"jsonrpc": "2.0", "id": 1, "method": "ping"});

    let bare = curl(&["-X", "POST", &face.url, "--data-binary", &ping.to_string()]);
    assert_eq!(bare.status, 401, "{}", bare.body);
    assert!(
        bare.header("www-authenticate")
            .is_some_and(|h| h.starts_with("bearer")),
        "{}",
        bare.headers
    );
    let wrong = format!("Authorization: Bearer {}x", face.token);
    let reply = curl(&["-X", "POST", &face.url, "-H", &wrong, "-d", "{}"]);
    assert_eq!(reply.status, 401);

    let reply = face.post(&ping, &["-H", "Origin: http://evil.example"]);
    assert_eq!(reply.status, 403, "{}", reply.body);
    assert!(reply.body.contains("evil.example"), "{}", reply.body);
    let port = face
        .url
        .rsplit(':')
        .next()
        .unwrap()
        .trim_end_matches("/mcp");
    let rebound = format!("Host: rebinding.example:{port}");
    let reply = face.post(&ping, &["-H", &rebound]);
    assert_eq!(reply.status, 403, "{}", reply.body);
    // A page on another local port is still a loopback origin; the token is what it lacks.
    let reply = face.post(&ping, &["-H", "Origin: http://localhost:3000"]);
    assert_eq!(
        reply.status, 400,
        "no session, but past the checks: {}",
        reply.body
    );

    let huge = face.daemon.dir.path().join("huge.json");
    std::fs::write(&huge, vec![b' '; 16 * 1024 * 1024 + 1]).unwrap();
    let upload = format!("@{}", huge.display());
    let reply = face.post(&ping, &["--data-binary", &upload]);
    assert_eq!(reply.status, 413, "{}", reply.body);

    let reply = face.post(
        &json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}),
        &[],
    );
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert_eq!(reply.json()["error"]["code"], -32600);
    let reply = face.post(
        &json!({"jsonrpc": "2.0", "id": 3, "method": "tools/list"}),
        &["-H", "Mcp-Session-Id: 0123456789abcdef0123456789abcdef"],
    );
    assert_eq!(reply.status, 404, "{}", reply.body);

    let open = face
        .daemon
        .ctl(&["http", "enable", "--listen", "0.0.0.0:0"]);
    assert!(!open.status.success());
    let message = String::from_utf8_lossy(&open.stderr);
    assert!(
        message.contains("not a loopback address") && message.contains("--force"),
        "{message}"
    );
    // The refused change left the face as it was.
    let reply = face.post(&ping, &["-H", "Origin: http://localhost:3000"]);
    assert_eq!(reply.status, 400);
}

/// The face holds at most 64 legacy sessions and 64 shared 2026-07-28 ones (one per client
/// name): a request that would open one more is refused with `503` and a JSON-RPC error naming
/// the cap, no open session is ended to make room, and a deleted session frees its place. No
/// server is needed: the sessions answer `ping` and an empty `tools/list` themselves.
/// A legacy session's GET stream, open once curl has its status line; killed when dropped. Its
/// output is kept open, so that curl does not die writing a keep-alive nobody reads.
struct OpenStream {
    curl: std::process::Child,
    _output: BufReader<std::process::ChildStdout>,
}

impl OpenStream {
    fn open(face: &Face, session: &str) -> OpenStream {
        let mut child = Command::new("curl")
            .args(["-s", "-i", "-N", "--max-time", "120", &face.url])
            .args(["-H", &format!("Authorization: Bearer {}", face.token)])
            .args(["-H", &format!("Mcp-Session-Id: {session}")])
            .args(["-H", "Accept: text/event-stream"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("run curl");
        let mut output = BufReader::new(child.stdout.take().unwrap());
        let mut status = String::new();
        output.read_line(&mut status).unwrap();
        assert!(status.contains(" 200"), "GET stream: {status:?}");
        OpenStream {
            curl: child,
            _output: output,
        }
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        let _ = self.curl.kill();
        let _ = self.curl.wait();
    }
}

/// At the cap, a new legacy session takes the place of the one idle longest (no request in
/// flight, no open GET stream), whose id then gets 404; a session with an open stream is never
/// ended, and when every one has one the new session is refused with 503. Shared 2026-07-28
/// sessions are capped as well, and one used recently is never ended to make room.
#[test]
fn at_the_cap_the_session_idle_longest_makes_room() {
    let face = Face::start();
    let mut sessions: Vec<String> = (0..64)
        .map(|n| face.initialize(&format!("client-{n}")))
        .collect();
    let ping = |session: &str| {
        let with_session = format!("Mcp-Session-Id: {session}");
        face.post(
            &json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}),
            &[
                "-H",
                with_session.as_str(),
                "-H",
                "MCP-Protocol-Version: 2025-11-25",
            ],
        )
        .status
    };
    // The oldest session is busy with its GET stream: the next oldest makes room.
    let mut streams = vec![OpenStream::open(&face, &sessions[0])];
    let admitted = face.initialize("in-place-of-client-1");
    assert_eq!(
        ping(&sessions[1]),
        404,
        "the session idle longest was ended"
    );
    assert_eq!(ping(&sessions[0]), 200, "a session with a stream stays");
    sessions.remove(1);
    sessions.push(admitted);
    for session in &sessions[2..] {
        assert_eq!(ping(session), 200, "session {session} was ended");
    }
    let status: Value =
        serde_json::from_str(&face.daemon.ctl_ok(&["--json", "http", "status"])).unwrap();
    assert_eq!(status["sessions"], 64, "{status}");

    streams.extend(sessions[1..].iter().map(|s| OpenStream::open(&face, s)));
    let initialize = json!({"jsonrpc": "2.0", "id": "over", "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "one-too-many", "version": "1"}}});
    let refused = face.post(&initialize, &[]);
    assert_eq!(refused.status, 503, "{}", refused.body);
    assert!(
        refused.header("mcp-session-id").is_none(),
        "{}",
        refused.headers
    );
    let error = &refused.json()["error"];
    assert_eq!(refused.json()["id"], "over");
    assert_eq!(error["code"], -32000, "{error}");
    assert!(
        error["message"].as_str().unwrap().contains("64 sessions"),
        "{error}"
    );
    for session in &sessions {
        assert_eq!(ping(session), 200, "session {session} was ended");
    }
    let auth = format!("Authorization: Bearer {}", face.token);
    let with_session = format!("Mcp-Session-Id: {}", sessions[0]);
    let deleted = curl(&["-X", "DELETE", &face.url, "-H", &auth, "-H", &with_session]);
    assert_eq!(deleted.status, 204, "{}", deleted.body);
    face.initialize("after-a-delete");
    drop(streams);

    let list = |client: &str| {
        let body = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list",
            "params": {"_meta": modern_meta(client)}});
        face.post(
            &body,
            &["-H", MODERN_VERSION, "-H", "Mcp-Method: tools/list"],
        )
    };
    for n in 0..64 {
        let reply = list(&format!("modern-{n}"));
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
    let refused = list("modern-one-too-many");
    assert_eq!(refused.status, 503, "{}", refused.body);
    let error = &refused.json()["error"];
    assert_eq!(error["code"], -32000, "{error}");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("64 shared sessions"),
        "{error}"
    );
    assert_eq!(
        list("modern-0").status,
        200,
        "a client with a session keeps it"
    );
}

#[test]
fn a_connection_that_never_finishes_its_headers_is_closed() {
    let face = Face::start();
    let address = face
        .url
        .trim_start_matches("http://")
        .trim_end_matches("/mcp")
        .to_owned();
    let mut stalled = std::net::TcpStream::connect(&address).unwrap();
    // Half a request line and nothing more, as a process holding connections open would send.
    stalled.write_all(b"POST /mcp HTTP/1.1\r\nHost: ").unwrap();
    // The daemon's header timeout is 10 s; the read gives up long after it.
    stalled
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut answer = Vec::new();
    let read = stalled.read_to_end(&mut answer);
    assert!(
        read.is_ok(),
        "the stalled connection was still open after 60 s: {read:?}"
    );
    // Whatever it was told (nothing, or a 408), the face still serves others.
    let ping = json!({"jsonrpc": "2.0", "id": 1, "method": "ping"});
    let reply = face.post(&ping, &["-H", "Origin: http://localhost:3000"]);
    assert_eq!(reply.status, 400, "{}", reply.body);
}

#[test]
fn a_legacy_session_over_http_with_curl() {
    if !require_docker() {
        return;
    }
    let face = Face::start();
    // A legacy server, whose list changes reach sessions as notifications.
    face.daemon
        .add_fixture_with_env("alpha", &["MCP_FIXTURE_PROTOCOL=2025-11-25"]);
    let session = face.initialize("curl-legacy");
    let with_session = format!("Mcp-Session-Id: {session}");
    let args = [
        "-H",
        with_session.as_str(),
        "-H",
        "MCP-Protocol-Version: 2025-11-25",
    ];

    let reply = face.post(
        &json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        &args,
    );
    assert_eq!(reply.status, 202);
    let reply = face.post(
        &json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
        &args,
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    let tools = reply.json()["result"]["tools"].clone();
    assert!(
        tools
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "echo"),
        "{tools}"
    );

    let call = json!({"jsonrpc": "2.0", "id": "call-1", "method": "tools/call",
        "params": {"name": "echo", "arguments": {"text": "over http"}}});
    let reply = face.post(&call, &args);
    assert_eq!(reply.json()["id"], "call-1");
    assert_eq!(first_text(&reply.json()["result"]), "over http");

    // Progress asked for: the answer comes as an event stream, progress first.
    let progress = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {
        "name": "progress", "arguments": {"steps": 3}, "_meta": {"progressToken": "p-7"}}});
    let reply = face.post(&progress, &args);
    assert_eq!(reply.header("content-type"), Some("text/event-stream"));
    let events = reply.events();
    assert_eq!(events.len(), 4, "{events:?}");
    for (step, event) in events[..3].iter().enumerate() {
        assert_eq!(event["method"], "notifications/progress");
        assert_eq!(event["params"]["progressToken"], "p-7");
        assert_eq!(event["params"]["progress"], step as u64 + 1);
    }
    assert_eq!(events[3]["id"], 7);
    assert_eq!(first_text(&events[3]["result"]), "done 3");

    // GET opens the stream of what the session is sent unprompted, such as list changes. When the
    // stream is open is not visible from outside, so the change is made until one arrives.
    let auth = format!("Authorization: Bearer {}", face.token);
    let mut stream = Command::new("curl")
        .args([
            "-s",
            "-N",
            "--max-time",
            "60",
            &face.url,
            "-H",
            &auth,
            "-H",
            &with_session,
        ])
        .args(["-H", "Accept: text/event-stream"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let (lines, events) = std::sync::mpsc::channel();
    let output = stream.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(output).lines().map_while(Result::ok) {
            let _ = lines.send(line);
        }
    });
    let change = json!({"jsonrpc": "2.0", "id": "change", "method": "tools/call",
        "params": {"name": "change", "arguments": {"what": "tools"}}});
    let changed = (0..20).any(|_| {
        assert_eq!(
            first_text(&face.post(&change, &args).json()["result"]),
            "changed tools"
        );
        std::iter::from_fn(|| events.recv_timeout(Duration::from_secs(1)).ok())
            .any(|line| line.contains("notifications/tools/list_changed"))
    });
    let _ = stream.kill();
    let _ = stream.wait();
    assert!(changed, "no list change on the GET stream");

    let reply = face.post(
        &json!({"jsonrpc": "2.0", "id": 8, "method": "tools/list"}),
        &[
            "-H",
            &with_session,
            "-H",
            "MCP-Protocol-Version: 2025-06-18",
        ],
    );
    assert_eq!(
        reply.status, 400,
        "another version than initialize settled on"
    );

    let status: Value =
        serde_json::from_str(&face.daemon.ctl_ok(&["--json", "http", "status"])).unwrap();
    assert_eq!(status["sessions"], 1, "{status}");
    let auth = format!("Authorization: Bearer {}", face.token);
    let reply = curl(&["-X", "DELETE", &face.url, "-H", &auth, "-H", &with_session]);
    assert_eq!(reply.status, 204);
    let reply = face.post(
        &json!({"jsonrpc": "2.0", "id": 9, "method": "tools/list"}),
        &args,
    );
    assert_eq!(reply.status, 404, "a deleted session is gone");

    let calls: Value = serde_json::from_str(&face.daemon.ctl_ok(&["--json", "calls"])).unwrap();
    let clients: Vec<&Value> = calls["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| &c["client"])
        .collect();
    assert!(
        clients.len() >= 3,
        "echo, progress and change at least: {calls}"
    );
    assert!(
        clients.iter().all(|c| *c == "curl-legacy (http)"),
        "{calls}"
    );
}

#[test]
fn modern_requests_over_http_with_curl() {
    if !require_docker() {
        return;
    }
    let face = Face::start();
    face.daemon.add_fixture("alpha");
    let call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
        "name": "echo", "arguments": {"text": "stateless"}, "_meta": modern_meta("curl-modern")}});
    let routed = ["-H", MODERN_VERSION, "-H", "Mcp-Method: tools/call"];

    let reply = face.post(&call, &[&routed[..], &["-H", "Mcp-Name: echo"]].concat());
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(
        reply.header("mcp-session-id").is_none(),
        "no sessions in 2026-07-28"
    );
    let result = &reply.json()["result"];
    assert_eq!(first_text(result), "stateless");
    assert_eq!(result["resultType"], "complete");

    // Routing headers that contradict the body: refused before anything runs.
    for (headers, named) in [
        (
            vec![
                "-H",
                MODERN_VERSION,
                "-H",
                "Mcp-Method: tools/call",
                "-H",
                "Mcp-Name: add",
            ],
            "Mcp-Name",
        ),
        (
            vec![
                "-H",
                MODERN_VERSION,
                "-H",
                "Mcp-Method: tools/list",
                "-H",
                "Mcp-Name: echo",
            ],
            "Mcp-Method",
        ),
        (
            vec!["-H", "Mcp-Method: tools/call", "-H", "Mcp-Name: echo"],
            "MCP-Protocol-Version",
        ),
    ] {
        let reply = face.post(&call, &headers);
        assert_eq!(reply.status, 400, "{headers:?}: {}", reply.body);
        let error = &reply.json()["error"];
        assert_eq!(error["code"], -32020, "{error}");
        assert!(
            error["message"].as_str().unwrap().contains(named),
            "{error}"
        );
    }
    let encoded = face.post(
        &call,
        &[&routed[..], &["-H", "Mcp-Name: =?base64?ZWNobw==?="]].concat(),
    );
    assert_eq!(encoded.status, 200, "{}", encoded.body);

    // The fixture's `region` mirrors its argument into `Mcp-Param-Region` (x-mcp-header): the
    // header must say what the body says, plainly or base64-encoded.
    let region = json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {
        "name": "region", "arguments": {"region": "eu-west"}, "_meta": modern_meta("curl-modern")}});
    let named = [
        "-H",
        MODERN_VERSION,
        "-H",
        "Mcp-Method: tools/call",
        "-H",
        "Mcp-Name: region",
    ];
    for header in [
        "Mcp-Param-Region: eu-west",
        "Mcp-Param-Region: =?base64?ZXUtd2VzdA==?=",
    ] {
        let reply = face.post(&region, &[&named[..], &["-H", header]].concat());
        assert_eq!(reply.status, 200, "{header}: {}", reply.body);
        assert_eq!(first_text(&reply.json()["result"]), "region eu-west");
    }
    for (extra, named_in_error) in [
        (vec![], "missing Mcp-Param-Region"),
        (
            vec!["-H", "Mcp-Param-Region: us-east"],
            "Mcp-Param-Region \"us-east\"",
        ),
    ] {
        let reply = face.post(&region, &[&named[..], &extra[..]].concat());
        assert_eq!(reply.status, 400, "{extra:?}: {}", reply.body);
        let error = &reply.json()["error"];
        assert_eq!(error["code"], -32020, "{error}");
        assert!(
            error["message"].as_str().unwrap().contains(named_in_error),
            "{error}"
        );
    }

    let unknown = json!({"jsonrpc": "2.0", "id": 2, "method": "vendor/nothing",
        "params": {"_meta": modern_meta("curl-modern")}});
    let reply = face.post(
        &unknown,
        &["-H", MODERN_VERSION, "-H", "Mcp-Method: vendor/nothing"],
    );
    assert_eq!(reply.status, 404, "{}", reply.body);
    assert_eq!(reply.json()["error"]["code"], -32601);

    let discover = json!({"jsonrpc": "2.0", "id": 3, "method": "server/discover",
        "params": {"_meta": modern_meta("curl-modern")}});
    let reply = face.post(
        &discover,
        &["-H", MODERN_VERSION, "-H", "Mcp-Method: server/discover"],
    );
    assert_eq!(
        reply.json()["result"]["supportedVersions"][0],
        "2026-07-28",
        "{}",
        reply.body
    );

    // subscriptions/listen answers with an event stream that stays open; its acknowledgement
    // comes first.
    let listen = json!({"jsonrpc": "2.0", "id": 4, "method": "subscriptions/listen", "params": {
        "notifications": {"toolsListChanged": true}, "_meta": modern_meta("curl-modern")}});
    let reply = face.post(
        &listen,
        &[
            "-H",
            MODERN_VERSION,
            "-H",
            "Mcp-Method: subscriptions/listen",
            "--max-time",
            "2",
        ],
    );
    assert_eq!(reply.header("content-type"), Some("text/event-stream"));
    let events = reply.events();
    assert_eq!(
        events.len(),
        1,
        "still open after the acknowledgement: {events:?}"
    );
    assert_eq!(
        events[0]["method"],
        "notifications/subscriptions/acknowledged"
    );
    assert_eq!(
        events[0]["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"],
        4
    );

    // A legacy-only method has no place in the 2026-07-28 protocol.
    let get = curl(&[
        "-X",
        "GET",
        &face.url,
        "-H",
        &format!("Authorization: Bearer {}", face.token),
    ]);
    assert_eq!(get.status, 405);

    let calls = face.daemon.ctl_ok(&["calls"]);
    assert!(calls.contains("curl-modern (http)"), "{calls}");
}

/// A 2026-07-28 `tools/call` over HTTP that asks for log messages
/// (`io.modelcontextprotocol/logLevel`) or progress, from a client that accepts an event stream,
/// is answered with one: the log messages of both eras' servers at or above the level (with the
/// server's name as logger) and the progress, then the answer, after which the stream ends. A
/// call that asks for neither is answered with plain JSON, its server's log message going to
/// nobody.
#[test]
fn a_modern_post_streams_its_log_messages_and_progress_before_the_answer() {
    if !require_docker() {
        return;
    }
    let face = Face::start();
    face.daemon.add_fixture("alpha");
    face.daemon
        .add_fixture_with_env("gamma", &["MCP_FIXTURE_PROTOCOL=2025-11-25"]);
    let call = |id: u64, tool: &str, arguments: Value, meta: Value| {
        let body = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": {"name": tool, "arguments": arguments, "_meta": meta}});
        let name = format!("Mcp-Name: {tool}");
        let reply = face.post(
            &body,
            &[
                "-H",
                MODERN_VERSION,
                "-H",
                "Mcp-Method: tools/call",
                "-H",
                name.as_str(),
            ],
        );
        assert_eq!(reply.status, 200, "{tool}: {}", reply.body);
        reply
    };
    let mut warning = modern_meta("curl-logs");
    warning["io.modelcontextprotocol/logLevel"] = json!("warning");

    for (id, server) in [(1, "alpha"), (2, "gamma")] {
        let loud = format!("{server} error");
        let reply = call(
            id,
            &format!("{server}__log"),
            json!({"level": "error", "message": loud}),
            warning.clone(),
        );
        assert_eq!(reply.header("content-type"), Some("text/event-stream"));
        let events = reply.events();
        assert_eq!(events.len(), 2, "{server}: {events:?}");
        assert_eq!(events[0]["method"], "notifications/message", "{events:?}");
        assert_eq!(events[0]["params"]["data"], loud.as_str());
        assert_eq!(events[0]["params"]["level"], "error");
        assert_eq!(events[0]["params"]["logger"], server);
        assert_eq!(events[1]["id"], id);
        assert_eq!(first_text(&events[1]["result"]), "logged", "{events:?}");
    }

    // Below the level: the modern server does not log it, and what the legacy server logs the
    // gateway keeps from the stream; either way only the answer is streamed.
    for (id, server) in [(3, "alpha"), (4, "gamma")] {
        let reply = call(
            id,
            &format!("{server}__log"),
            json!({"level": "info", "message": format!("{server} info")}),
            warning.clone(),
        );
        let events = reply.events();
        assert_eq!(events.len(), 1, "{server}: {events:?}");
        assert_eq!(events[0]["id"], id, "{events:?}");
    }

    let unasked = call(
        5,
        "gamma__log",
        json!({"level": "error", "message": "gamma unasked"}),
        modern_meta("curl-logs"),
    );
    assert_eq!(unasked.header("content-type"), Some("application/json"));
    assert_eq!(first_text(&unasked.json()["result"]), "logged");

    let mut progress = modern_meta("curl-logs");
    progress["progressToken"] = json!("p-6");
    let reply = call(6, "alpha__progress", json!({"steps": 2}), progress);
    assert_eq!(reply.header("content-type"), Some("text/event-stream"));
    let events = reply.events();
    assert_eq!(events.len(), 3, "{events:?}");
    for (step, event) in events[..2].iter().enumerate() {
        assert_eq!(event["method"], "notifications/progress", "{events:?}");
        assert_eq!(event["params"]["progressToken"], "p-6");
        assert_eq!(event["params"]["progress"], step as u64 + 1);
    }
    assert_eq!(first_text(&events[2]["result"]), "done 2", "{events:?}");
}

/// A legacy server's sampling request during a 2026-07-28 call over HTTP comes back as
/// `input_required`; the retry, in another POST, resumes the parked call, since the face's
/// modern requests share a session. Two concurrent POSTs with the same id get their own answers.
#[test]
fn an_input_required_retry_over_http_resumes_the_parked_call() {
    if !require_docker() {
        return;
    }
    let face = Face::start();
    face.daemon
        .add_fixture_with_env("alpha", &["MCP_FIXTURE_PROTOCOL=2025-11-25"]);
    let mut meta = modern_meta("curl-input");
    meta["io.modelcontextprotocol/clientCapabilities"] = json!({"sampling": {}});
    let routed = [
        "-H",
        MODERN_VERSION,
        "-H",
        "Mcp-Method: tools/call",
        "-H",
        "Mcp-Name: sample",
    ];
    let call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
        "name": "sample", "arguments": {"prompt": "over http"}, "_meta": meta}});
    let asked = face.post(&call, &routed);
    assert_eq!(asked.status, 200, "{}", asked.body);
    let asked = asked.json();
    assert_eq!(asked["id"], 1, "{asked}");
    let result = &asked["result"];
    assert_eq!(result["resultType"], "input_required", "{asked}");
    let (key, request) = result["inputRequests"]
        .as_object()
        .and_then(|requests| requests.iter().next())
        .unwrap_or_else(|| panic!("no inputRequests in {asked}"));
    assert_eq!(request["method"], "sampling/createMessage", "{asked}");
    let mut retry = call.clone();
    retry["id"] = json!(2);
    retry["params"]["requestState"] = result["requestState"].clone();
    retry["params"]["inputResponses"] = json!({key: {"role": "assistant",
        "content": {"type": "text", "text": "answered over http"}, "model": "m"}});
    let done = face.post(&retry, &routed);
    assert_eq!(done.status, 200, "{}", done.body);
    let done = done.json();
    assert_eq!(done["id"], 2, "{done}");
    assert_eq!(first_text(&done["result"]), "answered over http", "{done}");
    assert_eq!(done["result"]["resultType"], "complete", "{done}");

    // The longer call is still in flight under id 7 when the shorter one, also id 7, answers.
    let sleep = |ms: u64| {
        json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {
            "name": "sleep", "arguments": {"ms": ms}, "_meta": modern_meta("curl-input")}})
    };
    let sleeping = [
        "-H",
        MODERN_VERSION,
        "-H",
        "Mcp-Method: tools/call",
        "-H",
        "Mcp-Name: sleep",
    ];
    let replies = std::thread::scope(|scope| {
        let long = scope.spawn(|| face.post(&sleep(2000), &sleeping));
        std::thread::sleep(Duration::from_millis(300));
        let short = scope.spawn(|| face.post(&sleep(100), &sleeping));
        [long.join().unwrap(), short.join().unwrap()]
    });
    for (reply, ms) in replies.iter().zip([2000, 100]) {
        assert_eq!(reply.status, 200, "{}", reply.body);
        let answer = reply.json();
        assert_eq!(answer["id"], 7, "{answer}");
        assert_eq!(
            first_text(&answer["result"]),
            format!("slept {ms}"),
            "{answer}"
        );
    }
}

#[test]
fn the_python_sdk_lists_and_calls_tools_over_http_in_both_eras() {
    if !require_docker() {
        return;
    }
    let face = Face::start();
    face.daemon.add_fixture("alpha");
    // A legacy server, so that its sampling request reaches the client over the HTTP stream.
    face.daemon
        .add_fixture_with_env("beta", &["MCP_FIXTURE_PROTOCOL=2025-11-25"]);

    let steps = json!([
        {"op": "list_tools"},
        {"op": "call_tool", "name": "alpha__echo", "arguments": {"text": "sdk over http"}},
        {"op": "call_tool", "name": "alpha__progress", "arguments": {"steps": 2}, "progress": true},
        {"op": "call_tool", "name": "beta__sample", "arguments": {"prompt": "hello"}},
    ]);
    let report =
        face.daemon
            .python_http_run(&steps, &["--callbacks", "sampling"], &face.url, &face.token);
    assert_eq!(
        report["initialize"]["serverInfo"]["name"], "mcp-gateway",
        "{report}"
    );
    let names: Vec<&str> = report["steps"][0]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(
        names.contains(&"alpha__echo") && names.contains(&"beta__sample"),
        "{names:?}"
    );
    assert_eq!(first_text(&report["steps"][1]), "sdk over http");
    assert_eq!(
        report["steps"][2]["progress"].as_array().unwrap().len(),
        2,
        "{report}"
    );
    assert_eq!(
        first_text(&report["steps"][3]),
        "sampled: hello",
        "{report}"
    );

    let steps = json!([
        {"op": "list", "kind": "tools"},
        {"op": "call_tool", "name": "alpha__echo", "arguments": {"text": "modern sdk"}},
    ]);
    let report =
        face.daemon
            .python_http_run(&steps, &["--mode", "2026-07-28"], &face.url, &face.token);
    assert_eq!(
        report["initialize"]["protocolVersion"], "2026-07-28",
        "{report}"
    );
    let items = report["steps"][0]["items"].as_array().unwrap();
    assert!(items.iter().any(|t| t["name"] == "beta__echo"), "{report}");
    assert_eq!(first_text(&report["steps"][1]), "modern sdk", "{report}");

    // The legacy client deleted its session on the way out.
    wait_for(Duration::from_secs(5), || {
        let status: Value =
            serde_json::from_str(&face.daemon.ctl_ok(&["--json", "http", "status"])).unwrap();
        status["sessions"] == 0
    });
}

#[test]
fn the_face_is_persisted_its_token_rotates_and_disable_stops_it() {
    let Face {
        mut daemon,
        url,
        token,
    } = Face::start();
    let config = daemon.dir.path().join("config/mcp-gateway/config.toml");
    let written = std::fs::read_to_string(&config).unwrap();
    assert!(
        written.contains("[http]") && written.contains("127.0.0.1:0"),
        "{written}"
    );
    let token_file = daemon.dir.path().join("config/mcp-gateway/http-token");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&token_file).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);

    let rotated = daemon
        .ctl_ok(&["http", "token", "--rotate"])
        .trim()
        .to_owned();
    assert_ne!(rotated, token);
    let ping = json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}).to_string();
    let old = curl(&[
        "-X",
        "POST",
        &url,
        "-H",
        &format!("Authorization: Bearer {token}"),
        "-d",
        &ping,
    ]);
    assert_eq!(old.status, 401, "the old token is refused at once");

    // A daemon started again listens again, with the same token.
    assert!(daemon.stop());
    daemon.relaunch(Start::SocketActivated);
    let status: Value =
        serde_json::from_str(&daemon.ctl_ok(&["--json", "http", "status"])).unwrap();
    let again = status["url"].as_str().unwrap_or_else(|| panic!("{status}"));
    assert_eq!(daemon.ctl_ok(&["http", "token"]).trim(), rotated);
    let reply = curl(&[
        "-X",
        "POST",
        again,
        "-H",
        &format!("Authorization: Bearer {rotated}"),
        "-d",
        &ping,
    ]);
    assert_eq!(reply.status, 400, "past the token: {}", reply.body);

    let status: Value =
        serde_json::from_str(&daemon.ctl_ok(&["--json", "http", "disable"])).unwrap();
    assert_eq!(status["enabled"], false, "{status}");
    assert!(status["url"].is_null(), "{status}");
    assert!(!std::fs::read_to_string(&config).unwrap().contains("[http]"));
    let gone = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "--max-time",
            "5",
            "-X",
            "POST",
            again,
            "-d",
            &ping,
        ])
        .status()
        .unwrap();
    assert!(!gone.success(), "nothing listens after disable");
}
