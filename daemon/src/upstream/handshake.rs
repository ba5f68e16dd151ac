//! How a server is greeted, once per container: the `server/discover` probe that tells its
//! protocol era, then the legacy `initialize` handshake or, for a modern server, a listen stream
//! for its list changes.

use std::sync::Arc;
use std::time::Duration;

use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

use super::{Caller, Upstream, UpstreamError};
use crate::jsonrpc;
use crate::modern;

/// The protocol revision the gateway asks legacy servers for.
pub const LEGACY_PROTOCOL: &str = "2025-11-25";

/// How long a server may take to answer the `server/discover` probe before it is taken for a
/// legacy server (rmcp's client waits as long).
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// Which protocol era a server speaks, found once per container by [`Upstream::handshake`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Era {
    /// 2025-06-18 / 2025-11-25: one `initialize`d session for the container.
    Legacy,
    /// 2026-07-28: every request describes itself; changes come on a listen stream.
    Modern,
}

impl Era {
    pub fn name(self) -> &'static str {
        match self {
            Era::Legacy => "legacy",
            Era::Modern => "2026-07-28",
        }
    }
}

impl Upstream {
    /// Finds the server's era: a `server/discover` probe answered with a result that lists
    /// 2026-07-28 makes it modern; any error or silence makes it legacy, and it gets the
    /// `initialize` handshake. A modern server is then asked for its list changes on a listen
    /// stream, which stays open as long as the server runs.
    pub async fn handshake(self: &Arc<Self>, timeout: Duration) -> Result<(), UpstreamError> {
        // The probe describes itself like every modern request; a modern server refuses one
        // that does not.
        let none = jsonrpc::empty_object();
        let described = modern::describe(None, &none, None).pieces().concat();
        let described =
            RawValue::from_string(described).map_err(|err| UpstreamError::Initialize {
                server: self.name.clone(),
                reason: format!("the gateway's own probe is not JSON: {err}"),
            })?;
        let probe = self
            .request(
                "server/discover",
                Some(&described),
                &Caller::gateway(timeout.min(PROBE_TIMEOUT)),
            )
            .await;
        let discovered = match probe {
            Ok(Ok(result)) => serde_json::from_str::<Value>(result.get())
                .ok()
                .filter(|r| {
                    r.get("supportedVersions")
                        .and_then(Value::as_array)
                        .is_some_and(|v| v.contains(&Value::from(modern::VERSION)))
                }),
            Ok(Err(_)) | Err(UpstreamError::Timeout { .. }) => None,
            Err(err) => return Err(err),
        };
        let Some(discovered) = discovered else {
            let _ = self.era.set(Era::Legacy);
            return self.initialize(timeout).await;
        };
        let _ = self.capabilities.set(
            discovered
                .get("capabilities")
                .cloned()
                .unwrap_or(Value::Null),
        );
        let _ = self.era.set(Era::Modern);
        let changes = ["tools", "prompts", "resources"]
            .into_iter()
            .filter(|kind| {
                self.capabilities
                    .get()
                    .and_then(|c| c.get(kind)?.get("listChanged")?.as_bool())
                    == Some(true)
            })
            .map(|kind| (format!("{kind}ListChanged"), Value::Bool(true)))
            .collect::<Map<String, Value>>();
        if !changes.is_empty() {
            tokio::spawn(Arc::clone(self).listen_for_changes(changes));
        }
        Ok(())
    }

    /// Keeps a `subscriptions/listen` stream open on a modern server; its list changes arrive as
    /// ordinary notifications and are routed like a legacy server's.
    async fn listen_for_changes(self: Arc<Self>, changes: Map<String, Value>) {
        let params = jsonrpc::to_raw(&json!({ "notifications": changes }));
        let caller = Caller {
            cancel: self.closed.clone(),
            timeout: Duration::MAX,
            ..Caller::gateway(Duration::MAX)
        };
        if let Ok(Err(error)) = self.request(modern::LISTEN, Some(&params), &caller).await {
            // Such a server may still send its changes unasked, which are routed all the same.
            tracing::info!(server = %self.name, "the server refused to listen: {}", error.get());
        }
    }

    /// The legacy handshake: `initialize`, then `notifications/initialized`. The gateway declares
    /// every client capability it can relay; whether a client can really answer is checked per
    /// request.
    async fn initialize(&self, timeout: Duration) -> Result<(), UpstreamError> {
        let params = json!({
            "protocolVersion": LEGACY_PROTOCOL,
            "capabilities": {
                "roots": {"listChanged": true},
                "sampling": {},
                "elicitation": {"form": {}, "url": {}},
            },
            "clientInfo": {"name": "mcp-gateway", "version": env!("CARGO_PKG_VERSION")},
        });
        let failed = |reason: String| UpstreamError::Initialize {
            server: self.name.clone(),
            reason,
        };
        let result = self
            .request(
                "initialize",
                Some(&jsonrpc::to_raw(&params)),
                &Caller::gateway(timeout),
            )
            .await?
            .map_err(|error| failed(error.get().to_owned()))?;
        let result: Value =
            serde_json::from_str(result.get()).map_err(|err| failed(err.to_string()))?;
        let _ = self
            .capabilities
            .set(result.get("capabilities").cloned().unwrap_or(Value::Null));
        self.notify("notifications/initialized", None).await;
        Ok(())
    }
}
