//! The daemon's MCP line framing (`daemon/src/lines.rs`): any bytes, cut into chunks of any size,
//! give the same lines as in one piece; a text line is never longer than the limit nor holds a
//! newline; a rejected line keeps at most 4 KiB of its head, and `sniff_id` takes any head.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use mcp_gatewayd::fuzzing::{Line, LineCodec, sniff_id};
use tokio_util::codec::Decoder;

/// A small limit, so that overlong lines are common.
const MAX: usize = 64;
const HEAD: usize = 4096;

fn decode<'a>(chunks: impl Iterator<Item = &'a [u8]>) -> Vec<Line> {
    let mut codec = LineCodec::new(MAX);
    let mut buf = BytesMut::new();
    let mut lines = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        while let Some(line) = codec.decode(&mut buf).expect("decoding never fails") {
            lines.push(line);
        }
    }
    while let Some(line) = codec.decode_eof(&mut buf).expect("decoding never fails") {
        lines.push(line);
    }
    lines
}

fuzz_target!(|data: &[u8]| {
    let Some((&size, input)) = data.split_first() else {
        return;
    };
    let whole = decode(std::iter::once(input));
    let pieces = decode(input.chunks(usize::from(size % 16) + 1));
    assert_eq!(whole, pieces, "the lines depend on how the bytes arrived");
    for line in &whole {
        match line {
            Line::Text(text) => {
                assert!(text.len() <= MAX, "a text line over the limit");
                assert!(!text.contains('\n'), "a text line with a newline");
            }
            Line::Rejected { head, .. } => {
                assert!(
                    head.len() <= HEAD,
                    "a rejected line kept {} bytes",
                    head.len()
                );
                let _ = sniff_id(head);
            }
        }
    }
});
