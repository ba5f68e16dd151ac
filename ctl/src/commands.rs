//! What each `mcpctl` command sends and how its answer is printed: text for people, `--json` for
//! scripts (the daemon's response, unchanged).

use std::collections::BTreeMap;

use anyhow::{Context, bail};
use mcp_gateway_proto::{
    ContainerInfo, ContainerState, Isolation, MountSpec, Network, PullInfo, Request, Response,
    RunInfo, SecretSource, SecretValue, ServerKind,
};
use serde_json::{Map, Value};

use crate::cli::{
    CatalogCommand, Cli, Command, IsolationArg, OnOff, ProfileCommand, SecretCommand, ServerAdd,
    ServerCommand, ToolsCommand,
};
use crate::client::Client;

pub fn run(cli: Cli) -> anyhow::Result<()> {
    // Clients' files are edited here, without the daemon: they are not the daemon's files.
    let command = match cli.command {
        Command::Client(command) => return crate::client_commands::run(command, cli.json),
        // Doctor works without a daemon, and reports a missing one as one of its checks.
        Command::Doctor => return crate::doctor::run(cli.socket, cli.json),
        command => command,
    };
    let socket = || match &cli.socket {
        Some(path) => Ok(path.clone()),
        None => mcp_gateway_proto::default_socket_path().map_err(anyhow::Error::msg),
    };
    let (mut client, request) = match command {
        Command::Status => {
            let mut client = Client::connect(&socket()?)?;
            return crate::status::run(&mut client, cli.json);
        }
        Command::Server(ServerCommand::Logs { name, follow: true }) => {
            let mut client = Client::connect(&socket()?)?;
            return follow(
                &mut client,
                Request::ServerLogs { name, follow: true },
                cli.json,
            );
        }
        Command::Server(ServerCommand::Pull { name }) => {
            let mut client = Client::connect(&socket()?)?;
            return pull(&mut client, name, cli.json);
        }
        Command::Calls {
            follow: true,
            server,
            limit,
        } => {
            let mut client = Client::connect(&socket()?)?;
            let request = Request::Calls {
                server,
                limit,
                follow: true,
            };
            return follow(&mut client, request, cli.json);
        }
        Command::Profile(ProfileCommand::Config {
            profile,
            values,
            unset,
        }) => {
            let requests = profile_config(profile, &values, &unset)?;
            let mut client = Client::connect(&socket()?)?;
            for request in requests {
                output(&client.request(&request)?, cli.json)?;
            }
            return Ok(());
        }
        Command::Catalog(CatalogCommand::Import { file }) => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let entries = crate::import::parse(&file.display().to_string(), &text)
                .map_err(anyhow::Error::msg)?;
            let mut client = Client::connect(&socket()?)?;
            return import(&mut client, entries, cli.json);
        }
        // The value is asked for only once the daemon is there to take it, and a bad name is
        // refused before anything is typed in vain.
        Command::Secret(SecretCommand::Set { name }) => {
            mcp_gateway_proto::validate_secret_name(&name).map_err(anyhow::Error::msg)?;
            let client = Client::connect(&socket()?)?;
            let value = SecretValue::new(crate::secret_input::read(&name)?);
            (client, Request::SecretSet { name, value })
        }
        command => {
            let request = request_for(command)?;
            (Client::connect(&socket()?)?, request)
        }
    };
    output(&client.request(&request)?, cli.json)
}

fn output(response: &Response, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(response)?);
    } else {
        print_text(response);
    }
    Ok(())
}

/// Prints log lines as they come until the daemon ends the stream or mcpctl is interrupted
/// (which closes the connection: that is how the daemon learns to stop). `--json` prints one
/// response per line, so that a script can read them as they come.
/// Prints a stream of responses (`--follow`) until the daemon goes away or the user interrupts;
/// with `--json`, one object per line so that a script can read them as they come.
fn follow(client: &mut Client, request: Request, json: bool) -> anyhow::Result<()> {
    client.stream(&request)?;
    loop {
        print_streamed(&client.next()?, json)?;
    }
}

/// One response of a stream, printed at once: as text, or as one JSON object per line.
fn print_streamed(response: &Response, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string(response)?);
    } else {
        print_text(response);
    }
    use std::io::Write;
    std::io::stdout().flush()?;
    Ok(())
}

