//! The 2026-07-28 protocol as clients speak it to the gateway: requests that describe themselves
//! in `_meta` instead of an `initialize` handshake.
//!
//! A request is modern when it carries `io.modelcontextprotocol/protocolVersion` in its `_meta`
//! (or is `server/discover`). Each one is checked on its own: a missing key is `-32602`, an
//! unknown version `-32022` with the versions the gateway serves. What is relayed loses the
//! client's modern `_meta` keys on the way up (a dual-era server on a legacy session would
//! otherwise answer in the modern era; a modern server gets the gateway's own keys instead) and
//! results gain what modern clients require (`resultType`, and `ttlMs`/`cacheScope` on cacheable
//! ones) on the way down.

use std::sync::LazyLock;

use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

use crate::jsonrpc::{self, code};

pub const VERSION: &str = "2026-07-28";
pub const PROTOCOL_KEY: &str = "io.modelcontextprotocol/protocolVersion";
pub const CAPABILITIES_KEY: &str = "io.modelcontextprotocol/clientCapabilities";
pub const SUBSCRIPTION_KEY: &str = "io.modelcontextprotocol/subscriptionId";
/// The request that opens a listen stream, which stays open until it is cancelled.
pub const LISTEN: &str = "subscriptions/listen";
const SERVER_INFO_KEY: &str = "io.modelcontextprotocol/serverInfo";
pub const CLIENT_INFO_KEY: &str = "io.modelcontextprotocol/clientInfo";
/// The per-request log level that replaces `logging/setLevel`.
const LOG_LEVEL_KEY: &str = "io.modelcontextprotocol/logLevel";
/// The prefix reserved for per-request protocol fields.
const RESERVED_PREFIX: &str = "io.modelcontextprotocol/";

/// The 2026 error for a protocol version the receiver does not speak.
pub const UNSUPPORTED_VERSION: i64 = -32022;
/// The 2026 code for an unknown resource (legacy servers say `-32002`).
const RESOURCE_NOT_FOUND: i64 = code::INVALID_PARAMS;
const LEGACY_RESOURCE_NOT_FOUND: i64 = -32002;

/// Whether a request belongs to the 2026-07-28 protocol.
pub fn is_modern(method: &str, params: Option<&Value>) -> bool {
    method == "server/discover" || meta(params).is_some_and(|m| m.contains_key(PROTOCOL_KEY))
}

/// The body parameter the `Mcp-Name` header mirrors, for the requests that have one.
pub fn name_field(method: &str) -> Option<&'static str> {
    match method {
        "tools/call" | "prompts/get" => Some("name"),
        "resources/read" => Some("uri"),
        _ => None,
    }
}

fn meta(params: Option<&Value>) -> Option<&Map<String, Value>> {
    params?.get("_meta")?.as_object()
}

/// Checks the `_meta` keys every modern request must carry.
pub fn check(params: Option<&Value>) -> Result<(), Box<RawValue>> {
    let meta = meta(params);
    let version = meta
        .and_then(|m| m.get(PROTOCOL_KEY))
        .and_then(Value::as_str);
    let Some(version) = version else {
        return Err(jsonrpc::error(
            code::INVALID_PARAMS,
            format!("missing _meta key {PROTOCOL_KEY}"),
        ));
    };
    if version != VERSION {
        return Err(jsonrpc::to_raw(&json!({
            "code": UNSUPPORTED_VERSION,
            "message": format!("protocol version {version} is not supported"),
            "data": {"supported": [VERSION], "requested": version},
        })));
    }
    if !meta.is_some_and(|m| m.get(CAPABILITIES_KEY).is_some_and(Value::is_object)) {
        return Err(jsonrpc::error(
            code::INVALID_PARAMS,
            format!("missing _meta key {CAPABILITIES_KEY}"),
        ));
    }
    Ok(())
}

/// The capabilities a modern request declares.
pub fn capabilities(params: Option<&Value>) -> Value {
    meta(params)
        .and_then(|m| m.get(CAPABILITIES_KEY))
        .cloned()
        .unwrap_or(Value::Null)
}

/// The log level a modern request asks for, as it wrote it.
pub fn log_level(params: Option<&Value>) -> Option<&str> {
    meta(params)?.get(LOG_LEVEL_KEY)?.as_str()
}

/// `params` for a legacy server: the modern protocol keys taken out of `_meta` (and `_meta`
/// dropped when nothing else was in it); everything else as sent.
pub fn for_legacy_server(params: Option<&Value>) -> Option<Box<RawValue>> {
    let mut params = params?.clone();
    if let Some(object) = params.as_object_mut() {
        let emptied = object
            .get_mut("_meta")
            .and_then(Value::as_object_mut)
            .map(|meta| {
                meta.retain(|key, _| !key.starts_with(RESERVED_PREFIX));
                meta.is_empty()
            });
        if emptied == Some(true) {
            object.remove("_meta");
        }
    }
    Some(jsonrpc::to_raw(&params))
}

