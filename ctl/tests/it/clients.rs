//! `mcpctl client`: each known client's real configuration format, with unrelated servers,
//! settings and comments around our entry, connected, connected again, and disconnected; broken
//! files refused untouched. Runs `mcpctl` copied next to a stand-in `mcp-shim`, in a private HOME.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{Value, json};
use yaml_rust2::{Yaml, YamlLoader};

#[derive(Clone, Copy, Debug)]
enum Format {
    Json,
    Toml,
    Yaml,
}

struct Case {
    client: &'static str,
    /// Under HOME.
    path: &'static str,
    format: Format,
    /// The key holding the servers.
    key: &'static str,
    /// Whether the servers are a list of named items rather than a map.
    list: bool,
    sample: &'static str,
}

const CASES: &[Case] = &[
    Case {
        client: "claude-desktop",
        path: ".config/Claude/claude_desktop_config.json",
        format: Format::Json,
        key: "mcpServers",
        list: false,
        sample: r#"{
  "mcpServers": {
    "filesystem": {
      "command": "npx",
      "args": ["-y", "@modelcontextprotocol/server-filesystem", "/home/me/Desktop"]
    }
  },
  "globalShortcut": "Ctrl+Space"
}
"#,
    },
    Case {
        client: "claude-code",
        path: ".claude.json",
        format: Format::Json,
        key: "mcpServers",
        list: false,
        sample: r#"{
  "numStartups": 12,
  "installMethod": "native",
  "projects": {
    "/home/me/project": {
      "allowedTools": [],
      "mcpServers": {"local-only": {"type": "stdio", "command": "x", "args": []}}
    }
  },
  "mcpServers": {
    "github": {"type": "http", "url": "https://api.githubcopilot.com/mcp/"}
  },
  "userID": "0123abcd"
}
"#,
    },
    Case {
        client: "cursor",
        path: ".cursor/mcp.json",
        format: Format::Json,
        key: "mcpServers",
        list: false,
        sample: "{\n\t\"mcpServers\": {\n\t\t\"context7\": {\n\t\t\t\"url\": \"https://mcp.context7.com/mcp\"\n\t\t}\n\t}\n}\n",
    },
    Case {
        client: "vscode",
        path: ".config/Code/User/mcp.json",
        format: Format::Json,
        key: "servers",
        list: false,
        sample: r#"{
	// Servers for Copilot's agent mode.
	"servers": {
		"fetch": {
			"type": "stdio",
			"command": "uvx",
			"args": ["mcp-server-fetch"]
		}
	},
	"inputs": []
}
"#,
    },
    Case {
        client: "zed",
        path: ".config/zed/settings.json",
        format: Format::Json,
        key: "context_servers",
        list: false,
        sample: r#"// Zed settings
//
// For information on how to configure Zed, see the Zed
// documentation: https://zed.dev/docs/configuring-zed
{
  "theme": {
    "mode": "system",
    "light": "One Light",
    "dark": "One Dark", // the one I use
  },
  "context_servers": {
    /* a server of my own */
    "mine": {
      "source": "custom",
      "command": "mine",
      "args": [],
    },
  },
  "vim_mode": true,
}
"#,
    },
    Case {
        client: "codex",
        path: ".codex/config.toml",
        format: Format::Toml,
        key: "mcp_servers",
        list: false,
        sample: r#"# Codex configuration
model = "o4-mini"  # the default model
approval_policy = "on-request"

[mcp_servers.docs]
command = "docs-mcp"
args = ["--port", "0"]
env = { "DOCS_ROOT" = "/srv/docs" }

# keep this one last
[profiles.fast]
model = "gpt-4.1-mini"
"#,
    },
    Case {
        client: "gemini",
        path: ".gemini/settings.json",
        format: Format::Json,
        key: "mcpServers",
        list: false,
        sample: r#"{
  "theme": "Default",
  "selectedAuthType": "oauth-personal",
  "mcpServers": {
    "pythonTools": {
      "command": "python",
      "args": ["-m", "my_mcp_server"],
      "cwd": "./mcp-servers/python",
      "timeout": 15000
    }
  }
}
"#,
    },
    Case {
        client: "continue",
        path: ".continue/config.yaml",
        format: Format::Yaml,
        key: "mcpServers",
        list: true,
        sample: "name: Local Assistant
version: 1.0.0
schema: v1
models:
  - name: Llama 3
    provider: ollama
    model: llama3
    roles:
      - chat
# the servers I use
mcpServers:
  - name: SQLite MCP
    command: npx
    args:
      - -y
      - mcp-sqlite
      - /home/me/db.sqlite
context:
  - provider: code
",
    },
    Case {
        client: "goose",
        path: ".config/goose/config.yaml",
        format: Format::Yaml,
        key: "extensions",
        list: false,
        sample: "GOOSE_PROVIDER: openai
extensions:
  developer:
    bundled: true
    display_name: Developer
    enabled: true
    name: developer
    timeout: 300
    type: builtin
  # my memory
  memory:
    enabled: false
    name: memory
    type: builtin
GOOSE_MODEL: gpt-4o
",
    },
    Case {
        client: "lmstudio",
        path: ".lmstudio/mcp.json",
        format: Format::Json,
        key: "mcpServers",
        list: false,
        sample: r#"{
  "mcpServers": {
    "hf-mcp-server": {
      "url": "https://huggingface.co/mcp",
      "headers": {"Authorization": "Bearer <token>"}
    }
  }
}
"#,
    },
    Case {
        client: "opencode",
        path: ".config/opencode/opencode.json",
        format: Format::Json,
        key: "mcp",
        list: false,
        sample: r#"{
  "$schema": "https://opencode.ai/config.json",
  "theme": "opencode",
  "mcp": {
    "local-thing": {"type": "local", "command": ["thing", "--stdio"], "enabled": false}
  }
}
"#,
    },
];