/// Prints a pull's progress lines as they come, then its outcome: the `done` message, or the
/// daemon's error (exit 5 when the pull failed). `--json` prints one response per line.
fn pull(client: &mut Client, name: String, json: bool) -> anyhow::Result<()> {
    // A large image takes as long as it takes; the daemon ends the stream either way.
    client.stream(&Request::ServerPull { name })?;
    loop {
        let response = client.next()?;
        print_streamed(&response, json)?;
        if !matches!(response, Response::PullProgress(_)) {
            return Ok(());
        }
    }
}

/// `SERVER.KEY=VALUE` sets and `--unset SERVER.KEY`, one request each.
fn profile_config(
    profile: String,
    values: &[String],
    unset: &[String],
) -> anyhow::Result<Vec<Request>> {
    if values.is_empty() && unset.is_empty() {
        bail!("give SERVER.KEY=VALUE or --unset SERVER.KEY");
    }
    let split = |text: &str| match text.split_once('.') {
        Some((server, key)) if !server.is_empty() && !key.is_empty() => {
            Ok((server.to_owned(), key.to_owned()))
        }
        _ => bail!("{text:?}: expected SERVER.KEY"),
    };
    let mut requests = Vec::new();
    for pair in values {
        let Some((target, value)) = pair.split_once('=') else {
            bail!("{pair:?}: expected SERVER.KEY=VALUE");
        };
        let (server, key) = split(target)?;
        requests.push(Request::ProfileConfig {
            name: profile.clone(),
            server,
            key,
            value: Some(value.to_owned()),
        });
    }
    for target in unset {
        let (server, key) = split(target)?;
        requests.push(Request::ProfileConfig {
            name: profile.clone(),
            server,
            key,
            value: None,
        });
    }
    Ok(requests)
}

/// Sends the importable entries one by one, printing per entry what happened; exits non-zero
/// (as the last failure says) when an entry the file holds could not be added.
fn import(
    client: &mut Client,
    entries: Vec<crate::import::Entry>,
    json: bool,
) -> anyhow::Result<()> {
    let mut report = Vec::new();
    let mut failure = None;
    for entry in entries {
        let outcome = match entry.request {
            Ok(request) => match client.request(&request) {
                Ok(Response::Done { message }) => Ok(message),
                Ok(other) => Err(format!("unexpected answer {other:?}")),
                Err(err) => {
                    let message = format!("{err:#}");
                    failure = Some(err);
                    Err(message)
                }
            },
            Err(reason) => Err(format!("skipped: {reason}")),
        };
        if !json {
            match &outcome {
                Ok(message) => println!("{}: {message}", entry.name),
                Err(reason) => println!("{}: not imported: {reason}", entry.name),
            }
            for note in &entry.notes {
                println!("  left out: {note}");
            }
        }
        report.push(serde_json::json!({
            "name": entry.name,
            "imported": outcome.is_ok(),
            "message": outcome.unwrap_or_else(|reason| reason),
            "left_out": entry.notes,
        }));
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&Value::from(report))?);
    }
    match failure {
        Some(err) => Err(err.context("some servers could not be added")),
        None => Ok(()),
    }
}

