//! 2026-07-28 requests over HTTP: stateless POSTs. The routing headers must repeat the body
//! (`MCP-Protocol-Version`, `Mcp-Method`, and `Mcp-Name` for the requests that name something),
//! or the request is refused with `400` and `-32020` before anything runs; so is a `tools/call`
//! whose `Mcp-Param-*` headers disagree with its arguments (`params`). Requests go through
//! the face's long-lived shared sessions (`shared`), so a retry after `input_required` finds its
//! parked call; a `subscriptions/listen` stream gets a session of its own for its lifetime. The
//! answer is JSON, or an event stream when the client accepts one and the request asks for
//! progress or log messages (`io.modelcontextprotocol/logLevel`), and for
//! `subscriptions/listen`: the stream carries that progress and those log messages, then the
//! answer. Closing the stream (or the connection) cancels the request.

use base64::Engine;
use hyper::header::HeaderMap;
use hyper::{Response, StatusCode};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::params;
use super::pipe::{self, Output, Pipe};
use super::shared::Refused;
use super::sse::{self, Body};
use super::{Context, Posted, accepts_exactly, client_name, header_text, plain, rpc_error};
use crate::jsonrpc::{Kind, Message, code};
use crate::lists::ListKind;
use crate::modern::{CLIENT_INFO_KEY, LISTEN, PROTOCOL_KEY, UNSUPPORTED_VERSION};

/// The 2026 error for routing headers that disagree with the body.
const HEADER_MISMATCH: i64 = -32020;
/// Notifications buffered for one stream before they are dropped.
const STREAM_BUFFER: usize = 64;

/// The routing headers, each allowed once.
const ROUTING_HEADERS: [&str; 3] = ["mcp-protocol-version", "mcp-method", "mcp-name"];

pub async fn post(
    context: &std::sync::Arc<Context>,
    headers: &HeaderMap,
    posted: Posted,
) -> Response<Body> {
    match posted.kind() {
        Kind::Request => {}
        // Cancelling is closing the stream; other notifications have no session to go to.
        Kind::Notification => return sse::empty(StatusCode::ACCEPTED),
        _ => {
            return rpc_error(
                StatusCode::BAD_REQUEST,
                &posted.id(),
                code::INVALID_REQUEST,
                "a 2026-07-28 client sends no responses",
            );
        }
    }
    let checked = match check_headers(headers, &posted) {
        Ok(()) if posted.method() == "tools/call" => check_params(context, headers, &posted).await,
        checked => checked,
    };
    if let Err(message) = checked {
        return rpc_error(
            StatusCode::BAD_REQUEST,
            &posted.id(),
            HEADER_MISMATCH,
            &message,
        );
    }
    let meta = posted.params.as_ref().and_then(|p| p.get("_meta"));
    let client = client_name(meta.and_then(|m| m.get(CLIENT_INFO_KEY)));
    let streams = posted.method() == LISTEN
        || (accepts_exactly(headers, "text/event-stream")
            && (posted.progress_token().is_some() || posted.log_level().is_some()));
    let (lines, mut answers) = mpsc::channel(STREAM_BUFFER);
    let shutting_down = || {
        plain(
            StatusCode::SERVICE_UNAVAILABLE,
            "the gateway is shutting down",
        )
    };
    if posted.method() == LISTEN {
        let (pipe, output) = pipe::open(context, context.profile(), client);
        if !pipe.send(&posted.line).await {
            return shutting_down();
        }
        let gone = CancellationToken::new();
        tokio::spawn(listen(pipe, output, posted.id(), lines, gone.clone()));
        return sse::stream(answers, gone.drop_guard());
    }
    let pending = match context
        .shared
        .request(context, context.profile(), client, &posted, streams, lines)
        .await
    {
        Ok(pending) => pending,
        Err(Refused::Full) => {
            let remedy = "there is one per client name, and one takes the place of another only once that one has been unused for longer than a parked call lives";
            return super::too_many_sessions(&posted.id(), "shared session", remedy);
        }
        Err(Refused::Stopping) => return shutting_down(),
    };
    if streams {
        return sse::stream(answers, pending);
    }
    let answer = answers.recv().await;
    drop(pending);
    match answer {
        Some(line) => sse::json(status_of(&line), line),
        None => plain(
            StatusCode::SERVICE_UNAVAILABLE,
            "the request ended without an answer",
        ),
    }
}

