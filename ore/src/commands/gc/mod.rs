//! Garbage collection: remove every block no root reaches (FORMAT.md §10).
//!
//! 1. **Mark**, without stopping anyone: walk from every tag, the reflog and the format record,
//!    and from every value the backend's tag history still keeps (so moving a tag, through an
//!    append-only key say, destroys nothing until the owner expires that history),
//!    remembering each block in a [`KeySet`] (bounded memory). A root that cannot be read
//!    stops gc: removing blocks on the strength of a damaged archive could delete what the
//!    damaged part refers to (`ore check` says what is wrong).
//! 2. **List** the archive's blocks; those not marked are *candidates*, written to a temporary
//!    file rather than held in memory.
//! 3. **Sweep**: announce it in `ore:gc` and wait for every run that holds a lease to finish
//!    (see [`crate::core::lease`]; runs that start now wait for the sweep instead). Mark again from
//!    the roots as they are now — only what the finished runs added is read — and remove the
//!    candidates still unmarked, re-reading `ore:gc` before each batch so that a sweep ended
//!    behind gc's back stops removing at once. A run that deduplicated against a candidate has, by then,
//!    moved its tag, so the second mark reaches that block and it stays.
//! 4. **Compact** (backends that offer it: splitlog rewrites logs that are mostly dead,
//!    backend-s3 repacks packs holding removed blocks or duplicate copies).
//!
//! Blocks written after the listing are never candidates; blocks written before it by a run
//! still going are kept by the wait. Nothing is ever locked for good: leases and the sweep's own
//! announcement expire when their holder stops renewing them.

mod retention;
pub use retention::{ReflogExpiry, ReflogOutcome};

use crate::core::error::{Error, Result};
use crate::core::keyset::KeySet;
use crate::core::lease::Sweep;
use crate::core::reach::{self, Counts, Visitor};
use crate::core::repo::Repo;
use protocol::Key;
use std::io::{BufReader, BufWriter, Read, Seek, Write};
use std::time::{Duration, Instant};

/// How to collect.
#[derive(Clone, Debug)]
pub struct GcOptions {
    /// Report what would be removed; remove nothing.
    pub dry_run: bool,
    /// Longest wait for runs holding leases before giving up.
    pub wait: Duration,
    /// Compact afterwards, rewriting logs whose dead share is at least this (when offered).
    pub compact: Option<f64>,
    /// Counts blocks marked (and listed), for a terminal's status line.
    pub progress: Option<std::sync::Arc<crate::core::progress::Progress>>,
    /// Which reflog entries are expired first (see [`retention`]).
    pub reflog: ReflogExpiry,
}

impl Default for GcOptions {
    fn default() -> Self {
        GcOptions {
            dry_run: false,
            wait: Duration::from_secs(3600),
            compact: Some(0.1),
            progress: None,
            reflog: ReflogExpiry::Retention,
        }
    }
}

/// What a collection did.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct GcOutcome {
    /// Blocks reachable from the roots.
    pub reachable: u64,
    /// Blocks the archive listed.
    pub listed: u64,
    /// Blocks removed (or, in a dry run, that would be).
    pub removed: u64,
    /// Stored bytes before and after (from the backend's counters, when it has them); in a
    /// dry run, `freed` is the size of the blocks that would go.
    pub bytes_before: Option<u64>,
    pub bytes_after: Option<u64>,
    pub freed: Option<u64>,
    /// What compaction said, if it ran.
    pub compaction: Option<String>,
    /// Damage compaction found (a log holding damaged records is kept, not compacted): the
    /// backend's `problems`, named as it named them.
    pub problems: Vec<String>,
    /// The reflog expired first, and what only the reflog still holds.
    pub reflog: ReflogOutcome,
    pub duration_ms: u64,
}

/// Marking: chunks are only remembered; damage stops the collection. Counts the snapshot,
/// tree and data blocks it reaches (not the reflog's own blocks).
struct Mark<'a>(
    Option<&'a crate::core::progress::Progress>,
    std::sync::atomic::AtomicU64,
);

