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
//!
//! A line is `NANOSECONDS set HEX b3:CHECKSUM` or `NANOSECONDS removed b3:CHECKSUM`, the
//! checksum being the first 16 hex digits of the BLAKE3 hash of the text before it. Lines
//! written before the checksum was added lack it and are read as they are (`expire` rewrites
//! the lines it keeps with one). A line that does not parse or whose checksum does not match is
//! **damage, never skipped**: `verify` lists it (file and line number), and the tag history
//! admin command and `expire` refuse with an error naming it — a shorter answer would let gc
//! remove what the lost line kept, and an expiry would rewrite the file without it. A line a
//! crash cut short (no final newline) is such a line too; the next change starts a new line
//! after it rather than being glued onto it.

use crate::files::{create_dir_all, sorted_names, sync_dir, write_new_synced};
use protocol::history::{keeps_history, Entry};
use protocol::key::check_tag_name;
use protocol::{Error, ErrorCode, Result};
use std::path::Path;

const DIR: &str = "tag-history";

fn now_ns() -> i128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0)
}

/// The checksum a line of the current layout ends with: `b3:` and the first 16 hex digits of
/// the BLAKE3 hash of the line's text before it (`NANOSECONDS set HEX` or `NANOSECONDS
/// removed`). It makes a flipped byte inside a key — which still reads as hex, and would
/// silently change what gc keeps — a damaged line instead.
fn checksum(text: &str) -> String {
    format!("b3:{}", &blake3::hash(text.as_bytes()).to_hex()[..16])
}

/// One line as written now: the change, then its checksum.
fn line(ns: i128, value: Option<&[u8]>) -> String {
    let text = match value {
        Some(v) => format!("{ns} set {}", hex::encode(v)),
        None => format!("{ns} removed"),
    };
    let sum = checksum(&text);
    format!("{text} {sum}\n")
}

/// A change read back: when, and the value set (`None`: removed).
type Change = (i128, Option<Vec<u8>>);

/// Reads one line, of either layout: `NANOSECONDS set HEX` / `NANOSECONDS removed` (written
/// before lines carried a checksum) or the same followed by ` b3:CHECKSUM`. Says what is wrong
/// with a line that is neither.
fn parse_line(line: &str) -> std::result::Result<Change, String> {
    let (text, sum) = match line.rsplit_once(' ') {
        Some((t, s)) if s.starts_with("b3:") => (t, Some(s)),
        _ => (line, None),
    };
    if let Some(sum) = sum {
        if checksum(text) != sum {
            return Err(format!("its checksum {sum} does not match its text"));
        }
    }
    let mut w = text.split(' ');
    let ns = w
        .next()
        .and_then(|n| n.parse::<i128>().ok())
        .ok_or("it does not start with a time in nanoseconds")?;
    match (w.next(), w.next(), w.next()) {
        (Some("set"), Some(h), None) if h.len() % 2 == 0 && !h.is_empty() => {
            match hex::decode(h).ok() {
                Some(v) => Ok((ns, Some(v))),
                None => Err("its value is not hexadecimal".into()),
            }
        }
        (Some("removed"), None, None) => Ok((ns, None)),
        _ => Err("it is neither `TIME set HEX` nor `TIME removed`".into()),
    }
}

/// A line of a tag's history file that cannot be read: the file, the line's number (from 1)
/// and what is wrong with it.
#[derive(Debug)]
pub(crate) struct BadLine {
    pub path: std::path::PathBuf,
    pub number: usize,
    pub reason: String,
}

impl std::fmt::Display for BadLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} line {}: the tag history is damaged ({}), so a value the tag had may be lost",
            self.path.display(),
            self.number,
            self.reason
        )
    }
}

