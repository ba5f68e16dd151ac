//! YAML files (Continue, goose): edited with `yaml-edit`, a lossless syntax tree that keeps
//! comments and layout, and read with `yaml-rust2`, a strict YAML 1.2 parser. The editor forgives
//! malformed input, so every file is first parsed strictly, and the edited text again after.

use std::str::FromStr;

use serde_json::{Map, Number, Value, json};
use yaml_edit::{MappingBuilder, Sequence, SequenceBuilder, YamlFile};
use yaml_rust2::{Yaml, YamlLoader};

use super::table::Syntax;
use super::{ENTRY_NAME, Location};

/// The document's meaning; an empty file (or one with only comments) is `null`.
pub fn parse(text: &str) -> Result<Value, Syntax> {
    let docs = YamlLoader::load_from_str(text).map_err(|err| Syntax {
        line: Some(err.marker().line()),
        reason: err.info().to_owned(),
    })?;
    match docs.as_slice() {
        [] => Ok(Value::Null),
        [doc] => json(doc),
        _ => Err(Syntax {
            line: None,
            reason: "more than one YAML document".into(),
        }),
    }
}

fn json(yaml: &Yaml) -> Result<Value, Syntax> {
    Ok(match yaml {
        Yaml::Null => Value::Null,
        Yaml::Boolean(b) => Value::Bool(*b),
        Yaml::Integer(i) => Value::from(*i),
        Yaml::Real(text) => match text.parse::<f64>().ok().and_then(Number::from_f64) {
            Some(n) => Value::Number(n),
            // Infinities and NaN have no JSON number; their spelling keeps them comparable.
            None => Value::String(text.clone()),
        },
        Yaml::String(s) => Value::String(s.clone()),
        Yaml::Array(items) => Value::Array(items.iter().map(json).collect::<Result<_, _>>()?),
        Yaml::Hash(map) => {
            let mut object = Map::new();
            for (key, value) in map {
                let key = match key {
                    Yaml::String(s) => s.clone(),
                    other => json(other)?.to_string(),
                };
                object.insert(key, json(value)?);
            }
            Value::Object(object)
        }
        Yaml::Alias(_) | Yaml::BadValue => {
            return Err(Syntax {
                line: None,
                reason: "an alias that does not resolve".into(),
            });
        }
    })
}

/// Sets our entry at `location` to `entry` (an object), creating the container when missing.
pub fn set(text: &str, location: Location, entry: &Value) -> Result<String, String> {
    let key = match location {
        Location::Map(key) | Location::NamedList(key) => key,
    };
    // A file of nothing but comments gets the container after them, and is then edited as any.
    let text = if parse(text).map_err(|err| err.to_string())?.is_null() {
        let separator = if text.is_empty() || text.ends_with('\n') {
            ""
        } else {
            "\n"
        };
        format!("{text}{separator}{key}:\n")
    } else {
        text.to_owned()
    };
    let file = YamlFile::from_str(&text).map_err(|err| err.to_string())?;
    let root = file
        .documents()
        .next()
        .and_then(|doc| doc.as_mapping())
        .ok_or("the top level is not a mapping")?;
    match location {
        Location::Map(key) => match root.get_mapping(key) {
            Some(servers) => servers.set(ENTRY_NAME, mapping(entry)?.build_document()),
            None => root.set(
                key,
                mapping(&json!({ ENTRY_NAME: entry }))?.build_document(),
            ),
        },
        Location::NamedList(key) => {
            let item = mapping(entry)?.build_document();
            if root.get_sequence(key).is_none() {
                root.set(key, Sequence::new_pending_block());
            }
            let servers = root
                .get_sequence(key)
                .ok_or_else(|| format!("{key} is not a list"))?;
            match servers.values().position(|s| is_ours(&s)) {
                Some(index) => {
                    servers.set(index, item);
                }
                None => servers.push(item),
            }
        }
    }
    Ok(file.to_string())
}

/// Removes our entry at `location`, leaving the container even when it ends up empty.
pub fn remove(text: &str, location: Location) -> Result<String, String> {
    let file = YamlFile::from_str(text).map_err(|err| err.to_string())?;
    let Some(root) = file.documents().next().and_then(|doc| doc.as_mapping()) else {
        return Ok(text.to_owned());
    };
    match location {
        Location::Map(key) => {
            if let Some(servers) = root.get_mapping(key) {
                servers.remove(ENTRY_NAME);
            }
        }
        Location::NamedList(key) => {
            if let Some(servers) = root.get_sequence(key) {
                while let Some(index) = servers.values().position(|s| is_ours(&s)) {
                    servers.remove(index);
                }
            }
        }
    }
    Ok(file.to_string())
}

fn is_ours(item: &yaml_edit::YamlNode) -> bool {
    item.get("name")
        .is_some_and(|name| name.yaml_eq(&ENTRY_NAME))
}

/// A block mapping holding `value`, an object.
fn mapping(value: &Value) -> Result<MappingBuilder, String> {
    let Value::Object(fields) = value else {
        return Err(format!("{value} is not an object"));
    };
    let mut builder = MappingBuilder::new();
    for (name, value) in fields {
        builder = match value {
            Value::Object(_) => builder.insert_mapping(name, mapping(value)?),
            Value::Array(items) => builder.insert_sequence(name, sequence(items)?),
            scalar => builder.pair(name, yaml_scalar(scalar)?),
        };
    }
    Ok(builder)
}