fn request_for(command: Command) -> anyhow::Result<Request> {
    Ok(match command {
        Command::Calls {
            follow,
            server,
            limit,
        } => Request::Calls {
            server,
            limit,
            follow,
        },
        Command::Server(ServerCommand::Add(add)) => {
            let ServerAdd {
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
                program,
            } = *add;
            if process && !command.is_empty() {
                bail!("a process server's command follows --, not --command");
            }
            Request::ServerAdd {
                name,
                image: image.unwrap_or_default(),
                url,
                headers: parse_pairs("--header", &headers)?,
                command: if process { program } else { command },
                env: parse_pairs("--env", &env)?,
                secrets,
                memory,
                cpus,
                pids,
                network: network.map(|name| match name.as_str() {
                    "default" => Network::Default,
                    "none" => Network::None,
                    _ => Network::Named(name),
                }),
                mounts: mounts
                    .iter()
                    .map(|mount| parse_mount(mount))
                    .collect::<anyhow::Result<_>>()?,
                idle_timeout,
                isolation: isolation.map(|isolation| match isolation {
                    IsolationArg::Shared => Isolation::Shared,
                    IsolationArg::Session => Isolation::Session,
                    IsolationArg::Call => Isolation::Call,
                }),
                process,
                cwd,
            }
        }
        Command::Server(ServerCommand::Ls) => Request::ServerList,
        Command::Server(ServerCommand::Rm { name, force }) => Request::ServerRemove { name, force },
        Command::Server(ServerCommand::Inspect { name }) => Request::ServerInspect { name },
        Command::Server(ServerCommand::Logs { name, follow }) => {
            Request::ServerLogs { name, follow }
        }
        Command::Server(ServerCommand::Restart { name }) => Request::ServerRestart { name },
        Command::Server(ServerCommand::Pull { name }) => Request::ServerPull { name },
        Command::Reload => Request::Reload,
        Command::Http(command) => crate::http_commands::request(command),
        Command::Catalog(CatalogCommand::Ls) => Request::CatalogList,
        Command::Catalog(CatalogCommand::Show { name }) => Request::CatalogShow { name },
        Command::Profile(ProfileCommand::Rm { name }) => Request::ProfileRemove { name },
        Command::Profile(ProfileCommand::Add { profile, servers }) => Request::ProfileServersAdd {
            name: profile,
            servers,
        },
        Command::Profile(ProfileCommand::Remove { profile, servers }) => {
            Request::ProfileServersRemove {
                name: profile,
                servers,
            }
        }
        Command::Profile(ProfileCommand::Prefix { profile, state }) => Request::ProfilePrefix {
            name: profile,
            prefix: state == OnOff::On,
        },
        Command::Profile(ProfileCommand::Create { name, servers }) => {
            Request::ProfileCreate { name, servers }
        }
        Command::Profile(ProfileCommand::Use { name }) => Request::ProfileUse { name },
        Command::Profile(ProfileCommand::Ls) => Request::ProfileList,
        Command::Profile(ProfileCommand::Show { name }) => Request::ProfileShow { name },
        Command::Profile(ProfileCommand::Tools { name, allow }) => {
            Request::ProfileTools { name, allow }
        }
        Command::Tools(ToolsCommand::Ls(profile)) => Request::ToolsList {
            profile: profile.profile,
        },
        Command::Tools(ToolsCommand::Call {
            name,
            arguments,
            profile,
        }) => Request::ToolsCall {
            profile: profile.profile,
            name,
            arguments: parse_arguments(&arguments)?,
        },
        Command::Secret(SecretCommand::Ls) => Request::SecretList,
        Command::Secret(SecretCommand::Rm { name }) => Request::SecretRemove { name },
        // These are handled in `run`, which does not come here with them.
        Command::Secret(SecretCommand::Set { .. })
        | Command::Status
        | Command::Doctor
        | Command::Client(_)
        | Command::Profile(ProfileCommand::Config { .. })
        | Command::Catalog(CatalogCommand::Import { .. }) => {
            bail!("this command is not a single request")
        }
    })
}

/// `KEY=VALUE` pairs of the repeated option `flag`.
fn parse_pairs(flag: &str, pairs: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    pairs
        .iter()
        .map(|pair| match pair.split_once('=') {
            Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
            _ => bail!("{flag} {pair:?}: expected KEY=VALUE"),
        })
        .collect()
}

/// `SRC:DST`, `SRC:DST:ro` or `SRC:DST:rw`; a relative SRC is taken from the current directory,
/// since the daemon's is another. Which sources are allowed is the daemon's decision.
fn parse_mount(text: &str) -> anyhow::Result<MountSpec> {
    let (paths, writable) = match text.rsplit_once(':') {
        Some((paths, "rw")) => (paths, true),
        Some((paths, "ro")) => (paths, false),
        _ => (text, false),
    };
    let Some((source, target)) = paths
        .split_once(':')
        .filter(|(s, t)| !s.is_empty() && !t.is_empty())
    else {
        bail!("--mount {text:?}: expected SRC:DST, SRC:DST:ro or SRC:DST:rw");
    };
    let source = std::path::absolute(source)
        .with_context(|| format!("--mount {text:?}: cannot make {source} absolute"))?;
    Ok(MountSpec {
        source: source.display().to_string(),
        target: target.to_owned(),
        writable,
    })
}

/// `KEY=VALUE` (JSON when VALUE parses as a non-string JSON value, else a string) and `KEY:=JSON`.
fn parse_arguments(pairs: &[String]) -> anyhow::Result<Map<String, Value>> {
    let mut arguments = Map::new();
    for pair in pairs {
        let Some((key, value)) = pair.split_once('=') else {
            bail!("argument {pair:?}: expected KEY=VALUE or KEY:=JSON");
        };
        let (key, value) = match key.strip_suffix(':') {
            Some(key) => (
                key,
                serde_json::from_str(value)
                    .with_context(|| format!("argument {key}: invalid JSON"))?,
            ),
            None => match serde_json::from_str::<Value>(value) {
                Ok(json) if !json.is_string() => (key, json),
                _ => (key, Value::from(value)),
            },
        };
        if key.is_empty() {
            bail!("argument {pair:?}: the key is empty");
        }
        arguments.insert(key.to_owned(), value);
    }
    Ok(arguments)
}

