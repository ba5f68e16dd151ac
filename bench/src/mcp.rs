//! The MCP a benchmark client speaks, as raw JSON-RPC lines: the legacy handshake, `tools/list`
//! and `tools/call`. Both paths (gateway and direct) send exactly these bytes and check answers
//! the same way, so neither pays for work the other skips.

use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, bail};
use serde::Deserialize;
use serde_json::json;
use serde_json::value::RawValue;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// The text the `echo` tool is asked to return: a short, typical argument.
pub const ECHO_TEXT: &str = "the quick brown fox jumps over the lazy dog";

/// A request id never used before in this run (0 is the handshake's), so that no two requests of a
/// session, or of the clients sharing one attach stream, carry the same id.
pub fn next_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

pub fn initialize(id: u64) -> String {
    line(json!({
        "jsonrpc": "2.0",
        "id": id,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "mcp-gateway-bench", "version": env!("CARGO_PKG_VERSION")},
        },
    }))
}

pub fn initialized() -> String {
    line(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
}

pub fn list_tools(id: u64) -> String {
    line(json!({"jsonrpc": "2.0", "id": id, "method": "tools/list"}))
}

pub fn ping(id: u64) -> String {
    line(json!({"jsonrpc": "2.0", "id": id, "method": "ping"}))
}

pub fn call(id: u64, tool: &str, arguments: serde_json::Value) -> String {
    line(json!({
        "jsonrpc": "2.0",
        "id": id,
        "method": "tools/call",
        "params": {"name": tool, "arguments": arguments},
    }))
}

pub fn echo(id: u64) -> String {
    call(id, "echo", json!({"text": ECHO_TEXT}))
}

fn line(value: serde_json::Value) -> String {
    let mut line = value.to_string();
    line.push('\n');
    line
}

/// The parts of a response the benchmark looks at; everything else is skipped unparsed.
#[derive(Deserialize)]
pub struct Reply<'a> {
    #[serde(default)]
    pub id: Option<u64>,
    #[serde(borrow, default)]
    pub result: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub error: Option<&'a RawValue>,
}

impl<'a> Reply<'a> {
    /// A successful response to some request.
    pub fn success(line: &'a str) -> anyhow::Result<Reply<'a>> {
        let reply: Reply = serde_json::from_str(line)
            .with_context(|| format!("not a JSON-RPC response: {line}"))?;
        if let Some(error) = reply.error {
            bail!("request {:?} failed: {}", reply.id, error.get());
        }
        if reply.id.is_none() || reply.result.is_none() {
            bail!("not a response to a benchmark request: {line}");
        }
        Ok(reply)
    }

    /// The successful response to request `id`.
    pub fn expect(line: &'a str, id: u64) -> anyhow::Result<Reply<'a>> {
        let reply = Reply::success(line)?;
        if reply.id != Some(id) {
            bail!("expected the response to request {id}, got {line}");
        }
        Ok(reply)
    }

    /// The names in a `tools/list` result.
    pub fn tool_names(&self) -> anyhow::Result<Vec<String>> {
        #[derive(Deserialize)]
        struct Tools {
            tools: Vec<Named>,
        }
        #[derive(Deserialize)]
        struct Named {
            name: String,
        }
        let result = self.result.context("no result")?;
        let tools: Tools = serde_json::from_str(result.get())
            .with_context(|| format!("not a tools/list result: {}", result.get()))?;
        Ok(tools.tools.into_iter().map(|t| t.name).collect())
    }
}

/// An MCP client over a pair of byte streams: a child process's stdio or an attach stream.
pub struct LineClient<W, R> {
    writer: W,
    reader: R,
    line: String,
}

impl<W: AsyncWrite + Unpin, R: AsyncBufRead + Unpin> LineClient<W, R> {
    pub fn new(writer: W, reader: R) -> Self {
        LineClient {
            writer,
            reader,
            line: String::new(),
        }
    }

    pub async fn send(&mut self, line: &str) -> anyhow::Result<()> {
        self.writer
            .write_all(line.as_bytes())
            .await
            .context("the server's input is closed")?;
        self.writer
            .flush()
            .await
            .context("the server's input is closed")
    }

    /// The next line the server prints.
    pub async fn receive(&mut self) -> anyhow::Result<&str> {
        self.line.clear();
        let read = self
            .reader
            .read_line(&mut self.line)
            .await
            .context("reading the server's output")?;
        if read == 0 {
            bail!("the server ended its output");
        }
        Ok(self.line.trim_end())
    }

    /// Sends request `id` and returns its (successful) response line.
    pub async fn request(&mut self, line: &str, id: u64) -> anyhow::Result<&str> {
        self.send(line).await?;
        let answer = self.receive().await?;
        Reply::expect(answer, id)?;
        Ok(answer)
    }

    /// `initialize` (request 0) and `notifications/initialized`.
    pub async fn handshake(&mut self) -> anyhow::Result<()> {
        self.request(&initialize(0), 0).await?;
        self.send(&initialized()).await
    }

    /// The tool names from `tools/list` as request `id`.
    pub async fn tool_names(&mut self, id: u64) -> anyhow::Result<Vec<String>> {
        let answer = self.request(&list_tools(id), id).await?;
        Reply::expect(answer, id)?.tool_names()
    }
}

/// A client process (`mcp-shim`, or `docker run -i`) and the MCP client over its stdio.
pub struct ProcessClient {
    pub child: Child,
    pub io: LineClient<ChildStdin, BufReader<ChildStdout>>,
}

impl ProcessClient {
    /// Starts `command` with piped stdin and stdout; stderr is inherited so failures show.
    pub fn spawn(mut command: Command) -> anyhow::Result<ProcessClient> {
        let program = format!("{:?}", command.as_std().get_program());
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {program}"))?;
        let stdin = child.stdin.take().context("no stdin pipe")?;
        let stdout = BufReader::new(child.stdout.take().context("no stdout pipe")?);
        Ok(ProcessClient {
            child,
            io: LineClient::new(stdin, stdout),
        })
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// SIGKILLs the process and reaps it.
    pub async fn kill(mut self) -> anyhow::Result<()> {
        self.child.kill().await.context("killing a client process")
    }

    /// Closes the process's input and waits for it to exit on its own.
    pub async fn close(self) -> anyhow::Result<()> {
        let ProcessClient { mut child, io } = self;
        // Closing the input is how a stdio client says it is done.
        drop(io);
        child.wait().await.context("waiting for a client process")?;
        Ok(())
    }
}
