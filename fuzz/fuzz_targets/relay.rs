//! The relay's rewriting of untrusted messages. The first line of the input is a JSON-RPC line:
//! its envelope parses or is refused, a response goes back out under the id it came with, the
//! `_meta` edits for modern servers and listen streams always give a JSON object, and a legacy
//! server never sees a reserved `_meta` key. The other lines are `server<TAB>name` pairs: the
//! exposed tool names are valid, distinct and stable, and rewritten URIs split back into their
//! server and URI.
#![no_main]

use std::collections::HashSet;

use libfuzzer_sys::fuzz_target;
use mcp_gatewayd::fuzzing::{
    Kind, Message, URI_PREFIX, describe, expose, expose_uris, for_legacy_server, response_line,
    split_uri, tagged,
};
use serde_json::Value;
use serde_json::value::RawValue;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (line, rest) = text.split_once('\n').unwrap_or((text, ""));
    envelope(line);
    names(rest);
});

fn envelope(line: &str) {
    let Ok(message) = Message::parse(line) else {
        return;
    };
    let params = message.params.as_deref();
    let capabilities = RawValue::from_string(r#"{"sampling":{}}"#.to_owned()).expect("JSON");
    // `describe` splices text without parsing it again: valid JSON is its own invariant.
    for edited in [
        describe(params, &capabilities, Some("info"))
            .pieces()
            .concat(),
        tagged(params, &Value::from(7)).get().to_owned(),
    ] {
        let edited: Value = serde_json::from_str(&edited).expect("edited params are JSON");
        assert!(
            edited.is_object(),
            "edited params are not an object: {edited}"
        );
    }
    let parsed = params.and_then(|p| serde_json::from_str::<Value>(p.get()).ok());
    if let Some(legacy) = for_legacy_server(parsed.as_ref()) {
        let legacy: Value = serde_json::from_str(legacy.get()).expect("legacy params are JSON");
        if let Some(meta) = legacy.get("_meta").and_then(Value::as_object) {
            assert!(
                meta.keys()
                    .all(|key| !key.starts_with("io.modelcontextprotocol/")),
                "a reserved key reaches a legacy server: {legacy}"
            );
        }
    }
    if message.kind() == Kind::Response {
        let id = message.id.clone().unwrap_or_default();
        let line = response_line(&id, &message.into_reply());
        let back = Message::parse(line.trim_end()).expect("a response line parses");
        assert_eq!(back.kind(), Kind::Response);
        assert_eq!(back.id, Some(id));
    }
}

fn names(rest: &str) {
    let mut seen = HashSet::new();
    // Server names never hold a '/' (the configuration refuses them), and a server lists a
    // name once.
    let pairs: Vec<(&str, &str)> = rest
        .lines()
        .filter_map(|line| line.split_once('\t'))
        .filter(|(server, _)| !server.is_empty() && !server.contains('/'))
        .filter(|pair| seen.insert(*pair))
        .take(64)
        .collect();
    for prefix_all in [false, true] {
        let exposed = expose(&pairs, prefix_all);
        assert_eq!(exposed.len(), pairs.len());
        assert_eq!(exposed, expose(&pairs, prefix_all), "names are not stable");
        for name in &exposed {
            assert!(
                (1..=128).contains(&name.len())
                    && name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c)),
                "invalid exposed name {name:?}"
            );
        }
        let distinct: HashSet<&String> = exposed.iter().collect();
        assert_eq!(
            distinct.len(),
            exposed.len(),
            "two tools share a name: {exposed:?}"
        );
    }
    let uris = expose_uris(&pairs);
    let distinct: HashSet<&String> = uris.iter().collect();
    assert_eq!(
        distinct.len(),
        uris.len(),
        "two resources share a URI: {uris:?}"
    );
    for ((server, uri), exposed) in pairs.iter().zip(&uris) {
        if exposed.starts_with(URI_PREFIX) {
            assert_eq!(split_uri(exposed), Some((*server, *uri)));
        } else {
            assert_eq!(exposed, uri);
        }
    }
}
