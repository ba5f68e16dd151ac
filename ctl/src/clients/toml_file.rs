//! TOML files (Codex): edited with `toml_edit`, which keeps comments, formatting and the order of
//! everything it was not asked to change.

use serde_json::Value;
use toml_edit::{Array, DocumentMut, InlineTable, Item, Table};

use super::ENTRY_NAME;
use super::table::Syntax;

/// The document's meaning, through the `toml` crate's reader.
pub fn parse(text: &str) -> Result<Value, Syntax> {
    let table: toml::Table = toml::from_str(text).map_err(|err| Syntax {
        line: err
            .span()
            .map(|span| 1 + text[..span.start].matches('\n').count()),
        reason: err.message().to_owned(),
    })?;
    serde_json::to_value(table).map_err(|err| Syntax {
        line: None,
        reason: err.to_string(),
    })
}

/// Sets `[KEY.mcp-gateway]` to `entry`. A replaced entry keeps its place and the comments above
/// it; a new one goes at the end. `KEY` written inline (`KEY = { … }`) gets an inline entry.
pub fn set(text: &str, key: &str, entry: &Value) -> Result<String, String> {
    let mut doc: DocumentMut = text.parse().map_err(|err| format!("{err}"))?;
    let servers = doc.entry(key).or_insert_with(|| {
        let mut servers = Table::new();
        // No `[KEY]` header of its own: only `[KEY.mcp-gateway]` is written.
        servers.set_implicit(true);
        Item::Table(servers)
    });
    let Value::Object(fields) = entry else {
        return Err("the entry is not a table".into());
    };
    match servers {
        Item::Table(servers) => {
            let mut table = Table::new();
            for (name, value) in fields {
                table.insert(name, Item::Value(toml_value(value)?));
            }
            if let Some(Item::Table(old)) = servers.get(ENTRY_NAME) {
                table.set_position(old.position());
                *table.decor_mut() = old.decor().clone();
            }
            servers.insert(ENTRY_NAME, Item::Table(table));
        }
        Item::Value(toml_edit::Value::InlineTable(servers)) => {
            servers.insert(ENTRY_NAME, toml_value(entry)?);
        }
        _ => return Err(format!("{key} is not a table")),
    }
    Ok(doc.to_string())
}

/// Removes `KEY.mcp-gateway`; a `[KEY]` header written by the user stays.
pub fn remove(text: &str, key: &str) -> Result<String, String> {
    let mut doc: DocumentMut = text.parse().map_err(|err| format!("{err}"))?;
    if let Some(servers) = doc.get_mut(key).and_then(Item::as_table_like_mut) {
        servers.remove(ENTRY_NAME);
    }
    Ok(doc.to_string())
}

fn toml_value(value: &Value) -> Result<toml_edit::Value, String> {
    Ok(match value {
        Value::Bool(b) => (*b).into(),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => i.into(),
            (None, Some(f)) => f.into(),
            _ => return Err(format!("{n} does not fit a TOML number")),
        },
        Value::String(s) => s.as_str().into(),
        Value::Array(items) => {
            let mut array = Array::new();
            for item in items {
                array.push(toml_value(item)?);
            }
            array.into()
        }
        Value::Object(fields) => {
            let mut table = InlineTable::new();
            for (name, value) in fields {
                table.insert(name, toml_value(value)?);
            }
            table.into()
        }
        Value::Null => return Err("TOML has no null".into()),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const CODEX: &str = r#"# Codex configuration
model = "o4-mini"  # the default model

[mcp_servers.docs]
command = "docs-mcp"
args = ["--port", "0"]

# keep this one last
[profiles.fast]
model = "gpt-4.1-mini"
"#;

    #[test]
    fn set_keeps_comments_and_tables_and_round_trips() {
        let entry = json!({"command": "/usr/bin/mcp-shim", "args": ["--client", "codex"]});
        let edited = set(CODEX, "mcp_servers", &entry).unwrap();
        // toml_edit puts a new table after its siblings, before the next table of another key.
        let expected = CODEX.replace(
            "\n# keep",
            "\n[mcp_servers.mcp-gateway]\ncommand = \"/usr/bin/mcp-shim\"\nargs = [\"--client\", \"codex\"]\n\n# keep",
        );
        assert_eq!(edited, expected);
        let doc = parse(&edited).unwrap();
        assert_eq!(doc["mcp_servers"]["mcp-gateway"], entry);
        assert_eq!(doc["profiles"]["fast"]["model"], "gpt-4.1-mini");
        assert_eq!(set(&edited, "mcp_servers", &entry).unwrap(), edited);
        assert_eq!(remove(&edited, "mcp_servers").unwrap(), CODEX);
    }

    #[test]
    fn a_replaced_entry_keeps_its_place() {
        let text = "[mcp_servers.mcp-gateway]\ncommand = \"old\"\n\n[other]\nx = 1\n";
        let edited = set(text, "mcp_servers", &json!({"command": "new"})).unwrap();
        assert_eq!(
            edited,
            "[mcp_servers.mcp-gateway]\ncommand = \"new\"\n\n[other]\nx = 1\n"
        );
    }

    #[test]
    fn inline_servers_get_an_inline_entry() {
        let text = "mcp_servers = { a = { command = \"a\" } }\n";
        let edited = set(text, "mcp_servers", &json!({"command": "b", "args": []})).unwrap();
        let doc = parse(&edited).unwrap();
        assert_eq!(doc["mcp_servers"]["a"]["command"], "a");
        assert_eq!(doc["mcp_servers"]["mcp-gateway"]["command"], "b");
        assert_eq!(remove(&edited, "mcp_servers").unwrap(), text);
    }

    #[test]
    fn parse_errors_have_a_line() {
        let err = parse("a = 1\nb = \n").unwrap_err();
        assert_eq!(err.line, Some(2));
    }
}
