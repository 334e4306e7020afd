//! Restoring a snapshot, a subtree or one file.
//!
//! Like the snapshot walk, restore is a parallel recursive descent: a directory's entries are
//! read, and its files and subdirectories handled in parallel on the pool — files fetched,
//! checked, decompressed and written (`file.rs`), with blocks fetched ahead of the one being
//! written. A directory's metadata (owner, mode, times) is set when everything beneath it is
//! done, so writing into it never disturbs its times; a directory that holds hard links waits
//! until the links are made, once every file exists (`links.rs`).
//!
//! **Nothing beneath the destination is looked up by path.** The destination the user named is
//! opened once; from then on every directory is held open while its entries are restored, and
//! everything is created, opened and changed relative to its parent's descriptor, one name at
//! a time, never following a symlink (`core/fsys/at.rs`). A user who can write inside the
//! destination and swaps a directory for a symlink mid-restore gets an error for that
//! directory, not a restore redirected elsewhere. At most one descriptor is open per directory
//! being restored (the parents of the ones in progress, a few per thread), and the soft limit
//! on descriptors is raised to the hard one.
//!
//! **What exists is left alone** by default (`--overwrite never`): an existing file, and an
//! existing directory's mode, owner and times, with one warning that counts the files and
//! names the option that updates them. A directory this restore makes is built under a
//! temporary name and renamed when done, and stays `UNFINISHED`
//! (sticky, owner only) until its metadata is set, so that a re-run after an interruption
//! knows it for one of its own and finishes it (`place.rs`).
//!
//! A block that is missing or corrupt — or that the backend answered it could not read (a log
//! cut short, a file it cannot open: damage to that block, not a failure of the connection) —
//! is reported with its key, what was wrong and the path it belongs to; the file is left with
//! the bytes that could be restored, the rest of the restore goes on, and the paths so left are
//! listed again at the end (`RestoreOutcome::damaged`; `ore restore` then exits 1).
//!
//! A read that fails for any other reason (the store stopped answering) ends the restore: no
//! file is started after it, and the restore fails with one error that names the archive, the
//! failure and how many files were left, instead of a warning per file. What was restored
//! stays, and a second run finishes the rest (files found whole are kept).

mod attrs;
mod content;
mod dest;
mod file;
mod guard;
mod links;
mod place;
mod plan;
mod select;
mod walk;

pub use plan::{plan, Action, Planned};
pub use select::Selection;

use ore_util::sync::lock;
use walk::{finish_dir, one, walk};

use crate::core::entry::{Content, Entry, EntryKind, Snapshot};
use crate::core::error::{Error, Result};
use crate::core::fsys::Dir;
use crate::core::prefetch::{Fetch, Prefetch};
use crate::core::progress::Progress;
use crate::core::repo::Repo;
use crate::core::tree::find;
use protocol::{Key, Ticket};
use std::collections::HashMap;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

/// What to do with files that already exist at the destination.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Overwrite {
    /// Leave them — files and directories, their contents, modes, owners and times — with one
    /// warning that counts them.
    #[default]
    Never,
    /// Replace them unless size and mtime already match.
    IfChanged,
    /// Replace them.
    Always,
}

/// How to restore.
#[derive(Debug, Default)]
pub struct RestoreOptions {
    pub overwrite: Overwrite,
    /// Which entries are restored (`--include`, `--exclude`).
    pub select: Selection,
    /// Names in the directories restored that the snapshot does not hold there (and that the
    /// selection would take) are removed, so that the destination matches the snapshot.
    pub delete: bool,
    /// With `delete`: files and directories never removed, nor anything that holds one (the
    /// archive, ore's own cache and config; see `guard`).
    pub protect: Vec<PathBuf>,
    pub verify: bool,
    pub no_owner: bool,
    pub progress: Option<Arc<Progress>>,
}

