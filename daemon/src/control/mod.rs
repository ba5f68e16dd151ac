//! Answers `mcpctl`'s control requests. Each request maps to one call into the configuration store
//! or the gateway; this module only translates between those and the wire types. The catalog's
//! requests are in `catalog`, `server logs` (which may stream) in `logs`, `server pull` (which
//! streams its progress) in `pull`, and the checks of `mcpctl doctor` with the server counts of
//! `status` in `doctor`.

mod catalog;
mod doctor;
mod http;
mod logs;
mod pull;

pub use logs::follow as follow_logs;
pub use pull::pull as pull_image;

use std::collections::HashMap;
use std::num::NonZeroU32;

use mcp_gateway_proto::{
    ContainerInfo, ContainerState, ErrorKind, MountSpec, ProfileInfo, PullInfo, Request, Response,
    RunInfo, SecretInfo, SecretSource, ServerDetail, ServerInfo, StatusInfo, ToolInfo,
};
use serde_json::Value;

use crate::config::{
    self, ConfigError, ConfigStore, Cpus, DEFAULT_PROFILE, Isolation, Memory, Mount, Network,
    RunSettings, SecretError, ServerDef, ServerKind,
};
use crate::gateway::{Gateway, GatewayError};
use crate::jsonrpc;
use crate::lists::ListKind;
use crate::pool::{Progress, SlotPhase, SlotStatus};
use crate::server::Shared;

pub async fn handle(shared: &Shared, request: Request) -> Response {
    let changes_config = matches!(
        request,
        Request::ServerAdd { .. }
            | Request::ProfileCreate { .. }
            | Request::ProfileUse { .. }
            | Request::ProfileTools { .. }
            | Request::ProfileRemove { .. }
            | Request::ProfileServersAdd { .. }
            | Request::ProfileServersRemove { .. }
            | Request::ProfilePrefix { .. }
            | Request::ProfileConfig { .. }
            | Request::ServerRemove { .. }
            | Request::ServerRestart { .. }
            | Request::Reload
    );
    let response = answer(shared, request).await;
    // Connected clients learn at once that what they may see changed.
    if changes_config && matches!(response, Response::Done { .. }) {
        shared.gateway.config_changed();
    }
    response
}

