//! One exchange with a remote server: the POST of an upstream line and what comes back (a JSON
//! body, an event stream resumed when it is cut, an HTTP error), the GET stream of a legacy
//! session, and the 2026-07-28 routing headers.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Response, StatusCode};
use serde_json::Value;

use super::{End, Shared, lock, sse};
use crate::jsonrpc::{Kind, Message};
use crate::modern;

/// The wait before reconnecting an event stream when the server named none (`retry`).
const DEFAULT_RETRY: Duration = Duration::from_secs(1);
/// How many times a cut stream is resumed before its requests fail.
const RESUMES: u32 = 3;
/// How much of an error body goes into an error message.
const EXCERPT: usize = 200;

/// Where an event stream stands: what to resume from and how long to wait first.
struct StreamState {
    last_id: Option<HeaderValue>,
    retry: Duration,
}

/// How reading an event stream ended.
enum Outcome {
    /// The answer to the request it was read for came.
    Answered,
    /// The server ended the stream.
    Ended,
    /// The stream broke.
    Cut(String),
}

/// POSTs one upstream line and hands back what the server answers.
pub(super) async fn send(shared: &Arc<Shared>, body: Bytes, message: &Message) {
    let method = message.method.as_deref().unwrap_or("a response");
    let id = match message.kind() {
        Kind::Request => message.id.clone(),
        _ => None,
    };
    let mut request = shared.request(Method::POST, body);
    let headers = request.headers_mut();
    headers.insert(
        header::ACCEPT,
        HeaderValue::from_static("application/json, text/event-stream"),
    );
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some(method) = &message.method {
        modern_headers(headers, method, message.params.as_deref());
    }
    let response = match shared.client.request(request).await {
        Ok(response) => response,
        Err(err) => {
            let reason = format!("cannot reach {}: {}", shared.origin, chain(&err));
            shared.log(&format!("POST {method}: {reason}"));
            if let Some(id) = &id {
                shared.fail(id, &reason).await;
            }
            shared.close(End::Failed);
            return;
        }
    };
    let status = response.status();
    if method == "initialize"
        && status.is_success()
        && let Some(session) = response.headers().get("mcp-session-id")
    {
        *lock(&shared.session) = Some(session.clone());
    }
    if status == StatusCode::NOT_FOUND && method != "initialize" && lock(&shared.session).is_some()
    {
        shared.log(&format!("POST {method}: HTTP 404: the session expired"));
        if let Some(id) = &id {
            let reason = "the session expired; the next request starts a new one";
            shared.fail(id, reason).await;
        }
        shared.close(End::Expired);
        return;
    }
    if !status.is_success() {
        return refused(shared, response, id.as_ref(), method).await;
    }
    let Some(id) = id else {
        if method == "notifications/initialized" {
            tokio::spawn(listen(Arc::clone(shared)));
        }
        return;
    };
    if is_event_stream(&response) {
        return stream_answer(shared, response.into_body(), &id, method).await;
    }
    match http_body_util::Limited::new(response.into_body(), shared.max_line)
        .collect()
        .await
    {
        Ok(body) => {
            let body = body.to_bytes();
            let text = String::from_utf8_lossy(&body);
            match serde_json::from_str::<Vec<&serde_json::value::RawValue>>(&text) {
                Ok(batch) => {
                    for message in batch {
                        shared.answer(method, message.get()).await;
                    }
                }
                Err(_) => shared.answer(method, &text).await,
            }
        }
        Err(err) => {
            let reason = format!("the answer to {method} could not be read: {err}");
            shared.log(&format!("POST {method}: {reason}"));
            shared.fail(&id, &reason).await;
        }
    }
}

/// An HTTP error for a POST: a JSON-RPC error the server put in the body for this request is
/// its answer (2026-07-28 servers answer unknown methods with 404 and `-32601`); anything else
/// becomes an error naming the status.
async fn refused(shared: &Shared, response: Response<Incoming>, id: Option<&Value>, method: &str) {
    let status = response.status();
    let body = http_body_util::Limited::new(response.into_body(), shared.max_line)
        .collect()
        .await
        .map(|body| body.to_bytes())
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&body);
    let excerpt = excerpt(&text);
    // The era probe is refused by every legacy server; that is an answer, not a failure.
    if method == "server/discover" && status.is_client_error() {
        tracing::debug!(server = %shared.server, "the era probe got HTTP {status}: a legacy server");
    } else {
        shared.log(&format!("POST {method}: HTTP {status}: {excerpt}"));
    }
    let Some(id) = id else { return };
    if answers(&text, id) {
        return shared.answer(method, &text).await;
    }
    let mut reason = format!("answered {method} with HTTP {status}");
    if !excerpt.is_empty() {
        reason.push_str(&format!(": {excerpt}"));
    }
    shared.fail(id, &reason).await;
}

