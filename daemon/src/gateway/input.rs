//! A modern (2026-07-28) server's `input_required` answer to `tools/call`, `prompts/get` or
//! `resources/read`, brought to the client the call is for.
//!
//! A legacy client is asked each of the server's input requests as a real request (sampling,
//! elicitation, roots), provided it declared the capability, and the gateway retries the call
//! with the answers in `inputResponses` and the server's `requestState` echoed, as many rounds as
//! the server asks for up to [`MAX_ROUNDS`]. A modern client gets the result as the server gave
//! it, except that the server's `requestState` is sealed inside one of the gateway's, bound to
//! the client and the server: the retry is unsealed here and goes back to that server with its
//! own state.

use std::sync::Arc;

use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::{Gateway, GatewayError, Outgoing};
use crate::downstream::Downstream;
use crate::jsonrpc::{self, Reply, code};
use crate::modern;
use crate::parking::Sealed;
use crate::upstream::{Caller, Era, UpstreamError};

/// How many `input_required` rounds of one call the gateway answers for a legacy client before it
/// gives up on the server (rmcp's client stops at as many).
pub const MAX_ROUNDS: usize = 10;

/// The requests a server may put in `inputRequests`, which the gateway can bring to a client.
const INPUT_METHODS: [&str; 3] = ["sampling/createMessage", "elicitation/create", "roots/list"];

impl Gateway {
    /// Forwards a routed call to its server and sees any `input_required` through, for the
    /// client the caller names.
    pub(super) async fn forward_call(
        &self,
        profile: &str,
        server: &str,
        method: &str,
        params: Outgoing<'_>,
        caller: &Caller,
    ) -> Result<Reply, GatewayError> {
        let modern_owner = caller.owner.as_ref().filter(|owner| owner.is_modern());
        let mut params = params;
        if let Some(owner) = modern_owner {
            let mut edited = params.into_map()?;
            self.unseal_retry(owner, server, &mut edited)?;
            params = Outgoing::Edited(edited);
        }
        let upstream = self
            .call_upstream(profile, server, super::session_of(caller))
            .await?;
        if upstream.era() != Some(Era::Modern) {
            return Ok(upstream
                .request(method, Some(&params.to_raw()), caller)
                .await?);
        }
        for _ in 0..MAX_ROUNDS {
            let result = match upstream
                .request(method, Some(&params.to_raw()), caller)
                .await?
            {
                Err(error) if method == "resources/read" => {
                    return Ok(Err(modern::legacy_read_error(error)));
                }
                Err(error) => return Ok(Err(error)),
                Ok(result) => result,
            };
            let Some(mut asked) = input_required(&result) else {
                return Ok(Ok(result));
            };
            if let Some(owner) = modern_owner {
                return Ok(self.seal_for(owner, server, asked));
            }
            let responses = match self.fulfil(caller, server, &asked).await? {
                Ok(responses) => responses,
                Err(error) => return Ok(Err(error)),
            };
            let mut edited = params.into_map()?;
            edited.insert("inputResponses".into(), Value::Object(responses));
            match asked.remove("requestState") {
                Some(state) => edited.insert("requestState".into(), state),
                None => edited.remove("requestState"),
            };
            params = Outgoing::Edited(edited);
        }
        Ok(Err(jsonrpc::error(
            code::INTERNAL_ERROR,
            format!("server {server:?} still asked for input after {MAX_ROUNDS} rounds"),
        )))
    }

    /// A modern client's retry: its `requestState`, if any, must be one the gateway sealed for
    /// this client and this server; the server gets its own state back in its place.
    fn unseal_retry(
        &self,
        owner: &Downstream,
        server: &str,
        params: &mut Map<String, Value>,
    ) -> Result<(), GatewayError> {
        let Some(state) = params.remove("requestState") else {
            return Ok(());
        };
        let invalid = |message: String| GatewayError::InvalidParams(message);
        let state = state
            .as_str()
            .ok_or_else(|| invalid("requestState must be a string".into()))?;
        match self.seal.open(state, owner.id) {
            Ok(Sealed::Server {
                server: sealed,
                state,
            }) if sealed == server => {
                if let Some(state) = state {
                    params.insert("requestState".into(), Value::from(state));
                }
                Ok(())
            }
            Ok(_) => Err(invalid("requestState was made for another call".into())),
            Err(err) => Err(invalid(err.to_string())),
        }
    }

    /// The server's `input_required` for a modern client, its state sealed to the client and
    /// the server.
    fn seal_for(&self, owner: &Downstream, server: &str, mut asked: Map<String, Value>) -> Reply {
        let sealed = Sealed::Server {
            server: server.to_owned(),
            state: asked
                .get("requestState")
                .and_then(Value::as_str)
                .map(str::to_owned),
        };
        let state = self
            .seal
            .seal(owner.id, &sealed)
            .map_err(|err| jsonrpc::error(code::INTERNAL_ERROR, err.to_string()))?;
        asked.insert("requestState".into(), Value::from(state));
        Ok(jsonrpc::to_raw(&Value::Object(asked)))
    }

    /// Asks the caller's client each of the server's input requests in turn; the answers by
    /// their keys, or the error the call ends with.
    async fn fulfil(
        &self,
        caller: &Caller,
        server: &str,
        asked: &Map<String, Value>,
    ) -> Result<Result<Map<String, Value>, Box<RawValue>>, GatewayError> {
        let fail = |message: String| Ok(Err(jsonrpc::error(code::INTERNAL_ERROR, message)));
        let Some(client) = caller.owner.as_ref().map(Arc::clone) else {
            return fail(format!(
                "server {server:?} asked for input, which only an MCP client can give"
            ));
        };
        let requests = asked
            .get("inputRequests")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let mut responses = Map::new();
        for (key, request) in requests {
            let method = request
                .get("method")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if !INPUT_METHODS.contains(&method) {
                return fail(format!(
                    "server {server:?} asked for input the gateway cannot bring to a client: {method:?}"
                ));
            }
            let params = request.get("params").map(jsonrpc::to_raw);
            if !client.can_answer(method, params.as_deref()) {
                return fail(format!(
                    "server {server:?} needs {method}, which this client did not declare"
                ));
            }
            let answer = client
                .ask(method, params.as_deref(), &caller.cancel, caller.timeout)
                .await
                .ok_or(UpstreamError::Cancelled)?;
            match answer {
                Ok(result) => {
                    let result = serde_json::from_str(result.get()).unwrap_or(Value::Null);
                    responses.insert(key, result);
                }
                Err(error) => return Ok(Err(error)),
            }
        }
        Ok(Ok(responses))
    }
}

/// The members of an `input_required` result; `None` for any other result.
fn input_required(result: &RawValue) -> Option<Map<String, Value>> {
    // Most results are final; only one that mentions the type pays for a parse.
    if !result.get().contains("input_required") {
        return None;
    }
    let object: Map<String, Value> = serde_json::from_str(result.get()).ok()?;
    (object.get("resultType").and_then(Value::as_str) == Some("input_required")).then_some(object)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn only_an_input_required_result_is_taken_for_one() {
        let asked = jsonrpc::to_raw(&json!({"resultType": "input_required", "requestState": "s"}));
        assert_eq!(input_required(&asked).unwrap()["requestState"], "s");
        let done = jsonrpc::to_raw(
            &json!({"resultType": "complete", "content": [{"type": "text", "text": "input_required"}]}),
        );
        assert!(input_required(&done).is_none());
    }
}