async fn answer(shared: &Shared, request: Request) -> Response {
    let gateway = &shared.gateway;
    match request {
        Request::Status => status(shared).await,
        Request::ServerAdd {
            name,
            image,
            command,
            env,
            secrets,
            memory,
            cpus,
            pids,
            network,
            mounts,
            idle_timeout,
            isolation,
            url,
            headers,
            process,
            cwd,
        } => {
            let replaced = gateway.config.get().catalog.servers.contains_key(&name);
            let given = ServerDef {
                // `--process` with `--url` is a process server, which the kind check then
                // refuses for its url.
                kind: if process {
                    ServerKind::Process
                } else if url.is_some() {
                    ServerKind::Remote
                } else {
                    ServerKind::Container
                },
                url,
                headers,
                image,
                command,
                env,
                secrets,
                memory: None,
                cpus: None,
                pids: None,
                network: None,
                mounts: Vec::new(),
                idle_timeout,
                isolation: match isolation {
                    Some(mcp_gateway_proto::Isolation::Session) => Isolation::Session,
                    Some(mcp_gateway_proto::Isolation::Call) => Isolation::Call,
                    Some(mcp_gateway_proto::Isolation::Shared) | None => Isolation::Shared,
                },
                cwd: cwd.map(Into::into),
            };
            let def = server_def(given, memory, cpus, pids, network, mounts)
                .and_then(|given| catalog::over_builtin(&name, given));
            let added = match def {
                Ok(def) => {
                    let server = name.clone();
                    change(gateway, move |c| c.add_server(&server, def)).await
                }
                Err(err) => Err(err),
            };
            match added {
                Ok(()) if replaced => done(format!("replaced server {name}")),
                Ok(()) => done(format!("added server {name}")),
                Err(err) => config_error(err),
            }
        }
        Request::ServerList => server_list(gateway).await,
        Request::ServerInspect { name } => server_inspect(gateway, &name),
        Request::ServerRemove { name, force } => {
            let server = name.clone();
            let removed = change(gateway, move |c| c.remove_server(&server, force)).await;
            match removed {
                Ok(profiles) => {
                    let stopped = gateway.pool.stop_server(&name).await;
                    let mut message = format!("removed server {name}");
                    if !profiles.is_empty() {
                        message.push_str(&format!(" (also from profiles {})", profiles.join(", ")));
                    }
                    if stopped > 0 {
                        message.push_str(&format!("; stopped {stopped} containers"));
                    }
                    done(message)
                }
                Err(err) => config_error(err),
            }
        }
        Request::ServerRestart { name } => {
            if !gateway.config.get().catalog.servers.contains_key(&name) {
                return config_error(ConfigError::UnknownServer(name));
            }
            let stopped = gateway.pool.stop_server(&name).await;
            done(format!(
                "stopped {stopped} containers of {name}; the next request that needs it starts it"
            ))
        }
        Request::ServerLogs { name, .. } => logs::snapshot(gateway, &name),
        Request::Reload => match change(gateway, ConfigStore::reload).await {
            Ok(()) => done(format!(
                "reloaded the configuration{}",
                http::follow_config(shared).unwrap_or_default()
            )),
            Err(problems) => {
                let problems: Vec<String> = problems.iter().map(ToString::to_string).collect();
                error(
                    ErrorKind::InvalidConfig,
                    format!(
                        "the configuration in force is unchanged:\n{}",
                        problems.join("\n")
                    ),
                )
            }
        },
        Request::CatalogList => catalog::list(gateway),
        Request::CatalogShow { name } => catalog::show(gateway, &name),
        Request::ProfileCreate { name, servers } => {
            let profile = name.clone();
            match change(gateway, move |c| c.create_profile(&profile, servers)).await {
                Ok(()) => done(format!("created profile {name}")),
                Err(err) => config_error(err),
            }
        }
        Request::ProfileUse { name } => {
            let profile = name.clone();
            match change(gateway, move |c| c.use_profile(&profile)).await {
                Ok(()) => done(format!("active profile is now {name}")),
                Err(err) => config_error(err),
            }
        }
        Request::ProfileList => {
            let config = gateway.config.get();
            let profiles = config
                .profile_names()
                .iter()
                .filter_map(|name| profile_info(gateway, name))
                .collect();
            Response::Profiles { profiles }
        }
        Request::ProfileTools { name, allow } => {
            let summary = if allow.is_empty() {
                "every tool".to_owned()
            } else {
                allow.join(", ")
            };
            let profile = name.clone();
            match change(gateway, move |c| c.set_profile_tools(&profile, allow)).await {
                Ok(()) => done(format!("profile {name} now allows {summary}")),
                Err(err) => config_error(err),
            }
        }
        Request::ProfileRemove { name } => {
            let profile = name.clone();
            match change(gateway, move |c| c.remove_profile(&profile)).await {
                Ok(()) => done(format!("removed profile {name}")),
                Err(err) => config_error(err),
            }
        }
        Request::ProfileServersAdd { name, servers } => {
            let (profile, adding) = (name.clone(), servers.clone());
            match change(gateway, move |c| c.add_profile_servers(&profile, &adding)).await {
                Ok(added) if added.is_empty() => {
                    done(format!("profile {name} already has {}", servers.join(", ")))
                }
                Ok(added) => done(format!("added {} to profile {name}", added.join(", "))),
                Err(err) => config_error(err),
            }
        }
        Request::ProfileServersRemove { name, servers } => {
            let (profile, removing) = (name.clone(), servers.clone());
            match change(gateway, move |c| {
                c.remove_profile_servers(&profile, &removing)
            })
            .await
            {
                Ok(()) => done(format!(
                    "removed {} from profile {name}",
                    servers.join(", ")
                )),
                Err(err) => config_error(err),
            }
        }
        Request::ProfilePrefix { name, prefix } => {
            let profile = name.clone();
            match change(gateway, move |c| c.set_profile_prefix(&profile, prefix)).await {
                Ok(()) if prefix => done(format!(
                    "profile {name} now prefixes every tool with its server's name"
                )),
                Ok(()) => done(format!("profile {name} now prefixes colliding tools only")),
                Err(err) => config_error(err),
            }
        }
        Request::ProfileConfig {
            name,
            server,
            key,
            value,
        } => {
            let setting = (name.clone(), server.clone(), key.clone(), value.clone());
            let set = change(gateway, move |c| {
                let (profile, server, key, value) = setting;
                c.set_profile_config(&profile, &server, &key, value.as_deref())
            })
            .await;
            match set {
                Ok(()) if value.is_some() => done(format!("profile {name} sets {server}.{key}")),
                Ok(()) => done(format!("profile {name} no longer sets {server}.{key}")),
                Err(err) => config_error(err),
            }
        }
        Request::ProfileShow { name } => match profile_info(gateway, &name) {
            Some(info) => Response::Profile(info),
            None => config_error(ConfigError::UnknownProfile(name)),
        },
        Request::ToolsList { profile } => {
            let profile = profile.unwrap_or_else(|| gateway.config.get().active.clone());
            match gateway.table(&profile, ListKind::Tools).await {
                Ok(table) => {
                    if let Some((server, reason)) = table.failures.first() {
                        return error(ErrorKind::Upstream, format!("server {server}: {reason}"));
                    }
                    let tools = table
                        .items
                        .iter()
                        .filter_map(|tool| {
                            let name = tool.get("name")?.as_str()?;
                            Some(ToolInfo {
                                name: name.to_owned(),
                                server: table.route(name)?.server.to_string(),
                                description: tool
                                    .get("description")
                                    .and_then(Value::as_str)
                                    .map(str::to_owned),
                            })
                        })
                        .collect();
                    Response::Tools { profile, tools }
                }
                Err(err) => gateway_error(err),
            }
        }
        Request::ToolsCall {
            profile,
            name,
            arguments,
        } => {
            let profile = profile.unwrap_or_else(|| gateway.config.get().active.clone());
            let params =
                jsonrpc::to_raw(&serde_json::json!({ "name": name, "arguments": arguments }));
            match gateway.call_tool(&profile, &params).await {
                Ok(Ok(result)) => match serde_json::from_str(result.get()) {
                    Ok(result) => Response::ToolResult { result },
                    Err(err) => error(
                        ErrorKind::Upstream,
                        format!("the server's result is not JSON: {err}"),
                    ),
                },
                Ok(Err(rpc_error)) => error(
                    ErrorKind::Upstream,
                    format!("the server answered with an error: {}", rpc_error.get()),
                ),
                Err(err) => gateway_error(err),
            }
        }
        // Values stay out of every message: only names are ever echoed.
        Request::SecretSet { name, value } => {
            let key = name.clone();
            let stored = change(gateway, move |store| {
                store.secrets.set(&key, value.expose())
            });
            match stored.await {
                Ok(()) => {
                    gateway.secrets_changed();
                    done(format!("stored secret {name}"))
                }
                Err(err) => secret_error(err),
            }
        }
        Request::SecretRemove { name } => {
            let key = name.clone();
            match change(gateway, move |store| store.secrets.remove(&key)).await {
                Ok(()) => {
                    gateway.secrets_changed();
                    done(format!("removed secret {name} from the store"))
                }
                Err(err) => secret_error(err),
            }
        }
        Request::SecretList => secret_list(gateway),
        Request::Doctor => doctor::checks(gateway).await,
        Request::Calls { server, limit, .. } => Response::Calls {
            calls: gateway
                .audit()
                .last(limit, |r| server.as_ref().is_none_or(|s| &r.server == s)),
        },
        Request::HttpEnable { .. }
        | Request::HttpDisable
        | Request::HttpToken { .. }
        | Request::HttpStatus => http::answer(shared, request).await,
        _ => error(
            ErrorKind::UnsupportedRequest,
            "this daemon does not support that request; is it older than mcpctl?".into(),
        ),
    }
}

