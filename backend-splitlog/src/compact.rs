//! Compaction: rewriting logs whose space is mostly freed by removals.
//!
//! Compaction never has a moment where a live block exists nowhere: the live records of a log
//! are appended to the newest log and synced, the index is committed pointing at the copies, and
//! only then is the old log deleted. Records the old log held that a reindex would still need
//! (removals of blocks that older logs hold, the latest tag and setting values) are carried
//! over too, so a reindex after compaction rebuilds exactly the same state — the tag history
//! included: every value a compacted log set that the history still keeps is written again as
//! a kept-value record (until someone with full access expires it, `expire-tag-history`).
//!
//! A log with a damaged record is not deleted: its sound records are copied, but the log stays
//! as the evidence of what its damaged records held (and their blocks' place in the index).

use crate::index::Location;
use crate::logs::{list_logs, log_path};
use crate::record::{named_payload, parse_named, Header, RecordType};
use crate::scan::{Item, Scanner};
use crate::{SplitlogBackend, State};
use protocol::backend::AdminOutput;
use protocol::{Error, ErrorCode, Key, Result};
use serde_json::json;
use std::collections::BTreeSet;

/// Rewrites the logs whose dead share is at least `threshold`.
pub(crate) fn compact(b: &SplitlogBackend, st: &mut State, threshold: f64) -> Result<AdminOutput> {
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
    let candidates = candidates(st, &logs, threshold)?;
    // The newest log qualifies too: start a fresh one so it can be rewritten like the others.
    if candidates.contains(&st.logs.end().0) {
        st.logs.roll()?;
    }
    let mut done = Vec::new();
    let mut problems = Vec::new();
    // What the disk gets back: the logs' total size before less after (the live records of a
    // compacted log are written again, to the newest log).
    let before = total_size(st)?;
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
    let freed = before.saturating_sub(total_size(st)?);
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

/// The logs (of those on disk, `logs`) whose dead share is at least `threshold`.
fn candidates(st: &mut State, logs: &[u32], threshold: f64) -> Result<Vec<u32>> {
    Ok(st
        .index
        .log_space()?
        .into_iter()
        .filter(|&(n, live, dead)| {
            let total = live + dead;
            total > 0 && dead as f64 >= threshold * total as f64 && logs.contains(&n)
        })
        .map(|(n, _, _)| n)
        .collect())
}

/// The logs' total size.
fn total_size(st: &mut State) -> Result<u64> {
    let mut t = 0;
    for n in list_logs(st.logs.dir())? {
        t += st.logs.size_of(n)?;
    }
    Ok(t)
}

/// What a compacted log's tag and setting records leave to write again once it is read.
#[derive(Default)]
struct Carried {
    /// Tags the log set or removed: their current values are written again.
    tags: BTreeSet<String>,
    /// Values this log set that the tag history still keeps, in order: carried over so that a
    /// reindex after compaction finds the same history (protocol::history).
    kept: Vec<Vec<u8>>,
    /// Settings the log set: their current values are written again.
    settings: BTreeSet<String>,
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
    let mut carried = Carried::default();
    let mut damage = None;
    for item in scanner {
        match item.map_err(|e| Error::io(format!("scanning {}", path.display()), e))? {
            Item::Record {
                offset,
                header,
                payload,
            } => {
                let record = (n, offset, &header, payload.unwrap_or_default());
                carry_record(st, record, older_logs_exist, &mut carried)?;
            }
            Item::Corrupt { offset, reason, .. } => {
                damage.get_or_insert(format!("a damaged record at offset {offset} ({reason})"));
            }
            Item::TornTail { offset } => {
                damage.get_or_insert(format!("an incomplete record at offset {offset}"));
            }
        }
    }
    write_carried(st, carried, older_logs_exist)?;
    Ok(damage)
}

/// Copies one sound record of a compacted log where it is still needed: a live block to the
/// newest log, a provenance or removal record while an older log may need it; tag and setting
/// records are noted in `carried`, for [`write_carried`].
fn carry_record(
    st: &mut State,
    (n, offset, header, payload): (u32, u64, &Header, Vec<u8>),
    older_logs_exist: bool,
    carried: &mut Carried,
) -> Result<()> {
    let key = Key(header.key);
    match header.kind {
        RecordType::Block => {
            let old = Location {
                log: n,
                offset,
                len: header.len,
            };
            if st.index.locate(&key)? == Some(old) {
                let new = st.logs.append(header, &payload, st.settings.max_log_size)?;
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
                if header.kind != RecordType::TagRemoved && st.index.in_history(&name, &value)? {
                    carried.kept.push(named_payload(&name, &value));
                }
                if header.kind != RecordType::TagKept {
                    carried.tags.insert(name);
                }
            }
        }
        RecordType::Setting => {
            if let Some((name, _)) = parse_named(&payload) {
                carried.settings.insert(name);
            }
        }
    }
    Ok(())
}

/// Writes again what a compacted log's tag and setting records said that is still true: kept
/// values first (they change no tag), then the tags' current values, then the settings'.
fn write_carried(st: &mut State, carried: Carried, older_logs_exist: bool) -> Result<()> {
    for payload in &carried.kept {
        st.write(RecordType::TagKept, [0; 32], payload)?;
    }
    for name in carried.tags {
        match st.index.tag(&name)? {
            Some(v) => st.write(RecordType::TagSet, [0; 32], &named_payload(&name, &v))?,
            None if older_logs_exist => {
                st.write(RecordType::TagRemoved, [0; 32], &named_payload(&name, &[]))?
            }
            None => {}
        }
    }
    for name in carried.settings {
        if let Some(v) = st.index.setting(&name)? {
            st.write(
                RecordType::Setting,
                [0; 32],
                &named_payload(&name, v.as_bytes()),
            )?;
        }
    }
    Ok(())
}
