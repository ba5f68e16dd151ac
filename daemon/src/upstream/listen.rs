//! Resource subscriptions on a 2026-07-28 server, which has no `resources/subscribe`: the
//! gateway opens a `subscriptions/listen` stream naming the resource, counts it subscribed once
//! the server acknowledges it, and closes it (`notifications/cancelled`) when the last subscriber
//! leaves. The server's updates on it arrive as ordinary notifications, tagged with the stream's
//! id, and are routed like a legacy server's.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::value::RawValue;
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use super::{Caller, Upstream, UpstreamError, parse};
use crate::jsonrpc::{self, Reply};
use crate::modern;

/// The code of the gateway's own resource-not-found, which modern clients get as `-32602`.
const RESOURCE_NOT_FOUND: i64 = -32002;

impl Upstream {
    /// Opens a listen stream for `uri`. The answer comes with the server's acknowledgement: an
    /// empty result when it accepted the URI, an error when it left the URI out or refused the
    /// request. An accepted stream stays open until `cancel` fires, which tells the server, or
    /// until the server ends it; a refused one is closed at once.
    pub async fn listen_to(
        self: &Arc<Self>,
        uri: &str,
        cancel: CancellationToken,
        timeout: Duration,
    ) -> Result<Reply, UpstreamError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (acked, ack) = oneshot::channel();
        self.lock_acks().insert(id, acked);
        let (ended, end) = oneshot::channel();
        let upstream = Arc::clone(self);
        let params = jsonrpc::to_raw(&json!({"notifications": {"resourceSubscriptions": [uri]}}));
        let stream = Caller {
            cancel: cancel.clone(),
            // The stream lives as long as its subscribers.
            timeout: Duration::MAX,
            ..Caller::gateway(timeout)
        };
        tokio::spawn(async move {
            let outcome = upstream
                .request_as(id, modern::LISTEN, Some(&params), &stream)
                .await;
            upstream.lock_acks().remove(&id);
            // Nobody waits once the stream was acknowledged: this is its end.
            if let Err(outcome) = ended.send(outcome) {
                let how = match outcome {
                    Err(err) => err.to_string(),
                    Ok(_) => "the server ended it".to_owned(),
                };
                tracing::debug!(server = %upstream.name, id, "a resource listen stream ended: {how}");
            }
        });
        let answer = tokio::select! {
            accepted = ack => match accepted {
                Ok(accepted) if names(&accepted, uri) => Ok(Ok(jsonrpc::empty_object())),
                _ => Ok(Err(not_accepted(&self.name, uri))),
            },
            outcome = end => match outcome {
                Ok(Ok(Err(error))) => Ok(Err(error)),
                Ok(Err(err)) => Err(err),
                Ok(Ok(Ok(_))) | Err(_) => Ok(Err(not_accepted(&self.name, uri))),
            },
            () = tokio::time::sleep(timeout) => Err(UpstreamError::Timeout {
                server: self.name.clone(),
                method: modern::LISTEN.to_owned(),
                seconds: timeout.as_secs(),
            }),
        };
        if !matches!(answer, Ok(Ok(_))) {
            cancel.cancel();
        }
        answer
    }

    /// A server's `notifications/subscriptions/acknowledged`: hands the filter it accepted to the
    /// listen request it names.
    pub(super) fn acknowledged(&self, params: Option<&RawValue>) {
        let params = parse(params).unwrap_or_default();
        let id = params
            .get("_meta")
            .and_then(|meta| meta.get(modern::SUBSCRIPTION_KEY))
            .and_then(Value::as_u64);
        let waiter = id.and_then(|id| self.lock_acks().remove(&id));
        match waiter {
            Some(waiter) => {
                let accepted = params.get("notifications").cloned().unwrap_or_default();
                let _ = waiter.send(accepted);
            }
            None => tracing::debug!(server = %self.name, "the server acknowledged a listen stream"),
        }
    }

    fn lock_acks(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<u64, oneshot::Sender<Value>>> {
        self.acks.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Whether an acknowledged filter names `uri` among its resources.
fn names(accepted: &Value, uri: &str) -> bool {
    accepted
        .get("resourceSubscriptions")
        .and_then(Value::as_array)
        .is_some_and(|uris| uris.iter().any(|u| u == uri))
}

fn not_accepted(server: &str, uri: &str) -> Box<RawValue> {
    jsonrpc::to_raw(&json!({
        "code": RESOURCE_NOT_FOUND,
        "message": format!("server {server:?} did not accept a subscription to {uri}"),
        "data": {"uri": uri},
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_acknowledgement_naming_the_uri_accepts_it() {
        let uri = "fixture://g/counter";
        assert!(names(&json!({"resourceSubscriptions": [uri]}), uri));
        assert!(!names(
            &json!({"resourceSubscriptions": ["fixture://g/info"]}),
            uri
        ));
        assert!(!names(&json!({"toolsListChanged": true}), uri));
        let refused: Value = serde_json::from_str(not_accepted("g", uri).get()).unwrap();
        assert_eq!(refused["code"], RESOURCE_NOT_FOUND);
        assert_eq!(refused["data"]["uri"], uri);
    }
}
