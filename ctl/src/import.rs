//! `mcpctl catalog import FILE`: Docker's catalog YAML (a `registry:` map of entries) turned into
//! `server_add` requests, with what each entry keeps and what it loses said per entry.
//!
//! Docker templates `{{server.key}}` placeholders over per-server config values; mcp-gateway has
//! no templating, so a value holding a placeholder is not kept (profile values, `mcpctl profile
//! config`, replace it), and an entry whose command needs one is not imported. Docker gives a
//! server a network unless `disableNetwork` is set, so an imported entry gets the engine's default
//! network unless it has `disableNetwork: true`. Volumes become read-only bind mounts of absolute
//! host paths; named volumes and templated ones are left out. `longLived` servers are kept until
//! the daemon stops (idle timeout 0). Remote and POCI entries are not imported.

use std::collections::BTreeMap;

use mcp_gateway_proto::{MountSpec, Network, Request};
use yaml_rust2::{Yaml, YamlLoader};

/// One entry of the file: the request to send, or why it is not imported, and what it loses.
#[derive(Debug)]
pub struct Entry {
    pub name: String,
    pub request: Result<Request, String>,
    /// Parts of the entry left out, each with the reason.
    pub notes: Vec<String>,
}

/// Reads the `registry:` map of a Docker catalog; `path` names the file in errors.
pub fn parse(path: &str, text: &str) -> Result<Vec<Entry>, String> {
    let docs = YamlLoader::load_from_str(text)
        .map_err(|err| format!("{path}:{}: {}", err.marker().line(), err.info()))?;
    let Some(registry) = docs.first().and_then(|doc| doc["registry"].as_hash()) else {
        return Err(format!(
            "{path}: no `registry:` map; is this a Docker MCP catalog?"
        ));
    };
    Ok(registry
        .iter()
        .map(|(name, entry)| {
            let name = scalar(name).unwrap_or_default();
            let mut notes = Vec::new();
            let request = server_add(&name, entry, &mut notes);
            Entry {
                name,
                request,
                notes,
            }
        })
        .collect())
}

fn server_add(name: &str, entry: &Yaml, notes: &mut Vec<String>) -> Result<Request, String> {
    if entry["remote"].as_hash().is_some() || entry["type"].as_str() == Some("remote") {
        return remote_add(name, entry, notes);
    }
    if entry["type"].as_str() == Some("poci") {
        return Err("POCI tools (a container per call) are not supported".into());
    }
    let Some(image) = entry["image"].as_str() else {
        return Err("no image".into());
    };
    let command = strings(&entry["command"]);
    if command.iter().any(|arg| templated(arg)) {
        return Err("its command uses {{placeholders}}, which mcp-gateway does not fill".into());
    }
    let mut env = BTreeMap::new();
    for var in list(&entry["env"]) {
        let (Some(key), value) = (var["name"].as_str(), scalar(&var["value"])) else {
            notes.push("an env entry without a name".into());
            continue;
        };
        match value {
            Some(value) if !templated(&value) => {
                env.insert(key.to_owned(), value);
            }
            _ => notes.push(format!(
                "env {key}: its value is a placeholder; set it per profile with mcpctl profile config PROFILE {name}.{key}=VALUE"
            )),
        }
    }
    let secrets = secrets(entry, notes);
    let mut mounts = Vec::new();
    for volume in strings(&entry["volumes"]) {
        match volume_mount(&volume) {
            Ok(mount) => mounts.push(mount),
            Err(reason) => notes.push(format!("volume {volume}: {reason}")),
        }
    }
    let network = if entry["disableNetwork"].as_bool() == Some(true) {
        Network::None
    } else {
        Network::Default
    };
    if !list(&entry["allowHosts"]).is_empty() {
        notes.push(
            "allowHosts is not enforced: the server gets the engine's default network".into(),
        );
    }
    if !list(&entry["config"]).is_empty() {
        notes.push(
            "its config schema is not imported; give values with mcpctl profile config".into(),
        );
    }
    for unsupported in ["user", "extraHosts", "oauth"] {
        if !matches!(entry[unsupported], Yaml::BadValue | Yaml::Null) {
            notes.push(format!("{unsupported} is not supported"));
        }
    }
    let idle_timeout = (entry["longLived"].as_bool() == Some(true)).then_some(0);
    Ok(Request::ServerAdd {
        name: name.to_owned(),
        image: image.to_owned(),
        command,
        env,
        secrets,
        memory: None,
        cpus: None,
        pids: None,
        network: Some(network),
        mounts,
        idle_timeout,
        isolation: None,
        url: None,
        headers: BTreeMap::new(),
        // An import only ever describes containers: it must never run a host command.
        process: false,
        cwd: None,
    })
}