/// What a restore did.
#[derive(Debug, Default, serde::Serialize)]
pub struct RestoreOutcome {
    pub files: u64,
    pub dirs: u64,
    pub other: u64,
    pub bytes: u64,
    /// Names removed with `delete` (a directory with what it held counts each), each said
    /// as it went.
    pub removed: u64,
    /// Files left alone because they already existed (and, with if-changed, matched). With
    /// `--overwrite never`, one warning counts them.
    pub skipped: u64,
    /// Problems, each naming a path (and a block, for archive damage).
    pub warnings: Vec<String>,
    /// Whether some data could not be restored (missing or corrupt blocks).
    pub incomplete: bool,
    /// The files and directories (as restored, sorted) that missing or damaged blocks left
    /// incomplete: each one's warning names the block and what was wrong with it.
    pub damaged: Vec<String>,
    /// Files that could not be written here (not created, a write that failed, a disk that
    /// filled up: what was written of them is removed, so that no file cut short passes for a
    /// restored one) or that read back differently with `--verify`, hard links not made, and
    /// directories that could not be made or entered (a symlink in their place, say).
    pub not_restored: u64,
    /// With `--verify`: files read back after writing whose every byte matched the snapshot
    /// (each chunk's keyed hash, holes as zeros, the size), and their bytes.
    pub verified: u64,
    pub verified_bytes: u64,
}

/// Restore threads when the backend pipelines (most of them wait for the link).
const WAITING_THREADS: usize = 128;
/// Entries of a directory whose blocks are asked for ahead of the one being restored, over a
/// slow link.
const AHEAD_ENTRIES: usize = 1024;
/// Entries of one directory handled by one task at least.
const RUN: usize = 4;

/// A directory's device and inode numbers: how a directory reopened by name is known again.
type DirId = (u64, u64);

/// A hard link to make once every file exists: the directory it goes in (as shown, and its
/// device and inode numbers, to know it again) and its entry.
struct Link {
    dir: PathBuf,
    id: DirId,
    entry: Entry,
}

struct Ctx<'r> {
    repo: &'r Repo,
    /// Blocks asked for ahead (only for a backend that pipelines).
    prefetch: Option<Prefetch<'r>>,
    /// Bundles of small files, opened once for all the files in them.
    bundles: crate::core::plaincache::PlainCache,
    opts: &'r RestoreOptions,
    root_owner: bool,
    /// Files are written unnamed and linked in when whole (`file::unnamed_works`).
    unnamed: bool,
    /// The directory held open at the top of the restore, as shown: every path below is
    /// shown as this joined with names, and reopened (links, late metadata) from it by name.
    top: PathBuf,
    /// The path in the snapshot of what is restored (at `top`).
    snap_top: PathBuf,
    /// Directories on the way to what `--include` takes ([`select::wanted`]).
    wanted: std::collections::HashSet<PathBuf>,
    removed: AtomicU64,
    /// With `--delete`: what is never removed ([`guard`]).
    protected: guard::Protected,
    warnings: Mutex<Vec<String>>,
    incomplete: AtomicBool,
    /// Paths [`Ctx::damaged`] was told about.
    damaged: Mutex<Vec<PathBuf>>,
    not_restored: AtomicU64,
    /// Files read back and found to match the snapshot (`--verify`), and their bytes.
    verified: AtomicU64,
    verified_bytes: AtomicU64,
    files: AtomicU64,
    dirs: AtomicU64,
    bytes: AtomicU64,
    skipped: AtomicU64,
    /// The first (by path) of the names `--overwrite never` left alone, as shown.
    first_left: Mutex<Option<PathBuf>>,
    /// The first failure to read the archive that was not damage (a store that stopped
    /// answering): files after it are not started, and the restore ends with one error, not
    /// a warning per file.
    lost: std::sync::OnceLock<String>,
    other: AtomicU64,
    progress: Arc<Progress>,
    /// Regular files this restore made (or found there and kept), by directory as shown, their
    /// names sorted, each ended by NUL and followed by its inode number (8 bytes): the only
    /// files a hard link may point at, and the inodes they must still be.
    made: Mutex<HashMap<PathBuf, Vec<u8>>>,
    /// Hard links to make at the end.
    links: Mutex<Vec<Link>>,
    /// Directories whose metadata waits for their hard links (as shown, their device and
    /// inode numbers, their entries).
    late: Mutex<Vec<(PathBuf, DirId, Entry)>>,
}

