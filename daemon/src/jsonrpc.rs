//! JSON-RPC 2.0 messages as the relay sees them: an envelope whose `params`, `result` and `error`
//! stay raw JSON text.
//!
//! The gateway must not re-serialise what it does not edit: unknown fields, `_meta` keys and
//! vendor extensions pass through as the bytes the peer sent. Only the envelope is parsed; a
//! member is parsed into a `Value` only where routing has to edit it (a tool name, a tool list).

use std::fmt::Write as _;

use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

/// Standard JSON-RPC error codes used by the gateway.
pub mod code {
    pub const PARSE_ERROR: i64 = -32700;
    pub const INVALID_REQUEST: i64 = -32600;
    pub const METHOD_NOT_FOUND: i64 = -32601;
    pub const INVALID_PARAMS: i64 = -32602;
    pub const INTERNAL_ERROR: i64 = -32603;
}

/// One parsed line.
#[derive(Debug, Deserialize)]
pub struct Message {
    #[serde(default)]
    pub id: Option<Value>,
    #[serde(default)]
    pub method: Option<String>,
    #[serde(default)]
    pub params: Option<Box<RawValue>>,
    #[serde(default)]
    pub result: Option<Box<RawValue>>,
    #[serde(default)]
    pub error: Option<Box<RawValue>>,
}

/// What a [`Message`] is, by the members it has.
#[derive(Debug, PartialEq, Eq)]
pub enum Kind {
    Request,
    Notification,
    Response,
    Invalid,
}

#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    #[error("batches are not supported")]
    Batch,
    #[error("not a JSON-RPC message: {0}")]
    Json(#[from] serde_json::Error),
}

impl Message {
    pub fn parse(line: &str) -> Result<Message, ParseError> {
        if line.trim_start().starts_with('[') {
            return Err(ParseError::Batch);
        }
        Ok(serde_json::from_str(line)?)
    }

    /// The outcome a response carries; a response with neither member counts as an empty result.
    pub fn into_reply(self) -> Reply {
        match (self.result, self.error) {
            (_, Some(error)) => Err(error),
            (Some(result), None) => Ok(result),
            (None, None) => Ok(empty_object()),
        }
    }

    pub fn kind(&self) -> Kind {
        let has_id = self.id.as_ref().is_some_and(|id| !id.is_null());
        match (&self.method, has_id) {
            (Some(_), true) => Kind::Request,
            (Some(_), false) => Kind::Notification,
            (None, true) if self.result.is_some() || self.error.is_some() => Kind::Response,
            _ => Kind::Invalid,
        }
    }
}

/// The outcome of a request: the raw `result` or the raw `error` object.
pub type Reply = Result<Box<RawValue>, Box<RawValue>>;

