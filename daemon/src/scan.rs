//! Secret scanning of what crosses a tool call: the arguments a client sends and the text a server
//! answers with.
//!
//! A profile either blocks a call that carries a secret (the default: the client gets an error
//! naming the rule, never the secret) or redacts it, replacing each match with `[REDACTED:rule]`.
//! The rules are compiled once per process; the literal values of the gateway's own stored
//! secrets are matched beside them.

use std::sync::{LazyLock, RwLock};

use regex::{Regex, RegexSet};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What a profile does with a call that carries a secret.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScanMode {
    #[default]
    Block,
    Redact,
}

/// Each rule: a name for people and the audit log, and the pattern.
const RULES: &[(&str, &str)] = &[
    ("aws-access-key-id", r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    (
        "aws-secret-access-key",
        r#"(?i)aws_?secret_?access_?key["']?\s*[:=]\s*["']?[A-Za-z0-9/+=]{40}"#,
    ),
    ("github-token", r"\bgh[pousr]_[A-Za-z0-9]{36,255}\b"),
    (
        "github-fine-grained-token",
        r"\bgithub_pat_[A-Za-z0-9_]{82}\b",
    ),
    ("gitlab-token", r"\bglpat-[A-Za-z0-9_-]{20,}"),
    ("slack-token", r"\bxox[abposr]-[A-Za-z0-9-]{10,}"),
    (
        "slack-webhook",
        r"https://hooks\.slack\.com/services/T[A-Za-z0-9_]+/B[A-Za-z0-9_]+/[A-Za-z0-9_]+",
    ),
    (
        "stripe-key",
        r"\b(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{24,}\b",
    ),
    (
        "google-service-account",
        r#""type"\s*:\s*"service_account"|"private_key_id"\s*:\s*"[0-9a-f]{40}""#,
    ),
    (
        "private-key",
        r"-----BEGIN (?:RSA |EC |DSA |OPENSSH |ENCRYPTED |PGP )?PRIVATE KEY(?: BLOCK)?-----",
    ),
    (
        "jwt",
        r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}",
    ),
    ("npm-token", r"\bnpm_[A-Za-z0-9]{36}\b"),
    ("pypi-token", r"\bpypi-AgEIcHlwaS5vcmc[A-Za-z0-9_-]{50,}"),
];

/// Every rule's match holds a run of at least this many token bytes (letters, digits and
/// `_-/+=`): keys and tokens are long, and the shortest literal parts of the other rules
/// (`-----BEGIN`, `service_account`, `/services/T`) are such runs too. A string without one
/// cannot match, so text whose strings have none is not searched by the rules at all. A new rule
/// must keep this; the tests check every rule's sample.
const MIN_RUN: usize = 10;

/// Whether a string value of JSON text holds a run of [`MIN_RUN`] token bytes, without which no
/// rule matches it. Member names do not count, as [`Scanner::find`] does not look at them (a
/// 2026-07-28 result's `"resultType"` is such a run). Only for text without a backslash, whose
/// every quote opens or closes a string: the strings are found by their quotes with `memchr`,
/// which skips what lies between them in a few instructions, and only their bytes are walked.
fn value_has_run(json: &str) -> bool {
    let bytes = json.as_bytes();
    let mut quotes = memchr::memchr_iter(b'"', bytes);
    while let Some(open) = quotes.next() {
        let Some(close) = quotes.next() else {
            // Only text that is not JSON ends inside a string; it counts if that string holds a
            // run.
            return has_run(&bytes[open + 1..]);
        };
        if has_run(&bytes[open + 1..close]) && !is_member_name(&bytes[close + 1..]) {
            return true;
        }
    }
    false
}

/// Whether the bytes hold a run of [`MIN_RUN`] token bytes. Each window of that length is read
/// from its end back: the last byte in it that is not a token byte rules out every window that
/// holds it, so the next one starts just past it. Prose, with a space every few bytes, is crossed
/// in strides, and no byte is read more than twice.
fn has_run(bytes: &[u8]) -> bool {
    let mut start = 0;
    while let Some(window) = bytes.get(start..start + MIN_RUN) {
        match window.iter().rposition(|&byte| !TOKEN[usize::from(byte)]) {
            None => return true,
            Some(gap) => start += gap + 1,
        }
    }
    false
}

