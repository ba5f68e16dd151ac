//! The control protocol spoken on the daemon's Unix socket, shared by `mcp-gatewayd`, `mcpctl` and
//! `mcp-shim`. This crate is the only place that defines types crossing that socket.
//!
//! # Wire format
//!
//! Newline-delimited JSON, one message per line, every reader capped at a maximum line length.
//! A connection opens with one [`Hello`] line from the client, answered by one [`HelloReply`] line.
//! The hello's [`Role`] decides what follows:
//!
//! - [`Role::Mcp`]: the connection becomes a raw MCP stdio stream (JSON-RPC, one message per line)
//!   for the profile named in the hello, or the active profile when none is named; or, when the
//!   hello offers them and the daemon takes them, the client's own stdin and stdout are sent over
//!   and carry the session instead (see [`send_stdio`]).
//! - [`Role::Control`]: the client sends [`Request`] lines and reads one [`Response`] line for each.
//!
//! Compatibility: [`PROTOCOL_VERSION`] changes only for incompatible changes; new optional fields
//! carry `#[serde(default)]` so older peers' messages still parse.

mod client;
mod control;
mod framing;
mod handover;
mod http;
mod paths;

pub use client::{ConnectError, Connection, connect};
pub use control::{
    CallRecord, CatalogEntry, ContainerInfo, ContainerState, ErrorKind, Isolation, LogLine,
    MountSpec, Network, ProfileInfo, PullInfo, Request, Response, RunInfo, SecretInfo,
    SecretSource, SecretValue, ServerDetail, ServerInfo, ServerKind, StatusInfo, ToolInfo,
    validate_secret_name,
};
pub use control::{Check, CheckStatus, ServerCounts};
pub use framing::{LineError, MAX_CONTROL_LINE, MAX_MCP_LINE, decode, encode};
pub use handover::{StdioKind, receive_stdio, send_stdio, stdio_kind};
pub use http::HttpInfo;
pub use paths::{SOCKET_ENV, default_socket_path};

use serde::{Deserialize, Serialize};

/// The version of this protocol; a daemon refuses a hello that names another one.
pub const PROTOCOL_VERSION: u32 = 1;

/// What a client wants from its connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// An MCP session: after the hello, raw MCP JSON-RPC lines in both directions.
    Mcp,
    /// Administration: [`Request`]/[`Response`] lines.
    Control,
}

/// The first line a client sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename = "hello")]
pub struct Hello {
    pub proto: u32,
    pub role: Role,
    /// The client program and version, e.g. `mcp-shim/0.1.0`; for logs and the audit trail.
    pub client: String,
    /// The profile an MCP session serves; `None` means the active profile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// The AI client behind the shim (e.g. `claude-code`), when the user named it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_name: Option<String>,
    /// An MCP session's client offers its stdin and stdout, to be sent once the daemon accepts
    /// (see `handover`); otherwise the session's bytes come and go on this connection.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub hand_over_stdio: bool,
}

impl Hello {
    pub fn new(role: Role, client: impl Into<String>) -> Hello {
        Hello {
            proto: PROTOCOL_VERSION,
            role,
            client: client.into(),
            profile: None,
            client_name: None,
            hand_over_stdio: false,
        }
    }
}

/// The daemon's answer to a [`Hello`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum HelloReply {
    /// The connection is accepted; `profile` is the profile an MCP session was bound to.
    Hello {
        proto: u32,
        server: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        profile: Option<String>,
        /// The daemon takes the stdin and stdout the hello offered: the client sends them next.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        take_stdio: bool,
    },
    /// The connection is refused; the daemon closes it after this line.
    Error { kind: ErrorKind, message: String },
}