async fn status(shared: &Shared) -> Response {
    let gateway = &shared.gateway;
    let (engine_reachable, engine) = match gateway.pool.engine_status().await {
        Ok(description) => (true, description),
        Err(reason) => (false, reason),
    };
    Response::Status(StatusInfo {
        server: format!("mcp-gatewayd/{}", env!("CARGO_PKG_VERSION")),
        pid: std::process::id(),
        socket: shared.socket.clone(),
        active_profile: gateway.config.get().active.clone(),
        engine_reachable,
        engine,
        sessions: shared.sessions.load(std::sync::atomic::Ordering::Relaxed),
        containers: gateway.pool.running().len() as u64,
        servers: doctor::server_counts(gateway),
        config_problems: gateway
            .config
            .problems()
            .into_iter()
            .map(|problem| problem.message)
            .collect(),
        pulls: gateway
            .pool
            .pulls()
            .iter()
            .map(|(image, progress)| pull_info(image, progress))
            .collect(),
    })
}

/// A catalog entry from `mcpctl`'s values, each checked as the catalog file's parser checks it.
fn server_def(
    mut def: ServerDef,
    memory: Option<String>,
    cpus: Option<f64>,
    pids: Option<u32>,
    network: Option<mcp_gateway_proto::Network>,
    mounts: Vec<MountSpec>,
) -> Result<ServerDef, ConfigError> {
    let invalid = ConfigError::Invalid;
    def.memory = memory.map(Memory::try_from).transpose().map_err(invalid)?;
    def.cpus = cpus.map(Cpus::try_from).transpose().map_err(invalid)?;
    def.pids = pids
        .map(|pids| NonZeroU32::new(pids).ok_or_else(|| invalid("pids must be at least 1".into())))
        .transpose()?;
    def.network = match network {
        None => None,
        Some(mcp_gateway_proto::Network::None) => Some(Network::None),
        Some(mcp_gateway_proto::Network::Default) => Some(Network::Default),
        Some(mcp_gateway_proto::Network::Named(name)) => {
            Some(Network::named(&name).map_err(invalid)?)
        }
    };
    def.mounts = mounts
        .into_iter()
        .map(|m| Mount::new(m.source.into(), m.target.into(), m.writable))
        .collect::<Result<_, _>>()
        .map_err(invalid)?;
    Ok(def)
}