/// Every change recorded for tag `name`, oldest first, and the lines that cannot be read.
pub(crate) fn read(archive: &Path, name: &str) -> Result<(Vec<Change>, Vec<BadLine>)> {
    let path = archive.join(DIR).join(name);
    let bytes = match std::fs::read(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Default::default()),
        Err(e) => return Err(Error::io(format!("reading {}", path.display()), e)),
    };
    let mut changes = Vec::new();
    let mut bad = Vec::new();
    let mut pieces: Vec<&[u8]> = bytes.split(|b| *b == b'\n').collect();
    // The empty piece after the final newline (or of an empty file).
    if pieces.last().is_some_and(|p| p.is_empty()) {
        pieces.pop();
    }
    for (i, raw) in pieces.into_iter().enumerate() {
        let parsed = std::str::from_utf8(raw)
            .map_err(|_| "it is not text".to_string())
            .and_then(parse_line);
        match parsed {
            Ok(c) => changes.push(c),
            Err(reason) => bad.push(BadLine {
                path: path.clone(),
                number: i + 1,
                reason,
            }),
        }
    }
    Ok((changes, bad))
}

/// Every change recorded for tag `name`, oldest first; an error naming the file and line when
/// any line cannot be read, for an answer that silently left it out would be a shorter
/// history than the backend kept (and gc keeps what the history names).
fn read_whole(archive: &Path, name: &str) -> Result<Vec<Change>> {
    let (changes, bad) = read(archive, name)?;
    match bad.first() {
        None => Ok(changes),
        Some(first) => Err(Error::backend(
            ErrorCode::Corrupt,
            format!(
                "{first}{}; `verify` lists every damaged line. The tag's history cannot be \
                 given whole (and gc cannot run) until the file is repaired: put the line back \
                 from a copy of the archive, or delete it by hand once you know the value it \
                 named is not needed",
                match bad.len() {
                    1 => String::new(),
                    n => format!(" (and {} more damaged line(s))", n - 1),
                }
            ),
        )),
    }
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
    let mut line = line(now_ns(), value);
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
    // A line cut short by a crash stays a line of its own (reported as damaged), rather than
    // gluing this change onto it and damaging this one too.
    if !ends_in_newline(&f).map_err(|e| Error::io(format!("reading {}", path.display()), e))? {
        line.insert(0, '\n');
    }
    f.write_all(line.as_bytes())
        .and_then(|()| f.sync_data())
        .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
    sync_dir(&dir)
}

/// Whether `f` is empty or its last byte is a newline.
fn ends_in_newline(f: &std::fs::File) -> std::io::Result<bool> {
    use std::os::unix::fs::FileExt;
    let len = f.metadata()?.len();
    if len == 0 {
        return Ok(true);
    }
    let mut last = [0u8];
    f.read_exact_at(&mut last, len - 1)?;
    Ok(last[0] == b'\n')
}

/// The values recorded for one tag, each once (first sighting), oldest first, with the time
/// first seen in nanoseconds. An error when any line is damaged (`read_whole`).
fn values(archive: &Path, name: &str) -> Result<Vec<(i128, Vec<u8>)>> {
    let mut out: Vec<(i128, Vec<u8>)> = Vec::new();
    for (ns, v) in read_whole(archive, name)? {
        let Some(v) = v else { continue };
        if !out.iter().any(|(_, seen)| *seen == v) {
            out.push((ns, v));
        }
    }
    Ok(out)
}

/// A tag's latest recorded change: the value it was set to (`None`: removed), and when. An
/// error when any line is damaged (`read_whole`).
pub(crate) fn latest(archive: &Path, name: &str) -> Result<Option<Change>> {
    Ok(read_whole(archive, name)?.pop())
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
            out.push(Entry::new(tag.clone(), &v, (ns / 1_000_000_000) as i64));
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
        let mut text: String = kept.iter().map(|(ns, v)| line(*ns, Some(v))).collect();
        // The latest change stays the last line (a value seen again, or a removal).
        match latest(archive, &tag)? {
            Some((ns, Some(v))) if kept.last().map(|(_, l)| l) != Some(&v) => {
                text.push_str(&line(ns, Some(&v)));
            }
            Some((ns, None)) => text.push_str(&line(ns, None)),
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
