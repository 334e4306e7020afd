//! `ore restore --dry-run`: how the plan prints. What it reads is
//! `ore::commands::restore::plan`.

use crate::{out, Done, Env};
use anyhow::Result;
use ore::commands::restore::{plan, Action, RestoreOptions};
use ore::core::entry::Snapshot;
use ore::core::repo::Repo;
use ore::core::util::human_bytes;
use std::path::Path;

/// Prints what restoring `sub` of `snap` to `dest` would do, a line a name, and a summary.
pub fn dry_run(
    env: &Env,
    repo: &Repo,
    snap: &Snapshot,
    sub: &str,
    dest: &Path,
    opts: &RestoreOptions,
) -> Result<Done> {
    // Made, replaced, kept, removed, blocked; and bytes that would be written.
    let mut n = [0u64; 5];
    let mut bytes = 0;
    plan(repo, snap, sub.as_bytes(), dest, opts, |p| {
        let (i, mark) = match p.action {
            Action::Create => (0, '+'),
            Action::Replace => (1, '~'),
            Action::Keep => (2, '='),
            Action::Remove => (3, '-'),
            Action::Blocked => (4, '!'),
        };
        n[i] += 1;
        bytes += p.bytes;
        let shown = if env.global.json {
            let v = serde_json::json!({
                "action": p.action, "path": p.path.display().to_string(),
                "is_dir": p.is_dir, "bytes": p.bytes,
            });
            format!("{v}\n")
        } else {
            let slash = if p.is_dir { "/" } else { "" };
            let why = match p.action {
                Action::Blocked => "  (something else is there; --delete would replace it)",
                _ => "",
            };
            let path = ore::core::util::one_line(&p.path);
            format!("{mark} {path}{slash}{why}\n")
        };
        out(&shown).map_err(|e| ore::core::error::Error::Local(e.to_string()))
    })?;
    if !env.global.json && !env.global.quiet {
        eprintln!(
            "dry run, nothing changed: would make {}, replace {}, keep {}, remove {}{} ({} to \
             write)",
            n[0],
            n[1],
            n[2],
            n[3],
            match n[4] {
                0 => String::new(),
                b => format!(", and find {b} blocked"),
            },
            human_bytes(bytes)
        );
    }
    Ok(Done::Clean)
}