impl Ctx<'_> {
    /// Where blocks are read from: the prefetched answers first.
    fn fetcher(&self) -> &dyn Fetch {
        match &self.prefetch {
            Some(p) => p,
            None => self.repo,
        }
    }

    /// Starts reading a block (taking a prefetched answer when there is one).
    fn start_get(&self, key: Key) -> Ticket<Option<Vec<u8>>> {
        match &self.prefetch {
            Some(p) => p.start(key),
            None => self.repo.backend().start_get(key),
        }
    }

    /// The plaintext of bundle `key` (a chunk holding small files): opened once, whichever
    /// of its files asks first (taking a prefetched answer when there is one).
    fn bundle(&self, key: Key) -> Result<std::sync::Arc<Vec<u8>>> {
        const CHUNK: crate::core::block::Kind = crate::core::block::Kind::Chunk;
        self.bundles.get(key, || {
            let stored = crate::core::repo::fetched(self.start_get(key).wait(), key, CHUNK)?;
            crate::core::block::open(self.repo.keys(), &key, Some(CHUNK), stored)
                .map(|p| p.into_vec())
        })
    }

    /// Asks ahead for the first block each of `entries` will need (a bundle once, while it
    /// is neither held nor on its way).
    fn ask_ahead(&self, entries: &[Entry]) {
        let Some(p) = &self.prefetch else { return };
        let mut last = None;
        for e in entries {
            match &e.kind {
                EntryKind::File {
                    content: Content::Slice { key, .. },
                    ..
                } => {
                    if last != Some(*key) && !self.bundles.has(key) {
                        p.ask(*key, 256 << 10);
                    }
                    last = Some(*key);
                }
                EntryKind::Dir { tree } => p.ask(*tree, 4096),
                EntryKind::File {
                    size,
                    content: Content::Chunk(key),
                } => p.ask(*key, (*size).min(1 << 20)),
                EntryKind::File {
                    content: Content::Index(root),
                    ..
                } => p.ask(*root, 16384),
                _ => {}
            }
        }
    }

    /// Makes way for a non-directory entry `name` in `dir` (shown as `path`): what is there
    /// goes, unless `--overwrite never` keeps it (false: leave the name alone).
    fn clear_way(&self, dir: &Dir, name: &[u8], path: &Path, place: place::Place) -> bool {
        if place.empty || dir.lstat(name).is_err() {
            return true;
        }
        if place.overwrite(self.opts.overwrite) == Overwrite::Never {
            self.left_alone(path);
            return false;
        }
        let _ = dir.unlink(name);
        true
    }

    /// A name that exists already and, with `--overwrite never`, is left as it is: counted,
    /// and said once at the end ([`Ctx::say_left_alone`]), not a warning each.
    fn left_alone(&self, path: &Path) {
        self.skipped.fetch_add(1, Relaxed);
        let mut first = lock(&self.first_left);
        if first.as_deref().is_none_or(|f| path < f) {
            *first = Some(path.to_path_buf());
        }
    }

    /// The one warning for every existing name `--overwrite never` left alone, if any.
    fn say_left_alone(&self) {
        let n = self.skipped.load(Relaxed);
        let Some(first) = lock(&self.first_left).take() else {
            return;
        };
        let which = match n {
            1 => format!("1 existing file left alone ({})", first.display()),
            _ => format!(
                "{n} existing files left alone ({} and {} more)",
                first.display(),
                n - 1
            ),
        };
        self.warn(format!(
            "{which}; use --overwrite if-changed to update them (or --overwrite always to \
             replace them)"
        ));
    }

    /// Whether the metadata of directory `d`, which was there before this run, is set: not
    /// with `--overwrite never` (what exists is left alone: its mode, owner and times),
    /// unless an earlier restore made it and was stopped before finishing it
    /// ([`place::UNFINISHED`]).
    fn finishes_existing(&self, d: &Dir) -> bool {
        self.opts.overwrite != Overwrite::Never || place::unfinished(d)
    }

    /// Puts back the times `found` of an existing directory left alone (shown as `path`),
    /// which names made in it — restored entries, temporary names — moved on.
    fn keep_times(&self, d: &Dir, path: &Path, found: Option<crate::core::fsys::Stat>) {
        let Some(was) = found else { return };
        if crate::core::fsys::fstat(d).is_ok_and(|now| now.mtime == was.mtime) {
            return;
        }
        if let Err(e) = crate::core::meta::set_fd_times(d, was.atime, was.mtime) {
            self.warn(format!("{}: its times not kept: {e}", path.display()));
        }
    }

    /// `path` (as shown) is incomplete because the archive lacks or has damaged a block of it.
    fn damaged(&self, path: &Path) {
        self.incomplete.store(true, Relaxed);
        lock(&self.damaged).push(path.to_path_buf());
    }

    fn warn(&self, msg: String) {
        protocol::log::warning(&msg);
        lock(&self.warnings).push(msg);
    }

    /// Notes that reading the archive failed with `e` (not damage: it did not answer).
    fn lose_archive(&self, e: &Error) {
        let _ = self.lost.set(e.to_string());
    }

    /// Whether the archive stopped answering: no more files are started.
    fn archive_lost(&self) -> bool {
        self.lost.get().is_some()
    }

    /// A file not restored: its warning, unless it failed only because the archive had
    /// stopped answering (the restore's error says that once).
    fn not_restored(&self, msg: String, lost: bool) {
        self.not_restored.fetch_add(1, Relaxed);
        if !lost {
            self.warn(msg);
        }
    }

    /// Whether `entry`, in the directory shown as `dir`, is restored (`--include`,
    /// `--exclude`).
    fn chosen(&self, dir: &Path, entry: &Entry) -> bool {
        let sel = &self.opts.select;
        sel.everything() || {
            let path = self.in_snapshot(dir, &entry.name);
            sel.chosen(
                &path,
                matches!(entry.kind, EntryKind::Dir { .. }),
                &self.wanted,
            )
        }
    }

    /// The path in the snapshot of `name` in the directory shown as `dir`.
    fn in_snapshot(&self, dir: &Path, name: &[u8]) -> PathBuf {
        let rel = dir.strip_prefix(&self.top).unwrap_or(Path::new(""));
        self.snap_top
            .join(rel)
            .join(crate::core::util::bytes_path(name))
    }

    /// The names leading from the top directory to `path` (a directory as shown).
    fn steps(&self, path: &Path) -> Vec<Vec<u8>> {
        path.strip_prefix(&self.top)
            .map(|rel| {
                rel.components()
                    .map(|c| c.as_os_str().as_bytes().to_vec())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Restores `sub` (a path inside the snapshot, or everything) to `dest`.
pub fn restore(
    repo: &Repo,
    snap: &Snapshot,
    sub: &[u8],
    dest: &Path,
    opts: &RestoreOptions,
) -> Result<RestoreOutcome> {
    if let Some(l) = snap
        .labels
        .iter()
        .find(|l| l.key == crate::core::objects::CATALOGUE_LABEL)
    {
        return Err(Error::Usage(format!(
            "this is a catalogue object: the data of its files is not in the archive, only their \
             names, metadata and content ids. It was catalogued from {} on host {}, {}, from {}. \
             `ore ls` lists what it held; `ore search --file PATH` finds stored copies of a file",
            l.value,
            snap.host,
            crate::core::util::format_time(snap.time),
            snap.paths
                .first()
                .map_or_else(String::new, |p| crate::core::util::show(p))
        )));
    }
    let target = find(repo, &snap.root, sub)?;
    let progress = opts.progress.clone().unwrap_or_default();
    if sub.is_empty() {
        progress.total_bytes.store(snap.stats.bytes, Relaxed);
    }
    crate::core::fsys::raise_fd_limit();
    // The destination is the user's to name: resolved by path, once. Nothing below it is.
    let snap_top = crate::core::util::bytes_path(sub).to_path_buf();
    let wanted = match &target.kind {
        EntryKind::Dir { tree } => select::wanted(repo, &opts.select, *tree, &snap_top)?,
        _ => Default::default(),
    };
    let sel = &opts.select;
    if !matches!(target.kind, EntryKind::Dir { .. })
        && !sel.everything()
        && (sel.excluded(&snap_top, false) || !sel.included(&snap_top, false))
    {
        return Ok(RestoreOutcome::default());
    }
    let (top_dir, top, rename, made_top) = dest::open_top(&target, dest)?;
    let mut ctx = new_ctx(repo, opts, top, progress);
    ctx.snap_top = snap_top;
    ctx.wanted = wanted;
    // An existing top left alone keeps its times (see `Ctx::keep_times`), which the probe
    // just below would move already.
    let keep_top = !made_top && !ctx.finishes_existing(&top_dir);
    let found_top = keep_top
        .then(|| crate::core::fsys::fstat(&top_dir).ok())
        .flatten();
    ctx.unnamed = file::unnamed_works(&top_dir);
    // The first block is on its way while the threads start (over a slow link, a round trip).
    ctx.ask_ahead(std::slice::from_ref(&target));
    let pool = worker_pool(ctx.prefetch.is_some())?;
    let ctx = &ctx;
    pool.install(|| -> Result<()> {
        if let EntryKind::Dir { tree } = &target.kind {
            ctx.dirs.fetch_add(1, Relaxed);
            let wait = walk(ctx, *tree, &top_dir, &ctx.top, place::Place::BEFORE, 0)?;
            if !keep_top {
                finish_dir(ctx, &top_dir, ctx.top.clone(), target.clone(), wait);
            }
        } else {
            let mut t = target.clone();
            if let Some(name) = rename {
                t.name = name;
            }
            let _ = one(ctx, &top_dir, &ctx.top, place::Place::BEFORE, t);
        }
        links::make(ctx, &top_dir, snap, sub)
    })?;
    if let Some(e) = ctx.lost.get() {
        return Err(Error::Archive(format!(
            "archive {}: reading it failed during the restore ({e}); {} not restored, and \
             what was restored stays: run the restore again to finish it",
            repo.id(),
            match ctx.not_restored.load(Relaxed) {
                1 => "1 file was".to_string(),
                n => format!("{n} files were"),
            }
        )));
    }
    if keep_top {
        ctx.keep_times(&top_dir, &ctx.top, found_top);
    }
    ctx.say_left_alone();
    Ok(outcome(ctx))
}

/// The state every thread of a restore shares.
fn new_ctx<'r>(
    repo: &'r Repo,
    opts: &'r RestoreOptions,
    top: PathBuf,
    progress: Arc<Progress>,
) -> Ctx<'r> {
    Ctx {
        repo,
        prefetch: Prefetch::new(repo.backend()),
        bundles: crate::core::plaincache::PlainCache::new(crate::core::plaincache::BUNDLE_BYTES),
        opts,
        root_owner: crate::core::meta::is_root() && !opts.no_owner,
        unnamed: false,
        top,
        snap_top: PathBuf::new(),
        wanted: Default::default(),
        removed: AtomicU64::new(0),
        protected: match opts.delete {
            true => guard::protected(&opts.protect),
            false => Default::default(),
        },
        warnings: Mutex::new(Vec::new()),
        incomplete: AtomicBool::new(false),
        damaged: Mutex::new(Vec::new()),
        not_restored: AtomicU64::new(0),
        verified: AtomicU64::new(0),
        verified_bytes: AtomicU64::new(0),
        files: AtomicU64::new(0),
        dirs: AtomicU64::new(0),
        bytes: AtomicU64::new(0),
        skipped: AtomicU64::new(0),
        first_left: Mutex::new(None),
        lost: std::sync::OnceLock::new(),
        other: AtomicU64::new(0),
        progress,
        made: Mutex::new(HashMap::new()),
        links: Mutex::new(Vec::new()),
        late: Mutex::new(Vec::new()),
    }
}

/// The threads a restore runs on: one per core, or, over a slow link (`waits`), enough that
/// many directories are restored at once.
fn worker_pool(waits: bool) -> Result<rayon::ThreadPool> {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    // Over a slow link most threads wait for answers, not for a core: many directories are
    // restored at once so that their round trips overlap.
    let threads = if waits {
        cores.max(WAITING_THREADS)
    } else {
        cores
    };
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .stack_size(256 << 20)
        .thread_name(|i| format!("ore-restore-{i}"))
        .build()
        .map_err(|e| Error::Archive(format!("could not start worker threads: {e}")))
}

/// What the restore did, from the counters its threads kept.
fn outcome(ctx: &Ctx) -> RestoreOutcome {
    let warnings = std::mem::take(&mut *lock(&ctx.warnings));
    let mut damaged = std::mem::take(&mut *lock(&ctx.damaged));
    damaged.sort();
    damaged.dedup();
    let damaged = damaged.iter().map(|p| p.display().to_string()).collect();
    RestoreOutcome {
        files: ctx.files.load(Relaxed),
        bytes: ctx.bytes.load(Relaxed),
        skipped: ctx.skipped.load(Relaxed),
        dirs: ctx.dirs.load(Relaxed),
        other: ctx.other.load(Relaxed),
        removed: ctx.removed.load(Relaxed),
        incomplete: ctx.incomplete.load(Relaxed),
        damaged,
        not_restored: ctx.not_restored.load(Relaxed),
        verified: ctx.verified.load(Relaxed),
        verified_bytes: ctx.verified_bytes.load(Relaxed),
        warnings,
    }
}
