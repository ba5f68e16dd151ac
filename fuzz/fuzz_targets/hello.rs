//! The hello line, the first thing any local process sends the daemon, and the daemon's answer:
//! whatever parses survives being written and read again unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcp_gateway_proto::{Hello, HelloReply, encode};

fuzz_target!(|data: &[u8]| {
    if let Ok(hello) = serde_json::from_slice::<Hello>(data) {
        let again: Hello = serde_json::from_str(&encode(&hello)).expect("an encoded hello parses");
        assert_eq!(hello, again);
    }
    if let Ok(reply) = serde_json::from_slice::<HelloReply>(data) {
        let again: HelloReply =
            serde_json::from_str(&encode(&reply)).expect("an encoded hello reply parses");
        assert_eq!(reply, again);
    }
});
