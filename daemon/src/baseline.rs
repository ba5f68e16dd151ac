//! What the benchmark's direct path (`bench/`) reaches: the daemon's own attach stream, so that
//! the baseline a warm call is measured against reads and writes a container's stdio with the
//! very code the gateway does, and the figures show the gateway's added cost and nothing else.
//! Not an API; nothing else may use it.

pub use crate::docker::attach::{Address, attach};
pub use crate::logtail::LogTail;
