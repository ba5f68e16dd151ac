//! The shim parses its flags by hand, so no clap definition renders its man page: the page is
//! written by hand (`packaging/man/mcp-shim.1`). These tests hold it to the parser and `--help`.

use std::collections::BTreeSet;
use std::process::Command;

const PAGE: &str = include_str!("../../../packaging/man/mcp-shim.1");
const SOURCE: &str = include_str!("../../src/main.rs");

/// Words that look like flags (`-h`, `--profile`), with the characters around them that end a
/// word in roff, help text and Rust string literals.
fn flags(text: &str) -> BTreeSet<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .filter(|word| {
            let name = word.trim_start_matches('-');
            let dashes = word.len() - name.len();
            (dashes == 1 && name.len() == 1 || dashes == 2 && name.len() > 1)
                && name.starts_with(|c: char| c.is_ascii_alphabetic())
        })
        .map(str::to_owned)
        .collect()
}

/// The tag lines of the `.TP` entries in the page's OPTIONS section, `\-` unescaped.
fn option_tags() -> Vec<String> {
    let options = PAGE
        .split(".SH ")
        .find(|section| section.starts_with("OPTIONS"))
        .expect("the page has an OPTIONS section");
    let lines: Vec<&str> = options.lines().collect();
    lines
        .windows(2)
        .filter(|pair| pair[0] == ".TP")
        .map(|pair| pair[1].replace("\\-", "-"))
        .collect()
}

/// The flags the page documents.
fn documented() -> BTreeSet<String> {
    flags(&option_tags().join("\n"))
}

/// The flags the parser matches on: the flag-like string literals of the shim's source.
fn accepted() -> BTreeSet<String> {
    let literals: Vec<&str> = SOURCE.split('"').skip(1).step_by(2).collect();
    literals
        .into_iter()
        .filter(|literal| !literal.contains(char::is_whitespace))
        .flat_map(flags)
        .collect()
}

fn help() -> BTreeSet<String> {
    let output = Command::new(env!("CARGO_BIN_EXE_mcp-shim"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(output.status.success());
    flags(&String::from_utf8_lossy(&output.stdout))
}

#[test]
fn the_man_page_documents_exactly_the_flags_the_shim_accepts() {
    let documented = documented();
    assert!(documented.contains("--profile"), "{documented:?}");
    assert_eq!(documented, accepted(), "page vs the parser's match arms");
    assert_eq!(documented, help(), "page vs --help");
}

#[test]
fn every_flag_on_the_man_page_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("absent.sock");
    for tag in option_tags() {
        // `.BI --profile " PROFILE"` documents a flag with a value; `.BR -h ", " --help` two
        // spellings of one without.
        let takes_value = tag.starts_with(".BI ");
        for flag in flags(&tag) {
            let mut shim = Command::new(env!("CARGO_BIN_EXE_mcp-shim"));
            shim.arg(&flag);
            if takes_value {
                shim.arg(if flag == "--socket" {
                    "/nonexistent/gw.sock"
                } else {
                    "value"
                });
            }
            shim.arg("--socket").arg(&socket);
            let output = shim.output().unwrap();
            // Accepted: the shim either goes on to connect (69: nothing listens) or, for help
            // and version, exits at once; never a usage error (64).
            let expected: &[i32] = if takes_value { &[69] } else { &[0, 69] };
            assert!(
                output
                    .status
                    .code()
                    .is_some_and(|code| expected.contains(&code)),
                "mcp-shim {flag}: {:?} {}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }
}
