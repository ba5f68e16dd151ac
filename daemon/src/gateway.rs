//! The aggregation layer both MCP sessions and `mcpctl` go through: a profile's servers merged into
//! one tool list, and calls routed back to the server that owns the tool.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::config::{Config, ConfigStore};
use crate::jsonrpc::{self, Reply, code};
use crate::names;
use crate::pool::{Pool, PoolError};
use crate::upstream::{Upstream, UpstreamError};

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("no profile named {0:?}")]
    UnknownProfile(String),
    #[error("no tool named {0:?} in this profile")]
    UnknownTool(String),
    /// The tool may belong to a server that could not be listed.
    #[error("no tool named {name:?} is available; servers that failed: {failures}")]
    ToolUnavailable { name: String, failures: String },
    #[error("invalid params: {0}")]
    InvalidParams(String),
    #[error(transparent)]
    Pool(#[from] PoolError),
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
}

impl GatewayError {
    /// The JSON-RPC error object a client receives for this failure.
    pub fn to_jsonrpc(&self) -> Box<RawValue> {
        let code = match self {
            GatewayError::UnknownTool(_) | GatewayError::InvalidParams(_) => code::INVALID_PARAMS,
            _ => code::INTERNAL_ERROR,
        };
        jsonrpc::error(code, self.to_string())
    }
}

/// A profile's merged tools, in a stable order: servers as the profile lists them, each server's
/// tools in its own order.
pub struct ToolTable {
    pub tools: Vec<ExposedTool>,
    by_name: HashMap<String, usize>,
    /// Servers that could not be listed, with the reason; their tools are missing from `tools`.
    pub failures: Vec<(String, String)>,
    /// The configuration the table was built from; any change to it makes the table stale.
    config: Arc<Config>,
}

pub struct ExposedTool {
    pub name: String,
    pub server: String,
    pub original: String,
    /// The tool as the server described it, with `name` replaced by the exposed name.
    pub tool: Map<String, Value>,
}

pub struct Gateway {
    pub config: Arc<ConfigStore>,
    pub pool: Arc<Pool>,
    request_timeout: Duration,
    /// The last table built per profile, so that a call needs no listing round trip.
    tables: Mutex<HashMap<String, Arc<ToolTable>>>,
}

impl Gateway {
    pub fn new(config: Arc<ConfigStore>, pool: Arc<Pool>, request_timeout: Duration) -> Gateway {
        Gateway {
            config,
            pool,
            request_timeout,
            tables: Mutex::default(),
        }
    }