fn print_text(response: &Response) {
    match response {
        Response::Done { message } => println!("{message}"),
        Response::Servers { servers } => {
            if servers.is_empty() {
                println!("no servers; add one with: mcpctl server add NAME --image IMAGE");
            }
            for server in servers {
                let what = match server.kind {
                    ServerKind::Process => format!("process {}", server.command.join(" ")),
                    _ => server
                        .origin
                        .clone()
                        .unwrap_or_else(|| server.image.clone()),
                };
                let run = match server.kind {
                    ServerKind::Process => server.run.as_ref().map(process_summary),
                    _ => server.run.as_ref().map(run_summary),
                };
                println!("{:<20} {what:<40} {}", server.name, run.unwrap_or_default());
                if let Some(pull) = &server.pulling {
                    println!("  {}", pull_summary(pull));
                }
                for container in &server.containers {
                    println!("  {}", container_summary(container));
                }
            }
        }
        Response::Profiles { profiles } => {
            for profile in profiles {
                let mark = if profile.active { "*" } else { " " };
                println!("{mark} {:<20} {}", profile.name, profile.servers.join(", "));
            }
        }
        Response::Profile(profile) => {
            println!("name:     {}", profile.name);
            println!("active:   {}", if profile.active { "yes" } else { "no" });
            println!(
                "prefix:   {}",
                if profile.prefix {
                    "all tools"
                } else {
                    "colliding tools only"
                }
            );
            println!("servers:  {}", profile.servers.join(", "));
            if !profile.tools.is_empty() {
                println!("tools:    {}", profile.tools.join(", "));
            }
            for (server, values) in &profile.config {
                for (key, value) in values {
                    println!("config:   {server}.{key}={value}");
                }
            }
            if profile.implicit {
                println!(
                    "(built in: every server of the catalog, until a profile named default is created)"
                );
            }
        }
        Response::Tools { tools, .. } => {
            for tool in tools {
                let description = tool
                    .description
                    .as_deref()
                    .unwrap_or("")
                    .lines()
                    .next()
                    .unwrap_or("");
                println!("{:<32} {:<16} {description}", tool.name, tool.server);
            }
        }
        Response::ToolResult { result } => print_tool_result(result),
        Response::Calls { calls } => {
            for call in calls {
                let secrets = if call.secrets.is_empty() {
                    String::new()
                } else {
                    format!("  secrets: {}", call.secrets.join(", "))
                };
                println!(
                    "{}  {:<14} {:<10} {:<20} {:<18} {:<10} {:>9.1} ms{secrets}",
                    call.time,
                    call.client,
                    call.profile,
                    format!("{}/{}", call.server, call.name),
                    call.method,
                    call.outcome,
                    call.duration_ms,
                );
            }
        }
        Response::Secrets { secrets } => {
            if secrets.is_empty() {
                println!("no secrets; set one with: mcpctl secret set NAME < FILE");
            }
            for secret in secrets {
                let mut source = secret
                    .source
                    .map_or_else(|| "missing".to_owned(), source_name);
                if !secret.shadowed.is_empty() {
                    let hidden: Vec<_> = secret.shadowed.iter().copied().map(source_name).collect();
                    source = format!("{source} (also {})", hidden.join(", "));
                }
                let used_by = if secret.used_by.is_empty() {
                    "(no server)".to_owned()
                } else {
                    secret.used_by.join(", ")
                };
                println!("{:<32} {source:<28} {used_by}", secret.name);
            }
        }
        Response::Server(detail) => {
            let server = &detail.info;
            println!("name:      {}", server.name);
            match (server.kind, &server.origin) {
                (ServerKind::Process, _) => println!("kind:      process"),
                (_, Some(origin)) => println!("remote:    {origin}"),
                _ => println!("image:     {}", server.image),
            }
            if !server.command.is_empty() {
                println!("command:   {}", server.command.join(" "));
            }
            for (key, value) in &detail.env_values {
                println!("env:       {key}={value}");
            }
            if !server.secrets.is_empty() {
                println!("secrets:   {}", server.secrets.join(", "));
            }
            if let Some(run) = &server.run {
                let summary = match server.kind {
                    ServerKind::Process => process_summary(run),
                    _ => run_summary(run),
                };
                println!("runs with: {summary}");
            }
            println!("profiles:  {}", detail.profiles.join(", "));
            for (profile, values) in &detail.profile_config {
                for (key, value) in values {
                    println!("  {profile} sets {key}={value}");
                }
            }
            for container in &server.containers {
                println!("container: {}", container_summary(container));
            }
        }
        Response::PullProgress(pull) => println!("{}", pull_summary(pull)),
        Response::LogLines { lines } => {
            for line in lines {
                println!("{}: {}", line.profile, line.line);
            }
        }
        Response::Catalog { entries } => {
            for entry in entries {
                let source = match (entry.added, entry.builtin) {
                    (true, true) => "added (also built in)",
                    (true, false) => "added",
                    _ => "built in",
                };
                let description = entry.description.as_deref().unwrap_or("");
                let runs = entry.origin.as_deref().unwrap_or(&entry.image);
                println!("{:<24} {runs:<36} {source:<22} {description}", entry.name);
            }
        }
        Response::CatalogEntry(entry) => {
            println!("name:      {}", entry.name);
            match &entry.origin {
                Some(origin) => println!("remote:    {origin}"),
                None => println!("image:     {}", entry.image),
            }
            if let Some(description) = &entry.description {
                println!("about:     {description}");
            }
            let source = if entry.added {
                "your catalog"
            } else {
                "built in; add it with mcpctl server add NAME"
            };
            println!("source:    {source}");
            if !entry.command.is_empty() {
                println!("command:   {}", entry.command.join(" "));
            }
            for (key, value) in &entry.env {
                println!("env:       {key}={value}");
            }
            if !entry.secrets.is_empty() {
                println!("secrets:   {}", entry.secrets.join(", "));
            }
            if let Some(run) = &entry.run {
                println!("runs with: {}", run_summary(run));
            }
        }
        Response::Http(info) => crate::http_commands::print(info),
        Response::HttpToken { token } => println!("{}", token.expose()),
        other => println!(
            "{}",
            serde_json::to_string_pretty(other).unwrap_or_default()
        ),
    }
}

