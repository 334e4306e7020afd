//! Admin commands of splitlog: settings, reindex, verify and compaction.
//!
//! Compaction never has a moment where a live block exists nowhere: the live records of a log
//! are appended to the newest log and synced, the index is committed pointing at the copies, and
//! only then is the old log deleted. Records the old log held that a reindex would still need
//! (removals of blocks that older logs hold, the latest tag and setting values) are carried
//! over too, so a reindex after compaction rebuilds exactly the same state — the tag history
//! included: every value a compacted log set that the history still keeps is written again as
//! a kept-value record (until someone with full access expires it, `expire-tag-history`).

use crate::index::Location;
use crate::logs::{list_logs, log_path};
use crate::record::{named_payload, parse_named, RecordType};
use crate::scan::{Item, Scanner};
use crate::{SplitlogBackend, State};
use protocol::backend::{admin_help, unknown_admin, AdminCommand, AdminOutput};
use protocol::history;
use protocol::provenance;
use protocol::{Backend, Error, ErrorCode, Key, Result};
use serde_json::json;
use std::collections::{BTreeSet, HashSet};

const COMMANDS: &[AdminCommand] = &[
    AdminCommand {
        name: "help",
        args: "",
        help: "list the admin commands",
    },
    AdminCommand {
        name: "info",
        args: "",
        help: "where the archive lives and its settings",
    },
    AdminCommand {
        name: "stats",
        args: "",
        help: "blocks, tags, and live and dead bytes per log",
    },
    AdminCommand {
        name: "reindex",
        args: "",
        help: "rebuild the index (blocks, tags, settings) from the logs alone",
    },
    AdminCommand {
        name: "verify",
        args: "",
        help: "re-read every record of every log and check its checksum",
    },
    protocol::history::READ_COMMAND,
    protocol::history::EXPIRE_COMMAND,
    protocol::provenance::UNVOUCHED_COMMAND,
    protocol::provenance::VOUCH_COMMAND,
    protocol::provenance::MARK_COMMAND,
    AdminCommand {
        name: "compact",
        args: "[THRESHOLD]",
        help: "rewrite logs whose dead share is at least THRESHOLD (default 0.5)",
    },
    AdminCommand {
        name: "write-protect",
        args: "",
        help: "refuse puts, removals and tag changes (reads go on)",
    },
    AdminCommand {
        name: "write-unprotect",
        args: "",
        help: "accept writes again",
    },
    AdminCommand {
        name: "set-max-block-size",
        args: "BYTES",
        help: "largest block accepted (at most 64 MiB)",
    },
    AdminCommand {
        name: "set-max-log-size",
        args: "BYTES",
        help: "size at which a log rolls over to the next",
    },
    AdminCommand {
        name: "set-commit-interval",
        args: "N",
        help: "writes between index commits (flush always commits)",
    },
];

/// Every setting is kept as a record in the logs, so all of them survive a reindex.
pub fn names() -> Vec<String> {
    protocol::backend::admin_names(COMMANDS)
}

fn arg<T: std::str::FromStr>(command: &str, args: &[String], what: &str) -> Result<T> {
    let bad = |m: String| Error::backend(ErrorCode::Admin, format!("{command}: {m}"));
    match args {
        [one] => one
            .parse()
            .map_err(|_| bad(format!("{one:?} is not {what}"))),
        _ => Err(bad(format!("expects one argument, {what}"))),
    }
}

fn no_args(command: &str, args: &[String]) -> Result<()> {
    if args.is_empty() {
        Ok(())
    } else {
        Err(Error::backend(
            ErrorCode::Admin,
            format!("{command} takes no arguments, got {}", args.join(" ")),
        ))
    }
}

