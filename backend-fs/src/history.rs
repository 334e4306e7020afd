//! backend-fs's tag history: one file per tag under `tag-history/`, a line per change.
//!
//! Every change of a tag is appended (`NANOSECONDS set HEX` or `NANOSECONDS removed`) and
//! synced before the change is acknowledged, so each value a tag has had stays recoverable —
//! an append-only client can move a tag, never erase where it was — and Ore's gc keeps what
//! those values name (`protocol::history`). Nothing rewrites these files but
//! `expire-tag-history`, which only a full-access connection may run; it rewrites a tag's file
//! without the values first seen at or before its cutoff that the tag no longer holds, under
//! the same locks as a tag change, and keeps the tag's latest change as its last line. Lease
//! tags are not recorded (their values are heartbeats).
//!
//! The last line of a tag's file is its latest change, and a set is recorded only once the tag
//! file holding it is durable (a removal, before the file goes): so while the last line sets a
//! value, the tag's file exists — unless something outside the backend deleted it, which
//! `verify` reports.

use crate::files::{create_dir_all, sorted_names, sync_dir, write_new_synced};
use protocol::history::{keeps_history, show_value, Entry};
use protocol::key::check_tag_name;
use protocol::{Error, Result};
use std::path::Path;

const DIR: &str = "tag-history";

fn now_ns() -> i128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(h: &str) -> Option<Vec<u8>> {
    (0..h.len() / 2)
        .map(|i| {
            h.get(2 * i..2 * i + 2)
                .and_then(|p| u8::from_str_radix(p, 16).ok())
        })
        .collect()
}

/// Appends a change of tag `name` in the archive at `archive` (`None`: removed).
pub(crate) fn record(archive: &Path, name: &str, value: Option<&[u8]>) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if !keeps_history(name) {
        return Ok(());
    }
    let dir = archive.join(DIR);
    create_dir_all(&dir)?;
    let path = dir.join(name);
    let line = match value {
        Some(v) => format!("{} set {}\n", now_ns(), hex(v)),
        None => format!("{} removed\n", now_ns()),
    };
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
    f.write_all(line.as_bytes())
        .and_then(|()| f.sync_data())
        .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
    sync_dir(&dir)
}

/// The values recorded for one tag, each once (first sighting), oldest first, with the time
/// first seen in nanoseconds.
fn values(archive: &Path, name: &str) -> Result<Vec<(i128, Vec<u8>)>> {
    let path = archive.join(DIR).join(name);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(Error::io(format!("reading {}", path.display()), e)),
    };
    let mut out: Vec<(i128, Vec<u8>)> = Vec::new();
    for line in text.lines() {
        let mut w = line.splitn(3, ' ');
        let (Some(ns), Some("set"), Some(h)) = (w.next(), w.next(), w.next()) else {
            continue;
        };
        let (Ok(ns), Some(v)) = (ns.parse::<i128>(), unhex(h)) else {
            continue;
        };
        if !out.iter().any(|(_, seen)| *seen == v) {
            out.push((ns, v));
        }
    }
    Ok(out)
}

/// A tag's latest recorded change: the value it was set to (`None`: removed), and when.
pub(crate) fn latest(archive: &Path, name: &str) -> Result<Option<(i128, Option<Vec<u8>>)>> {
    let path = archive.join(DIR).join(name);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(format!("reading {}", path.display()), e)),
    };
    Ok(text.lines().rev().find_map(|line| {
        let mut w = line.splitn(3, ' ');
        let ns = w.next()?.parse::<i128>().ok()?;
        match (w.next(), w.next()) {
            (Some("set"), Some(h)) => Some((ns, Some(unhex(h)?))),
            (Some("removed"), None) => Some((ns, None)),
            _ => None,
        }
    }))
}

/// The tags that have a history file.
pub(crate) fn names(archive: &Path) -> Result<Vec<String>> {
    let mut names = sorted_names(&archive.join(DIR))?;
    names.retain(|n| !n.starts_with('.'));
    Ok(names)
}

/// The kept values of tag `asked` (or of every tag).
pub(crate) fn list(archive: &Path, asked: Option<&str>) -> Result<Vec<Entry>> {
    let names = match asked {
        Some(n) => {
            check_tag_name(n)?;
            vec![n.to_string()]
        }
        None => names(archive)?,
    };
    let mut out = Vec::new();
    for tag in names {
        for (ns, v) in values(archive, &tag)? {
            out.push(Entry {
                tag: tag.clone(),
                value: show_value(&v),
                time: (ns / 1_000_000_000) as i64,
            });
        }
    }
    Ok(out)
}

/// Forgets values (of tag `only`, or all) first seen at or before `cutoff` (seconds) that
/// `current` says their tag no longer holds. The caller holds the tag locks.
pub(crate) fn expire(
    archive: &Path,
    cutoff: i64,
    only: Option<&str>,
    current: impl Fn(&str) -> Result<Option<Vec<u8>>>,
) -> Result<u64> {
    let mut forgotten = 0;
    for tag in names(archive)? {
        if only.is_some_and(|o| o != tag) {
            continue;
        }
        let now = current(&tag)?;
        let all = values(archive, &tag)?;
        let kept: Vec<&(i128, Vec<u8>)> = all
            .iter()
            .filter(|(ns, v)| (ns / 1_000_000_000) as i64 > cutoff || now.as_ref() == Some(v))
            .collect();
        if kept.len() == all.len() {
            continue;
        }
        forgotten += (all.len() - kept.len()) as u64;
        let mut text: String = kept
            .iter()
            .map(|(ns, v)| format!("{ns} set {}\n", hex(v)))
            .collect();
        // The latest change stays the last line (a value seen again, or a removal).
        match latest(archive, &tag)? {
            Some((ns, Some(v))) if kept.last().map(|(_, l)| l) != Some(&v) => {
                text.push_str(&format!("{ns} set {}\n", hex(&v)));
            }
            Some((ns, None)) => text.push_str(&format!("{ns} removed\n")),
            _ => {}
        }
        let path = archive.join(DIR).join(&tag);
        let tmp = archive.join(DIR).join(format!(".{tag}.expiring"));
        let _ = std::fs::remove_file(&tmp);
        write_new_synced(&tmp, text.as_bytes())?;
        std::fs::rename(&tmp, &path)
            .map_err(|e| Error::io(format!("replacing {}", path.display()), e))?;
    }
    sync_dir(&archive.join(DIR))?;
    Ok(forgotten)
}
