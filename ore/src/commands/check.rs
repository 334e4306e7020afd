//! `ore check`: is everything the archive's roots reach there, and intact?
//!
//! One walk ([`crate::core::reach`]) visits every block once however many snapshots share it. Tree,
//! snapshot and reflog blocks are always read, opened and re-hashed (they are needed to find
//! the rest). Chunks are asked about in batches of `exists`; with `--read-data` they are
//! fetched, decrypted, decompressed and re-hashed too — all of them, a random share, or slice
//! N of M, where a chunk's slice is fixed by its key so that M runs with N = 1..M cover the
//! whole archive.
//!
//! Finding which files a damaged block belongs to costs a second walk over the directory
//! trees, so it is done only when something is damaged (`paths.rs`). Every tag is also
//! compared with its own history, the reflog (`history.rs`): a tag that names something older
//! than the reflog's newest move of it was rolled back, and a reflog that is gone while the
//! backend's tag history shows it existed was lost.

use crate::core::block::{self, Kind};
use crate::core::error::{Error, Result};
use crate::core::keyset::KeySet;
use crate::core::progress::Progress;
use crate::core::reach::{self, Counts, Node, Visitor};
use crate::core::repo::Repo;
use ore_util::sync::{into_inner, lock};
use paths::{attribute, every_snapshot};
use protocol::Key;
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

pub mod compare;
mod history;
mod paths;
pub mod unverified;

pub use history::HistoryProblem;

/// Which chunks to read.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ReadData {
    /// Only ask whether they exist.
    None,
    All,
    /// A random share, 0 to 100.
    Percent(f64),
    /// Slice `n` (1-based) of `m`.
    Slice {
        n: u64,
        m: u64,
    },
}

impl ReadData {
    /// Parses `--read-data`'s value: empty (all), `P%` or `P` (percent), `N/M`.
    pub fn parse(s: &str) -> Result<ReadData> {
        let bad = || {
            Error::Usage(format!(
                "--read-data={s}: give a percentage (10%) or a slice N/M (3/7, 1 <= N <= M)"
            ))
        };
        if s.is_empty() {
            return Ok(ReadData::All);
        }
        if let Some((n, m)) = s.split_once('/') {
            let (n, m): (u64, u64) = (
                n.trim().parse().map_err(|_| bad())?,
                m.trim().parse().map_err(|_| bad())?,
            );
            if n == 0 || n > m {
                return Err(bad());
            }
            return Ok(ReadData::Slice { n, m });
        }
        let p: f64 = s.trim_end_matches('%').parse().map_err(|_| bad())?;
        if !(0.0..=100.0).contains(&p) {
            return Err(bad());
        }
        Ok(ReadData::Percent(p))
    }

    fn selects(&self, key: &Key, salt: u64) -> bool {
        let v = u64::from_le_bytes(key.0[..8].try_into().unwrap_or_default());
        match *self {
            ReadData::None => false,
            ReadData::All => true,
            ReadData::Percent(p) => {
                let r = (v ^ salt).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11;
                (r as f64) < p / 100.0 * (1u64 << 53) as f64
            }
            ReadData::Slice { n, m } => v % m == n - 1,
        }
    }
}

/// One damaged or missing block.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Problem {
    #[serde(serialize_with = "crate::core::util::ser_key")]
    pub key: Key,
    /// What it should be (file data, directory, ...).
    pub kind: &'static str,
    pub error: String,
    /// Where snapshots reach it: `SNAPSHOT:PATH`.
    pub paths: Vec<String>,
}

/// What a check found.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct CheckOutcome {
    pub snapshots: u64,
    /// Archive objects walked (an archive tag's, or one named by its key).
    pub objects: u64,
    pub trees: u64,
    pub chunks: u64,
    pub chunks_read: u64,
    pub bytes_read: u64,
    pub problems: Vec<Problem>,
    /// Tags that do not name a block (nothing below them could be checked).
    pub bad_tags: Vec<String>,
    /// Tags behind their own history, and a reflog that is missing or unreadable (checked
    /// when the whole archive is).
    pub history: Vec<HistoryProblem>,
    pub duration_ms: u64,
    /// What `--unverified` read (blocks append-only connections stored).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unverified: Option<crate::commands::check::unverified::Unverified>,
}

/// Chunks are handled in batches this large (one `exists`, or this many gets in flight).
const EXISTS_BATCH: usize = 2048;
const READ_BATCH: usize = 64;