/// A result as a modern client expects it: `resultType` when the server gave none, and for
/// lists the caching fields. The gateway marks its answers uncacheable (`ttlMs` 0, `private`):
/// lists change with the configuration and the servers, and a cache cannot know when.
pub fn complete(result: Box<RawValue>, cacheable: bool) -> Box<RawValue> {
    let Ok(Value::Object(mut object)) = serde_json::from_str::<Value>(result.get()) else {
        return result;
    };
    let members = list_members();
    // `resultType` comes first: every result has it, only lists the caching fields.
    let wanted = if cacheable { members.len() } else { 1 };
    for (key, value) in members.into_iter().take(wanted) {
        object.entry(key).or_insert(value);
    }
    jsonrpc::to_raw(&Value::Object(object))
}

/// What [`complete`] adds to a list result, for the gateway's own list pages, which are built as
/// text and get these members appended rather than parsed again.
pub fn list_members() -> [(&'static str, Value); 3] {
    [
        ("resultType", Value::from("complete")),
        ("ttlMs", Value::from(0)),
        ("cacheScope", Value::from("private")),
    ]
}

/// A legacy error as a modern client expects it: resource-not-found is `-32602` now.
pub fn translate_error(error: Box<RawValue>) -> Box<RawValue> {
    recode(error, LEGACY_RESOURCE_NOT_FOUND, RESOURCE_NOT_FOUND)
}

/// A modern server's `resources/read` error as the gateway passes it on: resource-not-found in the
/// legacy code every client path starts from (`-32002`; a modern client gets `-32602` back from
/// [`translate_error`]). The gateway checks that the request names a URI before it routes it, so
/// a server's `-32602` to a read is about the resource.
pub fn legacy_read_error(error: Box<RawValue>) -> Box<RawValue> {
    recode(error, RESOURCE_NOT_FOUND, LEGACY_RESOURCE_NOT_FOUND)
}

/// `error` with code `to` when its code is `from`, all else as it was.
fn recode(error: Box<RawValue>, from: i64, to: i64) -> Box<RawValue> {
    let Ok(Value::Object(mut object)) = serde_json::from_str::<Value>(error.get()) else {
        return error;
    };
    if object.get("code").and_then(Value::as_i64) != Some(from) {
        return error;
    }
    object.insert("code".into(), Value::from(to));
    jsonrpc::to_raw(&Value::Object(object))
}

/// The gateway's `server/discover` answer, with the capabilities it offers modern clients.
pub fn discover() -> Box<RawValue> {
    jsonrpc::to_raw(&json!({
        "resultType": "complete",
        "supportedVersions": [VERSION, "2025-11-25", "2025-06-18", "2025-03-26"],
        "capabilities": {
            "tools": {"listChanged": true},
            "prompts": {"listChanged": true},
            "resources": {"subscribe": true, "listChanged": true},
            "completions": {},
        },
        "ttlMs": 0,
        "cacheScope": "private",
        "_meta": {
            SERVER_INFO_KEY: {"name": "mcp-gateway", "version": env!("CARGO_PKG_VERSION")},
        },
    }))
}

/// Whether request text mentions [`PROTOCOL_KEY`], as every modern request does: a search made
/// on every request, so its searcher is built once (`str::contains` builds one per call, which
/// costs more than the search).
pub fn mentions_protocol(text: &str) -> bool {
    static KEY: LazyLock<regex::Regex> = LazyLock::new(|| {
        // An escaped literal always compiles.
        regex::Regex::new(&regex::escape(PROTOCOL_KEY)).expect("a literal compiles")
    });
    KEY.is_match(text)
}

/// `params` for a modern server, as JSON text: the gateway's own protocol keys added to `_meta`,
/// declaring `capabilities` (what the client the request is for can answer through the gateway)
/// and, when that client set one, its log level (a level's name, which needs no escapes). Text
/// in pieces, not a `RawValue`: the usual result is spliced from valid parts, which
/// `jsonrpc::request_line` copies once, into the line; making a `RawValue` of it would parse the
/// client's whole arguments again.
pub fn describe<'a>(
    params: Option<&'a RawValue>,
    capabilities: &'a RawValue,
    log_level: Option<&'a str>,
) -> Described<'a> {
    // The gateway's members as text: only the capabilities and the level vary.
    static AROUND: LazyLock<[String; 3]> = LazyLock::new(|| {
        let key = |key: &str| Value::from(key).to_string();
        let before = format!(
            "{{{}:{},{}:",
            key(PROTOCOL_KEY),
            key(VERSION),
            key(CAPABILITIES_KEY)
        );
        let level = format!(",{}:", key(LOG_LEVEL_KEY));
        let info = json!({"name": "mcp-gateway", "version": env!("CARGO_PKG_VERSION")});
        [before, level, format!(",{}:{info}}}", key(CLIENT_INFO_KEY))]
    });
    let [before, level_key, after] = &*AROUND;
    let level = match log_level {
        Some(level) => [level_key.as_str(), "\"", level, "\""],
        None => [""; 4],
    };
    let ours = [
        before,
        capabilities.get(),
        level[0],
        level[1],
        level[2],
        level[3],
        after,
    ];
    // Nearly every request reaches a modern server this way, and most carry no `_meta` of their
    // own: the gateway's then goes in front of the client's members, which stay as they were
    // sent, unparsed. A `\u` escape could spell `_meta`, so text with one takes the long way.
    let bare = params
        .map(RawValue::get)
        .filter(|text| !text.contains("_meta") && !text.contains("\\u"))
        .and_then(|text| text.trim_start().strip_prefix('{'));
    if let Some(members) = bare {
        let members = members.trim_start();
        let separator = if members.starts_with('}') { "" } else { "," };
        let mut pieces = [""; PIECES];
        pieces[0] = r#"{"_meta":"#;
        pieces[1..8].copy_from_slice(&ours);
        pieces[8] = separator;
        pieces[9] = members;
        return Described::Spliced(pieces);
    }
    let ours: Map<String, Value> = serde_json::from_str(&ours.concat()).unwrap_or_default();
    Described::Merged(with_meta(params, |meta| meta.extend(ours)).get().to_owned())
}