/// Reads the event stream of a request's POST until its answer, resuming a cut stream with
/// `Last-Event-ID` when the server gave ids; without them the request fails.
async fn stream_answer(shared: &Arc<Shared>, body: Incoming, id: &Value, method: &str) {
    let mut state = StreamState {
        last_id: None,
        retry: DEFAULT_RETRY,
    };
    let mut body = body;
    let mut resumes = 0;
    loop {
        let why = match read_events(shared, body, &mut state, Some((id, method))).await {
            Outcome::Answered => return,
            Outcome::Ended => "the event stream ended before the answer".to_owned(),
            Outcome::Cut(reason) => format!("the event stream was cut: {reason}"),
        };
        let last_id = state.last_id.clone().filter(|_| resumes < RESUMES);
        let Some(last_id) = last_id else {
            shared.log(&format!("POST {method}: {why}"));
            shared.fail(id, &format!("{why} of {method}")).await;
            // A legacy session that lost messages is not trusted further; a 2026-07-28
            // request only loses itself.
            if lock(&shared.session).is_some() {
                shared.close(End::Failed);
            }
            return;
        };
        resumes += 1;
        tokio::time::sleep(state.retry).await;
        let mut request = shared.request(Method::GET, Bytes::new());
        request.headers_mut().insert(
            header::ACCEPT,
            HeaderValue::from_static("text/event-stream"),
        );
        request.headers_mut().insert("last-event-id", last_id);
        body = match shared.client.request(request).await {
            Ok(response) if response.status().is_success() && is_event_stream(&response) => {
                response.into_body()
            }
            Ok(response) => {
                let reason = format!("{why}, and resuming it got HTTP {}", response.status());
                shared.log(&format!("POST {method}: {reason}"));
                return shared.fail(id, &reason).await;
            }
            Err(err) => {
                let reason = format!("{why}, and resuming it failed: {}", chain(&err));
                shared.log(&format!("POST {method}: {reason}"));
                return shared.fail(id, &reason).await;
            }
        };
    }
}

/// Hands every `message` event of `body` to the upstream, until the stream ends or, with
/// `answer_for`, that request's answer came.
async fn read_events(
    shared: &Shared,
    mut body: Incoming,
    state: &mut StreamState,
    answer_for: Option<(&Value, &str)>,
) -> Outcome {
    let mut parser = sse::Parser::new(shared.max_line);
    let mut items = Vec::new();
    let method = answer_for.map_or("", |(_, method)| method);
    loop {
        match body.frame().await {
            None => return Outcome::Ended,
            Some(Err(err)) => return Outcome::Cut(chain(&err)),
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    parser.feed(&data, &mut items);
                }
            }
        }
        for item in items.drain(..) {
            match item {
                sse::Item::Message(text) => {
                    let answered = answer_for.is_some_and(|(id, _)| answers(&text, id));
                    shared.answer(method, &text).await;
                    if answered {
                        return Outcome::Answered;
                    }
                }
                sse::Item::Id(id) => {
                    state.last_id = HeaderValue::from_str(&id).ok().filter(|_| !id.is_empty())
                }
                sse::Item::Retry(retry) => state.retry = retry,
                sse::Item::TooLong => {
                    shared.log("dropped an event longer than the line limit");
                    if let Some((id, method)) = answer_for {
                        let reason =
                            format!("sent an event longer than the line limit for {method}");
                        shared.fail(id, &reason).await;
                        return Outcome::Answered;
                    }
                }
            }
        }
    }
}

/// The stream of what a legacy server says unprompted, opened once the session is initialized
/// and reopened when the server ends it; a `405` means the server offers none.
async fn listen(shared: Arc<Shared>) {
    let mut state = StreamState {
        last_id: None,
        retry: DEFAULT_RETRY,
    };
    loop {
        let mut request = shared.request(Method::GET, Bytes::new());
        request.headers_mut().insert(
            header::ACCEPT,
            HeaderValue::from_static("text/event-stream"),
        );
        if let Some(last_id) = state.last_id.clone() {
            request.headers_mut().insert("last-event-id", last_id);
        }
        let opened = Instant::now();
        let response = tokio::select! {
            response = shared.client.request(request) => response,
            () = shared.closed.cancelled() => return,
        };
        match response {
            Ok(response) if response.status() == StatusCode::METHOD_NOT_ALLOWED => {
                tracing::debug!(server = %shared.server, "no stream of server messages (405)");
                return;
            }
            Ok(response) if !response.status().is_success() || !is_event_stream(&response) => {
                shared.log(&format!(
                    "GET of the server's message stream: HTTP {}",
                    response.status()
                ));
                return;
            }
            Ok(response) => {
                let outcome = tokio::select! {
                    outcome = read_events(&shared, response.into_body(), &mut state, None) => outcome,
                    () = shared.closed.cancelled() => return,
                };
                if let Outcome::Cut(reason) = outcome {
                    shared.log(&format!("the server's message stream was cut: {reason}"));
                }
            }
            Err(err) => {
                shared.log(&format!(
                    "GET of the server's message stream: cannot reach {}: {}",
                    shared.origin,
                    chain(&err)
                ));
                return;
            }
        }
        // A server that ends the stream at once is asked again no more than once a retry.
        let wait = state
            .retry
            .saturating_sub(opened.elapsed())
            .max(state.retry / 2);
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = shared.closed.cancelled() => return,
        }
    }
}