/// A private HOME, and `mcpctl` copied into a directory beside a stand-in `mcp-shim`.
struct Setup {
    dir: tempfile::TempDir,
    mcpctl: PathBuf,
    shim: PathBuf,
}

impl Setup {
    fn new() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::create_dir_all(dir.path().join("home")).unwrap();
        let mcpctl = bin.join("mcpctl");
        std::fs::copy(env!("CARGO_BIN_EXE_mcpctl"), &mcpctl).unwrap();
        let shim = bin.join("mcp-shim");
        write_executable(&shim);
        Setup { dir, mcpctl, shim }
    }

    fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    fn ctl(&self, args: &[&str]) -> Output {
        run(Command::new(&self.mcpctl)
            .args(args)
            .env_clear()
            .env("HOME", self.home())
            .env("PATH", "/usr/bin:/bin"))
    }

    fn ctl_ok(&self, args: &[&str]) -> String {
        let output = self.ctl(args);
        assert!(
            output.status.success(),
            "mcpctl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }
}

/// Runs the copied `mcpctl`. Another test thread that forks while this one is still writing its
/// copy holds the file open for writing until its child execs, and exec then fails with "text file
/// busy" for a moment; that is retried.
fn run(command: &mut Command) -> Output {
    for _ in 0..100 {
        match command.output() {
            Err(err) if err.kind() == std::io::ErrorKind::ExecutableFileBusy => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            result => return result.unwrap(),
        }
    }
    panic!("the copied mcpctl stayed busy");
}

fn write_executable(path: &Path) {
    std::fs::write(path, "#!/bin/sh\nexit 0\n").unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The document's meaning as JSON, through a parser of the format that mcpctl does not use for
/// YAML and JSON (serde's TOML reader is the same as mcpctl's).
fn meaning(format: Format, text: &str) -> Value {
    match format {
        Format::Json => jsonc_parser::parse_to_serde_value(text, &Default::default())
            .unwrap_or_else(|e| panic!("{e}:\n{text}")),
        Format::Toml => toml::from_str(text).unwrap_or_else(|e| panic!("{e}:\n{text}")),
        Format::Yaml => {
            let docs = YamlLoader::load_from_str(text).unwrap_or_else(|e| panic!("{e}:\n{text}"));
            yaml_json(&docs[0])
        }
    }
}

fn yaml_json(yaml: &Yaml) -> Value {
    match yaml {
        Yaml::Null => Value::Null,
        Yaml::Boolean(b) => json!(b),
        Yaml::Integer(i) => json!(i),
        Yaml::Real(r) => json!(r.parse::<f64>().unwrap()),
        Yaml::String(s) => json!(s),
        Yaml::Array(items) => Value::Array(items.iter().map(yaml_json).collect()),
        Yaml::Hash(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.as_str().unwrap().to_owned(), yaml_json(v)))
                .collect(),
        ),
        other => panic!("unexpected YAML {other:?}"),
    }
}

/// Our entry, and the document without it.
fn split_entry(case: &Case, mut doc: Value) -> (Option<Value>, Value) {
    let servers = &mut doc[case.key];
    let entry = if case.list {
        let list = servers.as_array_mut().unwrap();
        let index = list.iter().position(|s| s["name"] == "mcp-gateway");
        index.map(|i| list.remove(i))
    } else {
        servers.as_object_mut().unwrap().shift_remove("mcp-gateway")
    };
    (entry, doc)
}

