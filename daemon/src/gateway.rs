//! The aggregation layer both MCP sessions and `mcpctl` go through: a profile's servers merged into
//! one set of lists, and requests routed back to the server that owns the tool, prompt or
//! resource they name.
//!
//! Requests keep every member as the client sent it except the one naming the item, which gets the
//! server's own name back. What servers send unprompted (logs, list changes, resource updates,
//! requests for the client) is routed in `gateway/events.rs`; a modern server's `input_required`
//! answer in `gateway/input.rs`.

mod events;
mod input;
mod screening;
mod warming;

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

use crate::audit::{Audit, Call, Trail};
use crate::config::{ConfigStore, Isolation};
use crate::downstream::Downstream;
use crate::jsonrpc::{self, Reply, code};
use crate::listcache::ListCache;
use crate::lists::{ListKind, Listing, Route, Table};
use crate::names;
use crate::parking::Seal;
use crate::pool::{CallServer, Pool, PoolError, definition};
use crate::scan::{ScanMode, Scanner};
use crate::upstream::{Caller, Upstream, UpstreamError};

/// The JSON-RPC code legacy servers use for an unknown resource URI.
const RESOURCE_NOT_FOUND: i64 = -32002;

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("no profile named {0:?}")]
    UnknownProfile(String),
    #[error("no {what} named {name:?} in this profile")]
    Unknown { what: &'static str, name: String },
    /// The item may belong to a server that could not be listed.
    #[error("no {what} named {name:?} is available; servers that failed: {failures}")]
    Unavailable {
        what: &'static str,
        name: String,
        failures: String,
    },
    #[error("invalid params: {0}")]
    InvalidParams(String),
    #[error("the call to {tool:?} was blocked: its arguments hold a secret ({rules})")]
    SecretInArguments { tool: String, rules: String },
    #[error("the retry of {name:?} was blocked: its inputResponses hold a secret ({rules})")]
    SecretInInput { name: String, rules: String },
    #[error("the result of {tool:?} was withheld: it holds a secret ({rules})")]
    SecretInResult { tool: String, rules: String },
    #[error("server {server:?} answered {method} badly: {reason}")]
    BadListing {
        server: String,
        method: &'static str,
        reason: String,
    },
    #[error(transparent)]
    Pool(#[from] PoolError),
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
}

impl GatewayError {
    /// The JSON-RPC error object a client receives for this failure.
    pub fn to_jsonrpc(&self) -> Box<RawValue> {
        match self {
            GatewayError::Unknown {
                what: "resource",
                name,
            } => jsonrpc::to_raw(&json!({
                "code": RESOURCE_NOT_FOUND,
                "message": self.to_string(),
                "data": {"uri": name},
            })),
            GatewayError::Unknown { .. }
            | GatewayError::InvalidParams(_)
            | GatewayError::SecretInArguments { .. }
            | GatewayError::SecretInInput { .. } => {
                jsonrpc::error(code::INVALID_PARAMS, self.to_string())
            }
            _ => jsonrpc::error(code::INTERNAL_ERROR, self.to_string()),
        }
    }
}

pub struct Gateway {
    pub config: Arc<ConfigStore>,
    pub pool: Arc<Pool>,
    request_timeout: Duration,
    /// How many items a list page holds.
    page_size: usize,
    /// The last table built per profile and kind, so that a call needs no listing round trip.
    /// By profile first, so that a call looks its profile up without making a key of it.
    tables: Mutex<Tables>,
    generation: AtomicU64,
    sessions: Mutex<HashMap<u64, Arc<Downstream>>>,
    /// How many clients subscribe to each (profile, server, URI on the server).
    subscriptions: Mutex<HashMap<(String, String, String), usize>>,
    /// The listen streams that stand for those subscriptions on 2026-07-28 servers, closed when
    /// dropped.
    resource_listens: Mutex<HashMap<(String, String, String), tokio_util::sync::DropGuard>>,
    /// (profile, notification) pairs waiting out the list-changed debounce.
    debouncing: Mutex<HashSet<(String, String)>>,
    scanner: Scanner,
    audit: Audit,
    /// Seals the `requestState` a modern client gets with `input_required`.
    pub seal: Seal,
    /// Every server's lists as its container last gave them, kept across daemon runs.
    cache: Arc<ListCache>,
    /// (profile, server) pairs being started and listed in the background.
    warming: Mutex<HashSet<(String, String)>>,
    /// The gateway itself, for the background tasks it spawns.
    me: Weak<Gateway>,
}

impl Gateway {
    pub fn new(
        config: Arc<ConfigStore>,
        pool: Arc<Pool>,
        audit: Audit,
        cache: ListCache,
        request_timeout: Duration,
        page_size: usize,
        seal: Seal,
    ) -> Arc<Gateway> {
        Arc::new_cyclic(|me| Gateway {
            pool,
            request_timeout,
            page_size,
            tables: Mutex::default(),
            generation: AtomicU64::new(1),
            sessions: Mutex::default(),
            subscriptions: Mutex::default(),
            resource_listens: Mutex::default(),
            debouncing: Mutex::default(),
            scanner: Scanner::new(screening::stored_secrets(&config)),
            seal,
            audit,
            config,
            cache: Arc::new(cache),
            warming: Mutex::default(),
            me: me.clone(),
        })
    }

    /// A page of the profile's merged list of `kind`, as result text ending with `members`.
    pub async fn list(
        &self,
        profile: &str,
        kind: ListKind,
        params: Option<&RawValue>,
        members: &[(&str, Value)],
    ) -> Result<Box<RawValue>, GatewayError> {
        let cursor = parse_params(params)?
            .get("cursor")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let table = match cursor {
            // A cursor continues the table it came from, so only a cached table can honour it.
            Some(_) => match self.cached(profile, kind) {
                Some(table) => table,
                None => self.table(profile, kind).await?,
            },
            None => self.table(profile, kind).await?,
        };
        table
            .page(cursor.as_deref(), self.page_size, members)
            .map_err(GatewayError::InvalidParams)
    }

    /// The whole merged list of `kind`, listing every server of the profile (starting them, all at
    /// once) when no current table is cached.
    pub async fn table(&self, profile: &str, kind: ListKind) -> Result<Arc<Table>, GatewayError> {
        match self.cached(profile, kind) {
            Some(table) => Ok(table),
            None => self.build_table(profile, kind).await,
        }
    }

    fn cached(&self, profile: &str, kind: ListKind) -> Option<Arc<Table>> {
        let config = self.config.get();
        self.lock_tables()
            .get(profile)
            .and_then(|tables| tables.get(&kind))
            // A table missing a server that failed is only good for the request that built it;
            // the next one tries that server again.
            .filter(|t| t.failures.is_empty() && Arc::ptr_eq(&t.config, &config))
            .cloned()
    }

    fn lock_tables(&self) -> std::sync::MutexGuard<'_, Tables> {
        self.tables.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn build_table(&self, profile: &str, kind: ListKind) -> Result<Arc<Table>, GatewayError> {
        let config = self.config.get();
        let profile_def = config
            .profile(profile)
            .ok_or_else(|| GatewayError::UnknownProfile(profile.to_owned()))?;
        let listings: Vec<Listing> =
            futures_util::future::join_all(profile_def.servers.iter().map(|server| async move {
                let listing = self.server_items(profile, server, kind).await;
                (server.clone(), listing.map_err(|e| e.to_string()))
            }))
            .await;
        for (server, listing) in &listings {
            if let Err(reason) = listing {
                tracing::warn!(profile, server, "{} unavailable: {reason}", kind.field());
            }
        }
        let generation = self.generation.fetch_add(1, Ordering::Relaxed);
        let table = Arc::new(Table::build(
            kind,
            &profile_def,
            listings,
            generation,
            config,
        ));
        self.lock_tables()
            .entry(profile.to_owned())
            .or_default()
            .insert(kind, Arc::clone(&table));
        Ok(table)
    }

    /// The server's running connection, started if needed: for a client session's request to a
    /// session-isolated server, that session's own container; else the profile's shared one.
    async fn upstream(
        &self,
        profile: &str,
        server: &str,
        session: Option<u64>,
    ) -> Result<Arc<Upstream>, GatewayError> {
        let config = self.config.get();
        Ok(self.pool.get(profile, server, session, &config).await?)
    }

    /// The server a routed request (`tools/call`, `prompts/get`, `resources/read`,
    /// `completion/complete`) goes to: as `upstream` gives it, except for an `isolation =
    /// "call"` server, which gets one started for this request alone.
    async fn call_upstream(
        &self,
        profile: &str,
        server: &str,
        session: Option<u64>,
    ) -> Result<Reached, GatewayError> {
        let config = self.config.get();
        let def = definition(&config, server)?;
        Ok(if def.isolation == Isolation::Call {
            Reached::Call(
                self.pool
                    .get_for_call(profile, server, session, def)
                    .await?,
            )
        } else {
            Reached::Kept(self.pool.get(profile, server, session, &config).await?)
        })
    }

    /// Where an exposed tool or prompt name (or resource URI) lives, from the cached table or,
    /// failing that, a fresh one.
    async fn route(
        &self,
        profile: &str,
        kind: ListKind,
        exposed: &str,
    ) -> Result<Route, GatewayError> {
        if let Some(route) = self
            .cached(profile, kind)
            .and_then(|t| t.route(exposed).cloned())
        {
            return Ok(route);
        }
        let table = self.build_table(profile, kind).await?;
        if let Some(route) = table.route(exposed) {
            return Ok(route.clone());
        }
        let what = match kind {
            ListKind::Tools => "tool",
            ListKind::Prompts => "prompt",
            ListKind::Resources | ListKind::Templates => "resource",
        };
        Err(if table.failures.is_empty() {
            GatewayError::Unknown {
                what,
                name: exposed.to_owned(),
            }
        } else {
            GatewayError::Unavailable {
                what,
                name: exposed.to_owned(),
                failures: table.failure_summary(),
            }
        })
    }

    /// Where a resource URI lives: a listed resource, the gateway's rewritten form, a URI built
    /// from a server's template, or the only server with resources at all.
    async fn route_uri(&self, profile: &str, uri: &str) -> Result<Route, GatewayError> {
        let servers = self
            .config
            .get()
            .profile(profile)
            .ok_or_else(|| GatewayError::UnknownProfile(profile.to_owned()))?
            .servers;
        if let Some((server, original)) = names::split_uri(uri)
            && servers.iter().any(|s| s == server)
        {
            return Ok(Route {
                server: server.into(),
                original: original.into(),
            });
        }
        let listed = self.route(profile, ListKind::Resources, uri).await;
        if let Ok(route) = listed {
            return Ok(route);
        }
        let templates = self.table(profile, ListKind::Templates).await?;
        let by_template = templates
            .items
            .iter()
            .filter_map(|item| {
                let template = item.get("uriTemplate")?.as_str()?;
                let literal = &template[..template.find('{').unwrap_or(template.len())];
                let route = templates.route(template)?;
                (!literal.is_empty() && uri.starts_with(literal)).then_some((literal.len(), route))
            })
            .max_by_key(|(len, _)| *len);
        if let Some((_, route)) = by_template {
            return Ok(Route {
                server: route.server.clone(),
                original: uri.into(),
            });
        }
        let mut with_resources = Vec::new();
        for server in &servers {
            if self
                .upstream(profile, server, None)
                .await?
                .supports("resources")
            {
                with_resources.push(server);
            }
        }
        match with_resources.as_slice() {
            [only] => Ok(Route {
                server: only.as_str().into(),
                original: uri.into(),
            }),
            _ => listed,
        }
    }

    /// Routes one of the requests that name an item (`tools/call`, `prompts/get`,
    /// `resources/read`, `completion/complete`) to its server, and records it in the audit log.
    pub async fn call(
        &self,
        profile: &str,
        method: &str,
        params: Option<&RawValue>,
        caller: &Caller,
    ) -> Result<Reply, GatewayError> {
        let started = std::time::Instant::now();
        let mut trail = Trail::default();
        let outcome = self
            .route_call(profile, method, params, caller, &mut trail)
            .await;
        let client = caller
            .owner
            .as_ref()
            .map_or("mcpctl", |owner| owner.client.as_str());
        let call = Call {
            profile,
            client,
            method,
            took: started.elapsed(),
            request_bytes: params.map_or(0, |p| p.get().len()),
        };
        self.audit.record(call, &trail, &outcome);
        outcome
    }

    async fn route_call(
        &self,
        profile: &str,
        method: &str,
        params: Option<&RawValue>,
        caller: &Caller,
        trail: &mut Trail,
    ) -> Result<Reply, GatewayError> {
        // Read in place rather than through `Config::profile`, which copies the profile (and
        // builds the implicit `default` from the catalog): this runs on every call. A profile
        // no file defines has the defaults; an unknown one fails routing below.
        let (scan, keep_arguments) = match self.config.get().profiles.profiles.get(profile) {
            Some(defined) => (defined.scan, defined.audit_arguments),
            None => (ScanMode::default(), false),
        };
        if let ("tools/call" | "prompts/get", Some(raw)) = (method, params) {
            let screening = (scan, keep_arguments);
            return self
                .route_named(profile, method, raw, screening, caller, trail)
                .await;
        }
        let mut params = parse_params(params)?;
        trail.name = params
            .get("uri")
            .and_then(Value::as_str)
            .or_else(|| {
                let reference = params.get("ref")?;
                reference.get("name").or(reference.get("uri"))?.as_str()
            })
            .unwrap_or_default()
            .to_owned();
        let (route, rewritten_uri) = match method {
            "resources/read" => {
                let uri = string_member(&params, "uri")?;
                let route = self.route_uri(profile, &uri).await?;
                params.insert("uri".into(), Value::from(&*route.original));
                let rewritten = *route.original != uri;
                (route, rewritten)
            }
            "completion/complete" => (self.route_reference(profile, &mut params).await?, false),
            "tools/call" | "prompts/get" => {
                return Err(GatewayError::InvalidParams("missing name".into()));
            }
            _ => {
                return Err(GatewayError::InvalidParams(format!(
                    "{method} names no tool, prompt or resource"
                )));
            }
        };
        trail.server = route.server.clone();
        // A modern client's retry answers the server's input requests; they reach it like
        // arguments do.
        if let Some(responses) = params.get_mut("inputResponses") {
            let hits = self.screen_input(scan, responses, profile, &trail.name)?;
            trail.secrets.extend(hits);
        }
        let reply = self
            .forward_call(
                profile,
                &route.server,
                method,
                Outgoing::Edited(params),
                caller,
            )
            .await?;
        Ok(match reply {
            Ok(result) if rewritten_uri => Ok(rewrite_contents(result, &route.server)),
            other => other,
        })
    }

    /// Routes `tools/call` or `prompts/get` by its `name`, screening a tool call's arguments and
    /// result. The params go to the server as the client's bytes unless the gateway has to edit
    /// them: a name exposed under another name than the server's, or redacted arguments.
    async fn route_named(
        &self,
        profile: &str,
        method: &str,
        raw: &RawValue,
        (scan, keep_arguments): (ScanMode, bool),
        caller: &Caller,
        trail: &mut Trail,
    ) -> Result<Reply, GatewayError> {
        let named: Named = serde_json::from_str(raw.get()).map_err(|err| {
            GatewayError::InvalidParams(format!("params must be an object: {err}"))
        })?;
        let name = named
            .name
            .ok_or_else(|| GatewayError::InvalidParams("missing name".into()))?;
        trail.name = name.clone().into_owned();
        let kind = if method == "tools/call" {
            ListKind::Tools
        } else {
            ListKind::Prompts
        };
        let route = self.route(profile, kind, &name).await?;
        trail.server = route.server.clone();
        let mut redacted = None;
        if let (ListKind::Tools, Some(arguments)) = (kind, named.arguments) {
            // Most arguments hold no secret: one pass over their text rules that out without
            // parsing them.
            let suspect = self.scanner.may_hold(arguments.get());
            if suspect || keep_arguments {
                let mut value: Value = serde_json::from_str(arguments.get())
                    .map_err(|err| GatewayError::InvalidParams(err.to_string()))?;
                if suspect {
                    trail.secrets = self.screen_arguments(scan, &mut value, profile, &name)?;
                }
                if keep_arguments {
                    trail.arguments = Some(value.clone());
                }
                if !trail.secrets.is_empty() {
                    redacted = Some(value);
                }
            }
        }
        // A modern client's retry answers the server's input requests; they reach it like
        // arguments do.
        let mut redacted_input = None;
        if let Some(responses) = named.input_responses
            && self.scanner.may_hold(responses.get())
        {
            let mut value: Value = serde_json::from_str(responses.get())
                .map_err(|err| GatewayError::InvalidParams(err.to_string()))?;
            let hits = self.screen_input(scan, &mut value, profile, &name)?;
            if !hits.is_empty() {
                trail.secrets.extend(hits);
                redacted_input = Some(value);
            }
        }
        let params = if *route.original == *name && redacted.is_none() && redacted_input.is_none() {
            Outgoing::Raw(raw)
        } else {
            let mut params = parse_params(Some(raw))?;
            params.insert("name".into(), Value::from(&*route.original));
            if let Some(arguments) = redacted {
                params.insert("arguments".into(), arguments);
            }
            if let Some(responses) = redacted_input {
                params.insert("inputResponses".into(), responses);
            }
            Outgoing::Edited(params)
        };
        let reply = self
            .forward_call(profile, &route.server, method, params, caller)
            .await?;
        Ok(match reply {
            Ok(result) if kind == ListKind::Tools => {
                Ok(self.screen_result(scan, result, profile, &name, trail)?)
            }
            other => other,
        })
    }

    /// Routes `completion/complete` by its `ref`: a prompt name or a resource (template) URI.
    async fn route_reference(
        &self,
        profile: &str,
        params: &mut Map<String, Value>,
    ) -> Result<Route, GatewayError> {
        let reference = params
            .get_mut("ref")
            .and_then(Value::as_object_mut)
            .ok_or_else(|| GatewayError::InvalidParams("missing ref".into()))?;
        let (member, route) = match reference.get("type").and_then(Value::as_str) {
            Some("ref/prompt") => {
                let name = string_member(reference, "name")?;
                ("name", self.route(profile, ListKind::Prompts, &name).await?)
            }
            Some("ref/resource") => {
                let uri = string_member(reference, "uri")?;
                let template = self
                    .table(profile, ListKind::Templates)
                    .await?
                    .route(&uri)
                    .cloned();
                let route = match template {
                    Some(route) => route,
                    None => self.route_uri(profile, &uri).await?,
                };
                ("uri", route)
            }
            other => {
                return Err(GatewayError::InvalidParams(format!(
                    "unknown ref type {other:?}"
                )));
            }
        };
        reference.insert(member.into(), Value::from(&*route.original));
        Ok(route)
    }

    async fn forward(
        &self,
        profile: &str,
        server: &str,
        method: &str,
        params: &Map<String, Value>,
        caller: &Caller,
    ) -> Result<Reply, GatewayError> {
        let upstream = self.upstream(profile, server, session_of(caller)).await?;
        let params = jsonrpc::to_raw(params);
        Ok(upstream.request(method, Some(&params), caller).await?)
    }

    /// A `tools/call` made by `mcpctl`, on the gateway's own behalf.
    pub async fn call_tool(&self, profile: &str, params: &RawValue) -> Result<Reply, GatewayError> {
        self.call(
            profile,
            "tools/call",
            Some(params),
            &Caller::gateway(self.request_timeout),
        )
        .await
    }

    pub fn audit(&self) -> &Audit {
        &self.audit
    }

    /// How long a client's request may take on a server.
    pub fn request_timeout(&self) -> Duration {
        self.request_timeout
    }
}

/// A routed request's server; a per-call one is removed when this is dropped, which is when the
/// request ends, however it ends.
enum Reached {
    Kept(Arc<Upstream>),
    Call(CallServer),
}

impl std::ops::Deref for Reached {
    type Target = Upstream;

    fn deref(&self) -> &Upstream {
        match self {
            Reached::Kept(upstream) => upstream,
            Reached::Call(call) => &call.upstream,
        }
    }
}

/// The client session a request is made for; `None` for the gateway's own.
fn session_of(caller: &Caller) -> Option<u64> {
    caller.owner.as_ref().map(|owner| owner.id)
}

/// What routing reads of `tools/call` and `prompts/get` params, borrowed from their text.
#[derive(serde::Deserialize)]
struct Named<'a> {
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    arguments: Option<&'a RawValue>,
    /// A 2026-07-28 client's answers to the server's input requests, on its retry.
    #[serde(borrow, default, rename = "inputResponses")]
    input_responses: Option<&'a RawValue>,
}

