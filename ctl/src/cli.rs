//! The command line of `mcpctl`. Spellings here are a contract: scripts and documentation use them.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use mcp_gateway_proto::SOCKET_ENV;

mod http;
pub use http::HttpCommand;

/// Manage mcp-gateway: servers, profiles, tools and the daemon.
#[derive(Debug, Parser)]
#[command(name = "mcpctl", version)]
pub struct Cli {
    /// The daemon's socket [default: $XDG_RUNTIME_DIR/mcp-gateway.sock]
    #[arg(long, global = true, env = SOCKET_ENV, value_name = "PATH")]
    pub socket: Option<PathBuf>,

    /// Print machine-readable JSON instead of text
    #[arg(long, global = true)]
    pub json: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show the daemon's state: engine, socket, systemd units, active profile, servers and
    /// their containers, configuration files not in force
    Status,
    /// Manage the catalog of MCP servers
    #[command(subcommand)]
    Server(ServerCommand),
    /// Manage profiles (named sets of servers)
    #[command(subcommand)]
    Profile(ProfileCommand),
    /// List and call the tools a profile exposes
    #[command(subcommand)]
    Tools(ToolsCommand),
    /// Show the audit log: calls through the gateway, oldest first
    Calls {
        /// Keep printing calls as they happen, until interrupted
        #[arg(short, long)]
        follow: bool,
        /// Only calls to this server
        #[arg(long, value_name = "SERVER")]
        server: Option<String>,
        /// How many of the latest calls to show first
        #[arg(long, default_value_t = 50, value_name = "N")]
        limit: usize,
    },
    /// Connect AI clients to mcp-gateway by editing their configuration files
    #[command(subcommand)]
    Client(ClientCommand),
    /// Manage the secrets servers receive as environment variables
    #[command(subcommand)]
    Secret(SecretCommand),
    /// Browse the catalog (yours merged over the built-in one) and import Docker catalogs
    #[command(subcommand)]
    Catalog(CatalogCommand),
    /// Re-read the configuration files; a broken one is reported and nothing changes
    Reload,
    /// Check the setup (runtime directory, daemon socket, engine, systemd units, configuration
    /// files, images of the active profile, secrets of the profiles, connected clients), each
    /// problem with its fix; works without a running daemon. Exits 1 when a check fails
    Doctor,
    /// Serve MCP over Streamable HTTP on a loopback port, with a bearer token
    #[command(subcommand)]
    Http(HttpCommand),
}

#[derive(Debug, Subcommand)]
pub enum CatalogCommand {
    /// List the servers of your catalog and of the built-in one
    Ls,
    /// Show one server of either catalog
    Show { name: String },
    /// Add the servers of a Docker MCP catalog file (its `registry:` map), saying per server
    /// what was imported and what was left out
    Import { file: PathBuf },
}

#[derive(Debug, Subcommand)]
pub enum ServerCommand {
    /// Add a server to the catalog, or replace one with the same name
    Add(Box<ServerAdd>),
    /// List the servers in the catalog and where they run
    Ls,
    /// Remove a server from the catalog and stop its containers
    Rm {
        name: String,
        /// Also remove it from the profiles that name it
        #[arg(long)]
        force: bool,
    },
    /// Show a server: definition, settings in force, profiles and containers
    Inspect { name: String },
    /// Print the server's last stderr lines (200 per profile at most)
    Logs {
        name: String,
        /// Keep printing new lines until interrupted
        #[arg(short, long)]
        follow: bool,
    },
    /// Stop the server's containers; the next request that needs it starts it again
    Restart { name: String },
    /// Pull the server's image again, printing progress; running containers keep theirs until
    /// restarted
    Pull { name: String },
}