async fn server_list(gateway: &Gateway) -> Response {
    let pool = Containers::of(gateway);
    let config = gateway.config.get();
    let servers = config
        .catalog
        .servers
        .iter()
        .map(|(name, def)| server_info(&config, name, def, &pool))
        .collect();
    Response::Servers { servers }
}

/// What the pool runs, with the sessions each profile serves, for `server ls` and `inspect`.
struct Containers {
    running: Vec<(String, String)>,
    statuses: Vec<SlotStatus>,
    sessions: HashMap<String, u32>,
    pulls: Vec<(String, Progress)>,
}

impl Containers {
    fn of(gateway: &Gateway) -> Containers {
        Containers {
            running: gateway.pool.running(),
            statuses: gateway.pool.statuses(),
            sessions: gateway.session_counts(),
            pulls: gateway.pool.pulls(),
        }
    }

    /// How many connected sessions use a container: its own session, or every session of the
    /// profile for a shared one.
    fn users(&self, status: &SlotStatus) -> u32 {
        match status.session {
            Some(_) => 1,
            None => self.sessions.get(&status.profile).copied().unwrap_or(0),
        }
    }
}

fn server_info(
    config: &config::Config,
    name: &str,
    def: &ServerDef,
    pool: &Containers,
) -> ServerInfo {
    ServerInfo {
        name: name.to_owned(),
        kind: match def.kind {
            ServerKind::Container => mcp_gateway_proto::ServerKind::Container,
            ServerKind::Process => mcp_gateway_proto::ServerKind::Process,
            ServerKind::Remote => mcp_gateway_proto::ServerKind::Remote,
        },
        image: def.image.clone(),
        command: def.command.clone(),
        env: def.env.keys().cloned().collect(),
        secrets: def.secrets.clone(),
        running_in: {
            let mut profiles: Vec<String> = pool
                .running
                .iter()
                .filter(|(_, s)| s == name)
                .map(|(p, _)| p.clone())
                .collect();
            // A profile with several session containers runs the server once as far as this
            // list is concerned.
            profiles.dedup();
            profiles
        },
        run: Some(run_info(
            &config.settings.defaults.resolve(def),
            def.isolation,
        )),
        containers: pool
            .statuses
            .iter()
            .filter(|status| status.server == name)
            .map(|status| container_info(status, pool.users(status)))
            .collect(),
        pulling: pool
            .pulls
            .iter()
            .find(|(image, _)| *image == def.image)
            .map(|(image, progress)| pull_info(image, progress)),
        origin: def.url.as_deref().map(config::remote::origin),
    }
}