pub fn run(b: &SplitlogBackend, command: &str, args: &[String]) -> Result<AdminOutput> {
    // These rewrite the index or the logs, which an archive opened for reading only must not
    // (settings are refused where they are written).
    // (A reindex is what settles tags in doubt, which is why an opening that met them is for
    // reading only.)
    if command == "compact" || (command == "reindex" && b.state().doubts.is_empty()) {
        b.state().check_not_read_only()?;
    }
    // With a damaged index nothing is answered but what repairs it, and what says so
    // (`verify` then checks the logs alone, and lists the damaged index among its problems).
    if !matches!(command, "help" | "info" | "reindex" | "verify") {
        b.state().usable()?;
    }
    match command {
        "help" => Ok(admin_help(
            "backend-splitlog (every setting is stored in the logs and survives a reindex)",
            COMMANDS,
        )),
        "info" => {
            no_args(command, args)?;
            let st = b.state();
            let s = &st.settings;
            let (log, offset) = st.logs.end();
            // Listed as `damage`, not `problems`: info only informs (and exits 0); `verify`
            // is the command that finds damage.
            let damage = standing_problems(&st, &b.dir);
            Ok(AdminOutput::new(
                format!(
                    "backend-splitlog archive\n  logs:            {}\n  index:           {}\n  newest log:      {log} ({offset} bytes)\n  max block size:  {}\n  max log size:    {}\n  commit interval: {}\n  write-protected: {}\n{}",
                    b.dir.display(), b.metadata.display(), s.max_block_size, s.max_log_size, s.commit_interval, s.write_protected,
                    damage.iter().map(|p| format!("  damage:          {p}\n")).collect::<String>()
                ),
                json!({
                    "kind": "splitlog", "directory": b.dir.display().to_string(),
                    "metadata": b.metadata.display().to_string(), "newest_log": log, "newest_log_size": offset,
                    "max_block_size": s.max_block_size, "max_log_size": s.max_log_size,
                    "commit_interval": s.commit_interval, "write_protected": s.write_protected,
                    "damage": damage,
                }),
            ))
        }
        "stats" => {
            no_args(command, args)?;
            let stats = b.stats()?;
            let space = b.state().index.log_space()?;
            let mut text = stats.admin_output().text;
            text.push_str("log        live bytes   dead bytes\n");
            for (n, live, dead) in &space {
                text.push_str(&format!("{n:<6} {live:>14} {dead:>12}\n"));
            }
            let logs: Vec<_> = space
                .iter()
                .map(|(n, live, dead)| json!({"log": n, "live": live, "dead": dead}))
                .collect();
            Ok(AdminOutput::new(
                text,
                json!({"blocks": stats.blocks, "bytes": stats.bytes, "tags": stats.tags, "logs": logs}),
            ))
        }
        "reindex" => crate::reindex::run(b, &mut b.state(), args),
        "verify" => {
            no_args(command, args)?;
            verify(&mut b.state())
        }
        history::TAG_HISTORY => {
            let asked = history::history_arg(args)?;
            let rows = b.state().index.tag_history(asked)?;
            let entries: Vec<history::Entry> = rows
                .into_iter()
                .map(|(tag, value, time)| history::Entry {
                    tag,
                    value: history::show_value(&value),
                    time,
                })
                .collect();
            Ok(history::output(asked, &entries))
        }
        history::EXPIRE => {
            let (cutoff, tag) = history::expire_args(args)?;
            let mut st = b.state();
            let n = st.index.expire_tag_history(cutoff, tag)?;
            st.commit()?;
            Ok(history::expired_output(n))
        }
        provenance::UNVOUCHED => {
            let (after, limit) = provenance::page_args(args)?;
            let (keys, more) = b.state().index.unvouched(after, limit)?;
            Ok(provenance::page_output(&keys, more))
        }
        provenance::VOUCH | provenance::MARK => {
            let keys = provenance::key_args(command, args)?;
            let mut st = b.state();
            b.check_writable(&st, "recording who stored a block")?;
            let vouch = command == provenance::VOUCH;
            for k in &keys {
                if st.index.is_unvouched(k)? != vouch {
                    continue;
                }
                let kind = if vouch {
                    RecordType::Vouched
                } else {
                    RecordType::Unvouched
                };
                st.write(kind, k.0, &[])?;
            }
            st.commit()?;
            Ok(provenance::count_output(command, keys.len()))
        }
        "compact" => {
            let threshold = if args.is_empty() {
                0.5
            } else {
                arg::<f64>(command, args, "a share between 0 and 1")?
            };
            if !(0.0..=1.0).contains(&threshold) {
                return Err(Error::backend(
                    ErrorCode::Admin,
                    format!("compact: threshold {threshold} is not between 0 and 1"),
                ));
            }
            compact(b, &mut b.state(), threshold)
        }
        "write-protect" | "write-unprotect" => {
            no_args(command, args)?;
            let on = command == "write-protect";
            b.state()
                .set_setting("write-protected", if on { "true" } else { "false" })?;
            Ok(AdminOutput::new(
                format!("write-protected: {on}\n"),
                json!({"write_protected": on}),
            ))
        }
        "set-max-block-size" => {
            let n: u32 = arg(command, args, "a number of bytes")?;
            if n == 0 || n > protocol::frame::MAX_BLOCK_LIMIT {
                return Err(Error::backend(
                    ErrorCode::Admin,
                    format!(
                        "set-max-block-size: {n} is outside 1..={}",
                        protocol::frame::MAX_BLOCK_LIMIT
                    ),
                ));
            }
            set(b, "max-block-size", n)
        }
        "set-max-log-size" => {
            let n: u64 = arg(command, args, "a number of bytes")?;
            if n < 1 << 20 {
                return Err(Error::backend(
                    ErrorCode::Admin,
                    format!("set-max-log-size: {n} is below the minimum of 1 MiB"),
                ));
            }
            set(b, "max-log-size", n)
        }
        "set-commit-interval" => {
            let n: u32 = arg(command, args, "a number of writes")?;
            if n == 0 {
                return Err(Error::backend(
                    ErrorCode::Admin,
                    "set-commit-interval: the interval must be at least 1",
                ));
            }
            set(b, "commit-interval", n)
        }
        other => Err(unknown_admin(other, COMMANDS)),
    }
}