/// A response line (newline included) carrying `id` and the reply, members untouched. Lines are
/// put together in one allocation, rather than with `format!`, whose formatter costs more than
/// the copies on the call path.
pub fn response_line(id: &Value, reply: &Reply) -> String {
    let (member, body) = match reply {
        Ok(result) => ("result", result.get()),
        Err(error) => ("error", error.get()),
    };
    let mut line = String::with_capacity(body.len() + 64);
    line.push_str(r#"{"jsonrpc":"2.0","id":"#);
    match id {
        // A number's text is its JSON; writing to a `String` cannot fail.
        Value::Number(number) => {
            let _ = write!(line, "{number}");
        }
        Value::String(text) => push_quoted(&mut line, text),
        other => line.push_str(&other.to_string()),
    }
    line.push_str(",\"");
    line.push_str(member);
    line.push_str("\":");
    line.push_str(body);
    line.push_str("}\n");
    line
}

/// A request line with the gateway's own numeric id. `params` is JSON text in pieces, none for
/// no params: a `RawValue`'s whole, or one spliced from valid parts (`modern::describe`), which
/// is not parsed again here and is copied once, into the line.
pub fn request_line(id: u64, method: &str, params: &[&str]) -> String {
    method_line(Some(id), method, params)
}

pub fn notification_line(method: &str, params: Option<&RawValue>) -> String {
    method_line(None, method, params.map(RawValue::get).as_slice())
}

/// A request line (with `id`) or a notification line (without), put together in one allocation.
fn method_line(id: Option<u64>, method: &str, params: &[&str]) -> String {
    let length = params.iter().map(|piece| piece.len()).sum::<usize>() + method.len();
    let mut line = String::with_capacity(length + 64);
    line.push_str(r#"{"jsonrpc":"2.0""#);
    if let Some(id) = id {
        line.push_str(r#","id":"#);
        // Writing to a `String` cannot fail.
        let _ = write!(line, "{id}");
    }
    line.push_str(r#","method":"#);
    push_quoted(&mut line, method);
    if !params.is_empty() {
        line.push_str(r#","params":"#);
        params.iter().for_each(|piece| line.push_str(piece));
    }
    line.push_str("}\n");
    line
}

/// Appends `text` as a JSON string. A method name needs no escapes; only text that does pays for
/// serde_json's escaping (the same bytes either way: it escapes nothing else).
fn push_quoted(line: &mut String, text: &str) {
    if is_plain(text) {
        line.push('"');
        line.push_str(text);
        line.push('"');
    } else {
        line.push_str(&quoted(text));
    }
}

/// Whether `text` is its own JSON string body: no control character, quote or backslash, the only
/// bytes serde_json escapes. Every byte is looked at, without stopping at the first escape: the
/// loop then has no branch per byte and the compiler vectorises it, and the texts that need an
/// escape are the rare ones.
pub fn is_plain(text: &str) -> bool {
    text.bytes().fold(true, |plain, b| {
        plain & (b >= 0x20) & (b != b'"') & (b != b'\\')
    })
}

/// `text` as a JSON string.
fn quoted(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| "\"\"".into())
}

/// A JSON-RPC error object.
pub fn error(code: i64, message: impl Into<String>) -> Box<RawValue> {
    to_raw(&serde_json::json!({ "code": code, "message": message.into() }))
}

/// Serialises a value the gateway built itself.
pub fn to_raw(value: &impl serde::Serialize) -> Box<RawValue> {
    // Straight into the text, without `Display`'s formatter and without parsing the text again
    // to check it: what serde_json writes is JSON. A `Value` always serialises.
    serde_json::value::to_raw_value(value).unwrap_or_else(|_| empty_object())
}

pub fn empty_object() -> Box<RawValue> {
    RawValue::from_string("{}".to_owned()).unwrap_or_else(|_| unreachable!("\"{{}}\" is JSON"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_follow_the_members_present() {
        let kind = |line: &str| Message::parse(line).unwrap().kind();
        assert_eq!(
            kind(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#),
            Kind::Request
        );
        assert_eq!(
            kind(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#),
            Kind::Notification
        );
        assert_eq!(
            kind(r#"{"jsonrpc":"2.0","id":"a","result":{}}"#),
            Kind::Response
        );
        assert_eq!(
            kind(r#"{"jsonrpc":"2.0","id":1,"error":{"code":1,"message":"x"}}"#),
            Kind::Response
        );
        assert_eq!(kind(r#"{"jsonrpc":"2.0","id":1}"#), Kind::Invalid);
        assert!(matches!(Message::parse("[{}]"), Err(ParseError::Batch)));
        assert!(matches!(Message::parse("{nope"), Err(ParseError::Json(_))));
    }

    #[test]
    fn results_pass_through_byte_for_byte() {
        let line = r#"{"jsonrpc":"2.0","id":7,"result":{"z":1, "a":{"_meta":{"x.y/z":[1.50,2]}},"vendor":true}}"#;
        let message = Message::parse(line).unwrap();
        let reply: Reply = Ok(message.result.unwrap());
        assert_eq!(
            response_line(&Value::from("client-1"), &reply),
            "{\"jsonrpc\":\"2.0\",\"id\":\"client-1\",\"result\":{\"z\":1, \"a\":{\"_meta\":{\"x.y/z\":[1.50,2]}},\"vendor\":true}}\n"
        );
    }

    #[test]
    fn response_ids_are_the_json_serde_json_writes() {
        let ids = serde_json::json!([7, -3, 1.5, u64::MAX, "a\"b\\c\n", "é", null, {"k": [1]}]);
        for id in ids.as_array().unwrap() {
            let line = response_line(id, &Ok(empty_object()));
            let expected = format!("{{\"jsonrpc\":\"2.0\",\"id\":{id},\"result\":{{}}}}\n");
            assert_eq!(line, expected);
        }
    }

    #[test]
    fn plain_texts_are_those_serde_json_quotes_without_escapes() {
        // Past 32 bytes, so the vectorised loop and its tail both see an escape.
        let long = "tools/call-".repeat(4);
        let texts = [
            String::new(),
            "tools/call".to_owned(),
            "café ☕ ünïcode".to_owned(),
            "\u{7f} is no control character".to_owned(),
            long.clone(),
            format!("{long}\""),
            format!("\\{long}"),
            format!("{long}\u{1f}{long}"),
            "tab\tinside".to_owned(),
        ];
        for text in texts {
            let plain = serde_json::to_string(&text).unwrap() == format!("\"{text}\"");
            assert_eq!(is_plain(&text), plain, "{text:?}");
        }
    }

    #[test]
    fn request_lines_escape_the_method() {
        assert_eq!(
            request_line(3, "a\"b", &[]),
            "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"a\\\"b\"}\n"
        );
        // Pieces of params are joined as they are; a plain method is quoted as serde_json would.
        let line = request_line(u64::MAX, "tools/call", &[r#"{"a":"#, "1", "}"]);
        assert_eq!(
            line,
            format!(
                "{{\"jsonrpc\":\"2.0\",\"id\":{},\"method\":{},\"params\":{{\"a\":1}}}}\n",
                u64::MAX,
                quoted("tools/call")
            )
        );
        let params = RawValue::from_string(r#"{"requestId":7}"#.to_owned()).unwrap();
        assert_eq!(
            notification_line("notifications/cancelled", Some(&params)),
            "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\",\"params\":{\"requestId\":7}}\n"
        );
        assert_eq!(
            notification_line("a\"b", None),
            "{\"jsonrpc\":\"2.0\",\"method\":\"a\\\"b\"}\n"
        );
        for method in ["é/ü", "tab\there", "back\\slash"] {
            let line = request_line(1, method, &[]);
            let parsed: Value = serde_json::from_str(&line).unwrap();
            assert_eq!(parsed["method"], method, "{line}");
        }
    }
}
