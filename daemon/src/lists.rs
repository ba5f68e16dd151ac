//! A profile's merged lists (tools, prompts, resources, resource templates): built from every
//! server's pages, named so that nothing collides, and served to clients in the gateway's own
//! pages.
//!
//! A table remembers, for each exposed name or URI, which server owns it and under what name, so
//! that calls route without another listing. The cursors clients get are the gateway's own: they
//! name the table they came from, so a cursor that outlives a list change is refused instead of
//! skipping or repeating items.

use std::sync::Arc;

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::config::{Config, Profile};
use crate::jsonrpc;
use crate::names;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ListKind {
    Tools,
    Prompts,
    Resources,
    Templates,
}

impl ListKind {
    pub const ALL: [ListKind; 4] = [
        ListKind::Tools,
        ListKind::Prompts,
        ListKind::Resources,
        ListKind::Templates,
    ];

    pub fn from_method(method: &str) -> Option<ListKind> {
        ListKind::ALL.into_iter().find(|k| k.method() == method)
    }

    pub fn method(self) -> &'static str {
        match self {
            ListKind::Tools => "tools/list",
            ListKind::Prompts => "prompts/list",
            ListKind::Resources => "resources/list",
            ListKind::Templates => "resources/templates/list",
        }
    }

    /// The result member holding the items.
    pub fn field(self) -> &'static str {
        match self {
            ListKind::Tools => "tools",
            ListKind::Prompts => "prompts",
            ListKind::Resources => "resources",
            ListKind::Templates => "resourceTemplates",
        }
    }

    /// The item member that names it, and that the gateway may rewrite.
    pub fn key(self) -> &'static str {
        match self {
            ListKind::Tools | ListKind::Prompts => "name",
            ListKind::Resources => "uri",
            ListKind::Templates => "uriTemplate",
        }
    }

    /// The server capability that says the server has such a list.
    pub fn capability(self) -> &'static str {
        match self {
            ListKind::Tools => "tools",
            ListKind::Prompts => "prompts",
            ListKind::Resources | ListKind::Templates => "resources",
        }
    }

    /// The notification a server sends when this list changes; templates share resources'.
    pub fn changed_notification(self) -> &'static str {
        match self {
            ListKind::Tools => "notifications/tools/list_changed",
            ListKind::Prompts => "notifications/prompts/list_changed",
            ListKind::Resources | ListKind::Templates => "notifications/resources/list_changed",
        }
    }

    /// The kinds a list-changed notification makes stale.
    pub fn changed_by(method: &str) -> &'static [ListKind] {
        match method {
            "notifications/tools/list_changed" => &[ListKind::Tools],
            "notifications/prompts/list_changed" => &[ListKind::Prompts],
            "notifications/resources/list_changed" => &[ListKind::Resources, ListKind::Templates],
            _ => &[],
        }
    }
}

/// Where an exposed item lives. Shared text, because every call takes its route from the table:
/// a clone is two counts, not two copies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub server: Arc<str>,
    /// The item's name or URI on its server.
    pub original: Arc<str>,
}

pub struct Table {
    pub kind: ListKind,
    /// The items as clients see them, in a stable order: servers as the profile lists them, each
    /// server's items in its own order.
    pub items: Vec<Map<String, Value>>,
    /// The same items as JSON text, serialised once when the table is built, so that a page is
    /// their concatenation rather than a copy of every map serialised again.
    raw: Vec<Box<RawValue>>,
    /// By exposed name; every call looks its route up here, hence foldhash.
    routes: hashbrown::HashMap<String, Route>,
    /// Servers that could not be listed, with the reason; their items are missing.
    pub failures: Vec<(String, String)>,
    /// Distinguishes this table's cursors from those of any other.
    generation: u64,
    /// The configuration the table was built from; any change to it makes the table stale.
    pub config: Arc<Config>,
}

/// One server's items, or why they could not be listed.
pub type Listing = (String, Result<Vec<Map<String, Value>>, String>);