struct Checker<'r> {
    repo: &'r Repo,
    progress: Option<Arc<Progress>>,
    read: ReadData,
    salt: u64,
    chains: bool,
    to_ask: Mutex<Vec<Key>>,
    to_read: Mutex<Vec<Key>>,
    problems: Mutex<Vec<(Key, Node, String)>>,
    /// Bundles of small files: how far into each the files' slices reach, and (once read)
    /// how long it is.
    bundles: Mutex<std::collections::HashMap<Key, (u64, Option<u64>)>>,
    snapshots: AtomicU64,
    objects: AtomicU64,
    chunks_read: AtomicU64,
    bytes_read: AtomicU64,
}

impl Checker<'_> {
    fn problem(&self, key: Key, node: Node, error: String) {
        lock(&self.problems).push((key, node, error));
    }

    fn ask(&self, keys: Vec<Key>) -> Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        let present = self.repo.backend().exists(&keys)?;
        for (k, there) in keys.iter().zip(present) {
            if !there {
                self.problem(*k, Node::Chunk, "missing from the archive".into());
            }
        }
        Ok(())
    }

    fn read_chunks(&self, keys: Vec<Key>) -> Result<()> {
        let tickets: Vec<_> = keys
            .iter()
            .map(|k| self.repo.backend().start_get(*k))
            .collect();
        for (k, t) in keys.into_iter().zip(tickets) {
            let r = crate::core::repo::fetched(t.wait(), k, Kind::Chunk).and_then(|stored| {
                self.bytes_read.fetch_add(stored.len() as u64, Relaxed);
                if let Some(p) = &self.progress {
                    p.add_bytes(stored.len() as u64);
                }
                block::open(self.repo.keys(), &k, Some(Kind::Chunk), stored)
            });
            self.chunks_read.fetch_add(1, Relaxed);
            match r {
                Ok(plain) => {
                    if let Some(b) = lock(&self.bundles).get_mut(&k) {
                        b.1 = Some(plain.data().len() as u64);
                    }
                }
                Err(e) if crate::core::repo::is_damage(&e) => {
                    self.problem(k, Node::Chunk, short(&e))
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Reports each bundle that was read and that a file's slice reaches past the end of
    /// (FORMAT.md §4). A bundle read before any slice of it was met (reached first as a whole
    /// file's chunk) is read again for its length.
    fn slices_past_their_bundles(&self) -> Result<()> {
        let again: Vec<Key> = lock(&self.bundles)
            .iter()
            .filter(|(k, (_, len))| len.is_none() && self.read.selects(k, self.salt))
            .map(|(k, _)| *k)
            .collect();
        for k in again {
            match self.repo.get_block(k, Kind::Chunk) {
                Ok(plain) => {
                    if let Some(b) = lock(&self.bundles).get_mut(&k) {
                        b.1 = Some(plain.data().len() as u64);
                    }
                }
                // Reported when it was read the first time.
                Err(e) if crate::core::repo::is_damage(&e) => {}
                Err(e) => return Err(e),
            }
        }
        for (k, (end, len)) in lock(&self.bundles).iter() {
            if let Some(len) = len.filter(|len| end > len) {
                self.problem(
                    *k,
                    Node::Chunk,
                    format!("corrupt: a file is said to reach byte {end} of it, but it holds {len} bytes"),
                );
            }
        }
        Ok(())
    }

    fn take(list: &Mutex<Vec<Key>>, at: usize) -> Option<Vec<Key>> {
        let mut l = lock(list);
        (l.len() >= at).then(|| std::mem::take(&mut *l))
    }
}

/// An error's message without the block key and kind, which the report shows anyway.
fn short(e: &Error) -> String {
    match e {
        Error::Missing { .. } => "missing from the archive".into(),
        Error::Corrupt { why, .. } => format!("corrupt: {why}"),
        e => e.to_string(),
    }
}

impl Visitor for Checker<'_> {
    fn chains(&self) -> bool {
        self.chains
    }
    fn block(&self, _: Key, _: Node, stored: &[u8], plain: &block::Plain) -> Result<()> {
        if let Some(p) = &self.progress {
            p.add_file();
            p.add_bytes(stored.len() as u64);
        }
        match plain.kind {
            block::Kind::Snapshot => self.snapshots.fetch_add(1, Relaxed),
            block::Kind::Object => self.objects.fetch_add(1, Relaxed),
            _ => 0,
        };
        Ok(())
    }
    fn chunk(&self, key: Key) -> Result<()> {
        if let Some(p) = &self.progress {
            p.add_file();
        }
        if self.read.selects(&key, self.salt) {
            lock(&self.to_read).push(key);
            if let Some(batch) = Checker::take(&self.to_read, READ_BATCH) {
                self.read_chunks(batch)?;
            }
        } else {
            lock(&self.to_ask).push(key);
            if let Some(batch) = Checker::take(&self.to_ask, EXISTS_BATCH) {
                self.ask(batch)?;
            }
        }
        Ok(())
    }
    fn damaged(&self, key: Key, node: Node, error: Error) -> Result<()> {
        self.problem(key, node, short(&error));
        Ok(())
    }
    fn slices(&self) -> bool {
        self.read != ReadData::None
    }
    fn slice(&self, _: Key, bundle: Key, start: u64, len: u64) -> Result<()> {
        // Reported before the bundle is read: the walk queues it after this.
        // A range that overflows reaches past every bundle.
        let end = start.saturating_add(len);
        let mut b = lock(&self.bundles);
        let reach = b.entry(bundle).or_insert((0, None));
        reach.0 = reach.0.max(end);
        Ok(())
    }
}

/// Checks the snapshots named by `specs` (only those, not their chains), or, when `specs` is
/// empty, everything the archive's roots reach.
pub fn check(
    repo: &Repo,
    specs: &[String],
    read: ReadData,
    progress: Option<Arc<Progress>>,
) -> Result<CheckOutcome> {
    let started = std::time::Instant::now();
    let Roots {
        roots,
        labelled,
        bad_tags,
    } = roots(repo, specs)?;
    let checker = Checker {
        repo,
        progress,
        read,
        salt: u64::from_le_bytes(crate::core::crypto::random::<8>()),
        chains: specs.is_empty(),
        to_ask: Mutex::new(Vec::new()),
        to_read: Mutex::new(Vec::new()),
        problems: Mutex::new(Vec::new()),
        bundles: Mutex::new(std::collections::HashMap::new()),
        snapshots: AtomicU64::new(0),
        objects: AtomicU64::new(0),
        chunks_read: AtomicU64::new(0),
        bytes_read: AtomicU64::new(0),
    };
    let counts = Counts::default();
    let seen = KeySet::new();
    reach::walk(repo, &roots, &seen, &checker, &counts)?;
    if let Some(rest) = Checker::take(&checker.to_ask, 0) {
        checker.ask(rest)?;
    }
    if let Some(rest) = Checker::take(&checker.to_read, 0) {
        checker.read_chunks(rest)?;
    }
    checker.slices_past_their_bundles()?;
    let mut problems = into_inner(checker.problems);
    if specs.is_empty() {
        problems.extend(indexes(repo)?);
    }
    problems.sort_by_key(|(k, _, _)| *k);
    problems.dedup_by_key(|(k, _, _)| *k);
    let mut out = CheckOutcome {
        snapshots: checker.snapshots.load(Relaxed),
        objects: checker.objects.load(Relaxed),
        trees: counts.trees.load(Relaxed),
        chunks: counts.chunks.load(Relaxed),
        chunks_read: checker.chunks_read.load(Relaxed),
        bytes_read: checker.bytes_read.load(Relaxed),
        problems: Vec::new(),
        bad_tags,
        history: Vec::new(),
        duration_ms: 0,
        unverified: None,
    };
    if !problems.is_empty() {
        out.problems = with_paths(repo, labelled, problems)?;
    }
    if specs.is_empty() {
        out.history = history::compare(repo)?;
    }
    out.duration_ms = started.elapsed().as_millis() as u64;
    Ok(out)
}

/// Where a check starts: the snapshots `specs` name, or every root.
struct Roots {
    roots: Vec<(Key, Node)>,
    /// Each snapshot named, with the name it was given (none: every root is checked).
    labelled: Vec<(String, Key)>,
    /// Tags that name no block (found when every root is checked).
    bad_tags: Vec<String>,
}

/// The snapshots named by `specs` (only those, not their chains), or, when `specs` is empty,
/// everything the archive's roots reach, with the tags that name nothing.
fn roots(repo: &Repo, specs: &[String]) -> Result<Roots> {
    if specs.is_empty() {
        let (roots, bad_tags) = reach::roots_and_bad_tags(repo)?;
        return Ok(Roots {
            roots,
            labelled: Vec::new(),
            bad_tags,
        });
    }
    let mut labelled = Vec::new();
    for s in specs {
        let (k, _) = crate::core::spec::resolve(repo, s)?;
        labelled.push((s.clone(), k));
    }
    Ok(Roots {
        roots: (labelled.iter())
            .map(|(_, k)| (*k, reach::named_node(repo, *k)))
            .collect(),
        labelled,
        bad_tags: Vec::new(),
    })
}

/// What is wrong in the index of each archive tag (the walk reads every node, but only a
/// check of the whole tree sees order, levels, and the counts and first keys inner nodes
/// claim for their children: `core::index::check`).
fn indexes(repo: &Repo) -> Result<Vec<(Key, Node, String)>> {
    let mut out = Vec::new();
    for (tag, _) in repo.tags()? {
        let (key, head) = match crate::core::objects::head_of(repo, &tag) {
            Ok(Some(found)) => found,
            // A snapshot tag, or a head the walk has reported already.
            _ => continue,
        };
        let Some(root) = &head.index else {
            continue;
        };
        let problems = crate::core::index::check(repo, root);
        let sound = problems.is_empty();
        for p in problems {
            out.push((
                p.node,
                Node::Index,
                format!("in the index of archive tag {tag}: {}", p.what),
            ));
        }
        if sound {
            out.extend(file_lists(repo, &tag, root)?);
        }
        // The head's counts are what `ore tags` shows: they must be the index's own.
        if sound {
            let (objects, current) = crate::core::objects::count(repo, Some(root))?;
            if (objects, current) != (head.objects, head.current) {
                out.push((
                    key,
                    Node::Index,
                    format!(
                        "the head of archive tag {tag} counts {} objects ({} current), and its index \
                         holds {objects} ({current} current)",
                        head.objects, head.current
                    ),
                ));
            }
        }
    }
    Ok(out)
}

/// What is wrong in the long file lists (indexes of their own, `core::filelist`) of the
/// objects on the index at `root`. An object that does not read is the walk's to report.
fn file_lists(
    repo: &Repo,
    tag: &str,
    root: &crate::core::index::Root,
) -> Result<Vec<(Key, Node, String)>> {
    use crate::core::archival::{entry_object, Object, OBJECTS};
    let mut out = Vec::new();
    for item in crate::core::index::Cursor::new(repo, Some(root), &[OBJECTS])? {
        let item = item?;
        if item.key.first() != Some(&OBJECTS) {
            break;
        }
        let Some(key) = entry_object(&item.key) else {
            continue;
        };
        let Ok(o) = repo.get::<Object>(key, crate::core::block::Kind::Object) else {
            continue;
        };
        let Some(list) = o.files.index() else {
            continue;
        };
        let mut problems = crate::core::index::check(repo, list);
        if problems.is_empty() {
            if let Err(e) = o.files.read(repo) {
                out.push((list.node, Node::Index, e.to_string()));
            }
        }
        for p in problems.drain(..) {
            out.push((
                p.node,
                Node::Index,
                format!(
                    "in the file list of object {key} on archive tag {tag}: {}",
                    p.what
                ),
            ));
        }
    }
    Ok(out)
}

/// The problems found, each with the paths of the snapshots in `labelled` (every snapshot when
/// it is empty) that use its block.
fn with_paths(
    repo: &Repo,
    mut labelled: Vec<(String, Key)>,
    problems: Vec<(Key, Node, String)>,
) -> Result<Vec<Problem>> {
    if labelled.is_empty() {
        labelled = every_snapshot(repo)?;
    }
    let bad: HashSet<Key> = problems.iter().map(|(k, _, _)| *k).collect();
    let mut paths = attribute(repo, &labelled, &bad)?;
    Ok(problems
        .into_iter()
        .map(|(key, node, error)| Problem {
            key,
            kind: node.name(),
            error,
            paths: paths.remove(&key).unwrap_or_default(),
        })
        .collect())
}

impl CheckOutcome {
    /// Whether the check found anything wrong.
    pub fn clean(&self) -> bool {
        self.problems.is_empty() && self.bad_tags.is_empty() && self.history.is_empty()
    }
}

/// `check --unverified`: the check without `--read-data`, and then every block that
/// append-only connections stored and nobody vouched for is read and checked
/// ([`crate::commands::check::unverified`]); a bad one is reported with the paths that use it.
pub fn check_unverified(
    repo: &Repo,
    specs: &[String],
    remove_bad: bool,
    progress: Option<Arc<Progress>>,
) -> Result<CheckOutcome> {
    let started = std::time::Instant::now();
    let mut out = check(repo, specs, ReadData::None, progress.clone())?;
    let u = crate::commands::check::unverified::verify(repo, remove_bad, progress)?;
    out.chunks_read += u.read;
    out.bytes_read += u.bytes;
    if !u.bad.is_empty() {
        let labelled = every_snapshot(repo)?;
        let bad: HashSet<Key> = u.bad.iter().map(|(k, _)| *k).collect();
        let mut paths = attribute(repo, &labelled, &bad)?;
        for (key, why) in &u.bad {
            let error = format!("corrupt: {why} (stored by an append-only connection)");
            match out.problems.iter_mut().find(|p| p.key == *key) {
                Some(p) => p.error = error,
                None => out.problems.push(Problem {
                    key: *key,
                    kind: "block",
                    error,
                    paths: paths.remove(key).unwrap_or_default(),
                }),
            }
        }
        out.problems.sort_by_key(|p| p.key);
    }
    out.unverified = Some(u);
    out.duration_ms = started.elapsed().as_millis() as u64;
    Ok(out)
}
