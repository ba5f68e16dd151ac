//! End-to-end tests: the real `mcp-gatewayd`, `mcpctl` and `mcp-shim`, a real container engine
//! running the fixture MCP server, and the official Python SDK as the client.

mod admin;
mod cache;
mod crash;
mod docker;
mod fidelity;
mod hostile;
mod http;
mod images;
mod isolation;
mod leaks;
mod lifecycle;
mod modern;
mod modern_requests;
mod modern_servers;
mod modern_subscriptions;
mod ops;
mod podman;
mod pool;
mod process;
mod remote;
mod secrets;
mod security;
mod stdio;
mod wire;