/// Passes a `subscriptions/listen` stream on, in a session of its own, until the session ends
/// it or the client stops reading, which cancels it.
async fn listen(
    pipe: Pipe,
    mut output: Output,
    id: Value,
    lines: mpsc::Sender<String>,
    gone: CancellationToken,
) {
    let key = id.to_string();
    loop {
        let line = tokio::select! {
            line = pipe::next_line(&mut output) => line,
            () = gone.cancelled() => {
                pipe.send(&pipe::cancelled(&id)).await;
                break;
            }
        };
        let Some(line) = line else {
            break;
        };
        let Ok(message) = Message::parse(&line) else {
            continue;
        };
        match message.kind() {
            Kind::Response if message.id.as_ref().map(Value::to_string) == Some(key.clone()) => {
                let _ = lines.send(line).await;
                break;
            }
            Kind::Notification => {
                let _ = lines.try_send(line);
            }
            _ => {}
        }
    }
    pipe.close().await;
}

/// The HTTP status the 2026-07-28 transport gives a JSON answer: `404` for an unknown method,
/// `400` for a version or header problem, `200` otherwise.
fn status_of(line: &str) -> StatusCode {
    let code = Message::parse(line)
        .ok()
        .and_then(|m| m.error)
        .and_then(|e| serde_json::from_str::<Value>(e.get()).ok())
        .and_then(|e| e.get("code").and_then(Value::as_i64));
    match code {
        Some(code::METHOD_NOT_FOUND) => StatusCode::NOT_FOUND,
        Some(UNSUPPORTED_VERSION | HEADER_MISMATCH) => StatusCode::BAD_REQUEST,
        _ => StatusCode::OK,
    }
}

/// Checks a `tools/call`'s `Mcp-Param-*` headers against the `x-mcp-header` annotations of the
/// tool's schema in the profile's merged tools table.
async fn check_params(
    context: &Context,
    headers: &HeaderMap,
    posted: &Posted,
) -> Result<(), String> {
    let params = posted.params.as_ref();
    let Some(name) = params.and_then(|p| p.get("name")).and_then(Value::as_str) else {
        return Ok(());
    };
    let profile = context
        .profile()
        .unwrap_or_else(|| context.gateway.config.get().active.clone());
    // Without a table, or with a name it lacks, the call itself fails with the reason.
    let Ok(table) = context.gateway.table(&profile, ListKind::Tools).await else {
        return Ok(());
    };
    let schema = table
        .items
        .iter()
        .find(|tool| tool.get("name").and_then(Value::as_str) == Some(name))
        .and_then(|tool| tool.get("inputSchema"))
        .and_then(Value::as_object);
    match schema {
        Some(schema) => params::check(headers, schema, params.and_then(|p| p.get("arguments"))),
        None => Ok(()),
    }
}

/// A header value, decoded from `=?base64?…?=` when a client had to encode it.
pub(super) fn decode(value: &str) -> Option<String> {
    match value
        .strip_prefix("=?base64?")
        .and_then(|v| v.strip_suffix("?="))
    {
        Some(payload) => base64::engine::general_purpose::STANDARD
            .decode(payload)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok()),
        None => Some(value.to_owned()),
    }
}

