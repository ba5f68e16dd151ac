//! Lists without waiting for containers: a server with no container running is listed from the
//! on-disk cache (`listcache`) and started in the background, and an opening session starts its
//! profile's servers the same way, so that its first call rarely waits for a start.
//!
//! A started server is listed in full (every kind it offers) and its entry rewritten; the kinds
//! whose real items differ from the cached ones are announced to clients like a server's own
//! `list_changed`, which rebuilds the merged lists from the now running server.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Map, Value};

use super::{Gateway, GatewayError, list_all};
use crate::listcache::{self, Entry};
use crate::lists::ListKind;
use crate::pool::definition;
use crate::upstream::Upstream;

impl Gateway {
    /// One server's items of `kind` for a merged table: from its running container, else from
    /// the cache (starting the container in the background), else from a container started now.
    /// A container that is up but busy (handing itself out, being replaced) is waited for: its
    /// lists may have changed since the cache was written.
    pub(super) async fn server_items(
        &self,
        profile: &str,
        server: &str,
        kind: ListKind,
    ) -> Result<Vec<Map<String, Value>>, GatewayError> {
        let config = self.config.get();
        let def = definition(&config, server)?;
        if let Some(upstream) = self.pool.current(profile, server, def) {
            return self.list_live(profile, server, &upstream, kind).await;
        }
        let cached = if self.pool.has_container(profile, server) {
            None
        } else {
            self.cache_entry(profile, server).await
        };
        if let Some(items) = cached.and_then(|entry| entry.items(kind)) {
            tracing::info!(profile, server, "{} from the list cache", kind.field());
            self.warm_server(profile, server);
            return Ok(items);
        }
        let upstream = self.pool.get(profile, server, None, &config).await?;
        self.list_live(profile, server, &upstream, kind).await
    }

    /// Lists a running server and keeps what it said in the cache.
    async fn list_live(
        &self,
        profile: &str,
        server: &str,
        upstream: &Upstream,
        kind: ListKind,
    ) -> Result<Vec<Map<String, Value>>, GatewayError> {
        let items = if upstream.supports(kind.capability()) {
            list_all(upstream, kind, self.request_timeout).await?
        } else {
            Vec::new()
        };
        let Some(key) = self.cache_key(profile, server).await else {
            return Ok(items);
        };
        match self.cache.get(profile, server, &key) {
            Some(entry) if entry.items(kind).as_ref() != Some(&items) => {
                let mut updated = (*entry).clone();
                updated.set_items(kind, items.clone());
                self.store(profile, server, updated);
            }
            Some(_) => {}
            // Only a full entry can serve every kind; a background pass lists the rest.
            None => self.warm_server(profile, server),
        }
        Ok(items)
    }

    /// The key of (profile, server)'s cache entry as it would run now; `None` when the server is
    /// not in the catalog or what it runs cannot be told (the engine does not know its image, a
    /// process server's program is missing).
    async fn cache_key(&self, profile: &str, server: &str) -> Option<String> {
        let config = self.config.get();
        let def = definition(&config, server).ok()?;
        let (def, _) = self.pool.resolve(profile, server, def);
        let runs = self.pool.runs(&def).await.ok()?;
        Some(listcache::key(&runs, &def))
    }

    async fn cache_entry(&self, profile: &str, server: &str) -> Option<Arc<Entry>> {
        let key = self.cache_key(profile, server).await?;
        self.cache.get(profile, server, &key)
    }

    /// Starts every server of `profile` in the background (a session opened), each refreshing
    /// its cache entry. A server already running was refreshed when it started.
    pub fn warm(&self, profile: &str) {
        let config = self.config.get();
        let Some(servers) = config.profile(profile).map(|p| p.servers) else {
            return;
        };
        for server in servers {
            let running = definition(&config, &server)
                .is_ok_and(|def| self.pool.current(profile, &server, def).is_some());
            if !running {
                self.warm_server(profile, &server);
            }
        }
    }

    /// Starts (profile, server) in the background unless that is under way already, then lists
    /// it in full, rewrites its cache entry and announces the kinds that changed.
    fn warm_server(&self, profile: &str, server: &str) {
        let id = (profile.to_owned(), server.to_owned());
        let Some(gateway) = self.me.upgrade() else {
            return;
        };
        if !self.lock_warming().insert(id.clone()) {
            return;
        }
        tokio::spawn(async move {
            let (profile, server) = &id;
            if let Err(err) = gateway.refresh(profile, server).await {
                tracing::info!(profile, server, "warming: {err}");
            }
            gateway.lock_warming().remove(&id);
        });
    }

    async fn refresh(self: &Arc<Self>, profile: &str, server: &str) -> Result<(), GatewayError> {
        let cached = self.cache_entry(profile, server).await;
        let upstream = self.upstream(profile, server, None).await?;
        let mut lists = BTreeMap::new();
        for kind in ListKind::ALL {
            if upstream.supports(kind.capability()) {
                let items = list_all(&upstream, kind, self.request_timeout).await?;
                lists.insert(kind.field().to_owned(), items);
            }
        }
        // The key after the start: the engine has just said which image the container runs.
        let Some(key) = self.cache_key(profile, server).await else {
            return Ok(());
        };
        let entry = Entry::new(key, &upstream, lists);
        if cached.as_deref() == Some(&entry) {
            return Ok(());
        }
        let changed = cached.map(|old| old.changed_kinds(&entry));
        self.store(profile, server, entry);
        for kind in changed.unwrap_or_default() {
            tracing::info!(
                profile,
                server,
                "{} differ from the list cache",
                kind.field()
            );
            self.list_changed(profile, kind.changed_notification());
        }
        Ok(())
    }

    /// Writes an entry, unless the lists hold a secret (a server may list what its environment
    /// holds): the state directory is no place for one.
    fn store(&self, profile: &str, server: &str, entry: Entry) {
        let text = serde_json::to_string(&entry).unwrap_or_default();
        if self.scanner.may_hold(&text) {
            let value = serde_json::from_str(&text).unwrap_or(Value::Null);
            let hits = self.scanner.find(&value);
            if !hits.is_empty() {
                tracing::warn!(
                    profile,
                    server,
                    rules = hits.join(", "),
                    "lists not cached: they hold a secret"
                );
                return;
            }
        }
        let cache = Arc::clone(&self.cache);
        let (profile, server) = (profile.to_owned(), server.to_owned());
        // The write is fsynced; it must not hold up a runtime thread.
        tokio::task::spawn_blocking(move || cache.put(&profile, &server, entry));
    }

    fn lock_warming(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashSet<(String, String)>> {
        self.warming.lock().unwrap_or_else(|e| e.into_inner())
    }
}