/// Whether the text after a string's closing quote makes it a member name.
fn is_member_name(after: &[u8]) -> bool {
    after.iter().find(|byte| !byte.is_ascii_whitespace()) == Some(&b':')
}

/// The bytes a run is made of, as a table: the test runs once per byte of a call's text.
const TOKEN: [bool; 256] = {
    let mut table = [false; 256];
    let mut byte = 0;
    while byte < 256 {
        let b = byte as u8;
        table[byte] = b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'/' | b'+' | b'=');
        byte += 1;
    }
    table
};

struct Rules {
    set: RegexSet,
    each: Vec<Regex>,
}

static COMPILED: LazyLock<Rules> = LazyLock::new(|| {
    let patterns = RULES.iter().map(|(_, pattern)| *pattern);
    Rules {
        // The patterns are constants covered by the tests below.
        set: RegexSet::new(patterns.clone()).expect("secret rules compile"),
        each: patterns
            .map(|p| Regex::new(p).expect("secret rule compiles"))
            .collect(),
    }
});

/// The rule name given to a stored secret found in the text.
pub const STORED_SECRET: &str = "stored-secret";

/// Stored secrets shorter than this are not matched: they would match ordinary words.
const MIN_LITERAL: usize = 8;

/// The rules plus the values of the gateway's stored secrets.
#[derive(Default)]
pub struct Scanner {
    literals: RwLock<Vec<String>>,
    /// The stored secrets as they appear inside a JSON string, for [`Scanner::may_match`].
    escaped: RwLock<Vec<String>>,
}

impl Scanner {
    pub fn new(stored: impl IntoIterator<Item = String>) -> Scanner {
        let scanner = Scanner::default();
        scanner.remember(stored);
        scanner
    }

    /// Replaces the stored secrets looked for (after `mcpctl secret set` or `rm`).
    pub fn remember(&self, stored: impl IntoIterator<Item = String>) {
        let literals: Vec<String> = stored
            .into_iter()
            .filter(|s| s.len() >= MIN_LITERAL)
            .collect();
        let escaped = literals
            .iter()
            .map(|literal| {
                let quoted = Value::from(literal.as_str()).to_string();
                quoted[1..quoted.len() - 1].to_owned()
            })
            .collect();
        *self.literals.write().unwrap_or_else(|e| e.into_inner()) = literals;
        *self.escaped.write().unwrap_or_else(|e| e.into_inner()) = escaped;
    }

    fn literals(&self) -> std::sync::RwLockReadGuard<'_, Vec<String>> {
        self.literals.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether raw JSON text may hold a secret: one pass over the bytes, so that clean results
    /// (nearly all of them) are never parsed.
    fn may_match(&self, json: &str) -> bool {
        (value_has_run(json) && COMPILED.set.is_match(json))
            || self
                .literals()
                .iter()
                .any(|literal| json.contains(literal.as_str()))
            || self
                .escaped
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .any(|escaped| json.contains(escaped.as_str()))
    }

    /// Whether the strings of raw JSON text may hold a secret, so that text without one (nearly
    /// all arguments) is never parsed. Without a backslash the text holds each string's value
    /// verbatim between quotes, which every rule treats as a word boundary, so a rule matching a
    /// string matches the text too; an escape could hide a secret from that pass, so text with
    /// one always counts (and [`value_has_run`] needs text without one).
    pub fn may_hold(&self, json: &str) -> bool {
        json.contains('\\') || self.may_match(json)
    }