fn pull_info(image: &str, progress: &Progress) -> PullInfo {
    PullInfo {
        image: image.to_owned(),
        status: progress.status.clone(),
        percent: progress.percent,
    }
}

/// `server inspect`: the definition with its values, the settings in force, the profiles that
/// serve it (the implicit `default` included) and its containers.
fn server_inspect(gateway: &Gateway, name: &str) -> Response {
    let config = gateway.config.get();
    let Some(def) = config.catalog.servers.get(name) else {
        return config_error(ConfigError::UnknownServer(name.to_owned()));
    };
    let info = server_info(&config, name, def, &Containers::of(gateway));
    let profiles: Vec<String> = config
        .profile_names()
        .into_iter()
        .filter(|p| {
            config
                .profile(p)
                .is_some_and(|p| p.servers.iter().any(|s| s == name))
        })
        .collect();
    let profile_config = profiles
        .iter()
        .map(|p| (p.clone(), config.server_values(p, name)))
        .filter(|(_, values)| !values.is_empty())
        .collect();
    Response::Server(ServerDetail {
        info,
        env_values: def.env.clone(),
        profiles,
        profile_config,
    })
}

fn run_info(run: &RunSettings, isolation: Isolation) -> RunInfo {
    RunInfo {
        memory: Memory(run.memory).to_string(),
        cpus: f64::from(Cpus(run.nano_cpus)),
        pids: run.pids,
        network: match &run.network {
            Network::None => mcp_gateway_proto::Network::None,
            Network::Default => mcp_gateway_proto::Network::Default,
            Network::Named(name) => mcp_gateway_proto::Network::Named(name.clone()),
        },
        mounts: run
            .mounts
            .iter()
            .map(|mount| MountSpec {
                source: mount.source().display().to_string(),
                target: mount.target().display().to_string(),
                writable: mount.writable(),
            })
            .collect(),
        idle_timeout: run.idle_timeout.map(|t| t.as_secs()),
        isolation: match isolation {
            Isolation::Shared => mcp_gateway_proto::Isolation::Shared,
            Isolation::Session => mcp_gateway_proto::Isolation::Session,
            Isolation::Call => mcp_gateway_proto::Isolation::Call,
        },
    }
}

fn container_info(status: &SlotStatus, sessions: u32) -> ContainerInfo {
    ContainerInfo {
        profile: status.profile.clone(),
        session: status.session,
        sessions,
        state: match status.state {
            SlotPhase::Starting => ContainerState::Starting,
            SlotPhase::Running => ContainerState::Running,
            SlotPhase::Backoff => ContainerState::Backoff,
            SlotPhase::Stopped => ContainerState::Stopped,
        },
        id: status.container.clone(),
        uptime_secs: status.uptime.map(|d| d.as_secs()),
        last_used_secs: status.last_used.map(|d| d.as_secs()),
        restarts: status.restarts,
        last_error: status.last_error.clone(),
        // Rounded up, so a backoff never shows as 0 s while it lasts.
        retry_in_secs: status.retry_in.map(|d| d.as_secs_f64().ceil() as u64),
        era: status.era.map(|era| era.name().to_owned()),
        throttled: status.throttled.0,
        paused: status.throttled.1,
    }
}