/// The secrets an entry declares, each by the `env` name it has inside the server.
fn secrets(entry: &Yaml, notes: &mut Vec<String>) -> Vec<String> {
    let mut secrets = Vec::new();
    for secret in list(&entry["secrets"]) {
        match (secret["name"].as_str(), secret["env"].as_str()) {
            (_, Some(var)) if mcp_gateway_proto::validate_secret_name(var).is_ok() => {
                secrets.push(var.to_owned());
                notes.push(format!(
                    "secret {} is the secret {var} here: mcpctl secret set {var}",
                    secret["name"].as_str().unwrap_or(var)
                ));
            }
            (secret_name, _) => notes.push(format!(
                "secret {}: no usable `env` name",
                secret_name.unwrap_or("?")
            )),
        }
    }
    secrets
}

/// A `remote:` entry: its URL and headers, as a `remote` server.
fn remote_add(name: &str, entry: &Yaml, notes: &mut Vec<String>) -> Result<Request, String> {
    let remote = &entry["remote"];
    let Some(url) = remote["url"].as_str() else {
        return Err("a remote entry without a url".into());
    };
    match remote["transport_type"].as_str() {
        None | Some("http" | "streamable" | "streaming" | "streamable-http") => {}
        Some("sse") => {
            return Err(
                "it speaks the old HTTP+SSE transport (transport_type: sse), which mcp-gateway \
                 does not; only Streamable HTTP servers are imported"
                    .into(),
            );
        }
        Some(other) => return Err(format!("unknown transport_type {other:?}")),
    }
    let secrets = secrets(entry, notes);
    let mut headers = BTreeMap::new();
    if let Some(given) = remote["headers"].as_hash() {
        for (key, value) in given {
            let (Some(key), Some(value)) = (scalar(key), scalar(value)) else {
                notes.push("a header without a name or value".into());
                continue;
            };
            match header_template(&value, &secrets) {
                Ok(template) => {
                    headers.insert(key, template);
                }
                Err(reason) => notes.push(format!("header {key}: {reason}; not imported")),
            }
        }
    }
    for unsupported in ["oauth", "image", "command", "env", "volumes"] {
        if !matches!(entry[unsupported], Yaml::BadValue | Yaml::Null) {
            notes.push(format!("{unsupported} has no meaning for a remote server"));
        }
    }
    Ok(Request::ServerAdd {
        name: name.to_owned(),
        image: String::new(),
        command: Vec::new(),
        env: BTreeMap::new(),
        secrets,
        memory: None,
        cpus: None,
        pids: None,
        network: None,
        mounts: Vec::new(),
        idle_timeout: (entry["longLived"].as_bool() == Some(true)).then_some(0),
        isolation: None,
        url: Some(url.to_owned()),
        headers,
        process: false,
        cwd: None,
    })
}

/// A Docker header value (`$NAME` and `${NAME}` expanded from the environment) as mcp-gateway's
/// template, where each NAME must be one of `secrets`.
fn header_template(value: &str, secrets: &[String]) -> Result<String, String> {
    let mut template = String::new();
    let mut rest = value;
    while let Some(at) = rest.find('$') {
        template.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let (name, next) = match after.strip_prefix('{') {
            Some(inner) => match inner.split_once('}') {
                Some((name, tail)) => (name, tail),
                None => return Err("an unclosed ${".into()),
            },
            None => {
                let end = after
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(after.len());
                (&after[..end], &after[end..])
            }
        };
        if !secrets.iter().any(|s| s == name) {
            return Err(format!(
                "${name} is not one of the entry's secrets (by their env names)"
            ));
        }
        template.push_str(&format!("${{{name}}}"));
        rest = next;
    }
    template.push_str(rest);
    Ok(template)
}

/// `SRC:DST[:ro|:rw]` with an absolute SRC, mounted read-only whatever the entry says.
fn volume_mount(volume: &str) -> Result<MountSpec, String> {
    if templated(volume) {
        return Err("uses {{placeholders}}; add it with mcpctl server add --mount".into());
    }
    let paths = volume
        .strip_suffix(":ro")
        .or_else(|| volume.strip_suffix(":rw"))
        .unwrap_or(volume);
    match paths.split_once(':') {
        Some((source, target)) if source.starts_with('/') && target.starts_with('/') => {
            Ok(MountSpec {
                source: source.to_owned(),
                target: target.to_owned(),
                writable: false,
            })
        }
        _ => Err("only absolute host paths are imported (as read-only mounts)".into()),
    }
}

fn templated(text: &str) -> bool {
    text.contains("{{")
}