/// Checks that the routing headers say what the body says.
fn check_headers(headers: &HeaderMap, posted: &Posted) -> Result<(), String> {
    if let Some(name) = ROUTING_HEADERS
        .iter()
        .find(|name| headers.get_all(**name).iter().count() > 1)
    {
        return Err(format!("the {name} header is given more than once"));
    }
    let params = posted.params.as_ref();
    let version = params
        .and_then(|p| p.get("_meta"))
        .and_then(|m| m.get(PROTOCOL_KEY))
        .and_then(Value::as_str);
    // A body without the version is the session's to refuse (-32602), as on any transport.
    if let Some(version) = version {
        match header_text(headers, "mcp-protocol-version") {
            Some(header) if header == version => {}
            Some(header) => {
                return Err(format!(
                    "MCP-Protocol-Version {header} does not match the body's {PROTOCOL_KEY} {version}"
                ));
            }
            None => return Err("missing MCP-Protocol-Version header".to_owned()),
        }
    }
    let method = posted.method();
    match header_text(headers, "mcp-method") {
        Some(header) if header == method => {}
        Some(header) => {
            return Err(format!(
                "Mcp-Method {header} does not match the body's method {method}"
            ));
        }
        None => return Err("missing Mcp-Method header".to_owned()),
    }
    if let Some(field) = crate::modern::name_field(method)
        && let Some(named) = params.and_then(|p| p.get(field)).and_then(Value::as_str)
    {
        let header = header_text(headers, "mcp-name").and_then(decode);
        if header.as_deref() != Some(named) {
            return Err(format!(
                "Mcp-Name {} does not match the body's {field} {named:?}",
                header.map_or("(missing)".to_owned(), |h| format!("{h:?}"))
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn posted(body: Value) -> Posted {
        super::super::parse(&bytes::Bytes::from(body.to_string()))
            .unwrap_or_else(|_| panic!("{body} does not parse"))
    }

    fn call(name: &str) -> Posted {
        posted(
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
                "name": name, "arguments": {},
                "_meta": {PROTOCOL_KEY: "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}},
            }}),
        )
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, value.parse().unwrap());
        }
        map
    }

    const GOOD: [(&str, &str); 3] = [
        ("mcp-protocol-version", "2026-07-28"),
        ("mcp-method", "tools/call"),
        ("mcp-name", "echo"),
    ];

    #[test]
    fn headers_that_repeat_the_body_pass() {
        assert_eq!(check_headers(&headers(&GOOD), &call("echo")), Ok(()));
        let encoded = headers(&[GOOD[0], GOOD[1], ("mcp-name", "=?base64?ZWNobw==?=")]);
        assert_eq!(check_headers(&encoded, &call("echo")), Ok(()));
    }

    #[test]
    fn each_disagreement_is_named() {
        let cases: [(&[(&str, &str)], &str); 6] = [
            (&[GOOD[1], GOOD[2]], "missing MCP-Protocol-Version"),
            (
                &[("mcp-protocol-version", "2025-11-25"), GOOD[1], GOOD[2]],
                "does not match the body's io.modelcontextprotocol/protocolVersion",
            ),
            (&[GOOD[0], GOOD[2]], "missing Mcp-Method"),
            (
                &[GOOD[0], ("mcp-method", "tools/list"), GOOD[2]],
                "Mcp-Method tools/list",
            ),
            (&[GOOD[0], GOOD[1], ("mcp-name", "add")], "Mcp-Name \"add\""),
            (
                &[GOOD[0], GOOD[1], GOOD[2], ("mcp-name", "echo")],
                "more than once",
            ),
        ];
        for (pairs, expected) in cases {
            let error = check_headers(&headers(pairs), &call("echo")).unwrap_err();
            assert!(error.contains(expected), "{error} lacks {expected}");
        }
    }

    #[test]
    fn statuses_follow_the_error_code() {
        let line = |code: i64| {
            format!(r#"{{"jsonrpc":"2.0","id":1,"error":{{"code":{code},"message":"m"}}}}"#)
        };
        assert_eq!(status_of(&line(-32601)), StatusCode::NOT_FOUND);
        assert_eq!(status_of(&line(-32022)), StatusCode::BAD_REQUEST);
        assert_eq!(status_of(&line(-32602)), StatusCode::OK);
        assert_eq!(
            status_of(r#"{"jsonrpc":"2.0","id":1,"result":{}}"#),
            StatusCode::OK
        );
    }
}
