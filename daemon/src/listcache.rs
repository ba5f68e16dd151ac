//! The on-disk list cache: each (profile, server)'s tools, prompts, resources and templates, its
//! capabilities and era, as its container last listed them, under
//! `$XDG_STATE_HOME/mcp-gateway/lists/`.
//!
//! The daemon exits when idle and is activated again often; without this cache the first list
//! after an activation would wait for every container of the profile to start. An entry is only
//! good for the server it was taken from: its key is a hash of the image id and of everything in
//! the server's definition that reaches the container (command, environment with the profile's
//! values, secret names, limits, network, mounts), so a rebuilt image or a changed definition is
//! a miss. Secret values never enter the key or the file. A file that cannot be read or parsed,
//! or that another version wrote, is ignored with a log line: the cache can only ever save a
//! start, never fail a request.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::config::{ServerDef, write_private};
use crate::lists::ListKind;
use crate::upstream::{Era, Upstream};

/// The layout version of the files; a file of another version is a miss.
const FORMAT: u32 = 1;

/// One server's lists as its container gave them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    format: u32,
    key: String,
    /// `legacy` or `2026-07-28`, as `mcpctl server ls` names it.
    era: String,
    capabilities: Value,
    /// Every list the server's capabilities offer, by result member (`tools`, ...).
    lists: BTreeMap<String, Vec<Map<String, Value>>>,
}

impl Entry {
    /// The entry for what `upstream`'s server listed; `lists` must hold every kind it offers.
    pub fn new(
        key: String,
        upstream: &Upstream,
        lists: BTreeMap<String, Vec<Map<String, Value>>>,
    ) -> Entry {
        Entry {
            format: FORMAT,
            key,
            era: upstream.era().unwrap_or(Era::Legacy).name().to_owned(),
            capabilities: upstream.capabilities().cloned().unwrap_or(Value::Null),
            lists,
        }
    }

    /// The server's items of `kind`: none when its capabilities do not offer the kind, `None`
    /// when they do but the entry lacks the list (a hand-edited file).
    pub fn items(&self, kind: ListKind) -> Option<Vec<Map<String, Value>>> {
        let offered = self
            .capabilities
            .get(kind.capability())
            .is_some_and(|c| !c.is_null());
        if !offered {
            return Some(Vec::new());
        }
        self.lists.get(kind.field()).cloned()
    }

    /// Replaces the items of one kind, as a listing of the running server gave them.
    pub fn set_items(&mut self, kind: ListKind, items: Vec<Map<String, Value>>) {
        self.lists.insert(kind.field().to_owned(), items);
    }

    /// The kinds whose items differ between two entries of one server.
    pub fn changed_kinds(&self, other: &Entry) -> Vec<ListKind> {
        ListKind::ALL
            .into_iter()
            .filter(|&kind| self.items(kind) != other.items(kind))
            .collect()
    }
}