fn list(value: &Yaml) -> &[Yaml] {
    value.as_vec().map_or(&[], Vec::as_slice)
}

fn strings(value: &Yaml) -> Vec<String> {
    list(value).iter().filter_map(scalar).collect()
}

/// A scalar as text: YAML reads `8080` or `true` as numbers and booleans.
fn scalar(value: &Yaml) -> Option<String> {
    match value {
        Yaml::String(s) | Yaml::Real(s) => Some(s.clone()),
        Yaml::Integer(i) => Some(i.to_string()),
        Yaml::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CATALOG: &str = r#"
version: 2
name: my-mcp-catalog
registry:
  my-mcp:
    type: server
    title: My MCP
    image: myimage:latest
    command: ["--port", 8080]
    env:
      - name: MODE
        value: "{{my-mcp.mode}}"
      - name: LEVEL
        value: debug
    secrets:
      - name: my-mcp.SECRET_KEY
        env: SECRET_KEY
    config:
      - name: my-mcp
        type: object
    volumes:
      - /srv/data:/data:rw
      - cache:/cache
      - "{{my-mcp.dir}}:/work"
    disableNetwork: true
    longLived: true
  fetch:
    image: mcp/fetch
    allowHosts: ["example.com:443"]
  gitmcpmoby:
    remote:
      url: https://gitmcp.io/moby/moby
      transport_type: http
      headers:
        Authorization: "Bearer $GITMCP_TOKEN"
        X-Team: "${TEAM}-ops"
        X-Other: "$HOME"
    secrets:
      - name: gitmcp.token
        env: GITMCP_TOKEN
      - name: gitmcp.team
        env: TEAM
  oldsse:
    remote:
      url: https://example.com/sse
      transport_type: sse
  templated:
    image: x
    command: ["{{templated.path}}"]
"#;

    #[test]
    fn entries_map_to_server_adds_and_say_what_they_lose() {
        let entries = parse("c.yaml", CATALOG).unwrap();
        let names: Vec<_> = entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(
            names,
            ["my-mcp", "fetch", "gitmcpmoby", "oldsse", "templated"]
        );
        let Ok(Request::ServerAdd {
            image,
            command,
            env,
            secrets,
            network,
            mounts,
            idle_timeout,
            ..
        }) = &entries[0].request
        else {
            panic!("{:?}", entries[0]);
        };
        assert_eq!(image, "myimage:latest");
        assert_eq!(command, &["--port", "8080"]);
        assert_eq!(env.len(), 1);
        assert_eq!(env["LEVEL"], "debug");
        assert_eq!(secrets, &["SECRET_KEY"]);
        assert_eq!(network, &Some(Network::None));
        assert_eq!(idle_timeout, &Some(0));
        assert_eq!(
            mounts,
            &[MountSpec {
                source: "/srv/data".into(),
                target: "/data".into(),
                writable: false
            }]
        );
        let notes = entries[0].notes.join("\n");
        for expected in [
            "env MODE",
            "volume cache:/cache",
            "{{my-mcp.dir}}",
            "config schema",
        ] {
            assert!(notes.contains(expected), "{expected} missing from {notes}");
        }
        assert!(matches!(
            &entries[1].request,
            Ok(Request::ServerAdd {
                network: Some(Network::Default),
                ..
            })
        ));
        assert!(entries[1].notes[0].contains("allowHosts"));
        let Ok(Request::ServerAdd {
            image,
            url,
            headers,
            secrets,
            ..
        }) = &entries[2].request
        else {
            panic!("{:?}", entries[2]);
        };
        assert!(image.is_empty());
        assert_eq!(url.as_deref(), Some("https://gitmcp.io/moby/moby"));
        assert_eq!(secrets, &["GITMCP_TOKEN", "TEAM"]);
        assert_eq!(headers["Authorization"], "Bearer ${GITMCP_TOKEN}");
        assert_eq!(headers["X-Team"], "${TEAM}-ops");
        assert!(!headers.contains_key("X-Other"));
        assert!(entries[2].notes.iter().any(|n| n.contains("X-Other")));
        assert!(matches!(&entries[3].request, Err(m) if m.contains("HTTP+SSE")));
        assert!(matches!(&entries[4].request, Err(m) if m.contains("placeholders")));
    }

    #[test]
    fn broken_or_foreign_files_are_reported_with_their_line() {
        let err = parse("c.yaml", "registry:\n  a: [\n").unwrap_err();
        assert!(err.starts_with("c.yaml:"), "{err}");
        assert!(
            parse("c.yaml", "servers: {}\n")
                .unwrap_err()
                .contains("registry")
        );
    }
}