/// The routing tables built, by profile and kind; hashed with foldhash, as every call looks its
/// profile's table up.
type Tables = hashbrown::HashMap<String, hashbrown::HashMap<ListKind, Arc<Table>>>;

/// The params of a routed call on their way to its server: the client's own text when the
/// gateway changed nothing in them, else the members with its edits.
enum Outgoing<'a> {
    Raw(&'a RawValue),
    Edited(Map<String, Value>),
}

impl<'a> Outgoing<'a> {
    fn into_map(self) -> Result<Map<String, Value>, GatewayError> {
        match self {
            Outgoing::Raw(raw) => parse_params(Some(raw)),
            Outgoing::Edited(params) => Ok(params),
        }
    }

    fn to_raw(&self) -> Cow<'a, RawValue> {
        match self {
            Outgoing::Raw(raw) => Cow::Borrowed(*raw),
            Outgoing::Edited(params) => Cow::Owned(jsonrpc::to_raw(params)),
        }
    }
}

fn parse_params(params: Option<&RawValue>) -> Result<Map<String, Value>, GatewayError> {
    match params {
        None => Ok(Map::new()),
        Some(params) => serde_json::from_str(params.get())
            .map_err(|err| GatewayError::InvalidParams(format!("params must be an object: {err}"))),
    }
}

