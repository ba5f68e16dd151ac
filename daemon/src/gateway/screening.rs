//! Secret scanning where calls cross the gateway: a tool call's arguments before they are routed,
//! a 2026-07-28 client's answers to a server's input requests (`inputResponses`) on the way to
//! the server, and a tool's result before the client sees it, blocked or redacted as the profile
//! says (see `scan.rs` for the rules).

use serde_json::Value;
use serde_json::value::RawValue;

use super::{Gateway, GatewayError};
use crate::audit::{Call, Trail};
use crate::config::ConfigStore;
use crate::jsonrpc::{self, Reply};
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
        self.screen_outgoing(
            mode,
            arguments,
            (profile, tool),
            "tool arguments",
            |tool, rules| GatewayError::SecretInArguments { tool, rules },
        )
    }

    /// The same for a 2026-07-28 client's answers to a server's input requests: they reach the
    /// server like arguments do. `name` is the tool, prompt or resource of the call.
    pub(super) fn screen_input(
        &self,
        mode: ScanMode,
        responses: &mut Value,
        profile: &str,
        name: &str,
    ) -> Result<Vec<&'static str>, GatewayError> {
        self.screen_outgoing(
            mode,
            responses,
            (profile, name),
            "input responses",
            |name, rules| GatewayError::SecretInInput { name, rules },
        )
    }

    /// What a client sends a server, blocked (`blocked` names the item and the rules) or
    /// redacted when it holds a secret; `what` says in the log what held it.
    fn screen_outgoing(
        &self,
        mode: ScanMode,
        value: &mut Value,
        (profile, name): (&str, &str),
        what: &str,
        blocked: fn(String, String) -> GatewayError,
    ) -> Result<Vec<&'static str>, GatewayError> {
        let hits = self.scan(mode, value);
        if hits.is_empty() {
            return Ok(hits);
        }
        let rules = hits.join(", ");
        tracing::warn!(profile, name, ?mode, rules, "secret in {what}");
        match mode {
            ScanMode::Block => Err(blocked(name.to_owned(), rules)),
            ScanMode::Redact => Ok(hits),
        }
    }

    /// A modern client's answer to the server request its parked call waits on (a legacy
    /// server's), screened as [`Gateway::screen_input`] does before it reaches `server`. A hit
    /// leaves an audit record of its own for the retry, since the call's record is written when
    /// the call ends and the retry's answer does not pass through it.
    pub fn screen_answer(
        &self,
        (profile, client): (&str, &str),
        (method, name, server): (&str, &str, &str),
        answer: Reply,
    ) -> Result<Reply, GatewayError> {
        let raw = match &answer {
            Ok(raw) | Err(raw) => raw,
        };
        if !self.scanner.may_hold(raw.get()) {
            return Ok(answer);
        }
        let Ok(mut value) = serde_json::from_str::<Value>(raw.get()) else {
            return Ok(answer);
        };
        let mode = self
            .config
            .get()
            .profiles
            .profiles
            .get(profile)
            .map(|defined| defined.scan)
            .unwrap_or_default();
        let screened = self.screen_input(mode, &mut value, profile, name);
        let call = || Call {
            profile,
            client,
            method,
            took: std::time::Duration::ZERO,
            request_bytes: raw.get().len(),
        };
        let trail = |secrets| Trail {
            name: name.to_owned(),
            server: server.into(),
            secrets,
            arguments: None,
        };
        let outcome = match screened {
            Ok(hits) if hits.is_empty() => return Ok(answer),
            Ok(hits) => {
                let redacted = jsonrpc::to_raw(&value);
                let answer = if answer.is_ok() {
                    Ok(redacted)
                } else {
                    Err(redacted)
                };
                self.audit
                    .record(call(), &trail(hits), &Ok(Ok(jsonrpc::empty_object())));
                return Ok(answer);
            }
            Err(blocked) => Err(blocked),
        };
        self.audit.record(call(), &trail(Vec::new()), &outcome);
        outcome
    }

    fn scan(&self, mode: ScanMode, value: &mut Value) -> Vec<&'static str> {
        match mode {
            ScanMode::Block => self.scanner.find(value),
            ScanMode::Redact => self.scanner.redact(value),
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
        if !self.scanner.may_hold(result.get()) {
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
