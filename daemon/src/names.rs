//! The names a profile exposes for its servers' tools.
//!
//! A tool keeps its own name unless another server of the profile has a tool of the same name, or
//! the profile asks for prefixes; then it becomes `<server>__<tool>`. Every exposed name keeps to
//! `[A-Za-z0-9_.-]{1,128}` (the MCP naming guidance); a name that does not is shortened or cleaned
//! and given a stable hash suffix. The result depends only on the input order, so the same profile
//! always shows the same names.
//!
//! Resource URIs (and URI templates) stay as the server wrote them unless two servers of the
//! profile claim the same one; then every claimant's URI becomes `mcp-gateway://<server>/<uri>`,
//! which [`split_uri`] reverses, so a URI a client builds from a rewritten template still routes.

use std::collections::{HashMap, HashSet};

pub const SEPARATOR: &str = "__";
const MAX_NAME: usize = 128;

/// Exposed names for `(server, tool)` pairs, in the same order.
pub fn expose(entries: &[(&str, &str)], prefix_all: bool) -> Vec<String> {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for (_, tool) in entries {
        *counts.entry(tool).or_default() += 1;
    }
    let mut taken = HashSet::new();
    entries
        .iter()
        .map(|(server, tool)| {
            let wanted = if prefix_all || counts[tool] > 1 {
                format!("{server}{SEPARATOR}{tool}")
            } else {
                (*tool).to_owned()
            };
            let mut name = fit(&wanted);
            // Cleaning or prefixing can still collide (server "a" tool "b__c" and server "a__b"
            // tool "c"); the later one gets a suffix derived from its full identity.
            if !taken.insert(name.clone()) {
                name = with_suffix(&wanted, &format!("{server}\0{tool}"));
                taken.insert(name.clone());
            }
            name
        })
        .collect()
}

/// The scheme of rewritten resource URIs.
pub const URI_PREFIX: &str = "mcp-gateway://";

/// Exposed URIs for `(server, uri)` pairs, in the same order.
pub fn expose_uris(entries: &[(&str, &str)]) -> Vec<String> {
    let mut claimants: HashMap<&str, HashSet<&str>> = HashMap::new();
    for (server, uri) in entries {
        claimants.entry(uri).or_default().insert(server);
    }
    entries
        .iter()
        .map(|(server, uri)| {
            if claimants[uri].len() > 1 || uri.starts_with(URI_PREFIX) {
                format!("{URI_PREFIX}{server}/{uri}")
            } else {
                (*uri).to_owned()
            }
        })
        .collect()
}

/// The server and its own URI, for a URI in the rewritten form.
pub fn split_uri(exposed: &str) -> Option<(&str, &str)> {
    exposed.strip_prefix(URI_PREFIX)?.split_once('/')
}

fn is_valid(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

fn fit(name: &str) -> String {
    if is_valid(name) {
        name.to_owned()
    } else {
        with_suffix(name, name)
    }
}

/// `name` cleaned and cut to fit, followed by `-` and eight hex digits of a hash of `identity`.
fn with_suffix(name: &str, identity: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_.-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(MAX_NAME - 9)
        .collect();
    format!("{cleaned}-{:08x}", fnv1a(identity.as_bytes()))
}

/// FNV-1a: tiny, stable across releases and platforms (unlike `std`'s hasher), which keeps
/// exposed names stable too.
fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5_u32, |hash, &b| {
        (hash ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_colliding_names_get_prefixes() {
        let names = expose(
            &[
                ("alpha", "echo"),
                ("alpha", "alpha_info"),
                ("beta", "echo"),
                ("beta", "x"),
            ],
            false,
        );
        assert_eq!(names, ["alpha__echo", "alpha_info", "beta__echo", "x"]);
    }

    #[test]
    fn prefix_all_prefixes_everything() {
        assert_eq!(expose(&[("a", "x"), ("b", "y")], true), ["a__x", "b__y"]);
    }

    #[test]
    fn invalid_and_long_names_are_cleaned_stably_and_stay_unique() {
        let long = "t".repeat(200);
        let names = expose(&[("s", "has space"), ("s", &long), ("s", "ünï")], false);
        for name in &names {
            assert!(is_valid(name), "{name}");
        }
        assert!(names[0].starts_with("has_space-"));
        assert_eq!(names[1].len(), MAX_NAME);
        assert_eq!(
            names,
            expose(&[("s", "has space"), ("s", &long), ("s", "ünï")], false)
        );
    }

    #[test]
    fn only_shared_uris_are_rewritten_and_the_rewrite_reverses() {
        let uris = expose_uris(&[
            ("a", "file:///x"),
            ("a", "note://a/1"),
            ("b", "file:///x"),
            ("b", "tmpl://{id}"),
        ]);
        assert_eq!(
            uris,
            [
                "mcp-gateway://a/file:///x",
                "note://a/1",
                "mcp-gateway://b/file:///x",
                "tmpl://{id}"
            ]
        );
        assert_eq!(split_uri(&uris[2]), Some(("b", "file:///x")));
        assert_eq!(split_uri("file:///x"), None);
        // A server's own URI in the gateway's scheme is wrapped too, so it cannot be mistaken.
        assert_eq!(
            expose_uris(&[("a", "mcp-gateway://b/z")]),
            ["mcp-gateway://a/mcp-gateway://b/z"]
        );
    }

    #[test]
    fn names_that_collide_after_prefixing_are_separated() {
        let names = expose(&[("a", "b__c"), ("a__b", "c"), ("x", "c")], true);
        assert_eq!(names[0], "a__b__c");
        assert!(names[1].starts_with("a__b__c-"), "{}", names[1]);
        assert_eq!(names[2], "x__c");
    }
}
