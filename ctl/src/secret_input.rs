//! Reading a secret's value for `mcpctl secret set`: from standard input, never from the command
//! line (where `ps` and shell history would show it). From a terminal it is one line typed without
//! echo; from a pipe or file it is everything, less one final newline.

use std::io::{BufRead, IsTerminal, Read, Write};

use anyhow::{Context, bail};
use nix::sys::termios::{self, LocalFlags, SetArg};

pub fn read(name: &str) -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    let mut value = String::new();
    if stdin.is_terminal() {
        eprint!("value of {name} (not shown): ");
        std::io::stderr().flush()?;
        let saved = termios::tcgetattr(&stdin).context("reading the terminal's settings")?;
        let mut silent = saved.clone();
        silent.local_flags.remove(LocalFlags::ECHO);
        termios::tcsetattr(&stdin, SetArg::TCSANOW, &silent)
            .context("turning the terminal's echo off")?;
        let read = stdin.lock().read_line(&mut value);
        // The echo comes back whatever the read did, before any error is reported.
        let restored = termios::tcsetattr(&stdin, SetArg::TCSANOW, &saved);
        eprintln!();
        read.context("reading the value")?;
        restored.context("restoring the terminal's echo")?;
    } else {
        stdin
            .lock()
            .read_to_string(&mut value)
            .context("reading the value from standard input")?;
    }
    let value = strip_final_newline(value);
    if value.is_empty() {
        bail!("the value of {name} is empty; nothing was stored");
    }
    Ok(value)
}

/// `echo TOKEN |` and a typed line end with a newline that is not part of the secret.
fn strip_final_newline(mut value: String) -> String {
    if value.ends_with('\n') {
        value.pop();
        if value.ends_with('\r') {
            value.pop();
        }
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_final_newline_goes() {
        assert_eq!(strip_final_newline("tok\n".into()), "tok");
        assert_eq!(strip_final_newline("tok\r\n".into()), "tok");
        assert_eq!(strip_final_newline("a\nb\n\n".into()), "a\nb\n");
        assert_eq!(strip_final_newline("tok".into()), "tok");
    }
}