fn source_name(source: SecretSource) -> String {
    match source {
        SecretSource::Store => "store",
        SecretSource::Credential => "credential",
        SecretSource::Env => "env",
        _ => "other",
    }
    .to_owned()
}

/// Text content is printed as text; anything else (images, structured content) as JSON.
fn print_tool_result(result: &Value) {
    let content = result
        .get("content")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for block in &content {
        match block.get("text").and_then(Value::as_str) {
            Some(text) if block.get("type").and_then(Value::as_str) == Some("text") => {
                println!("{text}")
            }
            _ => println!("{block}"),
        }
    }
    if let Some(structured) = result.get("structuredContent") {
        println!("{structured}");
    }
    if result.get("isError").and_then(Value::as_bool) == Some(true) {
        eprintln!("mcpctl: the tool reported an error");
    }
}

/// `512m, 1 cpu, 256 pids, network none, idle 1800 s`, then `one per session` for a
/// session-isolated server, then the mounts.
/// The settings of a process server that mean anything for one: no limits, network or mounts.
fn process_summary(run: &RunInfo) -> String {
    let mut summary = match run.idle_timeout {
        Some(seconds) => format!("idle {seconds} s"),
        None => "never idle".to_owned(),
    };
    summary.push_str(isolation_summary(run.isolation));
    summary
}

fn isolation_summary(isolation: Isolation) -> &'static str {
    match isolation {
        Isolation::Session => ", one per session",
        Isolation::Call => ", one per call",
        _ => "",
    }
}

fn run_summary(run: &RunInfo) -> String {
    let network = match &run.network {
        Network::None => "none",
        Network::Default => "default",
        Network::Named(name) => name,
    };
    let idle = match run.idle_timeout {
        Some(seconds) => format!("idle {seconds} s"),
        None => "never idle".to_owned(),
    };
    let mut summary = format!(
        "{}, {} cpu, {} pids, network {network}, {idle}",
        run.memory, run.cpus, run.pids
    );
    summary.push_str(isolation_summary(run.isolation));
    for mount in &run.mounts {
        let mode = if mount.writable { "rw" } else { "ro" };
        summary.push_str(&format!(", {}:{}:{mode}", mount.source, mount.target));
    }
    summary
}

