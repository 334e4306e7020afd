//! `ore sync`, `ore dump`, `ore load`: moving snapshots between archives.

use crate::cli::{DumpArgs, LoadArgs, SyncArgs};
use crate::{out, pass, Done, Env};
use anyhow::{bail, Result};
use serde_json::json;
use std::io::IsTerminal;

/// The directory an archive identifier stores its archive in, when it can be told without
/// starting anything: a plain path, or a store backend given one directory.
fn local_dir(id: &str) -> Option<std::path::PathBuf> {
    use connect::open::{classify, Kind};
    match classify(id) {
        Kind::Path(p) => Some(p.to_path_buf()),
        Kind::Command(c) => match shell_words::split(c).ok()?.as_slice() {
            [program, dir] if ["backend-splitlog", "backend-fs"].contains(&program.as_str()) => {
                Some(dir.into())
            }
            _ => None,
        },
    }
}

/// Refuses a sync from an archive to itself before the destination is opened: a local
/// archive is held by one process, so opening it a second time would wait on our own hold.
fn refuse_same_archive(src: &str, dst: &str) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let same = match (local_dir(src), local_dir(dst)) {
        _ if src == dst => true,
        (Some(a), Some(b)) => match (std::fs::metadata(&a), std::fs::metadata(&b)) {
            (Ok(a), Ok(b)) => (a.dev(), a.ino()) == (b.dev(), b.ino()),
            _ => false,
        },
        _ => false,
    };
    if same {
        bail!("{src} and {dst} are the same archive: sync copies to another one");
    }
    Ok(())
}

pub fn sync(env: &Env, a: SyncArgs) -> Result<Done> {
    refuse_same_archive(&env.archive_id()?, &a.to)?;
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
    let dst = env.open_other(&a.to, &dst_pass)?;
    if dst.format().archive_id == src.format().archive_id {
        bail!("{} and {} are the same archive", env.archive_id()?, a.to);
    }
    let o = ore::commands::sync::sync(&src, &dst, &a.tags)?;
    let conflicts = o.tags.iter().filter(|t| t.status == "conflict").count();
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
    let (repo, snap) = env.open_at(&a.snapshot)?;
    let stats = ore::commands::dump::dump(&repo, &snap, &mut std::io::stdout().lock())?;
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
    let repo = env.open()?;
    let (key, _, stats) = ore::commands::dump::load(&repo, &a.tag, &mut std::io::stdin().lock())?;
    if env.global.json {
        env.json(&json!({"key": key.to_hex(), "tag": a.tag, "entries": stats.entries, "bytes": stats.bytes}))?;
    } else {
        out(&format!("{key}\n"))?;
        if !env.global.quiet {
            eprintln!(
                "loaded {} entries, {} of file data, onto tag {}",
                stats.entries,
                ore::core::util::human_bytes(stats.bytes),
                a.tag
            );
        }
    }
    Ok(Done::Clean)
}
