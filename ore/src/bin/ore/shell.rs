//! Shell completions and manual pages, generated from the command line's own definition
//! (`clap_complete`, `clap_mangen`): every command, option, value and help text comes from
//! `cli.rs`, so they cannot drift from `--help`.

use crate::cli::Cli;
use crate::Done;
use anyhow::{Context, Result};
use clap::CommandFactory;
use std::path::Path;

/// Prints the completion script for `shell` on stdout.
pub fn completions(shell: clap_complete::Shell) -> Result<Done> {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "ore", &mut out);
    crate::out_bytes(&out)?;
    Ok(Done::Clean)
}

/// Prints `ore`'s manual page, or with `dir` writes one page per command there (`ore.1`,
/// `ore-snapshot.1`, `ore-key-add.1`, ...) and lists them.
pub fn man(dir: Option<&Path>) -> Result<Done> {
    let cmd = Cli::command();
    let Some(dir) = dir else {
        let mut out = Vec::new();
        clap_mangen::Man::new(cmd)
            .render(&mut out)
            .context("rendering the manual page")?;
        crate::out_bytes(&out)?;
        return Ok(Done::Clean);
    };
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    clap_mangen::generate_to(cmd, dir)
        .with_context(|| format!("writing manual pages into {}", dir.display()))?;
    let mut pages: Vec<String> = std::fs::read_dir(dir)
        .with_context(|| format!("listing {}", dir.display()))?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n == "ore.1" || (n.starts_with("ore-") && n.ends_with(".1")))
        .collect();
    pages.sort();
    for p in &pages {
        crate::out(&format!("{}\n", dir.join(p).display()))?;
    }
    Ok(Done::Clean)
}
