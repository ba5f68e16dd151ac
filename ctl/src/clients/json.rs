//! JSON and JSONC files (Claude, Cursor, VS Code, Zed, Gemini, LM Studio, opencode): edited
//! through a concrete syntax tree, so comments, blank lines, indentation and key order outside our
//! entry stay exactly as they were.

use jsonc_parser::ParseOptions;
use jsonc_parser::cst::{CstInputValue, CstRootNode};
use serde_json::Value;

use super::ENTRY_NAME;
use super::table::Syntax;

/// What the clients accept: JSON, plus the comments and trailing commas of VS Code's and Zed's
/// JSONC. Nothing looser, since a file the client cannot read is no file to edit.
fn options() -> ParseOptions {
    ParseOptions {
        allow_comments: true,
        allow_trailing_commas: true,
        allow_loose_object_property_names: false,
        allow_missing_commas: false,
        allow_single_quoted_strings: false,
        allow_hexadecimal_numbers: false,
        allow_unary_plus_numbers: false,
        allow_bare_decimal_point_numbers: false,
        allow_non_finite_numbers: false,
        allow_extended_string_escapes: false,
    }
}

/// The document's meaning; an empty file (or one with only comments) is `null`.
pub fn parse(text: &str) -> Result<Value, Syntax> {
    jsonc_parser::parse_to_serde_value(text, &options()).map_err(|err| Syntax {
        line: Some(err.line_display()),
        // The parser's messages are sentences ("Expected comma"); ours are lowercase.
        reason: lowercase_first(&err.kind().to_string()),
    })
}

/// Sets `KEY.mcp-gateway` to `entry`, creating `KEY` at the end of the document when missing.
pub fn set(text: &str, key: &str, entry: &Value) -> Result<String, String> {
    let root = CstRootNode::parse(text, &options()).map_err(|err| err.to_string())?;
    let servers = root.object_value_or_set().object_value_or_set(key);
    match servers.get(ENTRY_NAME) {
        Some(prop) => prop.set_value(cst(entry)),
        None => {
            servers.append(ENTRY_NAME, cst(entry));
        }
    }
    Ok(with_final_newline(root.to_string()))
}

/// Removes `KEY.mcp-gateway`, leaving `KEY` even when it ends up empty.
pub fn remove(text: &str, key: &str) -> Result<String, String> {
    let root = CstRootNode::parse(text, &options()).map_err(|err| err.to_string())?;
    if let Some(prop) = root
        .object_value()
        .and_then(|root| root.object_value(key))
        .and_then(|servers| servers.get(ENTRY_NAME))
    {
        prop.remove();
    }
    Ok(root.to_string())
}

fn lowercase_first(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// A document mcpctl created from nothing ends with a newline, as files written by people do.
fn with_final_newline(mut text: String) -> String {
    if !text.ends_with('\n') {
        text.push('\n');
    }
    text
}

fn cst(value: &Value) -> CstInputValue {
    match value {
        Value::Null => CstInputValue::Null,
        Value::Bool(b) => CstInputValue::Bool(*b),
        Value::Number(n) => CstInputValue::Number(n.to_string()),
        Value::String(s) => CstInputValue::String(s.clone()),
        Value::Array(items) => CstInputValue::Array(items.iter().map(cst).collect()),
        Value::Object(map) => {
            CstInputValue::Object(map.iter().map(|(k, v)| (k.clone(), cst(v))).collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const ZED: &str = r#"// Zed settings
//
// For information on how to configure Zed, see the Zed documentation.
{
  "theme": "One Dark", // the dark one
  "context_servers": {
    /* a server of my own */
    "mine": {
      "command": "mine",
      "args": [],
    },
  },
  "vim_mode": true,
}
"#;

    #[test]
    fn set_keeps_comments_trailing_commas_and_order() {
        let entry = json!({"command": "/bin/mcp-shim", "args": ["--client", "zed"]});
        let edited = set(ZED, "context_servers", &entry).unwrap();
        let doc = parse(&edited).unwrap();
        assert_eq!(doc["context_servers"]["mcp-gateway"], entry);
        assert_eq!(doc["context_servers"]["mine"]["command"], "mine");
        for kept in [
            "// Zed settings",
            "// the dark one",
            "/* a server of my own */",
        ] {
            assert!(edited.contains(kept), "{kept} lost:\n{edited}");
        }
        let keys: Vec<_> = doc.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["theme", "context_servers", "vim_mode"]);
        assert_eq!(set(&edited, "context_servers", &entry).unwrap(), edited);
        assert_eq!(remove(&edited, "context_servers").unwrap(), ZED);
    }

    #[test]
    fn set_creates_the_container_and_replaces_a_stale_entry() {
        let created = set("{}", "mcpServers", &json!({"command": "a"})).unwrap();
        assert_eq!(
            parse(&created).unwrap(),
            json!({"mcpServers": {"mcp-gateway": {"command": "a"}}})
        );
        assert!(created.ends_with("}\n"), "{created}");
        let replaced = set(&created, "mcpServers", &json!({"command": "b"})).unwrap();
        assert_eq!(
            parse(&replaced).unwrap()["mcpServers"]["mcp-gateway"]["command"],
            "b"
        );
        let from_null = set(r#"{"mcpServers": null}"#, "mcpServers", &json!({})).unwrap();
        assert_eq!(
            parse(&from_null).unwrap()["mcpServers"],
            json!({"mcp-gateway": {}})
        );
    }

    #[test]
    fn parse_errors_have_a_line() {
        let err = parse("{\n  \"a\": 1,\n  \"b\": @\n}").unwrap_err();
        assert_eq!(err.line, Some(3), "{}", err.reason);
        assert!(err.reason.starts_with("unexpected"), "{}", err.reason);
        assert!(parse("{'a': 1}").is_err(), "single quotes are not JSON");
        assert_eq!(parse("// nothing yet\n").unwrap(), Value::Null);
    }
}