impl Visitor for Mark<'_> {
    fn block(
        &self,
        _: Key,
        node: crate::core::reach::Node,
        stored: &[u8],
        _: &crate::core::block::Plain,
    ) -> Result<()> {
        use crate::core::reach::Node;
        if let Some(p) = self.0 {
            p.add_file();
            p.add_bytes(stored.len() as u64);
        }
        if !matches!(node, Node::Reflog | Node::Format) {
            self.1.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(())
    }
    fn chunk(&self, _key: Key) -> Result<()> {
        if let Some(p) = self.0 {
            p.add_file();
        }
        self.1.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }
    fn damaged(&self, key: Key, node: crate::core::reach::Node, error: Error) -> Result<()> {
        Err(Error::Archive(format!(
            "gc stopped without removing anything: {} block {key} that a root reaches cannot be read ({error}); \
             run `ore check` to see what is damaged",
            node.name()
        )))
    }
}

/// Candidates for removal, kept in a temporary file (32 bytes a key).
struct Candidates {
    file: BufWriter<std::fs::File>,
    count: u64,
}

impl Candidates {
    fn new() -> Result<Candidates> {
        let file = tempfile::tempfile()
            .map_err(|e| Error::Local(format!("creating a temporary file for gc: {e}")))?;
        Ok(Candidates {
            file: BufWriter::new(file),
            count: 0,
        })
    }

    fn push(&mut self, k: Key) -> Result<()> {
        self.count += 1;
        self.file.write_all(&k.0).map_err(tmp_error)
    }

    /// Reads the keys back, in batches of `n`.
    fn batches(self, n: usize, mut f: impl FnMut(Vec<Key>) -> Result<()>) -> Result<()> {
        let mut file = self
            .file
            .into_inner()
            .map_err(|e| tmp_error(e.into_error()))?;
        file.rewind().map_err(tmp_error)?;
        let mut r = BufReader::new(file);
        let mut batch = Vec::with_capacity(n);
        let mut buf = [0u8; 32];
        for _ in 0..self.count {
            r.read_exact(&mut buf).map_err(tmp_error)?;
            batch.push(Key(buf));
            if batch.len() == n {
                f(std::mem::take(&mut batch))?;
            }
        }
        if !batch.is_empty() {
            f(batch)?;
        }
        Ok(())
    }
}

fn tmp_error(e: std::io::Error) -> Error {
    Error::Local(format!("gc's temporary file: {e}"))
}

/// Marks everything the archive's roots reach into `marked`: the tags first, then the reflog
/// and every block the tags' kept history names. The number of blocks only the second part
/// reached. A dry run of `--expire-reflog` marks the tags alone (what would be left).
fn mark(repo: &Repo, marked: &KeySet, opts: &GcOptions) -> Result<u64> {
    let roots = reach::roots(repo)?;
    let kept = reach::history_roots(repo, &roots)?;
    let (reflog, tags): (reach::Roots, reach::Roots) = roots
        .into_iter()
        .partition(|(_, n)| *n == reach::Node::Reflog);
    let visitor = Mark(opts.progress.as_deref(), Default::default());
    reach::walk(repo, &tags, marked, &visitor, &Counts::default())?;
    if opts.dry_run && opts.reflog == ReflogExpiry::All {
        return Ok(0);
    }
    visitor.1.store(0, std::sync::atomic::Ordering::Relaxed);
    let rest: reach::Roots = reflog.into_iter().chain(kept).collect();
    reach::walk(repo, &rest, marked, &visitor, &Counts::default())?;
    Ok(visitor.1.into_inner())
}

