//! `ore check`, `ore diff`: what the archive holds, compared with what it should.

use crate::cli::{CheckArgs, DiffArgs};
use crate::{out, Done, Env};
use anyhow::{bail, Context, Result};
use ore::commands::check::{CheckOutcome, ReadData};
use ore::core::repo::Repo;
use ore::core::util::human_bytes;
use std::path::Path;

pub fn check(env: &Env, a: CheckArgs) -> Result<Done> {
    let repo = env.open()?;
    if let Some(dir) = &a.compare {
        return compare(env, &repo, &a.snapshots, dir);
    }
    let read = match &a.read_data {
        None => ReadData::None,
        Some(s) => ReadData::parse(s)?,
    };
    if a.unverified && !matches!(read, ReadData::None | ReadData::All) {
        bail!("--unverified reads its own selection of blocks: give no --read-data value with it");
    }
    let o = crate::with_progress_of(env, "blocks", |p| {
        if a.unverified {
            ore::commands::check::check_unverified(&repo, &a.snapshots, a.remove_bad, p)
        } else {
            ore::commands::check::check(&repo, &a.snapshots, read, p)
        }
    })?;
    if env.global.json {
        env.json(&serde_json::to_value(&o)?)?;
    } else {
        print_check(env, &o)?;
    }
    if !o.clean() {
        bail!(
            "the archive has {} missing or damaged block(s), {} tag(s) naming no block and {} \
             tag(s) disagreeing with their history (a tag rolled back, a reflog lost)",
            o.problems.len(),
            o.bad_tags.len(),
            o.history.len()
        );
    }
    Ok(Done::Clean)
}

/// `ore check --compare DIR SNAPSHOT[:PATH]`: prints each path that differs.
fn compare(env: &Env, repo: &Repo, snapshots: &[String], dir: &Path) -> Result<Done> {
    let [spec] = snapshots else {
        bail!(
            "--compare needs exactly one SNAPSHOT[:PATH] to compare with {}",
            dir.display()
        );
    };
    let root = ore::commands::check::compare::root(repo, spec)?;
    let diffs = ore::commands::check::compare::compare(repo, &root, dir)
        .with_context(|| format!("comparing {spec} with {}", dir.display()))?;
    for d in &diffs {
        if env.global.json {
            env.json(&serde_json::to_value(d)?)?;
        } else {
            out(&format!("{}: {}\n", d.path, d.what.join(", ")))?;
        }
    }
    if !diffs.is_empty() {
        bail!(
            "{} path(s) differ between {spec} and {}",
            diffs.len(),
            dir.display()
        );
    }
    if !env.global.quiet && !env.global.json {
        eprintln!("{spec} and {} match", dir.display());
    }
    Ok(Done::Clean)
}

/// Prints what a check found (stdout) and its counts (stderr).
fn print_check(env: &Env, o: &CheckOutcome) -> Result<()> {
    for t in &o.bad_tags {
        out(&format!("{t}\n"))?;
    }
    for h in &o.history {
        out(&format!("{}\n", h.message))?;
        if let Some(r) = &h.repair {
            out(&format!("  to put it back: {r}\n"))?;
        }
    }
    for p in &o.problems {
        out(&format!("block {} ({}): {}\n", p.key, p.kind, p.error))?;
        for path in &p.paths {
            out(&format!("  {path}\n"))?;
        }
    }
    if env.global.quiet {
        return Ok(());
    }
    if let Some(u) = &o.unverified {
        eprintln!(
            "blocks stored by append-only connections: {} awaiting a check, {} read, {} bad{}{}",
            u.listed,
            u.read,
            u.bad.len(),
            if u.can_vouch {
                format!(", {} marked checked", u.vouched)
            } else {
                " (not marked checked: this connection does not have full access)".into()
            },
            if u.removed > 0 {
                format!(
                    ", {} bad removed: snapshot again with --no-cache to store their data",
                    u.removed
                )
            } else {
                String::new()
            }
        );
    }
    let what = match (o.snapshots, o.objects) {
        (s, 0) => format!("{s} snapshot(s)"),
        (0, n) => format!("{n} archive object(s)"),
        (s, n) => format!("{s} snapshot(s) and {n} archive object(s)"),
    };
    eprintln!(
        "checked {what}: {} tree blocks, {} data blocks ({} read, {}) in {:.1} s: {}",
        o.trees,
        o.chunks,
        o.chunks_read,
        human_bytes(o.bytes_read),
        o.duration_ms as f64 / 1000.0,
        match (o.problems.len(), o.history.len()) {
            (0, 0) => "no problems".to_string(),
            (n, 0) => format!("{n} missing or damaged block(s)"),
            (0, h) => format!("{h} tag(s) disagreeing with their history"),
            (n, h) => format!(
                "{n} missing or damaged block(s), {h} tag(s) disagreeing with their history"
            ),
        }
    );
    Ok(())
}

pub fn diff(env: &Env, a: DiffArgs) -> Result<Done> {
    let repo = env.open()?;
    let path = a.path.as_deref().unwrap_or("").trim_start_matches('/');
    let (ea, eb) = ore::commands::diff::entries(&repo, &a.a, &a.b, path)?;
    let (changes, dirs_read) = ore::commands::diff::diff(&repo, &ea, &eb)
        .with_context(|| format!("comparing {} with {}", a.a, a.b))?;
    let prefix = if path.is_empty() {
        String::new()
    } else {
        format!("{path}/")
    };
    let mut counts = std::collections::BTreeMap::new();
    for c in &changes {
        *counts.entry(c.change).or_insert(0u64) += 1;
        let full = match (c.path.as_str(), path) {
            (".", "") => ".".to_string(),
            (".", p) => p.to_string(),
            (c, _) => format!("{prefix}{c}"),
        };
        if env.global.json {
            let mut v = serde_json::to_value(c)?;
            v["path"] = serde_json::json!(full);
            if let Some(f) = &c.from {
                v["from"] = serde_json::json!(format!("{prefix}{f}"));
            }
            env.json(&v)?;
            continue;
        }
        let what = if c.what.is_empty() {
            String::new()
        } else {
            format!(" ({})", c.what.join(", "))
        };
        let line = match c.change {
            "added" => format!("+ {full}{what}\n"),
            "removed" => format!("- {full}{what}\n"),
            "renamed" => format!(
                "R {prefix}{} -> {full}{what}\n",
                c.from.as_deref().unwrap_or("")
            ),
            _ => format!("M {full}{what}\n"),
        };
        out(&line)?;
    }
    if !env.global.quiet && !env.global.json {
        let n = |k: &str| counts.get(k).copied().unwrap_or(0);
        eprintln!(
            "{} added, {} removed, {} modified, {} renamed ({dirs_read} directory trees read)",
            n("added"),
            n("removed"),
            n("modified"),
            n("renamed")
        );
    }
    Ok(Done::Clean)
}
