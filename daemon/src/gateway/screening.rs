//! Secret scanning where calls cross the gateway: a tool call's arguments before they are routed
//! and its result before the client sees it, blocked or redacted as the profile says (see
//! `scan.rs` for the rules).

use serde_json::Value;
use serde_json::value::RawValue;

use super::{Gateway, GatewayError};
use crate::audit::Trail;
use crate::config::ConfigStore;
use crate::jsonrpc;
use crate::scan::ScanMode;

impl Gateway {
    /// Makes the secret scanner look for the stored secrets as they are now.
    pub fn secrets_changed(&self) {
        self.scanner.remember(stored_secrets(&self.config));
    }

    /// Blocks a call whose arguments hold a secret, or redacts them, as the profile says; the
    /// rules that matched a redacted call.
    pub(super) fn screen_arguments(
        &self,
        mode: ScanMode,
        arguments: &mut Value,
        profile: &str,
        tool: &str,
    ) -> Result<Vec<&'static str>, GatewayError> {
        let hits = match mode {
            ScanMode::Block => self.scanner.find(arguments),
            ScanMode::Redact => self.scanner.redact(arguments),
        };
        if hits.is_empty() {
            return Ok(hits);
        }
        let rules = hits.join(", ");
        tracing::warn!(profile, tool, ?mode, rules, "secret in tool arguments");
        match mode {
            ScanMode::Block => Err(GatewayError::SecretInArguments {
                tool: tool.to_owned(),
                rules,
            }),
            ScanMode::Redact => Ok(hits),
        }
    }

    /// Withholds or redacts a tool result that holds a secret, as the profile says.
    pub(super) fn screen_result(
        &self,
        mode: ScanMode,
        result: Box<RawValue>,
        profile: &str,
        tool: &str,
        trail: &mut Trail,
    ) -> Result<Box<RawValue>, GatewayError> {
        if !self.scanner.may_match(result.get()) {
            return Ok(result);
        }
        let Ok(mut value) = serde_json::from_str::<Value>(result.get()) else {
            return Ok(result);
        };
        let hits = match mode {
            ScanMode::Block => self.scanner.find(&value),
            ScanMode::Redact => self.scanner.redact(&mut value),
        };
        if hits.is_empty() {
            return Ok(result);
        }
        let rules = hits.join(", ");
        tracing::warn!(profile, tool, ?mode, rules, "secret in a tool result");
        trail.secrets.extend(hits);
        match mode {
            ScanMode::Block => Err(GatewayError::SecretInResult {
                tool: tool.to_owned(),
                rules,
            }),
            ScanMode::Redact => Ok(jsonrpc::to_raw(&value)),
        }
    }
}

pub(super) fn stored_secrets(config: &ConfigStore) -> Vec<String> {
    config.secrets.values().unwrap_or_else(|err| {
        tracing::warn!("the secret scanner cannot read the stored secrets: {err}");
        Vec::new()
    })
}