fn set(b: &SplitlogBackend, name: &str, value: impl ToString) -> Result<AdminOutput> {
    let value = value.to_string();
    b.state().set_setting(name, &value)?;
    Ok(AdminOutput::new(
        format!("{name}: {value}\n"),
        json!({ name: value }),
    ))
}

/// What this session knows is wrong with the archive without reading the logs again: a damaged
/// index, logs the index names that are gone, tags in doubt.
fn standing_problems(st: &State, dir: &std::path::Path) -> Vec<String> {
    let mut problems: Vec<String> = st.broken.iter().cloned().collect();
    problems.extend(st.missing.iter().map(|m| m.describe(dir)));
    problems.extend(st.cut.iter().cloned());
    if !st.doubts.is_empty() {
        problems.push(crate::damage::explain(dir, &st.doubts));
    }
    problems
}

fn verify(st: &mut State) -> Result<AdminOutput> {
    st.commit()?;
    let mut records = 0u64;
    let dir = st.logs.dir().to_path_buf();
    let mut problems = standing_problems(st, &dir);
    let missing: HashSet<u32> = st.missing.iter().map(|m| m.log).collect();
    let mut sound_blocks = HashSet::new();
    for n in list_logs(st.logs.dir())? {
        let file = st.logs.file(n)?.clone();
        let scanner =
            Scanner::new(&file, 0, false).map_err(|e| Error::io(format!("scanning log {n}"), e))?;
        for item in scanner {
            match item.map_err(|e| Error::io(format!("scanning log {n}"), e))? {
                Item::Record { offset, header, .. } => {
                    records += 1;
                    if header.kind == RecordType::Block {
                        sound_blocks.insert((n, offset));
                    }
                }
                Item::Corrupt { offset, reason, .. } => problems.push(format!(
                    "{} offset {offset}: {reason}",
                    log_path(&dir, n).display()
                )),
                Item::TornTail { offset } => problems.push(format!(
                    "{} offset {offset}: incomplete record at the end (the log ends at byte {})",
                    log_path(&dir, n).display(),
                    st.logs.size_of(n)?
                )),
            }
        }
    }
    let mut after = None;
    loop {
        let keys = st.index.list(after, 10_000)?;
        for k in &keys {
            if let Some(loc) = st.index.locate(k)? {
                // (A missing log is one problem, not one per block.)
                if !missing.contains(&loc.log) && !sound_blocks.contains(&(loc.log, loc.offset)) {
                    problems.push(format!("block {k}: the index points at log {} offset {}, where there is no sound record of it", loc.log, loc.offset));
                }
            }
        }
        match keys.last() {
            Some(k) => after = Some(*k),
            None => break,
        }
    }
    let text = if problems.is_empty() {
        format!("verified {records} records: all sound\n")
    } else {
        format!(
            "verified {records} records: {} problem(s)\n{}",
            problems.len(),
            problems
                .iter()
                .map(|p| format!("  {p}\n"))
                .collect::<String>()
        )
    };
    Ok(AdminOutput::new(
        text,
        json!({"records": records, "problems": problems}),
    ))
}

fn compact(b: &SplitlogBackend, st: &mut State, threshold: f64) -> Result<AdminOutput> {
    if st.settings.write_protected {
        return Err(Error::backend(
            ErrorCode::ReadOnly,
            format!(
                "the archive {} is write-protected; compaction refused",
                b.dir.display()
            ),
        ));
    }
    st.commit()?;
    let logs = list_logs(st.logs.dir())?;
    let oldest = logs.first().copied();
    let candidates: Vec<u32> = st
        .index
        .log_space()?
        .into_iter()
        .filter(|&(n, live, dead)| {
            let total = live + dead;
            total > 0 && dead as f64 >= threshold * total as f64 && logs.contains(&n)
        })
        .map(|(n, _, _)| n)
        .collect();
    // The newest log qualifies too: start a fresh one so it can be rewritten like the others.
    if candidates.contains(&st.logs.end().0) {
        st.logs.roll()?;
    }
    let mut done = Vec::new();
    let mut problems = Vec::new();
    // What the disk gets back: the logs' total size before less after (the live records of a
    // compacted log are written again, to the newest log).
    let total = |st: &mut State| -> Result<u64> {
        let mut t = 0;
        for n in list_logs(st.logs.dir())? {
            t += st.logs.size_of(n)?;
        }
        Ok(t)
    };
    let before = total(st)?;
    for n in candidates {
        if let Some(damage) = compact_log(st, n, Some(n) != oldest)? {
            // Its sound records were copied, but the log is kept: deleting it would delete the
            // evidence of what its damaged records held (and their blocks' place in the index).
            st.commit()?;
            problems.push(format!(
                "{} not compacted: {damage} (see `verify`)",
                log_path(st.logs.dir(), n).display()
            ));
            continue;
        }
        st.commit()?;
        st.logs.delete(n)?;
        st.index.forget_log(n)?;
        st.commit()?;
        done.push(n);
    }
    let freed = before.saturating_sub(total(st)?);
    Ok(AdminOutput::new(
        format!(
            "compacted {} log(s), {freed} bytes freed\n{}",
            done.len(),
            problems
                .iter()
                .map(|p| format!("  {p}\n"))
                .collect::<String>()
        ),
        json!({"logs": done, "freed": freed, "problems": problems}),
    ))
}

