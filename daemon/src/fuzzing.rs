//! What the fuzz targets in `fuzz/` reach: the daemon's parsers and rewriters of untrusted bytes,
//! re-exported as they are. Not an API; nothing else may use it.

pub use crate::jsonrpc::{Kind, Message, response_line};
pub use crate::lines::{Line, LineCodec, sniff_id};
pub use crate::modern::{describe, for_legacy_server, tagged};
pub use crate::names::{URI_PREFIX, expose, expose_uris, split_uri};
