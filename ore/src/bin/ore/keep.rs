//! `ore forget`, `ore gc`, `ore reset`, `ore reflog`: deciding what the archive keeps.

use crate::cli::{ForgetArgs, GcArgs, ReflogArgs, ReflogCommand, ResetArgs};
use crate::{out, Done, Env};
use anyhow::{anyhow, Result};
use ore::commands::forget::Policy;
use ore::commands::gc::{ReflogExpiry, ReflogOutcome};
use ore::commands::reflog::Expired;
use ore::commands::reset::Reset;
use ore::core::util::{format_time, human_bytes};
use serde_json::json;

fn duration_ns(flag: &str, s: &str) -> Result<i64> {
    ore::core::util::parse_duration(s)
        .map(|secs| secs.saturating_mul(1_000_000_000))
        .ok_or_else(|| anyhow!("{flag} {s:?}: not a duration (e.g. 36h, 30d, 12w, 2y)"))
}

pub fn forget(env: &Env, a: ForgetArgs) -> Result<Done> {
    let policy = Policy {
        last: a.keep_last,
        hourly: a.keep_hourly,
        daily: a.keep_daily,
        weekly: a.keep_weekly,
        monthly: a.keep_monthly,
        yearly: a.keep_yearly,
        within: a
            .keep_within
            .as_deref()
            .map(|s| duration_ns("--keep-within", s))
            .transpose()?,
    };
    let repo = env.open()?;
    if crate::archival::forget_archive_tags(env, &repo, &a)? {
        return Ok(Done::Clean);
    }
    let prune = a.prune && !a.dry_run;
    if prune {
        ore::commands::reflog::may_expire(&repo)?;
    }
    // Per tag, the chain nodes forget dropped and those it replaced: what `--prune` frees.
    let mut gone: Vec<(String, ore::core::reflog::Holders)> = Vec::new();
    for tag in &a.tags {
        let o = ore::commands::forget::forget(&repo, tag, &policy, a.dry_run)?;
        if prune {
            gone.push((tag.clone(), ore::commands::forget::holders(&repo, &o)?));
        }
        if env.global.json {
            env.json(&serde_json::to_value(&o)?)?;
            continue;
        }
        let kept = o.decisions.iter().filter(|d| d.keep).count();
        for d in &o.decisions {
            if env.global.quiet && d.keep {
                continue;
            }
            let mut line = format!(
                "{}  {}  {}",
                if d.keep { "keep" } else { "drop" },
                &d.key.to_hex()[..12],
                format_time(d.time)
            );
            if d.keep {
                line.push_str(&format!("  {}", d.reasons.join(", ")));
                if let Some(n) = d.new_key {
                    line.push_str(&format!("  (now {})", &n.to_hex()[..12]));
                }
            } else if !d.also_in.is_empty() {
                line.push_str(&format!(
                    "  (still on tag {}, so it stays stored)",
                    d.also_in.join(", ")
                ));
            }
            line.push('\n');
            out(&line)?;
        }
        if !env.global.quiet {
            eprintln!(
                "tag {tag}: {kept} kept, {} {}{}",
                o.decisions.len() - kept,
                if a.dry_run {
                    "would be dropped"
                } else {
                    "dropped"
                },
                // Only in an archive of format 1 does the newest snapshot get a new key.
                match o.decisions.first().and_then(|d| d.new_key) {
                    Some(k) if !a.dry_run => format!("; it now names {k}"),
                    _ => String::new(),
                }
            );
        }
    }
    if !repo.links() && !env.global.quiet && !env.global.json {
        eprintln!(
            "note: archive {} is of format 1, where forget gives the snapshots above a dropped \
             one new keys (shown as `now`); `ore upgrade` moves it to format 2, where they keep \
             their keys",
            repo.id()
        );
    }
    if a.prune && a.dry_run && !env.global.quiet {
        eprintln!("--prune: nothing expired or collected in a dry run");
    }
    if !prune {
        return Ok(Done::Clean);
    }
    // The forgotten snapshots are held by the reflog entries and earlier tag values that name
    // them: those go (nothing else), then gc collects.
    for (tag, keys) in gone.iter().filter(|(_, k)| !k.holding.is_empty()) {
        let d = ore::commands::reflog::expire_dropped(&repo, tag, keys)?;
        if !env.global.quiet && !env.global.json {
            let left = match d.values_left {
                0 => String::new(),
                n => format!(
                    "; {n} earlier value(s) of the tag still hold some until the reflog \
                     retention expires them (`ore reflog keep`)"
                ),
            };
            eprintln!(
                "--prune: tag {tag}: {} reflog entr{} and {} earlier value(s) naming what \
                 forget dropped expired (it cannot be brought back now){left}",
                d.entries,
                if d.entries == 1 { "y" } else { "ies" },
                d.values
            );
        }
    }
    let o = crate::with_progress_of(env, "blocks", |progress| {
        let opts = ore::commands::gc::GcOptions {
            progress,
            ..Default::default()
        };
        ore::commands::gc::gc(&repo, &opts)
    })?;
    report_gc(env, &o, false)
}

