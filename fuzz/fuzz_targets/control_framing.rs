//! The control socket's framing (`proto/src/framing.rs`), as `mcpctl` and `mcp-shim` read the
//! daemon: the same bytes give the same messages and errors whatever the reader's buffer size,
//! and a line over the limit is an error, never a longer read.
#![no_main]

use std::io::BufReader;

use libfuzzer_sys::fuzz_target;
use mcp_gateway_proto::{LineError, decode};
use serde_json::Value;

const MAX: usize = 64;

fn read_all(data: &[u8], capacity: usize) -> Vec<Result<Value, String>> {
    let mut reader = BufReader::with_capacity(capacity, data);
    let mut messages = Vec::new();
    loop {
        match decode::<Value>(&mut reader, MAX) {
            Ok(Some(message)) => messages.push(Ok(message)),
            Ok(None) => return messages,
            // A reader stops at its first error: the stream is no longer framed.
            Err(LineError::TooLong { max }) => {
                assert_eq!(max, MAX);
                messages.push(Err("too long".to_owned()));
                return messages;
            }
            Err(err) => {
                messages.push(Err(err.to_string()));
                return messages;
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&size, input)) = data.split_first() else {
        return;
    };
    let large = read_all(input, 8192);
    let small = read_all(input, usize::from(size % 16) + 1);
    assert_eq!(large, small, "the messages depend on the reader's buffer");
});