/// `mcpctl server add`: what the server runs and the limits it runs with.
#[derive(Debug, Args)]
pub struct ServerAdd {
    pub name: String,
    /// The container image that runs the server [default: the built-in catalog's entry of
    /// NAME, see mcpctl catalog ls]
    #[arg(long, conflicts_with = "url")]
    pub image: Option<String>,
    /// A remote server's Streamable HTTP URL (http or https), instead of a container
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// An HTTP header for a remote server (repeat for more); `${NAME}` in the value is the
    /// secret NAME, which --secret must name, filled in when the server is connected
    #[arg(long = "header", value_name = "K=V", requires = "url")]
    pub headers: Vec<String>,
    /// One argument of the container's command (repeat for more)
    #[arg(long = "command", value_name = "ARG", allow_hyphen_values = true)]
    pub command: Vec<String>,
    /// An environment variable for the server (repeat for more)
    #[arg(long = "env", value_name = "K=V")]
    pub env: Vec<String>,
    /// A secret the server receives as the environment variable of the same name (repeat
    /// for more); set its value with `mcpctl secret set NAME`
    #[arg(long = "secret", value_name = "NAME")]
    pub secrets: Vec<String>,
    /// Memory limit, as in 512m or 1g [default: config.toml's, else 512m]
    #[arg(long, value_name = "SIZE")]
    pub memory: Option<String>,
    /// CPU limit in CPUs, as in 0.5 [default: config.toml's, else 1]
    #[arg(long, value_name = "N")]
    pub cpus: Option<f64>,
    /// Process limit [default: config.toml's, else 256]
    #[arg(long, value_name = "N")]
    pub pids: Option<u32>,
    /// Give the server a network: the engine's default one, or NAME (`none`: no network,
    /// which is the default without this flag)
    #[arg(long, value_name = "NAME", num_args = 0..=1, default_missing_value = "default")]
    pub network: Option<String>,
    /// Bind-mount a host path, read-only unless `:rw` follows (repeat for more)
    #[arg(long = "mount", value_name = "SRC:DST[:rw]")]
    pub mounts: Vec<String>,
    /// Seconds without a request before the container is removed; 0 keeps it
    /// [default: config.toml's, else 1800]
    #[arg(long, value_name = "SECONDS")]
    pub idle_timeout: Option<u64>,
    /// Who shares a container of the server: every session of a profile (`shared`), each
    /// client session its own, removed when it ends (`session`), or none, each tool call
    /// running in a fresh one removed when the call ends (`call`) [default: shared]
    #[arg(long, value_enum, value_name = "MODE")]
    pub isolation: Option<IsolationArg>,
    /// Run the program after `--` as a local process instead of a container; it runs only
    /// once config.toml has `enabled = true` in its [process] table
    #[arg(long, requires = "program", conflicts_with = "image")]
    pub process: bool,
    /// The working directory of a process server [default: the daemon's]
    #[arg(long, value_name = "DIR", requires = "process")]
    pub cwd: Option<String>,
    /// With --process: the program and its arguments
    #[arg(last = true, value_name = "PROGRAM", requires = "process")]
    pub program: Vec<String>,
}

/// `--isolation`: see `isolation` in the catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum IsolationArg {
    Shared,
    Session,
    Call,
}

#[derive(Debug, Subcommand)]
pub enum ProfileCommand {
    /// Create a profile
    Create {
        name: String,
        /// A server of the profile (repeat for more)
        #[arg(long = "server", value_name = "S")]
        servers: Vec<String>,
    },
    /// Make a profile the active one (served to clients that name none)
    Use { name: String },
    /// List profiles
    Ls,
    /// Show one profile
    Show { name: String },
    /// Delete a profile (not the active one)
    Rm { name: String },
    /// Add servers to a profile
    Add {
        profile: String,
        #[arg(required = true, value_name = "SERVER")]
        servers: Vec<String>,
    },
    /// Take servers out of a profile, with their tool rules and configuration values
    Remove {
        profile: String,
        #[arg(required = true, value_name = "SERVER")]
        servers: Vec<String>,
    },
    /// Prefix every tool name with its server's name (on) or only colliding ones (off)
    Prefix { profile: String, state: OnOff },
    /// Set values the profile gives a server, as environment variables of its container
    Config {
        profile: String,
        #[arg(value_name = "SERVER.KEY=VALUE")]
        values: Vec<String>,
        /// Remove a value (repeat for more)
        #[arg(long, value_name = "SERVER.KEY")]
        unset: Vec<String>,
    },
    /// Set which tools the profile shows and lets clients call; no --allow shows every tool
    Tools {
        name: String,
        /// `server.tool` or `server.*` (repeat for more)
        #[arg(long = "allow", value_name = "SERVER.TOOL")]
        allow: Vec<String>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnOff {
    On,
    Off,
}

#[derive(Debug, Subcommand)]
pub enum ToolsCommand {
    /// List the tools of a profile
    Ls(ProfileArg),
    /// Call a tool: KEY=VALUE takes VALUE as JSON when it parses as a number, boolean, null,
    /// array or object and as a string otherwise; KEY:=JSON always takes JSON
    Call {
        /// The tool's name as the profile exposes it
        name: String,
        #[arg(value_name = "KEY=VALUE")]
        arguments: Vec<String>,
        #[command(flatten)]
        profile: ProfileArg,
    },
}

#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Show each known client: its configuration file, and whether and how mcp-gateway is in it
    Ls,
    /// Add mcp-gateway (an `mcp-shim` entry) to a client's configuration file
    Connect {
        client: ClientName,
        /// The profile the client is served [default: the active one, at each start]
        #[arg(long)]
        profile: Option<String>,
    },
    /// Remove mcp-gateway from a client's configuration file, leaving everything else
    Disconnect { client: ClientName },
}

/// The AI clients `mcpctl client` knows how to configure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ClientName {
    ClaudeDesktop,
    ClaudeCode,
    Cursor,
    Vscode,
    Zed,
    Codex,
    Gemini,
    Continue,
    Goose,
    Lmstudio,
    Opencode,
}

#[derive(Debug, Subcommand)]
pub enum SecretCommand {
    /// Store a secret; the value is read from standard input (one line from a terminal, without
    /// echo), never from the command line
    Set { name: String },
    /// List secrets by name, with where each comes from; never their values
    Ls,
    /// Remove a secret from the store
    Rm { name: String },
}

#[derive(Debug, Args)]
pub struct ProfileArg {
    /// The profile [default: the active one]
    #[arg(long)]
    pub profile: Option<String>,
}
