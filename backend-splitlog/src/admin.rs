//! Admin commands of splitlog: settings, reindex, verify and compaction (`compact`).
//!
//! One table, [`TABLE`], holds each command's name, help and handler: `help`, the welcome's list
//! and the dispatch all read it. Two rules stand before the table, in [`run`]: what rewrites the
//! index or the logs is refused to an archive opened for reading only, and with a damaged index
//! nothing is answered but what repairs it and what says so.

use crate::logs::{list_logs, log_path};
use crate::record::RecordType;
use crate::scan::{Item, Scanner};
use crate::{SplitlogBackend, State};
use protocol::admin::{entry, no_args, records, Records, Table};
use protocol::backend::AdminOutput;
use protocol::history;
use protocol::provenance;
use protocol::{Backend, Error, ErrorCode, Result};
use serde_json::json;
use std::collections::HashSet;

pub(crate) const TABLE: &Table<SplitlogBackend> = &[
    &[
        entry("help", "", "list the admin commands", help),
        entry("info", "", "where the archive lives and its settings", info),
        entry(
            "stats",
            "",
            "blocks, tags, and live and dead bytes per log",
            stats,
        ),
        entry(
            "reindex",
            "",
            "rebuild the index (blocks, tags, settings) from the logs alone",
            |b, args| crate::reindex::run(b, &mut b.state(), args),
        ),
        entry(
            "verify",
            "",
            "re-read every record of every log and check its checksum",
            |b, args| {
                no_args("verify", args)?;
                verify(&mut b.state())
            },
        ),
    ],
    &records::<SplitlogBackend>(),
    &[
        entry(
            "compact",
            "[THRESHOLD]",
            "rewrite logs whose dead share is at least THRESHOLD (default 0.5)",
            compact,
        ),
        entry(
            "write-protect",
            "",
            "refuse puts, removals and tag changes (reads go on)",
            |b, args| write_protect(b, "write-protect", args, true),
        ),
        entry("write-unprotect", "", "accept writes again", |b, args| {
            write_protect(b, "write-unprotect", args, false)
        }),
        entry(
            "set-max-block-size",
            "BYTES",
            "largest block accepted (at most 64 MiB)",
            set_max_block_size,
        ),
        entry(
            "set-max-log-size",
            "BYTES",
            "size at which a log rolls over to the next",
            set_max_log_size,
        ),
        entry(
            "set-commit-interval",
            "N",
            "writes between index commits (flush always commits)",
            set_commit_interval,
        ),
    ],
];