impl Table {
    /// Merges the servers' listings, keeping only tools the profile allows, and names the items.
    pub fn build(
        kind: ListKind,
        profile: &Profile,
        listings: Vec<Listing>,
        generation: u64,
        config: Arc<Config>,
    ) -> Table {
        let mut entries = Vec::new();
        let mut failures = Vec::new();
        for (server, listing) in listings {
            match listing {
                Ok(items) => {
                    let server: Arc<str> = Arc::from(server);
                    entries.extend(items.into_iter().filter_map(|item| {
                        let original = item.get(kind.key())?.as_str()?.to_owned();
                        let allowed = kind != ListKind::Tools || profile.allows(&server, &original);
                        allowed.then(|| (Arc::clone(&server), original, item))
                    }))
                }
                Err(reason) => failures.push((server, reason)),
            }
        }
        let pairs: Vec<(&str, &str)> = entries.iter().map(|(s, o, _)| (&**s, o.as_str())).collect();
        let exposed = match kind {
            ListKind::Tools | ListKind::Prompts => names::expose(&pairs, profile.prefix),
            ListKind::Resources | ListKind::Templates => names::expose_uris(&pairs),
        };
        let mut routes = hashbrown::HashMap::with_capacity(entries.len());
        let items = entries
            .into_iter()
            .zip(exposed)
            .map(|((server, original, mut item), name)| {
                item.insert(kind.key().into(), Value::from(name.clone()));
                let original = Arc::from(original);
                routes.insert(name, Route { server, original });
                item
            })
            .collect::<Vec<_>>();
        let raw = items
            .iter()
            .map(|item| {
                serde_json::value::to_raw_value(item).unwrap_or_else(|_| jsonrpc::empty_object())
            })
            .collect();
        Table {
            kind,
            items,
            raw,
            routes,
            failures,
            generation,
            config,
        }
    }

    pub fn route(&self, exposed: &str) -> Option<&Route> {
        self.routes.get(exposed)
    }

    /// The failures in one line, for an error message.
    pub fn failure_summary(&self) -> String {
        self.failures
            .iter()
            .map(|(server, reason)| format!("{server}: {reason}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// One page of the list as a result object, starting at `cursor` (one this table issued),
    /// followed by `members` (what the client's protocol version adds to a list result).
    pub fn page(
        &self,
        cursor: Option<&str>,
        page_size: usize,
        members: &[(&str, Value)],
    ) -> Result<Box<RawValue>, String> {
        let start = match cursor {
            None => 0,
            Some(cursor) => self.parse_cursor(cursor)?,
        };
        let end = start.saturating_add(page_size.max(1)).min(self.items.len());
        let page = Page {
            field: self.kind.field(),
            items: &self.raw[start..end],
            next: (end < self.items.len()).then(|| format!("{}.{end}", self.generation)),
            members,
        };
        serde_json::value::to_raw_value(&page).map_err(|err| err.to_string())
    }

    fn parse_cursor(&self, cursor: &str) -> Result<usize, String> {
        let (generation, offset) = cursor
            .split_once('.')
            .and_then(|(g, o)| Some((g.parse::<u64>().ok()?, o.parse::<usize>().ok()?)))
            .ok_or_else(|| format!("invalid cursor {cursor:?}"))?;
        if generation != self.generation {
            return Err(format!(
                "cursor {cursor:?} belongs to a list that has changed since; list again"
            ));
        }
        if offset > self.items.len() {
            return Err(format!("invalid cursor {cursor:?}"));
        }
        Ok(offset)
    }
}

/// A page as it goes out: the items' stored text copied in as it is, then the cursor and the
/// extra members, in the order the result object has always had.
struct Page<'a> {
    field: &'static str,
    items: &'a [Box<RawValue>],
    next: Option<String>,
    members: &'a [(&'a str, Value)],
}

