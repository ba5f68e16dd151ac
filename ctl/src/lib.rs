//! `mcpctl`'s command line as a library, so that packaging renders the man pages and shell
//! completions from the same definition that parses the flags. Everything else lives in the
//! binary.

pub mod cli;
