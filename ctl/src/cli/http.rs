//! `mcpctl http`: the daemon's optional Streamable HTTP face.

use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum HttpCommand {
    /// Serve MCP over Streamable HTTP at http://ADDR/mcp, with a bearer token; kept in
    /// config.toml, so the daemon listens again whenever it starts
    Enable {
        /// IP:PORT to listen on; a loopback address unless --force
        #[arg(long, value_name = "ADDR")]
        listen: String,
        /// Accept a non-loopback address: anyone who can reach it may try the token
        #[arg(long)]
        force: bool,
        /// The profile HTTP clients get [default: the active one]
        #[arg(long)]
        profile: Option<String>,
    },
    /// Stop serving HTTP and remove the [http] settings
    Disable,
    /// Print the bearer token HTTP clients send (Authorization: Bearer TOKEN)
    Token {
        /// Replace the token first; the old one is refused from then on
        #[arg(long)]
        rotate: bool,
    },
    /// Show whether and where the HTTP face listens
    Status,
}
