//! `mcpctl http`: enabling, disabling and inspecting the Streamable HTTP face, and its token.
//! The face is bound before the configuration is written, so an address that cannot be used is
//! refused with nothing changed.

use std::net::SocketAddr;

use mcp_gateway_proto::{ErrorKind, Request, Response, SecretValue};

use super::{change, config_error, error};
use crate::config::{ConfigError, HttpSettings};
use crate::http::HttpError;
use crate::server::Shared;

pub async fn answer(shared: &Shared, request: Request) -> Response {
    match request {
        Request::HttpEnable {
            listen,
            force,
            profile,
        } => enable(shared, &listen, force, profile).await,
        Request::HttpDisable => {
            let was = shared.gateway.config.get().settings.http.clone();
            if let Err(err) = change(&shared.gateway, |c| c.set_http(None)).await {
                return config_error(err);
            }
            // Stopping cannot fail; only starting binds.
            let _ = shared.http.apply(None, &shared.activity);
            if was.is_some() {
                tracing::info!("http: disabled");
            }
            Response::Http(shared.http.status())
        }
        Request::HttpToken { rotate } => match shared.http.token(rotate) {
            Ok(token) => Response::HttpToken {
                token: SecretValue::new(token),
            },
            Err(err) => http_error(err),
        },
        _ => Response::Http(shared.http.status()),
    }
}

async fn enable(shared: &Shared, listen: &str, force: bool, profile: Option<String>) -> Response {
    let Ok(listen) = listen.parse::<SocketAddr>() else {
        return error(
            ErrorKind::InvalidConfig,
            format!("{listen:?} is not an address: use IP:PORT, such as 127.0.0.1:8931"),
        );
    };
    if let Some(name) = &profile
        && shared.gateway.config.get().profile(name).is_none()
    {
        return config_error(ConfigError::UnknownProfile(name.clone()));
    }
    let wanted = HttpSettings {
        listen,
        profile,
        allow_non_loopback: force && !listen.ip().is_loopback(),
    };
    if let Err(message) = wanted.validate() {
        return config_error(ConfigError::Invalid(message));
    }
    let before = shared.gateway.config.get().settings.http.clone();
    if let Err(err) = shared.http.apply(Some(&wanted), &shared.activity) {
        // What ran before goes on running.
        let _ = shared.http.apply(before.as_ref(), &shared.activity);
        return http_error(err);
    }
    if let Err(err) = change(&shared.gateway, move |c| c.set_http(Some(wanted))).await {
        let _ = shared.http.apply(before.as_ref(), &shared.activity);
        return config_error(err);
    }
    Response::Http(shared.http.status())
}

/// After `reload`: the face follows the `[http]` table as it now reads; a problem is returned
/// for the reload's answer.
pub fn follow_config(shared: &Shared) -> Option<String> {
    let wanted = shared.gateway.config.get().settings.http.clone();
    shared
        .http
        .apply(wanted.as_ref(), &shared.activity)
        .err()
        .map(|err| format!("; http: {err}"))
}

fn http_error(err: HttpError) -> Response {
    let kind = match err {
        HttpError::Bind { .. } => ErrorKind::InvalidConfig,
        HttpError::Token(_) => ErrorKind::Internal,
    };
    error(kind, err.to_string())
}
