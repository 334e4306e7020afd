//! `ore sync`, `ore dump`, `ore load`: moving snapshots between archives.

use crate::cli::{DumpArgs, LoadArgs, SyncArgs};
use crate::{out, pass, Done, Env};
use anyhow::{bail, Result};
use serde_json::json;
use std::io::IsTerminal;

pub fn sync(env: &Env, a: SyncArgs) -> Result<Done> {
    ore::commands::sync::refuse_same_archive(&env.archive_id()?, &a.to)?;
    let src = env.open()?;
    let dst_pass = if a.to_passphrase_file.is_some() || a.to_passphrase_command.is_some() {
        pass::Source {
            file: a.to_passphrase_file.clone(),
            command: a.to_passphrase_command.clone(),
            config_command: None,
        }
    } else {
        env.pass.clone()
    };
    let dst = env.open_other(&a.to, &dst_pass).map_err(|e| {
        // The source opened with this passphrase: a wrong one here is the destination's.
        match e.downcast_ref::<ore::core::error::Error>() {
            Some(ore::core::error::Error::WrongPassphrase { .. }) => anyhow::anyhow!(
                "the destination archive {}: {e}; give its own passphrase with \
                 --to-passphrase-file or --to-passphrase-command (the source {} opened with \
                 the one given)",
                a.to,
                env.archive_id().unwrap_or_default()
            ),
            _ => e,
        }
    })?;
    let o = ore::commands::sync::sync(&src, &dst, &a.tags)?;
    let conflicts = (o.tags.iter())
        .filter(|t| matches!(t.status, "conflict" | "skipped"))
        .count();
    if env.global.json {
        env.json(&serde_json::to_value(&o)?)?;
    } else {
        for t in &o.tags {
            let mut line = format!("{}  {}  {}", t.status, t.tag, &t.now.to_hex()[..12]);
            if !t.message.is_empty() {
                line.push_str(&format!("  ({})", t.message));
            }
            line.push('\n');
            out(&line)?;
        }
        if !env.global.quiet {
            eprintln!(
                "{} blocks reached, {} copied ({}, {}) in {:.1} s",
                o.blocks,
                o.copied,
                ore::core::util::human_bytes(o.bytes),
                o.mode,
                o.duration_ms as f64 / 1000.0
            );
        }
    }
    Ok(if conflicts > 0 {
        Done::Warnings
    } else {
        Done::Clean
    })
}

pub fn dump(env: &Env, a: DumpArgs) -> Result<Done> {
    if std::io::stdout().is_terminal() {
        bail!("ore dump writes a binary stream: redirect it to a file or a pipe");
    }
    // An archive tag is dumped whole: its objects, properties and versions.
    let repo = env.open()?;
    let stats = if let Ok(Some(_)) = ore::core::objects::head_of(&repo, &a.snapshot) {
        ore::commands::dump::archive::dump_archive(
            &repo,
            &a.snapshot,
            &mut std::io::stdout().lock(),
        )?
    } else {
        let (_, snap) = ore::core::spec::resolve(&repo, &a.snapshot)?;
        ore::commands::dump::dump(&repo, &snap, &mut std::io::stdout().lock())?
    };
    if !env.global.quiet {
        eprintln!(
            "dumped {}: {} entries, {} of file data, {} stream",
            a.snapshot,
            stats.entries,
            ore::core::util::human_bytes(stats.bytes),
            ore::core::util::human_bytes(stats.stream_bytes)
        );
    }
    Ok(Done::Clean)
}

pub fn load(env: &Env, a: LoadArgs) -> Result<Done> {
    use ore::commands::dump::Loaded;
    let repo = env.open()?;
    let loaded = ore::commands::dump::load(&repo, &a.tag, &mut std::io::stdin().lock())?;
    let (key, stats, objects) = match loaded {
        Loaded::Snapshot { key, stats, .. } => (key, stats, None),
        Loaded::Archive {
            head,
            objects,
            stats,
        } => (head, stats, Some(objects)),
    };
    if env.global.json {
        env.json(&json!({"key": key.to_hex(), "tag": a.tag, "entries": stats.entries, "bytes": stats.bytes, "objects": objects}))?;
    } else {
        out(&format!("{key}\n"))?;
        if !env.global.quiet {
            let what = match objects {
                Some(n) => format!("{n} object(s) with "),
                None => String::new(),
            };
            eprintln!(
                "loaded {what}{} entries, {} of file data, onto tag {}",
                stats.entries,
                ore::core::util::human_bytes(stats.bytes),
                a.tag
            );
        }
    }
    Ok(Done::Clean)
}
