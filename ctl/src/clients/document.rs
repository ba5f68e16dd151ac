//! What a client's configuration means, as a JSON value whatever its format: finding our entry,
//! and the check that an edit changed nothing but our entry.

use serde_json::Value;

use super::{ENTRY_NAME, Location};

/// How an entry starts `mcp-shim`: the program and its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launch {
    pub command: String,
    pub args: Vec<String>,
}

impl Launch {
    /// The shim at `shim`, naming the client and, when given, the profile.
    pub fn shim(shim: &str, client: &str, profile: Option<&str>) -> Launch {
        let mut args = vec!["--client".to_owned(), client.to_owned()];
        if let Some(profile) = profile {
            args.extend(["--profile".to_owned(), profile.to_owned()]);
        }
        Launch {
            command: shim.to_owned(),
            args,
        }
    }

    /// Reads an entry in any of the clients' shapes: `command` and `args`, `cmd` and `args`
    /// (goose), or `command` as one list (opencode). What is missing reads as empty.
    pub fn of(entry: &Value) -> Launch {
        let strings = |list: &[Value]| -> Vec<String> {
            list.iter()
                .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
                .collect()
        };
        let args = entry
            .get("args")
            .and_then(Value::as_array)
            .map(|list| strings(list))
            .unwrap_or_default();
        match entry.get("command").or_else(|| entry.get("cmd")) {
            Some(Value::String(command)) => Launch {
                command: command.clone(),
                args,
            },
            Some(Value::Array(parts)) => {
                let mut parts = strings(parts).into_iter();
                Launch {
                    command: parts.next().unwrap_or_default(),
                    args: parts.collect(),
                }
            }
            _ => Launch {
                command: String::new(),
                args,
            },
        }
    }

    /// The profile the shim is told to serve (`--profile P` or `--profile=P`).
    pub fn profile(&self) -> Option<&str> {
        let mut args = self.args.iter();
        while let Some(arg) = args.next() {
            if arg == "--profile" {
                return args.next().map(String::as_str);
            }
            if let Some(profile) = arg.strip_prefix("--profile=") {
                return Some(profile);
            }
        }
        None
    }
}

/// Our entry in a parsed document, if any; an error when the document is not shaped as the
/// client expects. An empty document, and a missing or null container, hold no entry.
pub fn find(doc: &Value, location: Location) -> Result<Option<&Value>, String> {
    let root = match doc {
        Value::Null => return Ok(None),
        Value::Object(root) => root,
        _ => return Err("the top level is not a key-value object".into()),
    };
    match location {
        Location::Map(key) => match root.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Object(servers)) => Ok(servers.get(ENTRY_NAME)),
            Some(_) => Err(format!("{key} is not a key-value object")),
        },
        Location::NamedList(key) => match root.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Array(servers)) => Ok(servers.iter().find(|s| is_ours(s))),
            Some(_) => Err(format!("{key} is not a list")),
        },
    }
}

fn is_ours(item: &Value) -> bool {
    item.get("name").and_then(Value::as_str) == Some(ENTRY_NAME)
}

/// Checks that `after` differs from `before` only in our entry, and that our entry in `after` is
/// `entry` (`None`: that there is none). Comparison is by meaning: key order is the text's
/// business, and the text outside our entry is kept by the editors anyway.
pub fn check(
    before: &Value,
    after: &Value,
    location: Location,
    entry: Option<&Value>,
) -> Result<(), String> {
    if find(after, location)? != entry {
        return Err(format!(
            "the {ENTRY_NAME} entry did not come out as intended"
        ));
    }
    if without_entry(before, location) != without_entry(after, location) {
        return Err("other settings would change".into());
    }
    Ok(())
}

/// The document without our entry, and without its container if that is left empty (so that a
/// container created for our entry, or emptied by removing it, does not count as a change).
fn without_entry(doc: &Value, location: Location) -> Value {
    let mut doc = match doc {
        Value::Null => return Value::Object(Default::default()),
        other => other.clone(),
    };
    let Some(root) = doc.as_object_mut() else {
        return doc;
    };
    let key = match location {
        Location::Map(key) => {
            if let Some(Value::Object(servers)) = root.get_mut(key) {
                servers.shift_remove(ENTRY_NAME);
            }
            key
        }
        Location::NamedList(key) => {
            if let Some(Value::Array(servers)) = root.get_mut(key) {
                servers.retain(|s| !is_ours(s));
            }
            key
        }
    };
    let empty = match root.get(key) {
        Some(Value::Object(servers)) => servers.is_empty(),
        Some(Value::Array(servers)) => servers.is_empty(),
        Some(Value::Null) => true,
        _ => false,
    };
    if empty {
        root.shift_remove(key);
    }
    doc
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn launch_reads_every_shape_and_the_profile() {
        let plain =
            Launch::of(&json!({"command": "/s", "args": ["--client", "x", "--profile", "p"]}));
        assert_eq!(plain.command, "/s");
        assert_eq!(plain.profile(), Some("p"));
        let goose = Launch::of(&json!({"cmd": "/s", "args": ["--profile=w"]}));
        assert_eq!((goose.command.as_str(), goose.profile()), ("/s", Some("w")));
        let opencode = Launch::of(&json!({"command": ["/s", "--client", "opencode"]}));
        assert_eq!(opencode.args, ["--client", "opencode"]);
        assert_eq!(opencode.profile(), None);
        assert_eq!(Launch::of(&json!({"url": "http://x"})).command, "");
    }

    #[test]
    fn find_refuses_unexpected_shapes() {
        let map = Location::Map("mcpServers");
        assert_eq!(find(&Value::Null, map), Ok(None));
        assert_eq!(find(&json!({"mcpServers": null}), map), Ok(None));
        assert!(find(&json!([]), map).is_err());
        assert!(find(&json!({"mcpServers": []}), map).is_err());
        let list = Location::NamedList("mcpServers");
        let doc = json!({"mcpServers": [{"name": "a"}, {"name": "mcp-gateway", "command": "x"}]});
        assert_eq!(find(&doc, list).unwrap().unwrap()["command"], "x");
        assert!(find(&json!({"mcpServers": {}}), list).is_err());
    }

    #[test]
    fn check_sees_any_other_change() {
        let map = Location::Map("servers");
        let entry = json!({"command": "/s"});
        let before = json!({"a": 1});
        let after = json!({"a": 1, "servers": {"mcp-gateway": entry}});
        assert_eq!(check(&before, &after, map, Some(&entry)), Ok(()));
        assert_eq!(check(&after, &before, map, None), Ok(()));
        let changed = json!({"a": 2, "servers": {"mcp-gateway": entry}});
        assert!(check(&before, &changed, map, Some(&entry)).is_err());
        let other = json!({"a": 1, "servers": {"mcp-gateway": {"command": "/t"}}});
        assert!(check(&before, &other, map, Some(&entry)).is_err());
        let list = Location::NamedList("servers");
        let before = json!({"servers": [{"name": "x"}]});
        let after = json!({"servers": [{"name": "x"}, {"name": "mcp-gateway"}]});
        assert_eq!(
            check(&before, &after, list, Some(&json!({"name": "mcp-gateway"}))),
            Ok(())
        );
        let reordered = json!({"servers": [{"name": "mcp-gateway"}, {"name": "y"}]});
        assert!(
            check(
                &before,
                &reordered,
                list,
                Some(&json!({"name": "mcp-gateway"}))
            )
            .is_err()
        );
    }
}
