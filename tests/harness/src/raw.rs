//! A raw MCP client: JSON lines written to and read from a real `mcp-shim`, for the wire-level
//! cases a typed SDK hides (ids, progress tokens, batches, unknown fields, cancellation timing).

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::Daemon;

/// How long [`RawClient::expect`] waits by default.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

pub struct RawClient {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<Value>,
    /// Messages read while waiting for another one, in arrival order.
    pub seen: Vec<Value>,
}

impl RawClient {
    pub(crate) fn start(daemon: &Daemon, shim_args: &[&str]) -> RawClient {
        let mut child = daemon.shim(shim_args);
        let stdout = child.stdout.take().expect("shim stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let value = serde_json::from_str(&line).unwrap_or_else(|err| {
                    panic!("the shim wrote a line that is not JSON ({err}): {line}")
                });
                if tx.send(value).is_err() {
                    break;
                }
            }
        });
        RawClient {
            stdin: child.stdin.take(),
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Writes one line (a newline is added).
    pub fn send_line(&mut self, line: &str) {
        self.send_bytes(line.as_bytes());
    }

    /// Writes one line of any bytes, UTF-8 or not (a newline is added).
    pub fn send_bytes(&mut self, line: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin still open");
        stdin.write_all(line).expect("write to the shim");
        stdin.write_all(b"\n").expect("write to the shim");
        stdin.flush().expect("flush the shim's stdin");
    }

    pub fn send(&mut self, message: &Value) {
        self.send_line(&message.to_string());
    }

    pub fn request(&mut self, id: Value, method: &str, params: Value) {
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
    }

    pub fn notify(&mut self, method: &str, params: Value) {
        self.send(&json!({"jsonrpc": "2.0", "method": method, "params": params}));
    }

    /// The next message matching `wanted`, within `limit`; others are kept in [`RawClient::seen`].
    pub fn wait(&mut self, limit: Duration, wanted: impl Fn(&Value) -> bool) -> Option<Value> {
        if let Some(at) = self.seen.iter().position(&wanted) {
            return Some(self.seen.remove(at));
        }
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(message) if wanted(&message) => return Some(message),
                Ok(message) => self.seen.push(message),
                Err(_) => return None,
            }
        }
    }

    /// The response to request `id`, failing the test if none comes.
    pub fn response(&mut self, id: &Value) -> Value {
        self.wait(ANSWER_TIMEOUT, |m| {
            &m["id"] == id && m.get("method").is_none()
        })
        .unwrap_or_else(|| panic!("no response to {id}; seen: {:?}", self.seen))
    }

    /// The legacy handshake with `capabilities`, at protocol `version`; returns the result.
    pub fn initialize(&mut self, version: &str, capabilities: Value) -> Value {
        let id = json!("init");
        self.request(
            id.clone(),
            "initialize",
            json!({"protocolVersion": version, "capabilities": capabilities,
                   "clientInfo": {"name": "raw-test", "version": "0"}}),
        );
        let answer = self.response(&id);
        self.notify("notifications/initialized", json!({}));
        answer["result"].clone()
    }

    /// The shim's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Closes the client's input and waits for the shim to exit.
    pub fn close(mut self) -> std::process::ExitStatus {
        self.stdin.take();
        self.child.wait().expect("wait for the shim")
    }
}

impl Drop for RawClient {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