/// The key of a server's entry: its image id and the definition its container runs with (the
/// profile's values already merged into `def.env`). The idle timeout does not change what a
/// server lists, so it is left out.
pub fn key(image_id: &str, def: &ServerDef) -> String {
    let mut def = def.clone();
    def.idle_timeout = None;
    let mut hash = Sha256::new();
    hash.update(image_id.as_bytes());
    hash.update([0]);
    // `ServerDef` holds secret names only, and its maps are ordered, so the text is stable.
    hash.update(serde_json::to_vec(&def).unwrap_or_default());
    hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// What this run knows per (profile, server): its entry, or `None` when its file holds none.
type Entries = HashMap<(String, String), Option<Arc<Entry>>>;

/// The entries of this daemon run, read from disk on first need.
pub struct ListCache {
    dir: PathBuf,
    entries: Mutex<Entries>,
    /// One write at a time: the atomic write's temporary file is named per process.
    writing: Mutex<()>,
}

impl ListCache {
    pub fn new(state_dir: PathBuf) -> ListCache {
        ListCache {
            dir: state_dir.join("lists"),
            entries: Mutex::default(),
            writing: Mutex::default(),
        }
    }

    fn path(&self, profile: &str, server: &str) -> PathBuf {
        // Profile and server names are `[A-Za-z0-9_.-]` and never `.` or `..` (config rules).
        self.dir.join(profile).join(format!("{server}.json"))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The entry for (profile, server) when it was taken with `key`.
    pub fn get(&self, profile: &str, server: &str, key: &str) -> Option<Arc<Entry>> {
        let id = (profile.to_owned(), server.to_owned());
        let known = self.lock().get(&id).cloned();
        let entry = match known {
            Some(entry) => entry,
            None => {
                let read = self.read(profile, server).map(Arc::new);
                self.lock().entry(id).or_insert(read).clone()
            }
        };
        entry.filter(|e| e.key == key)
    }

    fn read(&self, profile: &str, server: &str) -> Option<Entry> {
        let path = self.path(profile, server);
        let text = match std::fs::read(&path) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return None,
            Err(err) => {
                tracing::warn!("list cache {}: {err}; ignored", path.display());
                return None;
            }
        };
        match serde_json::from_slice::<Entry>(&text) {
            Ok(entry) if entry.format == FORMAT => Some(entry),
            Ok(entry) => {
                tracing::info!(
                    "list cache {}: format {} is not {FORMAT}; ignored",
                    path.display(),
                    entry.format
                );
                None
            }
            Err(err) => {
                tracing::warn!("list cache {}: {err}; ignored", path.display());
                None
            }
        }
    }

    /// Keeps `entry` for (profile, server), on disk too (0600, atomically); a failed write is
    /// logged, and the entry still serves this run.
    pub fn put(&self, profile: &str, server: &str, entry: Entry) {
        let text = serde_json::to_vec(&entry);
        self.lock().insert(
            (profile.to_owned(), server.to_owned()),
            Some(Arc::new(entry)),
        );
        let path = self.path(profile, server);
        let _writing = self.writing.lock().unwrap_or_else(|e| e.into_inner());
        match text {
            Ok(text) => {
                if let Err(err) = write_private(&path, &text) {
                    tracing::warn!("cannot write the list cache: {err}");
                }
            }
            Err(err) => tracing::warn!("cannot encode the list cache of {server}: {err}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry(tools: &[&str]) -> Entry {
        let items = tools
            .iter()
            .map(|name| json!({ "name": name }).as_object().unwrap().clone())
            .collect();
        Entry {
            format: FORMAT,
            key: "k".into(),
            era: "legacy".into(),
            capabilities: json!({ "tools": {} }),
            lists: BTreeMap::from([("tools".to_owned(), items)]),
        }
    }

    #[test]
    fn the_key_follows_the_image_and_what_reaches_the_container() {
        let def = ServerDef {
            image: "img".into(),
            ..ServerDef::default()
        };
        let base = key("sha256:1", &def);
        assert_eq!(base, key("sha256:1", &def.clone()));
        assert_ne!(base, key("sha256:2", &def));
        let mut env = def.clone();
        env.env.insert("A".into(), "1".into());
        assert_ne!(base, key("sha256:1", &env));
        let mut command = def.clone();
        command.command = vec!["--flag".into()];
        assert_ne!(base, key("sha256:1", &command));
        let mut secrets = def.clone();
        secrets.secrets = vec!["TOKEN".into()];
        assert_ne!(base, key("sha256:1", &secrets));
        let mut idle = def.clone();
        idle.idle_timeout = Some(5);
        assert_eq!(base, key("sha256:1", &idle));
    }

    #[test]
    fn entries_survive_a_new_run_and_other_keys_miss() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ListCache::new(dir.path().to_owned());
        cache.put("p", "s", entry(&["a", "b"]));
        let path = dir.path().join("lists/p/s.json");
        let mode = std::os::unix::fs::PermissionsExt::mode(&path.metadata().unwrap().permissions());
        assert_eq!(mode & 0o777, 0o600);

        let again = ListCache::new(dir.path().to_owned());
        let read = again.get("p", "s", "k").expect("the entry is read back");
        assert_eq!(*read, entry(&["a", "b"]));
        assert!(again.get("p", "s", "other").is_none());
        assert!(again.get("p", "t", "k").is_none());
    }

    #[test]
    fn a_corrupt_or_foreign_file_is_a_miss() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("lists/p")).unwrap();
        std::fs::write(dir.path().join("lists/p/s.json"), b"{not json").unwrap();
        let mut foreign = serde_json::to_value(entry(&["a"])).unwrap();
        foreign["format"] = json!(FORMAT + 1);
        std::fs::write(dir.path().join("lists/p/t.json"), foreign.to_string()).unwrap();
        let cache = ListCache::new(dir.path().to_owned());
        assert!(cache.get("p", "s", "k").is_none());
        assert!(cache.get("p", "t", "k").is_none());
    }

    #[test]
    fn items_follow_the_capabilities() {
        let tools = entry(&["a"]);
        assert_eq!(tools.items(ListKind::Tools).unwrap().len(), 1);
        assert_eq!(tools.items(ListKind::Prompts), Some(Vec::new()));
        let mut missing = tools.clone();
        missing.capabilities = json!({ "tools": {}, "prompts": {} });
        assert_eq!(missing.items(ListKind::Prompts), None);
        assert_eq!(tools.changed_kinds(&entry(&["a", "b"])), [ListKind::Tools]);
        assert!(tools.changed_kinds(&entry(&["a"])).is_empty());
    }
}