    /// The names of the rules that match anywhere in `value`'s strings, sorted and unique.
    pub fn find(&self, value: &Value) -> Vec<&'static str> {
        let mut hits = Vec::new();
        for_each_string(value, &mut |text| {
            hits.extend(COMPILED.set.matches(text).iter().map(|i| RULES[i].0));
            if self.literals().iter().any(|l| text.contains(l.as_str())) {
                hits.push(STORED_SECRET);
            }
        });
        hits.sort_unstable();
        hits.dedup();
        hits
    }

    /// Replaces every match in `value`'s strings with `[REDACTED:rule]`; returns the rules hit.
    pub fn redact(&self, value: &mut Value) -> Vec<&'static str> {
        let hits = self.find(value);
        if !hits.is_empty() {
            for_each_string_mut(value, &mut |text| {
                for (index, regex) in COMPILED.each.iter().enumerate() {
                    let label = format!("[REDACTED:{}]", RULES[index].0);
                    if let std::borrow::Cow::Owned(done) = regex.replace_all(text, label.as_str()) {
                        *text = done;
                    }
                }
                for literal in self.literals().iter() {
                    if text.contains(literal.as_str()) {
                        *text = text.replace(literal.as_str(), "[REDACTED:stored-secret]");
                    }
                }
            });
        }
        hits
    }
}

fn for_each_string(value: &Value, visit: &mut impl FnMut(&str)) {
    match value {
        Value::String(text) => visit(text),
        Value::Array(items) => items.iter().for_each(|v| for_each_string(v, visit)),
        Value::Object(members) => members.values().for_each(|v| for_each_string(v, visit)),
        _ => {}
    }
}

