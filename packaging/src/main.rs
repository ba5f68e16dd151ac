//! `mcp-gateway-packaging OUT_DIR`: renders the man pages and shell completions of `mcp-gatewayd`
//! and `mcpctl` from the clap definitions that parse their flags, so the documentation a package
//! installs cannot drift from the binaries it ships. `packaging/build.sh` runs it before
//! `cargo deb` and `cargo generate-rpm` pick the files up.
//!
//! It writes `OUT_DIR/man/*.1` (one page per program and one per `mcpctl` subcommand, as git
//! does) and `OUT_DIR/completions/{bash,zsh,fish}/`, named as each shell looks them up.
//! `mcp-shim` has no clap definition (it stays std-only); its page is hand-written in
//! `packaging/man/mcp-shim.1` and checked against its `--help` by the shim's tests.

mod pages;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{CommandFactory, Parser};
use clap_complete::Shell;

/// Renders man pages and shell completions for the packages.
#[derive(Debug, Parser)]
#[command(name = "mcp-gateway-packaging")]
struct Args {
    /// Where to write `man/` and `completions/` (emptied first)
    out_dir: PathBuf,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let programs = [
        (mcp_gatewayd::Cli::command(), pages::DAEMON),
        (mcpctl::cli::Cli::command(), pages::MCPCTL),
    ];
    if args.out_dir.exists() {
        fs::remove_dir_all(&args.out_dir)
            .with_context(|| format!("cannot empty {}", args.out_dir.display()))?;
    }
    let man_dir = args.out_dir.join("man");
    create_dir(&man_dir)?;
    for (command, extra) in &programs {
        let mut command = command.clone().disable_help_subcommand(true);
        command.build();
        write_pages(&command, extra, &man_dir)?;
        write_completions(&command, &args.out_dir.join("completions"))?;
    }
    Ok(())
}

/// The page of `command` with its `extra` sections appended, then one plain page for each visible
/// subcommand, recursively (`mcpctl-server-add.1`).
fn write_pages(command: &clap::Command, extra: &str, dir: &Path) -> anyhow::Result<()> {
    let man = clap_mangen::Man::new(command.clone()).manual("mcp-gateway");
    let mut page = Vec::new();
    man.render(&mut page).context("cannot render a man page")?;
    page.write_all(extra.as_bytes())?;
    write_file(&dir.join(man.get_filename()), &page)?;
    for sub in command.get_subcommands().filter(|sub| !sub.is_hide_set()) {
        write_pages(sub, "", dir)?;
    }
    Ok(())
}

fn write_completions(command: &clap::Command, dir: &Path) -> anyhow::Result<()> {
    let name = command.get_name().to_owned();
    // The names each shell's loader looks for in the distributions' completion directories.
    for (shell, subdir, file) in [
        (Shell::Bash, "bash", name.clone()),
        (Shell::Zsh, "zsh", format!("_{name}")),
        (Shell::Fish, "fish", format!("{name}.fish")),
    ] {
        let mut script = Vec::new();
        clap_complete::generate(shell, &mut command.clone(), &name, &mut script);
        let subdir = dir.join(subdir);
        create_dir(&subdir)?;
        write_file(&subdir.join(file), &script)?;
    }
    Ok(())
}

fn create_dir(dir: &Path) -> anyhow::Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))
}

fn write_file(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    fs::write(path, contents).with_context(|| format!("cannot write {}", path.display()))
}