/// Copies what log `n` holds that is still needed to the newest log and points the index at it.
/// Returns what damage the log holds, if any (then it must not be deleted).
fn compact_log(st: &mut State, n: u32, older_logs_exist: bool) -> Result<Option<String>> {
    let path = log_path(st.logs.dir(), n);
    let file = st
        .logs
        .file(n)?
        .try_clone()
        .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
    let scanner = Scanner::new(&file, 0, true)
        .map_err(|e| Error::io(format!("scanning {}", path.display()), e))?;
    let mut tags = BTreeSet::new();
    // Values this log set that the tag history still keeps, in order: carried over so that a
    // reindex after compaction finds the same history (protocol::history).
    let mut kept = Vec::new();
    let mut settings = BTreeSet::new();
    let mut damage = None;
    for item in scanner {
        let (offset, header, payload) =
            match item.map_err(|e| Error::io(format!("scanning {}", path.display()), e))? {
                Item::Record {
                    offset,
                    header,
                    payload,
                } => (offset, header, payload),
                Item::Corrupt { offset, reason, .. } => {
                    damage.get_or_insert(format!("a damaged record at offset {offset} ({reason})"));
                    continue;
                }
                Item::TornTail { offset } => {
                    damage.get_or_insert(format!("an incomplete record at offset {offset}"));
                    continue;
                }
            };
        let payload = payload.unwrap_or_default();
        let key = Key(header.key);
        match header.kind {
            RecordType::Block => {
                let old = Location {
                    log: n,
                    offset,
                    len: header.len,
                };
                if st.index.locate(&key)? == Some(old) {
                    let new = st
                        .logs
                        .append(&header, &payload, st.settings.max_log_size)?;
                    st.index.relocate(&key, old, new)?;
                }
            }
            RecordType::Unvouched => {
                // Carried while the record stands (written before the block's copy, if the
                // block is in this log too: a block comes after its record).
                if st.index.is_unvouched(&key)? {
                    st.write(RecordType::Unvouched, key.0, &[])?;
                }
            }
            RecordType::Vouched => {
                // Still needed only while an older log may hold the record it clears.
                if older_logs_exist && !st.index.is_unvouched(&key)? {
                    st.write(RecordType::Vouched, key.0, &[])?;
                }
            }
            RecordType::BlockRemoved => {
                // Still needed only while an older log may hold the block it removed.
                if older_logs_exist && st.index.locate(&key)?.is_none() {
                    st.write(RecordType::BlockRemoved, key.0, &[])?;
                }
            }
            RecordType::TagSet | RecordType::TagRemoved | RecordType::TagKept => {
                if let Some((name, value)) = parse_named(&payload) {
                    if header.kind != RecordType::TagRemoved
                        && st.index.in_history(&name, &value)?
                    {
                        kept.push(named_payload(&name, &value));
                    }
                    if header.kind != RecordType::TagKept {
                        tags.insert(name);
                    }
                }
            }
            RecordType::Setting => {
                if let Some((name, _)) = parse_named(&payload) {
                    settings.insert(name);
                }
            }
        }
    }
    // Kept values first (they change no tag), then the tags' current values.
    for payload in &kept {
        st.write(RecordType::TagKept, [0; 32], payload)?;
    }
    for name in tags {
        match st.index.tag(&name)? {
            Some(v) => st.write(RecordType::TagSet, [0; 32], &named_payload(&name, &v))?,
            None if older_logs_exist => {
                st.write(RecordType::TagRemoved, [0; 32], &named_payload(&name, &[]))?
            }
            None => {}
        }
    }
    for name in settings {
        if let Some(v) = st.index.setting(&name)? {
            st.write(
                RecordType::Setting,
                [0; 32],
                &named_payload(&name, v.as_bytes()),
            )?;
        }
    }
    Ok(damage)
}