fn arg<T: std::str::FromStr>(command: &str, args: &[String], what: &str) -> Result<T> {
    let bad = |m: String| Error::backend(ErrorCode::Admin, format!("{command}: {m}"));
    match args {
        [one] => one
            .parse()
            .map_err(|_| bad(format!("{one:?} is not {what}"))),
        _ => Err(bad(format!("expects one argument, {what}"))),
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
    protocol::admin::dispatch(TABLE, b, command, args)
}

fn help(_: &SplitlogBackend, _: &[String]) -> Result<AdminOutput> {
    Ok(protocol::admin::help(
        "backend-splitlog (every setting is stored in the logs and survives a reindex)",
        TABLE,
    ))
}

fn info(b: &SplitlogBackend, args: &[String]) -> Result<AdminOutput> {
    no_args("info", args)?;
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

fn stats(b: &SplitlogBackend, args: &[String]) -> Result<AdminOutput> {
    no_args("stats", args)?;
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

/// `vouch` and `mark-unvouched` log who stored each block, where that changes.
impl Records for SplitlogBackend {
    fn tag_history(&self, args: &[String]) -> Result<AdminOutput> {
        let asked = history::history_arg(args)?;
        let rows = self.state().index.tag_history(asked)?;
        let entries: Vec<history::Entry> = rows
            .into_iter()
            .map(|(tag, value, time)| history::Entry::new(tag, &value, time))
            .collect();
        Ok(history::output(asked, &entries))
    }

    fn expire_tag_history(&self, args: &[String]) -> Result<AdminOutput> {
        let (cutoff, tag) = history::expire_args(args)?;
        let mut st = self.state();
        let n = st.index.expire_tag_history(cutoff, tag)?;
        st.commit()?;
        Ok(history::expired_output(n))
    }

    fn unvouched(&self, args: &[String]) -> Result<AdminOutput> {
        let (after, limit) = provenance::page_args(args)?;
        let (keys, more) = self.state().index.unvouched(after, limit)?;
        Ok(provenance::page_output(&keys, more))
    }

    fn record_vouching(&self, command: &str, args: &[String]) -> Result<AdminOutput> {
        let keys = provenance::key_args(command, args)?;
        let mut st = self.state();
        self.check_writable(&st, "recording who stored a block")?;
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
}

fn compact(b: &SplitlogBackend, args: &[String]) -> Result<AdminOutput> {
    let threshold = if args.is_empty() {
        0.5
    } else {
        arg::<f64>("compact", args, "a share between 0 and 1")?
    };
    if !(0.0..=1.0).contains(&threshold) {
        return Err(Error::backend(
            ErrorCode::Admin,
            format!("compact: threshold {threshold} is not between 0 and 1"),
        ));
    }
    crate::compact::compact(b, &mut b.state(), threshold)
}

fn write_protect(
    b: &SplitlogBackend,
    command: &str,
    args: &[String],
    on: bool,
) -> Result<AdminOutput> {
    no_args(command, args)?;
    b.state()
        .set_setting("write-protected", if on { "true" } else { "false" })?;
    Ok(AdminOutput::new(
        format!("write-protected: {on}\n"),
        json!({"write_protected": on}),
    ))
}

fn set_max_block_size(b: &SplitlogBackend, args: &[String]) -> Result<AdminOutput> {
    let n: u32 = arg("set-max-block-size", args, "a number of bytes")?;
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

fn set_max_log_size(b: &SplitlogBackend, args: &[String]) -> Result<AdminOutput> {
    let n: u64 = arg("set-max-log-size", args, "a number of bytes")?;
    if n < 1 << 20 {
        return Err(Error::backend(
            ErrorCode::Admin,
            format!("set-max-log-size: {n} is below the minimum of 1 MiB"),
        ));
    }
    set(b, "max-log-size", n)
}

fn set_commit_interval(b: &SplitlogBackend, args: &[String]) -> Result<AdminOutput> {
    let n: u32 = arg("set-commit-interval", args, "a number of writes")?;
    if n == 0 {
        return Err(Error::backend(
            ErrorCode::Admin,
            "set-commit-interval: the interval must be at least 1",
        ));
    }
    set(b, "commit-interval", n)
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

/// Re-reads every record of every log, then checks that each block the index names has a sound
/// record where the index says it is.
fn verify(st: &mut State) -> Result<AdminOutput> {
    st.commit()?;
    let dir = st.logs.dir().to_path_buf();
    let mut problems = standing_problems(st, &dir);
    let (records, sound_blocks) = scan_logs(st, &dir, &mut problems)?;
    check_index(st, &sound_blocks, &mut problems)?;
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

/// Reads every log through, noting each damaged or torn record in `problems`. Returns how many
/// sound records there are and where the sound block records lie (log, offset).
fn scan_logs(
    st: &mut State,
    dir: &std::path::Path,
    problems: &mut Vec<String>,
) -> Result<(u64, HashSet<(u32, u64)>)> {
    let mut records = 0u64;
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
                    log_path(dir, n).display()
                )),
                Item::TornTail { offset } => problems.push(format!(
                    "{} offset {offset}: incomplete record at the end (the log ends at byte {})",
                    log_path(dir, n).display(),
                    st.logs.size_of(n)?
                )),
            }
        }
    }
    Ok((records, sound_blocks))
}

/// Notes in `problems` each block the index places where there is no sound record of it
/// (`sound_blocks`), except in a log that is missing (one problem already, not one per block).
fn check_index(
    st: &mut State,
    sound_blocks: &HashSet<(u32, u64)>,
    problems: &mut Vec<String>,
) -> Result<()> {
    let missing: HashSet<u32> = st.missing.iter().map(|m| m.log).collect();
    let mut after = None;
    loop {
        let keys = st.index.list(after, 10_000)?;
        for k in &keys {
            if let Some(loc) = st.index.locate(k)? {
                if !missing.contains(&loc.log) && !sound_blocks.contains(&(loc.log, loc.offset)) {
                    problems.push(format!("block {k}: the index points at log {} offset {}, where there is no sound record of it", loc.log, loc.offset));
                }
            }
        }
        match keys.last() {
            Some(k) => after = Some(*k),
            None => return Ok(()),
        }
    }
}
