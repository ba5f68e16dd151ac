//! `server logs`: the stderr lines the pool keeps of a server's containers, once or followed.
//!
//! Following is the one control request answered more than once: the daemon sends a
//! `log_lines` response whenever new lines are there and stops when the client closes the
//! connection (or the daemon shuts down). It looks for new lines every [`POLL`]: a follower
//! also has to notice containers that start after it began, and a few lock checks a second
//! cost nothing next to that bookkeeping.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use mcp_gateway_proto::{LogLine, Response};

use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio_util::codec::{FramedRead, LinesCodec};

use super::config_error;
use crate::config::ConfigError;
use crate::gateway::Gateway;
use crate::logtail::LogTail;
use crate::server::send_line;

const POLL: Duration = Duration::from_millis(250);

/// Where a follower is in each profile's log: the tail it read and how far.
type Positions = HashMap<String, (Arc<LogTail>, u64)>;

/// Every kept line of `server`, profile by profile.
pub fn snapshot(gateway: &Gateway, server: &str) -> Response {
    match collect(gateway, server, &mut Positions::new()) {
        Ok(lines) => Response::LogLines { lines },
        Err(err) => config_error(err),
    }
}

/// Answers a follow request: the kept lines, then new ones as they come, until the client
/// closes its end. Anything the client sends meanwhile is ignored.
pub async fn follow(
    gateway: &Gateway,
    server: &str,
    reader: &mut FramedRead<OwnedReadHalf, LinesCodec>,
    writer: &mut OwnedWriteHalf,
) {
    let mut positions = Positions::new();
    let first = match collect(gateway, server, &mut positions) {
        Ok(lines) => Response::LogLines { lines },
        Err(err) => {
            send_line(writer, &config_error(err)).await;
            return;
        }
    };
    if !send_line(writer, &first).await {
        return;
    }
    loop {
        tokio::select! {
            line = reader.next() => if line.is_none() { return },
            () = tokio::time::sleep(POLL) => {
                // A server removed meanwhile ends the stream with the error.
                let response = match collect(gateway, server, &mut positions) {
                    Ok(lines) if lines.is_empty() => continue,
                    Ok(lines) => Response::LogLines { lines },
                    Err(err) => {
                        send_line(writer, &config_error(err)).await;
                        return;
                    }
                };
                if !send_line(writer, &response).await {
                    return;
                }
            }
        }
    }
}

/// The lines after `positions`, which move past them. A profile's container that was replaced
/// since is read from its new log's start.
fn collect(
    gateway: &Gateway,
    server: &str,
    positions: &mut Positions,
) -> Result<Vec<LogLine>, ConfigError> {
    if !gateway.config.get().catalog.servers.contains_key(server) {
        return Err(ConfigError::UnknownServer(server.to_owned()));
    }
    let mut out = Vec::new();
    for (profile, tail) in gateway.pool.logs(server) {
        let seen = match positions.get(&profile) {
            Some((known, seen)) if Arc::ptr_eq(known, &tail) => *seen,
            _ => 0,
        };
        let (lines, next) = tail.since(seen);
        out.extend(lines.into_iter().map(|line| LogLine {
            profile: profile.clone(),
            line,
        }));
        positions.insert(profile, (tail, next));
    }
    Ok(out)
}
