//! The clients mcpctl knows: where each keeps its MCP servers, in which format, and the entry it
//! expects for a stdio server. Sources for each are in `ARCHITECTURE.md` (client configuration).

use std::path::{Path, PathBuf};

use clap::ValueEnum;
use serde_json::{Value, json};

use super::{ClientError, ENTRY_NAME, Env, Launch, Location, json as json_file, toml_file, yaml};
use crate::cli::ClientName;

/// A parse error without the file's name: the line when the parser knows it, and the reason.
#[derive(Debug)]
pub struct Syntax {
    pub line: Option<usize>,
    pub reason: String,
}

impl std::fmt::Display for Syntax {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(line) => write!(f, "line {line}: {}", self.reason),
            None => f.write_str(&self.reason),
        }
    }
}

/// A file format and where in it the servers are.
#[derive(Debug, Clone, Copy)]
enum Format {
    /// JSON or JSONC, servers in an object under the key.
    Json(&'static str),
    /// TOML, servers in a table under the key.
    Toml(&'static str),
    Yaml(Location),
}

#[derive(Clone, Copy)]
pub struct Client {
    pub name: ClientName,
    /// The product's name, for messages.
    pub title: &'static str,
    format: Format,
    path: fn(&Env) -> PathBuf,
    entry: fn(&Launch) -> Value,
    /// What a missing file is taken to hold before our entry is added.
    skeleton: &'static str,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.id())
    }
}

impl Client {
    /// The name on the command line, e.g. `claude-desktop`.
    pub fn id(&self) -> &'static str {
        id(self.name)
    }

    pub fn path(&self, env: &Env) -> PathBuf {
        (self.path)(env)
    }

    pub fn location(&self) -> Location {
        match self.format {
            Format::Json(key) | Format::Toml(key) => Location::Map(key),
            Format::Yaml(location) => location,
        }
    }

    pub fn skeleton(&self) -> &'static str {
        self.skeleton
    }

    /// The entry that starts `launch`, in this client's shape.
    pub fn entry(&self, launch: &Launch) -> Value {
        (self.entry)(launch)
    }

    pub fn parse(&self, path: &Path, text: &str) -> Result<Value, ClientError> {
        match self.format {
            Format::Json(_) => json_file::parse(text),
            Format::Toml(_) => toml_file::parse(text),
            Format::Yaml(_) => yaml::parse(text),
        }
        .map_err(|Syntax { line, reason }| ClientError::Syntax {
            path: path.to_owned(),
            line,
            reason,
        })
    }

    pub fn set(&self, text: &str, entry: &Value) -> Result<String, String> {
        match self.format {
            Format::Json(key) => json_file::set(text, key, entry),
            Format::Toml(key) => toml_file::set(text, key, entry),
            Format::Yaml(location) => yaml::set(text, location, entry),
        }
    }

    pub fn remove(&self, text: &str) -> Result<String, String> {
        match self.format {
            Format::Json(key) => json_file::remove(text, key),
            Format::Toml(key) => toml_file::remove(text, key),
            Format::Yaml(location) => yaml::remove(text, location),
        }
    }
}

pub fn id(name: ClientName) -> &'static str {
    match name {
        ClientName::ClaudeDesktop => "claude-desktop",
        ClientName::ClaudeCode => "claude-code",
        ClientName::Cursor => "cursor",
        ClientName::Vscode => "vscode",
        ClientName::Zed => "zed",
        ClientName::Codex => "codex",
        ClientName::Gemini => "gemini",
        ClientName::Continue => "continue",
        ClientName::Goose => "goose",
        ClientName::Lmstudio => "lmstudio",
        ClientName::Opencode => "opencode",
    }
}

/// Every client, in the order of the command line's list.
pub fn all() -> impl Iterator<Item = Client> {
    ClientName::value_variants().iter().map(|name| get(*name))
}