impl Serialize for Page<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry(self.field, self.items)?;
        if let Some(next) = &self.next {
            map.serialize_entry("nextCursor", next)?;
        }
        for (key, value) in self.members {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn item(key: &str, value: &str) -> Map<String, Value> {
        let mut item = Map::new();
        item.insert(key.into(), Value::from(value));
        item.insert("vendor".into(), json!({"x": [1]}));
        item
    }

    fn profile(allow: &[&str]) -> Profile {
        Profile {
            servers: vec!["a".into(), "b".into()],
            prefix: false,
            scan: Default::default(),
            audit_arguments: false,
            tools: allow.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn tools_merge_route_and_page_with_the_gateways_cursors() {
        let listings = vec![
            (
                "a".to_owned(),
                Ok(vec![item("name", "echo"), item("name", "one")]),
            ),
            (
                "b".to_owned(),
                Ok(vec![item("name", "echo"), item("name", "two")]),
            ),
            ("c".to_owned(), Err("engine down".to_owned())),
        ];
        let table = Table::build(ListKind::Tools, &profile(&[]), listings, 7, Arc::default());
        let names: Vec<&str> = table
            .items
            .iter()
            .map(|i| i["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["a__echo", "one", "b__echo", "two"]);
        assert_eq!(table.items[0]["vendor"], json!({"x": [1]}));
        assert_eq!(
            table.route("b__echo"),
            Some(&Route {
                server: "b".into(),
                original: "echo".into()
            })
        );
        assert_eq!(table.failure_summary(), "c: engine down");

        let page = |cursor, size| {
            let raw = table.page(cursor, size, &[]).unwrap();
            serde_json::from_str::<Value>(raw.get()).unwrap()
        };
        let first = page(None, 3);
        assert_eq!(first["tools"].as_array().unwrap().len(), 3);
        let cursor = first["nextCursor"].as_str().unwrap();
        let second = page(Some(cursor), 3);
        assert_eq!(second["tools"][0]["name"], "two");
        assert!(second.get("nextCursor").is_none());
        assert!(
            table
                .page(Some("6.1"), 3, &[])
                .unwrap_err()
                .contains("changed")
        );
        assert!(table.page(Some("junk"), 3, &[]).is_err());
        assert!(table.page(Some("7.99"), 3, &[]).is_err());
    }

    /// The stored text makes the same bytes as serialising the merged items at each request did:
    /// members in their order, the rewritten name where the server's was, the cursor last but for
    /// the extra members.
    #[test]
    fn pages_are_the_bytes_the_items_serialise_to() {
        let mut first = Map::new();
        first.insert("name".into(), Value::from("echo"));
        first.insert(
            "inputSchema".into(),
            json!({"type": "object", "z": 1, "a": [2]}),
        );
        first.insert("description".into(), Value::from("says \"hi\" é"));
        let listings = vec![
            ("a".to_owned(), Ok(vec![first, item("name", "one")])),
            ("b".to_owned(), Ok(vec![item("name", "echo")])),
        ];
        let table = Table::build(ListKind::Tools, &profile(&[]), listings, 4, Arc::default());
        let members = [
            ("resultType", Value::from("complete")),
            ("ttlMs", Value::from(0)),
        ];
        let page = table.page(None, 2, &members).unwrap();
        let mut expected = json!({
            "tools": [table.items[0], table.items[1]],
            "nextCursor": "4.2",
        });
        expected["resultType"] = Value::from("complete");
        expected["ttlMs"] = Value::from(0);
        assert_eq!(page.get(), expected.to_string());
        assert!(
            page.get()
                .starts_with(r#"{"tools":[{"name":"a__echo","inputSchema":{"type":"object","z":1"#)
        );
        let last = table.page(Some("4.2"), 2, &[]).unwrap();
        assert_eq!(
            last.get(),
            r#"{"tools":[{"name":"b__echo","vendor":{"x":[1]}}]}"#
        );
    }

    #[test]
    fn allow_lists_hide_tools_before_names_are_chosen() {
        let listings = vec![
            (
                "a".to_owned(),
                Ok(vec![item("name", "echo"), item("name", "x")]),
            ),
            ("b".to_owned(), Ok(vec![item("name", "echo")])),
        ];
        let table = Table::build(
            ListKind::Tools,
            &profile(&["a.*", "b.nothing"]),
            listings,
            1,
            Arc::default(),
        );
        let names: Vec<&str> = table
            .items
            .iter()
            .map(|i| i["name"].as_str().unwrap())
            .collect();
        // b's echo is hidden, so a's needs no prefix.
        assert_eq!(names, ["echo", "x"]);
        assert!(table.route("b__echo").is_none());
    }

    #[test]
    fn shared_resource_uris_are_rewritten() {
        let listings = vec![
            (
                "a".to_owned(),
                Ok(vec![item("uri", "file:///same"), item("uri", "a://1")]),
            ),
            ("b".to_owned(), Ok(vec![item("uri", "file:///same")])),
        ];
        let table = Table::build(
            ListKind::Resources,
            &profile(&[]),
            listings,
            1,
            Arc::default(),
        );
        assert_eq!(table.items[1]["uri"], "a://1");
        let route = table.route("mcp-gateway://b/file:///same").unwrap();
        assert_eq!((&*route.server, &*route.original), ("b", "file:///same"));
    }
}
