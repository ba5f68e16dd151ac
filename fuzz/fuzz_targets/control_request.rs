//! The control protocol's requests, as the daemon parses each line from `mcpctl`, and the
//! responses `mcpctl` parses back: whatever parses survives being written and read again
//! unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcp_gateway_proto::{Request, Response, encode};

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = serde_json::from_slice::<Request>(data) {
        let again: Request =
            serde_json::from_str(&encode(&request)).expect("an encoded request parses");
        assert_eq!(request, again);
    }
    if let Ok(response) = serde_json::from_slice::<Response>(data) {
        let again: Response =
            serde_json::from_str(&encode(&response)).expect("an encoded response parses");
        assert_eq!(response, again);
    }
});