fn string_member(object: &Map<String, Value>, member: &str) -> Result<String, GatewayError> {
    object
        .get(member)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| GatewayError::InvalidParams(format!("missing {member}")))
}

/// A `resources/read` result whose contents carry the server's URIs, given the gateway's rewritten
/// ones, for a server whose URIs clients only know in that form.
fn rewrite_contents(result: Box<RawValue>, server: &str) -> Box<RawValue> {
    let Ok(mut value) = serde_json::from_str::<Value>(result.get()) else {
        return result;
    };
    if let Some(contents) = value.get_mut("contents").and_then(Value::as_array_mut) {
        for content in contents {
            if let Some(uri) = content.get("uri").and_then(Value::as_str) {
                let exposed = format!("{}{server}/{uri}", names::URI_PREFIX);
                content["uri"] = Value::from(exposed);
            }
        }
    }
    jsonrpc::to_raw(&value)
}

/// Fetches every page of a list, following `nextCursor`, and returns the items.
async fn list_all(
    upstream: &Upstream,
    kind: ListKind,
    timeout: Duration,
) -> Result<Vec<Map<String, Value>>, GatewayError> {
    let method = kind.method();
    let failed = |reason: String| GatewayError::BadListing {
        server: upstream.name().to_owned(),
        method,
        reason,
    };
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    // A server that keeps returning cursors must not keep the gateway listing forever.
    for _ in 0..1000 {
        let params = cursor
            .as_ref()
            .map(|c| jsonrpc::to_raw(&json!({ "cursor": c })));
        let result = upstream
            .request(method, params.as_deref(), &Caller::gateway(timeout))
            .await?
            .map_err(|error| failed(error.get().to_owned()))?;
        let mut page: Map<String, Value> =
            serde_json::from_str(result.get()).map_err(|err| failed(err.to_string()))?;
        match page.remove(kind.field()) {
            Some(Value::Array(list)) => {
                items.extend(list.into_iter().filter_map(|item| match item {
                    Value::Object(item) => Some(item),
                    _ => None,
                }))
            }
            _ => {
                return Err(failed(format!("the result has no {} array", kind.field())));
            }
        }
        cursor = page
            .get("nextCursor")
            .and_then(Value::as_str)
            .map(str::to_owned);
        if cursor.is_none() {
            return Ok(items);
        }
    }
    Err(failed("more than 1000 pages".into()))
}