/// `pulling IMAGE 37% (Downloading)`; the share is left out until the engine has told it.
pub fn pull_summary(pull: &PullInfo) -> String {
    let mut text = format!("pulling {}", pull.image);
    if let Some(percent) = pull.percent {
        text.push_str(&format!(" {percent}%"));
    }
    if !pull.status.is_empty() {
        text.push_str(&format!(" ({})", pull.status));
    }
    text
}

/// One line per container: `work  running  1 session, up 12 s, used 3 s ago`, and the last
/// failure; a session's own container is `work/session 7`.
fn container_summary(container: &ContainerInfo) -> String {
    let state = match container.state {
        ContainerState::Starting => "starting",
        ContainerState::Running => "running",
        ContainerState::Backoff => "backoff",
        ContainerState::Stopped => "stopped",
        _ => "unknown",
    };
    let mut details = Vec::new();
    if container.state == ContainerState::Running {
        let plural = if container.sessions == 1 { "" } else { "s" };
        details.push(format!("{} session{plural}", container.sessions));
    }
    if let Some(era) = &container.era {
        details.push(format!("speaks {era}"));
    }
    if container.throttled > 0 {
        let plural = if container.throttled == 1 { "" } else { "s" };
        let now = if container.paused { ", now too" } else { "" };
        details.push(format!(
            "output throttled {} time{plural}{now}",
            container.throttled
        ));
    }
    if let Some(uptime) = container.uptime_secs {
        details.push(format!("up {uptime} s"));
    }
    if let Some(used) = container.last_used_secs {
        details.push(format!("used {used} s ago"));
    }
    if container.restarts > 0 {
        details.push(format!("{} restarts", container.restarts));
    }
    if let Some(retry) = container.retry_in_secs {
        details.push(format!("next start in {retry} s"));
    }
    if let Some(error) = &container.last_error {
        details.push(format!("last error: {error}"));
    }
    let place = match container.session {
        Some(session) => format!("{}/session {session}", container.profile),
        None => container.profile.clone(),
    };
    format!("{place:<18} {state:<9} {}", details.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mounts_are_read_only_unless_rw_and_relative_sources_become_absolute() {
        let mount = parse_mount("/srv/data:/data").unwrap();
        assert_eq!(
            (mount.source.as_str(), mount.target.as_str()),
            ("/srv/data", "/data")
        );
        assert!(!mount.writable);
        assert!(parse_mount("/srv/out:/out:rw").unwrap().writable);
        assert!(!parse_mount("/srv/out:/out:ro").unwrap().writable);
        let relative = parse_mount("data:/data").unwrap();
        assert!(relative.source.starts_with('/') && relative.source.ends_with("/data"));
        for bad in ["/srv/data", ":/data", "/srv/data:", "/srv:rw"] {
            assert!(parse_mount(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn arguments_are_json_when_they_look_like_it() {
        let args = parse_arguments(&[
            "text=hello".into(),
            "n=3".into(),
            "flag=true".into(),
            "id:=\"42\"".into(),
            "s=\"q\"".into(),
        ])
        .unwrap();
        assert_eq!(
            Value::Object(args),
            serde_json::json!({"text": "hello", "n": 3, "flag": true, "id": "42", "s": "\"q\""})
        );
        assert!(parse_arguments(&["novalue".into()]).is_err());
        assert!(parse_arguments(&["x:={".into()]).is_err());
    }

    #[test]
    fn profile_config_takes_server_dot_key_pairs_and_unsets() {
        let requests = profile_config("p".into(), &["s.K=a=b".into()], &["s.OLD".into()]).unwrap();
        assert_eq!(
            requests,
            [
                Request::ProfileConfig {
                    name: "p".into(),
                    server: "s".into(),
                    key: "K".into(),
                    value: Some("a=b".into())
                },
                Request::ProfileConfig {
                    name: "p".into(),
                    server: "s".into(),
                    key: "OLD".into(),
                    value: None
                }
            ]
        );
        for bad in ["K=v", "s.=v", ".K=v", "s.K"] {
            assert!(
                profile_config("p".into(), &[bad.into()], &[]).is_err(),
                "{bad}"
            );
        }
        assert!(profile_config("p".into(), &[], &[]).is_err());
    }

    #[test]
    fn env_pairs_need_a_key() {
        assert_eq!(parse_pairs("--env", &["A=b=c".into()]).unwrap()["A"], "b=c");
        assert!(parse_pairs("--env", &["=x".into()]).is_err());
    }
}