fn for_each_string_mut(value: &mut Value, visit: &mut impl FnMut(&mut String)) {
    match value {
        Value::String(text) => visit(text),
        Value::Array(items) => items.iter_mut().for_each(|v| for_each_string_mut(v, visit)),
        Value::Object(members) => members
            .values_mut()
            .for_each(|v| for_each_string_mut(v, visit)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// One sample per rule, assembled at run time so this file holds no literal secret.
    fn samples() -> Vec<(&'static str, String)> {
        let a = |n: usize| "A".repeat(n);
        let x = |n: usize| "x1".repeat(n / 2);
        vec![
            ("aws-access-key-id", format!("AKIA{}", "Q".repeat(16))),
            (
                "aws-secret-access-key",
                format!("aws_secret_access_key = {}", "k".repeat(40)),
            ),
            ("github-token", format!("ghp_{}", x(36))),
            ("github-fine-grained-token", format!("github_pat_{}", x(82))),
            ("gitlab-token", format!("glpat-{}", x(20))),
            ("slack-token", format!("xoxb-{}", x(24))),
            (
                "slack-webhook",
                format!(
                    "https://hooks.slack.com/services/T{}/B{}/{}",
                    a(8),
                    a(8),
                    x(24)
                ),
            ),
            ("stripe-key", format!("sk_live_{}", x(24))),
            (
                "google-service-account",
                r#"{"type": "service_account", "project_id": "p"}"#.to_owned(),
            ),
            (
                "private-key",
                format!("-----BEGIN RSA PRIVATE KEY-----\n{}\n", a(64)),
            ),
            ("jwt", format!("eyJ{}.eyJ{}.{}", x(20), x(20), x(20))),
            ("npm-token", format!("npm_{}", x(36))),
            ("pypi-token", format!("pypi-AgEIcHlwaS5vcmc{}", x(60))),
        ]
    }

    #[test]
    fn every_rule_finds_its_kind_and_nothing_else() {
        assert_eq!(samples().len(), RULES.len());
        let scanner = Scanner::default();
        for (index, (rule, secret)) in samples().into_iter().enumerate() {
            let matched = COMPILED.each[index]
                .find(&secret)
                .expect("the sample matches")
                .as_str();
            // A match that needs escaping as a JSON string (the quotes of a service account's
            // JSON) never reaches the run test: `may_hold` takes text with a backslash as is.
            let quoted = Value::from(matched).to_string();
            assert!(
                quoted.contains('\\') || value_has_run(&quoted),
                "{rule} matched {matched:?} without a long run"
            );
            let hits =
                scanner.find(&json!({"deep": ["text", {"value": format!("see {secret} here")}]}));
            assert_eq!(hits, [rule], "{rule}");
        }
        let clean =
            json!({"text": "AKIA is a prefix; ghp_ alone; sk_live_short; eyJhbGci", "n": 42});
        assert!(scanner.find(&clean).is_empty());
    }

    #[test]
    fn the_pass_over_raw_text_lets_no_rule_or_stored_secret_through() {
        let stored = "correct horse battery staple";
        let scanner = Scanner::new([stored.to_owned()]);
        let mut secrets = samples();
        secrets.push((STORED_SECRET, stored.to_owned()));
        for (rule, secret) in secrets {
            for arguments in [
                json!({"text": secret}),
                json!({"deep": ["text", {"value": format!("see {secret} here")}]}),
                json!([format!("({secret})")]),
            ] {
                let text = arguments.to_string();
                assert!(scanner.may_hold(&text), "{rule} slips past in {text}");
                assert!(scanner.find(&arguments).contains(&rule), "{rule} in {text}");
            }
        }
        // A secret spelt with JSON escapes never reaches the rules as raw text.
        let escaped = format!(r#"{{"text":"\u0041KIA{}"}}"#, "Q".repeat(16));
        assert!(!COMPILED.set.is_match(&escaped));
        assert!(scanner.may_hold(&escaped));
        let parsed: Value = serde_json::from_str(&escaped).unwrap();
        assert_eq!(scanner.find(&parsed), ["aws-access-key-id"]);
        assert!(!scanner.may_hold(r#"{"text":"the quick brown fox jumps over the lazy dog"}"#));
        // The shortest of the rules' runs, `-----BEGIN`, is long enough to be looked at.
        assert!(value_has_run(r#"["-----BEGIN"]"#) && !value_has_run(r#"["----BEGIN"]"#));
        assert!(!value_has_run(
            r#"{"text":"short words, and a-b/c+d=e ok"}"#
        ));
        // A long member name is not scanned, a long value is, wherever it stands.
        assert!(!value_has_run(
            r#"{"resultType" : "complete","n":12345678901234}"#
        ));
        assert!(value_has_run(r#"{"type":"resultType"}"#));
        assert!(value_has_run(r#""resultType""#));
        assert!(value_has_run(r#"["a", "resultType" ]"#));
        // Text cut off inside a string still counts that string.
        assert!(value_has_run(r#"["a", "AKIAIOSFODNN7EXAMPLE"#));
        assert!(!value_has_run(r#"["a", "AKIA"#));
    }

    #[test]
    fn runs_are_found_as_a_byte_by_byte_count_finds_them() {
        let counted = |bytes: &[u8]| {
            let mut run = 0;
            bytes.iter().any(|&byte| {
                run = if TOKEN[usize::from(byte)] { run + 1 } else { 0 };
                run == MIN_RUN
            })
        };
        // Every text of up to 16 bytes drawn from a token byte and a space: each arrangement of
        // gaps a window and the one after it can hold.
        for len in 0..=16u32 {
            for bits in 0..1u32 << len {
                let text: Vec<u8> = (0..len)
                    .map(|i| if bits >> i & 1 == 1 { b'a' } else { b' ' })
                    .collect();
                assert_eq!(
                    has_run(&text),
                    counted(&text),
                    "{:?}",
                    String::from_utf8(text)
                );
            }
        }
    }

    #[test]
    fn redaction_removes_every_secret_and_keeps_the_rest() {
        let scanner = Scanner::new([
            "correct horse battery staple".to_owned(),
            "short".to_owned(),
        ]);
        let samples = samples();
        let mut value = json!({
            "a": format!("key {} and {}", samples[0].1, samples[7].1),
            "b": ["my passphrase is correct horse battery staple", "short stays"],
        });
        let hits = scanner.redact(&mut value);
        assert_eq!(hits, ["aws-access-key-id", STORED_SECRET, "stripe-key"]);
        assert_eq!(
            value["a"],
            "key [REDACTED:aws-access-key-id] and [REDACTED:stripe-key]"
        );
        assert_eq!(value["b"][0], "my passphrase is [REDACTED:stored-secret]");
        assert_eq!(value["b"][1], "short stays");
        assert!(scanner.find(&value).is_empty());
    }
}