/// Every secret a source holds or a server declares, with its sources and users.
fn secret_list(gateway: &Gateway) -> Response {
    let sources = match gateway.config.secrets.list() {
        Ok(sources) => sources,
        Err(err) => return secret_error(err),
    };
    let config = gateway.config.get();
    let mut secrets: std::collections::BTreeMap<String, SecretInfo> = sources
        .into_iter()
        .map(|(name, sources)| {
            let mut sources = sources.into_iter().map(wire_source);
            let info = SecretInfo {
                name: name.clone(),
                source: sources.next(),
                shadowed: sources.collect(),
                used_by: Vec::new(),
            };
            (name, info)
        })
        .collect();
    for (server, def) in &config.catalog.servers {
        for name in &def.secrets {
            secrets
                .entry(name.clone())
                .or_insert_with(|| SecretInfo {
                    name: name.clone(),
                    source: None,
                    shadowed: Vec::new(),
                    used_by: Vec::new(),
                })
                .used_by
                .push(server.clone());
        }
    }
    Response::Secrets {
        secrets: secrets.into_values().collect(),
    }
}

fn wire_source(source: config::SecretSource) -> SecretSource {
    match source {
        config::SecretSource::Store => SecretSource::Store,
        config::SecretSource::Credential => SecretSource::Credential,
        config::SecretSource::Env => SecretSource::Env,
    }
}

fn profile_info(gateway: &Gateway, name: &str) -> Option<ProfileInfo> {
    let config = gateway.config.get();
    let profile = config.profile(name)?;
    Some(ProfileInfo {
        name: name.to_owned(),
        servers: profile.servers,
        active: config.active == name,
        prefix: profile.prefix,
        tools: profile.tools,
        config: config
            .profiles
            .config
            .get(name)
            .cloned()
            .unwrap_or_default(),
        implicit: name == DEFAULT_PROFILE && !config.profiles.profiles.contains_key(name),
    })
}

fn done(message: String) -> Response {
    Response::Done { message }
}

fn error(kind: ErrorKind, message: String) -> Response {
    Response::Error { kind, message }
}

/// A change of the configuration store, off the runtime thread and in the order changes came
/// ([`ConfigStore::in_turn`]).
async fn change<T: Send + 'static>(
    gateway: &Gateway,
    change: impl FnOnce(&ConfigStore) -> T + Send + 'static,
) -> T {
    gateway.config.in_turn(change).await
}

fn config_error(err: ConfigError) -> Response {
    let kind = match err {
        ConfigError::UnknownProfile(_) | ConfigError::UnknownServer(_) => ErrorKind::NotFound,
        ConfigError::Invalid(_) | ConfigError::EditedOnDisk { .. } => ErrorKind::InvalidConfig,
        ConfigError::File(_) => ErrorKind::Internal,
        ConfigError::Secret(err) => return secret_error(err),
    };
    error(kind, err.to_string())
}

fn secret_error(err: SecretError) -> Response {
    let kind = match err {
        SecretError::InvalidName(_) => ErrorKind::InvalidConfig,
        SecretError::NotInStore(_) | SecretError::Missing(_) => ErrorKind::NotFound,
        SecretError::File(_) => ErrorKind::Internal,
    };
    error(kind, err.to_string())
}

fn gateway_error(err: GatewayError) -> Response {
    let kind = match &err {
        GatewayError::UnknownProfile(_) | GatewayError::Unknown { .. } => ErrorKind::NotFound,
        GatewayError::InvalidParams(_)
        | GatewayError::SecretInArguments { .. }
        | GatewayError::SecretInInput { .. } => ErrorKind::BadRequest,
        GatewayError::Pool(crate::pool::PoolError::Engine(_)) => ErrorKind::Engine,
        GatewayError::Pool(_)
        | GatewayError::Upstream(_)
        | GatewayError::BadListing { .. }
        | GatewayError::SecretInResult { .. }
        | GatewayError::Unavailable { .. } => ErrorKind::Upstream,
    };
    error(kind, err.to_string())
}