pub fn gc(env: &Env, a: GcArgs) -> Result<Done> {
    let repo = env.open()?;
    let o = crate::with_progress_of(env, "blocks", |progress| {
        let opts = ore::commands::gc::GcOptions {
            dry_run: a.dry_run,
            wait: std::time::Duration::from_secs(a.wait),
            compact: (!a.no_compact).then_some(a.compact_threshold),
            progress,
            reflog: match a.expire_reflog {
                true => ReflogExpiry::All,
                false => ReflogExpiry::Retention,
            },
        };
        ore::commands::gc::gc(&repo, &opts)
    })?;
    report_gc(env, &o, a.dry_run)
}

/// Prints what a gc did; warnings when compaction found damage.
fn report_gc(env: &Env, o: &ore::commands::gc::GcOutcome, dry_run: bool) -> Result<Done> {
    if env.global.json {
        env.json(&serde_json::to_value(o)?)?;
    } else if !env.global.quiet {
        let freed = o.freed.map(human_bytes).unwrap_or_else(|| "unknown".into());
        out(&format!(
            "{} reachable of {} blocks; {} {} ({freed} of blocks) in {:.1} s\n",
            o.reachable,
            o.listed,
            o.removed,
            if dry_run {
                "would be removed"
            } else {
                "removed"
            },
            o.duration_ms as f64 / 1000.0
        ))?;
        if let Some(c) = &o.compaction {
            out(&format!("compaction: {c}\n"))?;
        }
        say_reflog(&o.reflog, dry_run)?;
    }
    if o.problems.is_empty() {
        return Ok(Done::Clean);
    }
    for p in &o.problems {
        protocol::log::warning(&format!("gc: compaction found damage: {p}"));
    }
    protocol::log::warning(&format!(
        "gc removed what nothing reaches, but compaction found {} problem(s) in the archive \
         (listed above); run `ore check --read-data` to see which snapshots they touch",
        o.problems.len()
    ));
    Ok(Done::Warnings)
}

/// What gc did with the reflog, and what only the reflog still holds.
fn say_reflog(r: &ReflogOutcome, dry_run: bool) -> Result<()> {
    let would = if dry_run { "would be " } else { "" };
    match r.retention.as_str() {
        "append-only" => out(
            "reflog: not expired (this connection may not shorten history; gc with full \
             access applies the archive's retention)\n",
        )?,
        "all" => out(&format!(
            "reflog: {} entr{} {would}expired (--expire-reflog), with every kept tag value\n",
            r.expired,
            if r.expired == 1 { "y" } else { "ies" }
        ))?,
        why if why.starts_with("not applied") => {
            out(&format!("reflog: the retention was {why}\n"))?
        }
        keep if r.expired > 0 => out(&format!(
            "reflog: {} entr{} older than {keep} {would}expired (the archive's reflog \
             retention: `ore reflog keep`)\n",
            r.expired,
            if r.expired == 1 { "y" } else { "ies" }
        ))?,
        _ => {}
    }
    if r.held_only_by_reflog > 0 {
        let keep = match r.retention.as_str() {
            k if k == "append-only" || k == "all" || k.starts_with("not applied") => String::new(),
            "never" => " (kept for ever: `ore reflog keep`)".to_string(),
            k => format!(" (entries younger than {k})"),
        };
        out(&format!(
            "{} block(s) are held only by the reflog and the tags' earlier values{keep}; \
             `ore gc --expire-reflog` frees them (`ore gc --expire-reflog --dry-run` says how \
             much), after which forgotten snapshots cannot be brought back\n",
            r.held_only_by_reflog
        ))?;
    }
    Ok(())
}