impl Shared {
    /// Hands a message of the server to the upstream; the answer to `initialize` also gives the
    /// protocol version every later request names.
    async fn answer(&self, method: &str, text: &str) {
        if method == "initialize"
            && let Ok(message) = Message::parse(text)
            && let Some(result) = message.result
            && let Ok(result) = serde_json::from_str::<Value>(result.get())
            && let Some(version) = result.get("protocolVersion").and_then(Value::as_str)
            && let Ok(version) = HeaderValue::from_str(version)
        {
            *lock(&self.version) = Some(version);
        }
        self.deliver(text).await;
    }
}

/// The 2026-07-28 routing headers of a modern request or notification: the version its `_meta`
/// names, its method and, for the requests that name something, that name.
fn modern_headers(
    headers: &mut HeaderMap,
    method: &str,
    params: Option<&serde_json::value::RawValue>,
) {
    let Some(params) = params.filter(|p| p.get().contains(modern::PROTOCOL_KEY)) else {
        return;
    };
    let Ok(params) = serde_json::from_str::<Value>(params.get()) else {
        return;
    };
    if !modern::is_modern(method, Some(&params)) {
        return;
    }
    let version = params
        .get("_meta")
        .and_then(|m| m.get(modern::PROTOCOL_KEY))
        .and_then(Value::as_str)
        .and_then(header_value);
    if let Some(version) = version {
        headers.insert("mcp-protocol-version", version);
    }
    if let Some(method) = header_value(method) {
        headers.insert("mcp-method", method);
    }
    let name = modern::name_field(method)
        .and_then(|field| params.get(field))
        .and_then(Value::as_str)
        .and_then(header_value);
    if let Some(name) = name {
        headers.insert("mcp-name", name);
    }
}

/// `value` as a header: as it is when it is printable ASCII without edge spaces, else in the
/// `=?base64?…?=` form the 2026-07-28 transport defines.
fn header_value(value: &str) -> Option<HeaderValue> {
    let plain = value.bytes().all(|b| (0x20..0x7f).contains(&b))
        && !value.starts_with(' ')
        && !value.ends_with(' ');
    if plain {
        HeaderValue::from_str(value).ok()
    } else {
        let encoded = base64::engine::general_purpose::STANDARD.encode(value);
        HeaderValue::from_str(&format!("=?base64?{encoded}?=")).ok()
    }
}

fn is_event_stream<B>(response: &Response<B>) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("text/event-stream"))
}

/// Whether `text` is the response to request `id`.
fn answers(text: &str, id: &Value) -> bool {
    Message::parse(text)
        .is_ok_and(|message| message.kind() == Kind::Response && message.id.as_ref() == Some(id))
}

/// The start of an error body, on one line and without control characters.
fn excerpt(text: &str) -> String {
    let words: Vec<&str> = text
        .split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|w| !w.is_empty())
        .collect();
    let flat = words.join(" ");
    let mut cut: String = flat.chars().take(EXCERPT).collect();
    if cut.len() < flat.len() {
        cut.push('…');
    }
    cut
}

/// An error with its causes, which hyper's client errors need to say anything useful.
pub(super) fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_outside_plain_ascii_are_encoded() {
        assert_eq!(header_value("echo").unwrap(), "echo");
        assert_eq!(header_value("héllo").unwrap(), "=?base64?aMOpbGxv?=");
        assert_eq!(header_value(" x").unwrap(), "=?base64?IHg=?=");
    }

    #[test]
    fn modern_requests_carry_their_routing_headers() {
        let params = serde_json::value::RawValue::from_string(format!(
            r#"{{"name":"echo","_meta":{{"{}":"2026-07-28"}}}}"#,
            modern::PROTOCOL_KEY
        ))
        .unwrap();
        let mut headers = HeaderMap::new();
        modern_headers(&mut headers, "tools/call", Some(&params));
        assert_eq!(headers["mcp-protocol-version"], "2026-07-28");
        assert_eq!(headers["mcp-method"], "tools/call");
        assert_eq!(headers["mcp-name"], "echo");
        let legacy = serde_json::value::RawValue::from_string(r#"{"name":"echo"}"#.into()).unwrap();
        let mut headers = HeaderMap::new();
        modern_headers(&mut headers, "tools/call", Some(&legacy));
        assert!(headers.is_empty());
    }

    #[test]
    fn excerpts_are_one_short_line() {
        assert_eq!(excerpt("  bad\r\n\ttoken\u{7}  "), "bad token");
        let long = "x".repeat(500);
        assert_eq!(excerpt(&long).chars().count(), EXCERPT + 1);
    }
}
