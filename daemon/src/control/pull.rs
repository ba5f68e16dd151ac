//! `server pull`: pulls a server's image again and streams the pull's progress to `mcpctl` as
//! `pull_progress` lines, ending with one `done` or `error`. A pull already in flight for the same
//! image (a container start that found it missing) is joined, not repeated.

use mcp_gateway_proto::{ErrorKind, Response};
use tokio::net::unix::OwnedWriteHalf;

use super::{config_error, done, error, pull_info};
use crate::config::ConfigError;
use crate::gateway::Gateway;
use crate::pool::PullState;
use crate::server::send_line;

/// Answers a `server_pull` request on `writer`; returns false when the client went away. The
/// pull goes on without it: others may be waiting for the same image.
pub async fn pull(gateway: &Gateway, name: &str, writer: &mut OwnedWriteHalf) -> bool {
    let Some(image) = gateway
        .config
        .get()
        .catalog
        .servers
        .get(name)
        .map(|def| def.image.clone())
    else {
        return send_line(
            writer,
            &config_error(ConfigError::UnknownServer(name.into())),
        )
        .await;
    };
    if image.is_empty() {
        let refused = ConfigError::Invalid(format!("server {name} runs no container image"));
        return send_line(writer, &config_error(refused)).await;
    }
    let mut progress = match gateway.pool.pull(&image).await {
        Ok(progress) => progress,
        Err(err) => return send_line(writer, &error(ErrorKind::Engine, err.to_string())).await,
    };
    loop {
        let state = progress.borrow_and_update().clone();
        let response = match state {
            PullState::Running(now) => Response::PullProgress(pull_info(&image, &now)),
            PullState::Done(Ok(())) => {
                return send_line(
                    writer,
                    &done(format!(
                        "pulled {image}; running containers of {name} keep their image until \
                         `mcpctl server restart {name}`"
                    )),
                )
                .await;
            }
            PullState::Done(Err(reason)) => {
                return send_line(writer, &error(ErrorKind::Engine, reason)).await;
            }
        };
        if !send_line(writer, &response).await {
            return false;
        }
        if progress.changed().await.is_err() {
            let lost = error(
                ErrorKind::Internal,
                "the pull ended without a result".into(),
            );
            return send_line(writer, &lost).await;
        }
    }
}