/// The argv an entry launches, whatever the client's shape.
fn argv(entry: &Value) -> Vec<String> {
    let mut argv = Vec::new();
    match entry.get("command").or_else(|| entry.get("cmd")) {
        Some(Value::String(command)) => argv.push(command.clone()),
        Some(Value::Array(parts)) => argv.extend(parts.iter().map(|p| p.as_str().unwrap().into())),
        other => panic!("no command in {entry}: {other:?}"),
    }
    if let Some(args) = entry.get("args") {
        argv.extend(
            args.as_array()
                .unwrap()
                .iter()
                .map(|a| a.as_str().unwrap().into()),
        );
    }
    argv
}

fn keys(value: &Value) -> Vec<String> {
    value.as_object().unwrap().keys().cloned().collect()
}

#[test]
fn every_client_is_connected_again_and_disconnected_without_touching_the_rest() {
    let setup = Setup::new();
    for case in CASES {
        let path = setup.home().join(case.path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, case.sample).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let original = meaning(case.format, case.sample);

        setup.ctl_ok(&["client", "connect", case.client, "--profile", "work"]);
        let connected = read(&path);
        let (entry, rest) = split_entry(case, meaning(case.format, &connected));
        let entry = entry.unwrap_or_else(|| panic!("{}: no entry in\n{connected}", case.client));
        let shim = setup.shim.display().to_string();
        assert_eq!(
            argv(&entry),
            [&shim, "--client", case.client, "--profile", "work"],
            "{}",
            case.client
        );
        assert_eq!(rest, original, "{}: other settings changed", case.client);
        assert_eq!(keys(&rest), keys(&original), "{}: key order", case.client);
        if !case.list {
            assert_eq!(
                keys(&rest[case.key]),
                keys(&original[case.key]),
                "{}: server order",
                case.client
            );
        }
        let backup = PathBuf::from(format!("{}.mcp-gateway.bak", path.display()));
        assert_eq!(read(&backup), case.sample, "{}: backup", case.client);
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(
            (mode(&path), mode(&backup)),
            (0o640, 0o640),
            "{}",
            case.client
        );

        setup.ctl_ok(&["client", "connect", case.client, "--profile", "work"]);
        assert_eq!(read(&path), connected, "{}: second connect", case.client);

        setup.ctl_ok(&["client", "connect", case.client]);
        let active = meaning(case.format, &read(&path));
        let (entry, rest) = split_entry(case, active);
        assert_eq!(argv(&entry.unwrap()), [&shim, "--client", case.client]);
        assert_eq!(rest, original, "{}", case.client);
        assert_eq!(
            read(&backup),
            case.sample,
            "{}: the backup stays",
            case.client
        );

        let out = setup.ctl_ok(&["client", "disconnect", case.client]);
        assert!(out.contains("disconnected"), "{out}");
        assert_eq!(read(&path), case.sample, "{}: disconnect", case.client);
        let out = setup.ctl_ok(&["client", "disconnect", case.client]);
        assert!(out.contains("not connected"), "{out}");
    }
}

#[test]
fn a_missing_file_is_created_private_and_listed() {
    let setup = Setup::new();
    for case in CASES {
        setup.ctl_ok(&["client", "connect", case.client]);
        let path = setup.home().join(case.path);
        let (entry, _) = split_entry(case, meaning(case.format, &read(&path)));
        assert!(entry.is_some(), "{}", case.client);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", case.client);
        assert!(
            !PathBuf::from(format!("{}.mcp-gateway.bak", path.display())).exists(),
            "{}: nothing to back up",
            case.client
        );
    }
    setup.ctl_ok(&["client", "connect", "cursor", "--profile", "work"]);
    let list: Value = serde_json::from_str(&setup.ctl_ok(&["client", "ls", "--json"])).unwrap();
    let rows = list.as_array().unwrap();
    assert_eq!(rows.len(), CASES.len());
    for (row, case) in rows.iter().zip(CASES) {
        assert_eq!(row["client"], case.client);
        assert_eq!(
            row["path"],
            setup.home().join(case.path).display().to_string()
        );
        assert_eq!(row["exists"], true);
        assert_eq!(row["connected"], true);
        assert_eq!(row["command"], setup.shim.display().to_string());
        assert_eq!(row["error"], Value::Null);
        let profile = if case.client == "cursor" {
            json!("work")
        } else {
            Value::Null
        };
        assert_eq!(row["profile"], profile, "{}", case.client);
    }
    let text = setup.ctl_ok(&["client", "ls"]);
    assert!(
        text.lines()
            .any(|l| l.starts_with("cursor") && l.contains(" yes ") && l.contains("work")),
        "{text}"
    );
    for case in CASES {
        setup.ctl_ok(&["client", "disconnect", case.client]);
    }
    let list: Value = serde_json::from_str(&setup.ctl_ok(&["client", "ls", "--json"])).unwrap();
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .all(|r| r["connected"] == false),
        "{list}"
    );
}