pub fn get(name: ClientName) -> Client {
    const JSON_SKELETON: &str = "{}\n";
    let client = |title, format, path, entry, skeleton| Client {
        name,
        title,
        format,
        path,
        entry,
        skeleton,
    };
    match name {
        ClientName::ClaudeDesktop => client(
            "Claude Desktop",
            Format::Json("mcpServers"),
            |env| env.config_home.join("Claude/claude_desktop_config.json"),
            command_args,
            JSON_SKELETON,
        ),
        // User-scope servers live in `~/.claude.json` (moved by `CLAUDE_CONFIG_DIR`), not in
        // `~/.claude/settings.json`; `claude mcp add --scope user` writes this same shape.
        ClientName::ClaudeCode => client(
            "Claude Code",
            Format::Json("mcpServers"),
            |env| {
                env.var("CLAUDE_CONFIG_DIR")
                    .unwrap_or_else(|| env.home.clone())
                    .join(".claude.json")
            },
            |launch| json!({"type": "stdio", "command": launch.command, "args": launch.args, "env": {}}),
            JSON_SKELETON,
        ),
        ClientName::Cursor => client(
            "Cursor",
            Format::Json("mcpServers"),
            |env| env.home.join(".cursor/mcp.json"),
            command_args,
            JSON_SKELETON,
        ),
        ClientName::Vscode => client(
            "VS Code",
            Format::Json("servers"),
            |env| env.config_home.join("Code/User/mcp.json"),
            |launch| json!({"type": "stdio", "command": launch.command, "args": launch.args}),
            JSON_SKELETON,
        ),
        // Current Zed reads `command`/`args`/`env`; `source: custom` is what releases of 2025
        // required, and later ones ignore it.
        ClientName::Zed => client(
            "Zed",
            Format::Json("context_servers"),
            |env| env.config_home.join("zed/settings.json"),
            |launch| json!({"source": "custom", "command": launch.command, "args": launch.args, "env": {}}),
            JSON_SKELETON,
        ),
        ClientName::Codex => client(
            "Codex",
            Format::Toml("mcp_servers"),
            |env| {
                env.var("CODEX_HOME")
                    .unwrap_or_else(|| env.home.join(".codex"))
                    .join("config.toml")
            },
            command_args,
            "",
        ),
        ClientName::Gemini => client(
            "Gemini CLI",
            Format::Json("mcpServers"),
            |env| env.home.join(".gemini/settings.json"),
            command_args,
            JSON_SKELETON,
        ),
        // A new `config.yaml` must carry the assistant's own name, version and schema.
        ClientName::Continue => client(
            "Continue",
            Format::Yaml(Location::NamedList("mcpServers")),
            |env| {
                env.var("CONTINUE_GLOBAL_DIR")
                    .unwrap_or_else(|| env.home.join(".continue"))
                    .join("config.yaml")
            },
            |launch| json!({"name": ENTRY_NAME, "command": launch.command, "args": launch.args}),
            "name: Local Assistant\nversion: 1.0.0\nschema: v1\n",
        ),
        // goose keys extensions by name and needs `type`, `name`, `cmd` and `args`.
        ClientName::Goose => client(
            "goose",
            Format::Yaml(Location::Map("extensions")),
            |env| env.config_home.join("goose/config.yaml"),
            |launch| {
                json!({
                    "enabled": true,
                    "type": "stdio",
                    "name": ENTRY_NAME,
                    "description": "MCP servers in containers, through mcp-gateway",
                    "cmd": launch.command,
                    "args": launch.args,
                    "timeout": 300,
                })
            },
            "",
        ),
        ClientName::Lmstudio => client(
            "LM Studio",
            Format::Json("mcpServers"),
            |env| env.home.join(".lmstudio/mcp.json"),
            command_args,
            JSON_SKELETON,
        ),
        // opencode reads `opencode.json` or `opencode.jsonc`; the one that exists is edited.
        ClientName::Opencode => client(
            "opencode",
            Format::Json("mcp"),
            |env| {
                let dir = env.config_home.join("opencode");
                let jsonc = dir.join("opencode.jsonc");
                let json = dir.join("opencode.json");
                if !json.exists() && jsonc.exists() {
                    jsonc
                } else {
                    json
                }
            },
            |launch| {
                let mut command = vec![launch.command.clone()];
                command.extend(launch.args.iter().cloned());
                json!({"type": "local", "command": command, "enabled": true})
            },
            JSON_SKELETON,
        ),
    }
}

/// The common shape: `{"command": …, "args": […]}`.
fn command_args(launch: &Launch) -> Value {
    json!({"command": launch.command, "args": launch.args})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_the_command_line_names() {
        for client in all() {
            let value = client.name.to_possible_value().unwrap();
            assert_eq!(client.id(), value.get_name());
        }
        assert_eq!(all().count(), 11);
    }

    #[test]
    fn every_skeleton_parses_and_every_entry_reads_back() {
        let launch = Launch::shim("/opt/bin/mcp-shim", "x", Some("work"));
        for client in all() {
            let doc = client
                .parse(Path::new("skeleton"), client.skeleton())
                .unwrap();
            assert_eq!(
                super::super::document::find(&doc, client.location()),
                Ok(None)
            );
            assert_eq!(Launch::of(&client.entry(&launch)), launch, "{client:?}");
        }
    }
}