/// Collects the archive's garbage.
pub fn gc(repo: &Repo, opts: &GcOptions) -> Result<GcOutcome> {
    let started = Instant::now();
    let info = repo.backend().info();
    able_to_run(repo, &info, opts)?;
    let mut out = GcOutcome {
        reflog: retention::apply(repo, opts)?,
        ..GcOutcome::default()
    };
    let marked = KeySet::new();
    out.reflog.held_only_by_reflog = mark(repo, &marked, opts)?;
    out.reachable = marked.len();
    let candidates = list_candidates(repo, &marked, &mut out)?;
    if opts.dry_run {
        out.removed = candidates.count;
        out.freed = Some(size_of(repo, candidates)?);
        out.duration_ms = started.elapsed().as_millis() as u64;
        return Ok(out);
    }
    out.bytes_before = repo.backend().stats()?.bytes;
    if candidates.count > 0 {
        sweep(repo, &marked, candidates, opts, &mut out)?;
    }
    if let Some(threshold) = opts.compact {
        // Also when this run removed nothing: space may wait from earlier removals, and
        // backend-s3 gives back duplicate copies that concurrent writers stored.
        if info.admin_commands.iter().any(|c| c == "compact") {
            let r = repo.backend().admin("compact", &[format!("{threshold}")])?;
            out.compaction = Some(r.text.trim().to_string());
            out.problems = r.problems();
        }
    }
    out.bytes_after = repo.backend().stats()?.bytes;
    if let (Some(b), Some(a)) = (out.bytes_before, out.bytes_after) {
        out.freed = Some(b.saturating_sub(a));
    }
    out.duration_ms = started.elapsed().as_millis() as u64;
    Ok(out)
}

/// Refuses an archive gc cannot work on here: one whose blocks cannot be listed, or (unless
/// this is a dry run) removed.
fn able_to_run(repo: &Repo, info: &protocol::BackendInfo, opts: &GcOptions) -> Result<()> {
    if info.can_list && (info.can_remove || opts.dry_run) {
        return Ok(());
    }
    Err(Error::Archive(format!(
        "archive {} ({}) cannot {} blocks, so gc cannot run on it{}",
        repo.id(),
        info.server,
        if info.can_list { "remove" } else { "list" },
        if info.writable {
            ""
        } else {
            " (it is read-only or append-only here)"
        }
    )))
}

/// Step 2: lists every block of the archive and keeps those not marked as candidates.
fn list_candidates(repo: &Repo, marked: &KeySet, out: &mut GcOutcome) -> Result<Candidates> {
    let mut candidates = Candidates::new()?;
    let mut after = None;
    loop {
        let (keys, more) = repo.backend().list(after, 10_000)?;
        out.listed += keys.len() as u64;
        for k in &keys {
            if !marked.contains(k)? {
                candidates.push(*k)?;
            }
        }
        after = keys.last().copied();
        if !more || keys.is_empty() {
            break;
        }
    }
    protocol::log::debug(&format!(
        "gc: {} reachable, {} listed, {} candidates",
        out.reachable, out.listed, candidates.count
    ));
    Ok(candidates)
}

/// What a dry run would free: the stored size of every candidate.
fn size_of(repo: &Repo, candidates: Candidates) -> Result<u64> {
    let mut freed = 0u64;
    candidates.batches(256, |batch| {
        let tickets: Vec<_> = batch.iter().map(|k| repo.backend().start_get(*k)).collect();
        for t in tickets {
            freed += t.wait()?.map_or(0, |b| b.len() as u64);
        }
        Ok(())
    })?;
    Ok(freed)
}

/// Step 3: announces the sweep, waits out the runs holding leases, marks again, and removes
/// the candidates still unmarked, checking before each batch that the sweep is still gc's.
fn sweep(
    repo: &Repo,
    marked: &KeySet,
    candidates: Candidates,
    opts: &GcOptions,
    out: &mut GcOutcome,
) -> Result<()> {
    let sweep = Sweep::begin(repo)?;
    sweep.wait_for_leases(opts.wait)?;
    // What the runs that just finished added is reachable now.
    mark(repo, marked, opts)?;
    out.reachable = marked.len();
    candidates.batches(1024, |batch| {
        let mut gone = Vec::with_capacity(batch.len());
        for k in batch {
            if !marked.contains(&k)? {
                gone.push(k);
            }
        }
        if gone.is_empty() {
            return Ok(());
        }
        sweep.still_mine()?;
        sweep.removed_some();
        repo.backend().remove(&gone)?;
        out.removed += gone.len() as u64;
        Ok(())
    })?;
    repo.backend().flush()?;
    sweep.finish()
}