    /// Lists every server of the profile (starting them, all at once) and merges their tools.
    pub async fn tool_table(&self, profile_name: &str) -> Result<Arc<ToolTable>, GatewayError> {
        let config = self.config.get();
        let profile = config
            .profile(profile_name)
            .ok_or_else(|| GatewayError::UnknownProfile(profile_name.to_owned()))?;
        let config_ref = &config;
        let listings =
            futures_util::future::join_all(profile.servers.iter().map(|server| async move {
                let def = config_ref
                    .catalog
                    .servers
                    .get(server)
                    .ok_or_else(|| format!("{server:?} is not in the catalog"))?;
                let upstream = self
                    .pool
                    .get(profile_name, server, def)
                    .await
                    .map_err(|e| e.to_string())?;
                list_all(&upstream, "tools/list", "tools", self.request_timeout).await
            }))
            .await;
        let mut entries = Vec::new();
        let mut failures = Vec::new();
        for (server, listing) in profile.servers.iter().zip(listings) {
            match listing {
                Ok(tools) => entries.extend(tools.into_iter().filter_map(|tool| {
                    let original = tool.get("name")?.as_str()?.to_owned();
                    Some((server.clone(), original, tool))
                })),
                Err(reason) => {
                    tracing::warn!(
                        profile = profile_name,
                        server,
                        "tools unavailable: {reason}"
                    );
                    failures.push((server.clone(), reason));
                }
            }
        }
        let pairs: Vec<(&str, &str)> = entries
            .iter()
            .map(|(s, o, _)| (s.as_str(), o.as_str()))
            .collect();
        let exposed = names::expose(&pairs, profile.prefix);
        let tools: Vec<ExposedTool> = entries
            .into_iter()
            .zip(exposed)
            .map(|((server, original, mut tool), name)| {
                tool.insert("name".into(), Value::from(name.clone()));
                ExposedTool {
                    name,
                    server,
                    original,
                    tool,
                }
            })
            .collect();
        let by_name = tools
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.clone(), i))
            .collect();
        let table = Arc::new(ToolTable {
            tools,
            by_name,
            failures,
            config,
        });
        self.tables
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(profile_name.to_owned(), Arc::clone(&table));
        Ok(table)
    }

    /// Routes a `tools/call` to the server owning the tool, with the server's own tool name; every
    /// other member of `params` (arguments, `_meta`, unknown fields) goes through as sent.
    pub async fn call_tool(
        &self,
        profile_name: &str,
        params: &RawValue,
    ) -> Result<Reply, GatewayError> {
        let mut params: Map<String, Value> = serde_json::from_str(params.get())
            .map_err(|err| GatewayError::InvalidParams(err.to_string()))?;
        let name = params
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| GatewayError::InvalidParams("missing tool name".into()))?
            .to_owned();
        let (server, original) = self.resolve(profile_name, &name).await?;
        params.insert("name".into(), Value::from(original));
        let config = self.config.get();
        let def = config
            .catalog
            .servers
            .get(&server)
            .ok_or_else(|| GatewayError::UnknownTool(name.clone()))?;
        let upstream = self.pool.get(profile_name, &server, def).await?;
        let params = jsonrpc::to_raw(&Value::Object(params));
        Ok(upstream
            .request("tools/call", Some(&params), self.request_timeout)
            .await?)
    }

    /// The owner of an exposed tool name, from the cached table or, failing that, a fresh one.
    async fn resolve(
        &self,
        profile_name: &str,
        name: &str,
    ) -> Result<(String, String), GatewayError> {
        let lookup = |table: &ToolTable| {
            table.by_name.get(name).map(|&i| {
                (
                    table.tools[i].server.clone(),
                    table.tools[i].original.clone(),
                )
            })
        };
        let cached = self
            .tables
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(profile_name)
            .cloned();
        if let Some(table) = cached.filter(|t| Arc::ptr_eq(&t.config, &self.config.get()))
            && let Some(found) = lookup(&table)
        {
            return Ok(found);
        }
        let table = self.tool_table(profile_name).await?;
        if let Some(found) = lookup(&table) {
            return Ok(found);
        }
        if table.failures.is_empty() {
            return Err(GatewayError::UnknownTool(name.to_owned()));
        }
        let failures = table
            .failures
            .iter()
            .map(|(server, reason)| format!("{server}: {reason}"))
            .collect::<Vec<_>>();
        Err(GatewayError::ToolUnavailable {
            name: name.to_owned(),
            failures: failures.join("; "),
        })
    }
}

/// Fetches every page of a list method, following `nextCursor`, and returns the items.
async fn list_all(
    upstream: &Upstream,
    method: &str,
    field: &str,
    timeout: Duration,
) -> Result<Vec<Map<String, Value>>, String> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    // A server that keeps returning cursors must not keep the gateway listing forever.
    for _ in 0..1000 {
        let params = cursor
            .as_ref()
            .map(|c| jsonrpc::to_raw(&serde_json::json!({ "cursor": c })));
        let result = upstream
            .request(method, params.as_deref(), timeout)
            .await
            .map_err(|err| err.to_string())?
            .map_err(|error| format!("{method} failed: {}", error.get()))?;
        let mut page: Map<String, Value> =
            serde_json::from_str(result.get()).map_err(|err| format!("{method}: {err}"))?;
        match page.remove(field) {
            Some(Value::Array(list)) => {
                items.extend(list.into_iter().filter_map(|item| match item {
                    Value::Object(item) => Some(item),
                    _ => None,
                }))
            }
            _ => return Err(format!("{method}: the result has no {field} array")),
        }
        cursor = page
            .get("nextCursor")
            .and_then(Value::as_str)
            .map(str::to_owned);
        if cursor.is_none() {
            return Ok(items);
        }
    }
    Err(format!("{method}: more than 1000 pages"))
}
