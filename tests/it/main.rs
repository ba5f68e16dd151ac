//! End-to-end tests: the real `mcp-gatewayd`, `mcpctl` and `mcp-shim`, a real container engine
//! running the fixture MCP server, and the official Python SDK as the client.

mod admin;
mod docker;
mod fidelity;
mod hostile;
mod lifecycle;
mod modern;
mod pool;
mod secrets;
mod security;
mod wire;