/// How many pieces [`Described`] params come in.
const PIECES: usize = 10;

/// A modern server's params as [`describe`] gives them.
pub enum Described<'a> {
    /// The gateway's `_meta` and the client's members, spliced.
    Spliced([&'a str; PIECES]),
    /// Params that had to be parsed and written again.
    Merged(String),
}

impl Described<'_> {
    /// The text's pieces, in order; pieces past the text's end are empty.
    pub fn pieces(&self) -> [&str; PIECES] {
        match self {
            Described::Spliced(pieces) => *pieces,
            Described::Merged(text) => {
                let mut pieces = [""; PIECES];
                pieces[0] = text;
                pieces
            }
        }
    }
}

/// The params of a notification on a `subscriptions/listen` stream.
pub fn tagged(params: Option<&RawValue>, subscription: &Value) -> Box<RawValue> {
    with_meta(params, |meta| {
        meta.insert(SUBSCRIPTION_KEY.into(), subscription.clone());
    })
}

/// `params` (an empty object when absent) with `edit` applied to its `_meta` object.
fn with_meta(
    params: Option<&RawValue>,
    edit: impl FnOnce(&mut Map<String, Value>),
) -> Box<RawValue> {
    let mut params = params
        .and_then(|p| serde_json::from_str::<Map<String, Value>>(p.get()).ok())
        .unwrap_or_default();
    let meta = params
        .entry("_meta")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Some(meta) = meta.as_object_mut() {
        edit(meta);
    }
    jsonrpc::to_raw(&Value::Object(params))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn modern_params(version: &str) -> Value {
        json!({"name": "x", "_meta": {
            PROTOCOL_KEY: version,
            CAPABILITIES_KEY: {},
            "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "1"},
            "vendor.example/trace": "t-1",
        }})
    }

    #[test]
    fn requests_are_checked_for_their_version_and_keys() {
        assert!(is_modern("tools/list", Some(&modern_params(VERSION))));
        assert!(is_modern("server/discover", None));
        assert!(!is_modern(
            "tools/list",
            Some(&json!({"_meta": {"progressToken": 1}}))
        ));
        assert!(check(Some(&modern_params(VERSION))).is_ok());

        let wrong: Value =
            serde_json::from_str(check(Some(&modern_params("2031-01-01"))).unwrap_err().get())
                .unwrap();
        assert_eq!(wrong["code"], UNSUPPORTED_VERSION);
        assert_eq!(wrong["data"]["supported"], json!([VERSION]));
        assert_eq!(wrong["data"]["requested"], "2031-01-01");

        let mut missing = modern_params(VERSION);
        missing["_meta"]
            .as_object_mut()
            .unwrap()
            .remove(CAPABILITIES_KEY);
        let missing: Value =
            serde_json::from_str(check(Some(&missing)).unwrap_err().get()).unwrap();
        assert_eq!(missing["code"], code::INVALID_PARAMS);
        assert!(
            missing["message"]
                .as_str()
                .unwrap()
                .contains(CAPABILITIES_KEY)
        );
    }

    #[test]
    fn legacy_servers_get_only_the_keys_that_are_not_the_protocols() {
        let stripped = for_legacy_server(Some(&modern_params(VERSION))).unwrap();
        let stripped: Value = serde_json::from_str(stripped.get()).unwrap();
        assert_eq!(
            stripped,
            json!({"name": "x", "_meta": {"vendor.example/trace": "t-1"}})
        );
        let only_protocol = json!({"_meta": {PROTOCOL_KEY: VERSION}, "uri": "a://b"});
        let stripped = for_legacy_server(Some(&only_protocol)).unwrap();
        assert_eq!(stripped.get(), r#"{"uri":"a://b"}"#);
    }

    #[test]
    fn results_and_errors_take_the_modern_shape() {
        let list = complete(jsonrpc::to_raw(&json!({"tools": []})), true);
        let list: Value = serde_json::from_str(list.get()).unwrap();
        assert_eq!(
            list,
            json!({"tools": [], "resultType": "complete", "ttlMs": 0, "cacheScope": "private"})
        );
        let kept = complete(
            jsonrpc::to_raw(&json!({"resultType": "input_required"})),
            false,
        );
        assert_eq!(kept.get(), r#"{"resultType":"input_required"}"#);
        let error = translate_error(jsonrpc::to_raw(
            &json!({"code": -32002, "message": "no", "data": {"uri": "u"}}),
        ));
        let error: Value = serde_json::from_str(error.get()).unwrap();
        assert_eq!(
            error,
            json!({"code": -32602, "message": "no", "data": {"uri": "u"}})
        );
        let legacy = legacy_read_error(jsonrpc::to_raw(&json!({"code": -32602, "message": "no"})));
        assert_eq!(legacy.get(), r#"{"code":-32002,"message":"no"}"#);
        let other = legacy_read_error(jsonrpc::to_raw(&json!({"code": -32603, "message": "x"})));
        assert_eq!(other.get(), r#"{"code":-32603,"message":"x"}"#);
        let (params, capabilities) = (json!({"name": "t"}), json!({"sampling": {}}));
        let (params, capabilities) = (jsonrpc::to_raw(&params), jsonrpc::to_raw(&capabilities));
        let described = describe(Some(&params), &capabilities, Some("warning"));
        let described: Value = serde_json::from_str(&described.pieces().concat()).unwrap();
        assert_eq!(
            described["_meta"][CAPABILITIES_KEY],
            json!({"sampling": {}})
        );
        assert_eq!(described["_meta"][LOG_LEVEL_KEY], "warning");
        let tagged: Value = serde_json::from_str(tagged(None, &json!(7)).get()).unwrap();
        assert_eq!(tagged, json!({"_meta": {SUBSCRIPTION_KEY: 7}}));
    }

    #[test]
    fn modern_requests_are_told_by_their_protocol_key() {
        let request = modern_params(VERSION).to_string();
        assert!(mentions_protocol(&request));
        assert!(!mentions_protocol(
            r#"{"name":"echo","arguments":{"protocolVersion":"x"}}"#
        ));
    }

    #[test]
    fn described_params_keep_the_clients_members_and_meta() {
        let ours = |text: &str| {
            let raw = RawValue::from_string(text.to_owned()).unwrap();
            describe(Some(&raw), &jsonrpc::empty_object(), None)
                .pieces()
                .concat()
        };
        let gateway_meta = |text: &str| {
            let value: Value = serde_json::from_str(text).unwrap();
            assert_eq!(value["_meta"][PROTOCOL_KEY], VERSION, "{text}");
            assert_eq!(value["_meta"][CAPABILITIES_KEY], json!({}), "{text}");
            assert_eq!(
                value["_meta"][CLIENT_INFO_KEY]["name"], "mcp-gateway",
                "{text}"
            );
            value
        };
        // Without a `_meta` of their own, the client's members follow the gateway's as sent.
        let sent = r#"{"name":"echo", "arguments":{"z":1,"a":[1.50,"\n"]}}"#;
        let described = ours(sent);
        assert!(described.ends_with(&sent[1..]), "{described}");
        gateway_meta(&described);
        // Every shape of params gives valid text: none, an empty object, not an object.
        gateway_meta(
            &describe(None, &jsonrpc::empty_object(), None)
                .pieces()
                .concat(),
        );
        gateway_meta(&ours("[1, 2]"));
        assert_eq!(
            gateway_meta(&ours(" { } "))["_meta"]
                .as_object()
                .unwrap()
                .len(),
            3
        );
        // The client's own `_meta`, however spelt, is kept beside the gateway's keys.
        for sent in [
            r#"{"name":"echo","_meta":{"progressToken":7}}"#,
            r#"{"name":"echo","\u005fmeta":{"progressToken":7}}"#,
        ] {
            let value = gateway_meta(&ours(sent));
            assert_eq!(value["_meta"]["progressToken"], 7, "{sent}");
            assert_eq!(value["name"], "echo");
        }
    }
}