pub fn reset(env: &Env, a: ResetArgs) -> Result<Done> {
    let repo = env.open_brief()?;
    match ore::commands::reset::reset(&repo, &a.tag, &a.snapshot)? {
        Reset::Already(key) => {
            if !env.global.quiet {
                eprintln!("tag {} already names {key}", a.tag);
            }
        }
        Reset::Moved { old, new: key } => {
            if env.global.json {
                env.json(
                    &json!({"tag": a.tag, "old": old.map(|k| k.to_hex()), "new": key.to_hex()}),
                )?;
            } else if !env.global.quiet && old == Some(key) {
                eprintln!(
                    "tag {} names {key} as before, now with the snapshots below it that the \
                     chain you named holds; `ore log {}` shows them",
                    a.tag, a.tag
                );
            } else if !env.global.quiet {
                eprintln!(
                    "tag {} now names {key} (was {}); `ore reflog {}` lists where it has been",
                    a.tag,
                    old.map_or("nothing".into(), |k| k.to_hex()),
                    a.tag
                );
            }
        }
    }
    Ok(Done::Clean)
}

pub fn reflog(env: &Env, a: ReflogArgs) -> Result<Done> {
    let mut repo = env.open_brief()?;
    if let Some(ReflogCommand::Keep { age }) = &a.command {
        if let Some(age) = age {
            let keep = (age != "default").then_some(age.as_str());
            repo.set_reflog_keep(keep)?;
        }
        let keep = repo.format().reflog_keep.clone();
        let shown = keep
            .unwrap_or_else(|| format!("{} (the default)", ore::core::format::DEFAULT_REFLOG_KEEP));
        if env.global.json {
            env.json(&json!({"reflog_keep": repo.format().reflog_keep, "default": ore::core::format::DEFAULT_REFLOG_KEEP}))?;
        } else {
            out(&format!("reflog retention: {shown}\n"))?;
        }
        return Ok(Done::Clean);
    }
    if let Some(ReflogCommand::Reset { key }) = &a.command {
        let key: protocol::Key = key
            .parse()
            .map_err(|e| anyhow!("reflog reset {key:?}: not a block key: {e}"))?;
        ore::commands::reflog::reset_head(&repo, key)?;
        if !env.global.quiet {
            eprintln!("the reflog now starts at {key}");
        }
        return Ok(Done::Clean);
    }
    if let Some(ReflogCommand::Expire {
        older_than,
        dry_run,
    }) = a.command
    {
        let cutoff = ore::core::util::now_ns() - duration_ns("--older-than", &older_than)?;
        let Expired { dropped, kept } = ore::commands::reflog::expire(&repo, cutoff, dry_run)?;
        if env.global.json {
            env.json(&json!({"dropped": dropped, "kept": kept, "dry_run": dry_run}))?;
        } else if !env.global.quiet {
            out(&format!(
                "{dropped} entr{} {}, {kept} kept\n",
                if dropped == 1 { "y" } else { "ies" },
                if dry_run {
                    "would be dropped"
                } else {
                    "dropped"
                }
            ))?;
        }
        return Ok(Done::Clean);
    }
    let entries = ore::commands::reflog::entries(&repo, a.tag.as_deref())?;
    // The snapshots' keys, not the chain links the reflog holds.
    let keys = ore::commands::reflog::snapshot_keys(&repo, &entries);
    let key = |k: Option<protocol::Key>| k.map(|k| keys.get(&k).copied().unwrap_or(k));
    let short =
        |k: Option<protocol::Key>| key(k).map_or("-".to_string(), |k| k.to_hex()[..12].into());
    for e in &entries {
        if env.global.json {
            env.json(&json!({
                "time": format_time(e.time), "time_ns": e.time, "tag": e.tag,
                "old": key(e.old).map(|k| k.to_hex()), "new": key(e.new).map(|k| k.to_hex()),
                "old_node": e.old.map(|k| k.to_hex()), "new_node": e.new.map(|k| k.to_hex()),
                "action": e.action, "host": e.host, "user": e.user,
            }))?;
        } else {
            // A move between two places of one snapshot (a forget's new chain below it): the
            // old place is what `ore reset` takes to undo it.
            let undo = match e.old {
                Some(o) if key(e.old) == key(e.new) => {
                    format!(
                        "  (before: chain link {}, for `ore reset`)",
                        &o.to_hex()[..12]
                    )
                }
                _ => String::new(),
            };
            out(&format!(
                "{}  {}  {} -> {}  {}  {}@{}{undo}\n",
                format_time(e.time),
                e.tag,
                short(e.old),
                short(e.new),
                e.action,
                e.user,
                e.host
            ))?;
        }
    }
    Ok(Done::Clean)
}