fn sequence(items: &[Value]) -> Result<SequenceBuilder, String> {
    let mut builder = SequenceBuilder::new();
    for item in items {
        builder = match item {
            Value::Object(_) => builder.insert_mapping(mapping(item)?),
            Value::Array(items) => builder.insert_sequence(sequence(items)?),
            scalar => builder.item(yaml_scalar(scalar)?),
        };
    }
    Ok(builder)
}

fn yaml_scalar(value: &Value) -> Result<yaml_edit::ScalarValue, String> {
    Ok(match value {
        Value::Null => yaml_edit::ScalarValue::null(),
        Value::Bool(b) => yaml_edit::ScalarValue::from(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => yaml_edit::ScalarValue::from(i),
            None => yaml_edit::ScalarValue::from(n.as_f64().unwrap_or_default()),
        },
        Value::String(s) => yaml_edit::ScalarValue::from(s.as_str()),
        _ => return Err(format!("{value} is not a scalar")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOSE: &str = "# goose configuration
GOOSE_PROVIDER: openai
extensions:
  developer:
    bundled: true
    enabled: true
    name: developer
    timeout: 300
    type: builtin
  # my memory
  memory:
    enabled: false
    name: memory
    type: builtin
GOOSE_MODEL: gpt-4o
";

    const CONTINUE: &str = "name: Local Assistant
version: 1.0.0
schema: v1
models:
  - name: Llama
    provider: ollama
    model: llama3
# servers
mcpServers:
  - name: sqlite
    command: npx
    args:
      - mcp-sqlite
      - /tmp/db
context:
  - provider: code
";

    fn goose_entry() -> Value {
        json!({"enabled": true, "type": "stdio", "name": "mcp-gateway", "cmd": "/bin/mcp-shim",
               "args": ["--client", "goose", "--profile", "1e3"], "timeout": 300})
    }

    #[test]
    fn a_map_entry_is_added_replaced_and_removed_in_place() {
        let at = Location::Map("extensions");
        let edited = set(GOOSE, at, &goose_entry()).unwrap();
        let doc = parse(&edited).unwrap();
        assert_eq!(doc["extensions"]["mcp-gateway"], goose_entry());
        assert_eq!(doc["extensions"]["memory"]["enabled"], false);
        assert!(edited.contains("  # my memory\n"), "{edited}");
        assert_eq!(set(&edited, at, &goose_entry()).unwrap(), edited);
        let other = json!({"name": "mcp-gateway", "cmd": "/x", "args": []});
        let replaced = set(&edited, at, &other).unwrap();
        assert_eq!(
            parse(&replaced).unwrap()["extensions"]["mcp-gateway"],
            other
        );
        assert_eq!(remove(&edited, at).unwrap(), GOOSE);
    }

    #[test]
    fn a_list_entry_is_added_replaced_and_removed_in_place() {
        let at = Location::NamedList("mcpServers");
        let entry = json!({"name": "mcp-gateway", "command": "/bin/mcp-shim", "args": ["--client", "continue"]});
        let edited = set(CONTINUE, at, &entry).unwrap();
        let doc = parse(&edited).unwrap();
        assert_eq!(doc["mcpServers"][1], entry);
        assert_eq!(doc["mcpServers"][0]["name"], "sqlite");
        assert!(edited.contains("# servers\n"));
        let other = json!({"name": "mcp-gateway", "command": "/x", "args": []});
        let replaced = set(&edited, at, &other).unwrap();
        assert_eq!(parse(&replaced).unwrap()["mcpServers"][1], other);
        assert_eq!(remove(&replaced, at).unwrap(), CONTINUE);
    }

    #[test]
    fn containers_are_created_where_missing() {
        let entry = json!({"name": "mcp-gateway", "command": "/s"});
        let list = set("name: x\n", Location::NamedList("mcpServers"), &entry).unwrap();
        assert_eq!(
            list,
            "name: x\nmcpServers:\n  - name: mcp-gateway\n    command: /s\n"
        );
        let map = set("# only a comment\n", Location::Map("extensions"), &entry).unwrap();
        assert!(map.starts_with("# only a comment\n"));
        assert_eq!(parse(&map).unwrap()["extensions"]["mcp-gateway"], entry);
        let after_comment = set("# c\n---\na: 1\n", Location::Map("extensions"), &entry).unwrap();
        assert!(
            after_comment.starts_with("# c\n---\na: 1\n"),
            "{after_comment}"
        );
        let from_null = set("extensions:\n", Location::Map("extensions"), &entry).unwrap();
        assert_eq!(
            parse(&from_null).unwrap()["extensions"]["mcp-gateway"],
            entry
        );
    }

    #[test]
    fn strict_parsing_refuses_what_the_editor_forgives() {
        for bad in ["a: b\n  c: d\n", "- a\nb: c\n", "a: [1, 2\n"] {
            assert!(parse(bad).is_err(), "{bad:?} parsed");
        }
        assert_eq!(parse("a: b\n  c: d\n").unwrap_err().line, Some(2));
        assert_eq!(parse("").unwrap(), Value::Null);
    }
}