#[test]
fn a_broken_file_is_reported_with_its_line_and_left_untouched() {
    let setup = Setup::new();
    let broken = |format| match format {
        Format::Json => {
            "{\n  \"mcpServers\": {\n    \"a\": {\"command\": \"x\"}\n    \"b\": 1\n}\n"
        }
        Format::Toml => "model = \"x\"\n[mcp_servers.a\ncommand = \"x\"\n",
        Format::Yaml => "name: x\nmcpServers:\n  - name: a\n   command: x\n",
    };
    for case in CASES {
        let path = setup.home().join(case.path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let text = broken(case.format);
        std::fs::write(&path, text).unwrap();
        for args in [
            &["client", "connect", case.client][..],
            &["client", "disconnect", case.client][..],
        ] {
            let output = setup.ctl(args);
            assert_eq!(output.status.code(), Some(1), "{}", case.client);
            let stderr = String::from_utf8_lossy(&output.stderr);
            let prefix = format!("mcpctl: {}:", path.display());
            assert!(stderr.starts_with(&prefix), "{}: {stderr}", case.client);
            let line = stderr[prefix.len()..].split(':').next().unwrap();
            assert!(
                line.parse::<usize>().is_ok(),
                "{}: no line in {stderr}",
                case.client
            );
            assert_eq!(read(&path), text, "{}", case.client);
        }
        assert!(!PathBuf::from(format!("{}.mcp-gateway.bak", path.display())).exists());
        let list: Value = serde_json::from_str(&setup.ctl_ok(&["client", "ls", "--json"])).unwrap();
        let row = list
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["client"] == case.client)
            .unwrap();
        assert!(row["error"].as_str().is_some(), "{row}");
        std::fs::remove_file(&path).unwrap();
    }
}

#[test]
fn a_file_of_another_shape_is_refused() {
    let setup = Setup::new();
    let path = setup.home().join(".cursor/mcp.json");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, "{\"mcpServers\": [\"not\", \"a\", \"map\"]}\n").unwrap();
    let output = setup.ctl(&["client", "connect", "cursor"]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("mcpServers is not a key-value object"),
        "{stderr}"
    );
    assert_eq!(read(&path), "{\"mcpServers\": [\"not\", \"a\", \"map\"]}\n");
}

#[test]
fn the_shim_is_found_beside_mcpctl_then_on_path() {
    let setup = Setup::new();
    std::fs::remove_file(&setup.shim).unwrap();
    let output = setup.ctl(&["client", "connect", "gemini"]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cannot find mcp-shim"), "{stderr}");
    assert!(!setup.home().join(".gemini/settings.json").exists());

    let elsewhere = setup.dir.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    write_executable(&elsewhere.join("mcp-shim"));
    let output = run(Command::new(&setup.mcpctl)
        .args(["client", "connect", "gemini"])
        .env_clear()
        .env("HOME", setup.home())
        .env("PATH", format!("/usr/bin:{}", elsewhere.display())));
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let doc = meaning(
        Format::Json,
        &read(&setup.home().join(".gemini/settings.json")),
    );
    assert_eq!(
        doc["mcpServers"]["mcp-gateway"]["command"],
        elsewhere.join("mcp-shim").display().to_string()
    );
}

#[test]
fn environment_variables_move_the_files() {
    let setup = Setup::new();
    let dir = setup.dir.path();
    let output = run(Command::new(&setup.mcpctl)
        .args(["client", "ls", "--json"])
        .env_clear()
        .env("HOME", setup.home())
        .env("XDG_CONFIG_HOME", dir.join("xdg"))
        .env("CLAUDE_CONFIG_DIR", dir.join("claude"))
        .env("CODEX_HOME", dir.join("codex"))
        .env("CONTINUE_GLOBAL_DIR", dir.join("continue")));
    let list: Value = serde_json::from_slice(&output.stdout).unwrap();
    let path = |client: &str| {
        let row = list
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["client"] == client)
            .unwrap();
        PathBuf::from(row["path"].as_str().unwrap())
    };
    assert_eq!(path("claude-code"), dir.join("claude/.claude.json"));
    assert_eq!(path("codex"), dir.join("codex/config.toml"));
    assert_eq!(path("continue"), dir.join("continue/config.yaml"));
    assert_eq!(path("zed"), dir.join("xdg/zed/settings.json"));
    assert_eq!(path("vscode"), dir.join("xdg/Code/User/mcp.json"));
    assert_eq!(
        path("claude-desktop"),
        dir.join("xdg/Claude/claude_desktop_config.json")
    );
    assert_eq!(path("goose"), dir.join("xdg/goose/config.yaml"));
    assert_eq!(path("opencode"), dir.join("xdg/opencode/opencode.json"));
    assert_eq!(path("cursor"), setup.home().join(".cursor/mcp.json"));
}
