//! Restoring a snapshot, a subtree or one file.
//!
//! Like the snapshot walk, restore is a parallel recursive descent: a directory's entries are
//! read, its subdirectories created, and then its files and subdirectories handled in
//! parallel on the pool — files fetched, checked, decompressed and written with a few blocks
//! fetched ahead of the one being written. Hard links are made once every file exists, and
//! directory metadata (modes, times) is set last, deepest first, so writing into a directory
//! never disturbs its times.
//!
//! A block that is missing or corrupt is reported with its key and the path it belongs to; the
//! file is left with the bytes that could be restored, and the rest of the restore goes on.

use crate::block::{self, Kind};
use crate::entry::{Content, Entry, EntryKind, Piece, Snapshot};
use crate::error::{Error, Result};
use crate::prefetch::{Fetch, Prefetch};
use crate::progress::Progress;
use crate::repo::Repo;
use crate::tree::{DirTree, FileTree, Reader};
use crate::util::{bytes_path, show};
use protocol::{Key, Ticket};
use rayon::prelude::*;
use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

/// What to do with files that already exist at the destination.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Overwrite {
    /// Leave them, with a warning.
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
    /// Files left alone because they already existed (and, with if-changed, matched).
    pub skipped: u64,
    /// Problems, each naming a path (and a block, for archive damage).
    pub warnings: Vec<String>,
    /// Whether some data could not be restored (missing or corrupt blocks).
    pub incomplete: bool,
    /// Files that could not be written here (not created, a write that failed, a disk that
    /// filled up: what was written of them is removed, so that no file cut short passes for a
    /// restored one) or that read back differently with `--verify`, and hard links not made.
    pub not_restored: u64,
}

/// Blocks fetched ahead of the one being written, within a file (more over a slow link).
const READ_AHEAD: usize = 16;
const READ_AHEAD_FAR: usize = 64;
/// Restore threads when the backend pipelines (most of them wait for the link).
const WAITING_THREADS: usize = 128;
/// Entries of a directory whose blocks are asked for ahead of the one being restored, over a
/// slow link.
const AHEAD_ENTRIES: usize = 1024;
/// Entries of one directory handled by one task at least.
const RUN: usize = 4;

struct Ctx<'r> {
    repo: &'r Repo,
    /// Blocks asked for ahead (only for a backend that pipelines).
    prefetch: Option<Prefetch<'r>>,
    opts: &'r RestoreOptions,
    root_owner: bool,
    warnings: Mutex<Vec<String>>,
    incomplete: AtomicBool,
    not_restored: AtomicU64,
    files: AtomicU64,
    bytes: AtomicU64,
    skipped: AtomicU64,
    progress: Arc<Progress>,
    /// Directories restored, for their metadata at the end.
    dirs: Mutex<Vec<(PathBuf, Entry)>>,
    /// Hard links to make at the end: where, the target's snapshot path, the entry.
    links: Mutex<Vec<(PathBuf, Vec<u8>, Entry)>>,
    other: AtomicU64,
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
            None => self.repo.backend.start_get(key),
        }
    }

    /// Asks ahead for the first block each of `entries` will need.
    fn ask_ahead(&self, entries: &[Entry]) {
        let Some(p) = &self.prefetch else { return };
        for e in entries {
            match &e.kind {
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

    /// Makes way for a non-directory entry at `path`: what is there goes, unless
    /// `--overwrite never` keeps it (false: leave the name alone).
    fn clear_way(&self, path: &Path) -> bool {
        if path.symlink_metadata().is_err() {
            return true;
        }
        if self.opts.overwrite == Overwrite::Never {
            self.left_alone(path);
            return false;
        }
        let _ = std::fs::remove_file(path);
        true
    }

    /// A name that exists already and, with `--overwrite never`, is left as it is.
    fn left_alone(&self, path: &Path) {
        self.skipped.fetch_add(1, Relaxed);
        self.warn(format!("{}: exists, not overwritten", path.display()));
    }

    fn warn(&self, msg: String) {
        protocol::log::warning(&msg);
        self.warnings
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(msg);
    }
}

/// Finds the entry at `path` (components separated by `/`) below `root`.
pub fn find(repo: &Repo, root: &Entry, path: &[u8]) -> Result<Entry> {
    let mut cur = root.clone();
    for comp in path
        .split(|&b| b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
    {
        let EntryKind::Dir { tree } = cur.kind else {
            return Err(Error::Usage(format!(
                "`{}` is not a directory in the snapshot",
                show(&cur.name)
            )));
        };
        cur = crate::tree::lookup(repo, tree, comp)?
            .ok_or_else(|| Error::Usage(format!("`{}` is not in the snapshot", show(path))))?;
    }
    Ok(cur)
}

/// Restores `sub` (a path inside the snapshot, or everything) to `dest`.
pub fn restore(
    repo: &Repo,
    snap: &Snapshot,
    sub: &[u8],
    dest: &Path,
    opts: &RestoreOptions,
) -> Result<RestoreOutcome> {
    let target = find(repo, &snap.root, sub)?;
    let progress = opts.progress.clone().unwrap_or_default();
    if sub.is_empty() {
        progress.total_bytes.store(snap.stats.bytes, Relaxed);
    }
    let ctx = Ctx {
        repo,
        prefetch: Prefetch::new(&*repo.backend),
        opts,
        root_owner: crate::meta::is_root() && !opts.no_owner,
        warnings: Mutex::new(Vec::new()),
        incomplete: AtomicBool::new(false),
        not_restored: AtomicU64::new(0),
        files: AtomicU64::new(0),
        bytes: AtomicU64::new(0),
        skipped: AtomicU64::new(0),
        progress,
        dirs: Mutex::new(Vec::new()),
        links: Mutex::new(Vec::new()),
        other: AtomicU64::new(0),
    };
    // The first block is on its way while the threads start (over a slow link, a round trip).
    ctx.ask_ahead(std::slice::from_ref(&target));
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    // Over a slow link most threads wait for answers, not for a core: many directories are
    // restored at once so that their round trips overlap.
    let threads = if ctx.prefetch.is_some() {
        cores.max(WAITING_THREADS)
    } else {
        cores
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .stack_size(256 << 20)
        .thread_name(|i| format!("ore-restore-{i}"))
        .build()
        .map_err(|e| Error::Archive(format!("could not start worker threads: {e}")))?;
    let ctx = &ctx;
    pool.install(|| -> Result<()> {
        if let EntryKind::Dir { tree } = &target.kind {
            std::fs::create_dir_all(dest).map_err(|e| match std::fs::metadata(dest) {
                Ok(md) if !md.is_dir() => Error::Usage(format!(
                    "{}: exists and is not a directory; a directory restores into a directory",
                    dest.display()
                )),
                _ => Error::io(dest, e),
            })?;
            lock(&ctx.dirs).push((dest.to_path_buf(), target.clone()));
            walk(ctx, *tree, dest)
        } else {
            let to = if dest.is_dir() {
                dest.join(bytes_path(&target.name))
            } else {
                dest.to_path_buf()
            };
            one(ctx, target.clone(), to)
        }
    })?;
    // Hard links, once every file exists. A link whose target lies outside what was restored
    // gets the target's contents instead, and the other links to that target become links
    // to it: the names that were one file inside the subtree are one file again.
    let links = std::mem::take(&mut *lock(&ctx.links));
    let mut stand_ins: HashMap<Vec<u8>, PathBuf> = HashMap::new();
    for (path, target, entry) in links {
        let rel_target = if sub.is_empty() {
            Some(dest.join(bytes_path(&target)))
        } else {
            target
                .strip_prefix(sub)
                .and_then(|t| t.strip_prefix(b"/"))
                .map(|t| dest.join(bytes_path(t)))
        };
        match rel_target.or_else(|| stand_ins.get(&target).cloned()) {
            Some(src) => {
                if !ctx.clear_way(&path) {
                    continue;
                }
                match std::fs::hard_link(&src, &path) {
                    Ok(()) => {
                        ctx.other.fetch_add(1, Relaxed);
                    }
                    // The name is missing from what was restored, like a file not written.
                    Err(e) => {
                        ctx.not_restored.fetch_add(1, Relaxed);
                        ctx.warn(format!(
                            "{}: hard link to {} not made: {e}",
                            path.display(),
                            src.display()
                        ))
                    }
                }
            }
            None => match find(repo, &snap.root, &target) {
                Ok(mut t) => {
                    t.name = entry.name.clone();
                    pool.install(|| one(ctx, t, path.clone()))?;
                    stand_ins.insert(target, path);
                }
                // The snapshot names a target it does not hold: the archive is at fault.
                Err(e) => {
                    ctx.incomplete.store(true, Relaxed);
                    ctx.warn(format!(
                        "{}: hard link target {} not found: {e}",
                        path.display(),
                        show(&target)
                    ))
                }
            },
        }
    }
    // Directory metadata last, deepest first.
    let mut dirs = std::mem::take(&mut *lock(&ctx.dirs));
    dirs.sort_by_key(|(p, _)| std::cmp::Reverse(p.components().count()));
    for (path, entry) in &dirs {
        if let Err(e) = set_meta(ctx, path, entry, None) {
            ctx.warn(format!("{}: metadata not restored: {e}", path.display()));
        }
    }
    let warnings = std::mem::take(&mut *lock(&ctx.warnings));
    Ok(RestoreOutcome {
        files: ctx.files.load(Relaxed),
        bytes: ctx.bytes.load(Relaxed),
        skipped: ctx.skipped.load(Relaxed),
        dirs: dirs.len() as u64,
        other: ctx.other.load(Relaxed),
        incomplete: ctx.incomplete.load(Relaxed),
        not_restored: ctx.not_restored.load(Relaxed),
        warnings,
    })
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Restores the contents of directory tree `tree` into the existing directory `dir`.
fn walk(ctx: &Ctx, tree: Key, dir: &Path) -> Result<()> {
    let mut reader = Reader::<DirTree>::via(ctx.repo, ctx.fetcher(), tree);
    let mut entries = Vec::new();
    loop {
        match reader.next_item() {
            Ok(Some(e)) => entries.push(e),
            Ok(None) => break,
            Err(e) if crate::repo::is_damage(&e) => {
                ctx.incomplete.store(true, Relaxed);
                ctx.warn(format!(
                    "{}: directory not fully restored: {e}",
                    dir.display()
                ));
                break;
            }
            Err(e) => return Err(e),
        }
    }
    if ctx.prefetch.is_none() {
        return entries
            .into_par_iter()
            .with_min_len(RUN)
            .try_for_each(|entry| restore_entry(ctx, dir, entry));
    }
    // Over a slow link: workers take the entries in order, and whoever takes entry i asks for
    // the blocks of entry i + AHEAD_ENTRIES, so the questions stay a fixed distance ahead of
    // the restoring and no worker waits for the others (an earlier version restored groups of
    // 256 entries one after the other: each group waited for its slowest file, and a large
    // directory of small files restored at a third of the speed).
    let n = entries.len();
    ctx.ask_ahead(&entries[..n.min(AHEAD_ENTRIES)]);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let workers = n.min(rayon::current_num_threads());
    (0..workers)
        .into_par_iter()
        .try_for_each(|_| -> Result<()> {
            loop {
                let i = next.fetch_add(1, Relaxed);
                if i >= n || failed.load(Relaxed) {
                    return Ok(());
                }
                if let Some(e) = entries.get(i + AHEAD_ENTRIES) {
                    ctx.ask_ahead(std::slice::from_ref(e));
                }
                if let Err(e) = restore_entry(ctx, dir, entries[i].clone()) {
                    failed.store(true, Relaxed);
                    return Err(e);
                }
            }
        })
}

/// Restores one entry of the directory `dir`.
fn restore_entry(ctx: &Ctx, dir: &Path, entry: Entry) -> Result<()> {
    {
        {
            if entry.name.is_empty()
                || entry.name.contains(&b'/')
                || entry.name == b"."
                || entry.name == b".."
            {
                ctx.warn(format!(
                    "{}: skipped an entry with an unsafe name {:?}",
                    dir.display(),
                    show(&entry.name)
                ));
                return Ok(());
            }
            let path = dir.join(bytes_path(&entry.name));
            if let EntryKind::Dir { tree } = entry.kind {
                match std::fs::create_dir(&path) {
                    Ok(()) => {}
                    Err(e)
                        if e.kind() == std::io::ErrorKind::AlreadyExists
                            && path.symlink_metadata().is_ok_and(|m| m.is_dir()) => {}
                    Err(e) => {
                        ctx.warn(format!("{}: directory not created: {e}", path.display()));
                        return Ok(());
                    }
                }
                lock(&ctx.dirs).push((path.clone(), entry));
                walk(ctx, tree, &path)
            } else {
                one(ctx, entry, path)
            }
        }
    }
}

/// Restores one non-directory entry at `path`.
fn one(ctx: &Ctx, entry: Entry, path: PathBuf) -> Result<()> {
    match &entry.kind {
        EntryKind::File { .. } => {
            if let Err(msg) = restore_file(ctx, &entry, &path) {
                ctx.not_restored.fetch_add(1, Relaxed);
                ctx.warn(msg);
            }
        }
        EntryKind::Hardlink { target } => {
            lock(&ctx.links).push((path, target.clone(), entry.clone()))
        }
        EntryKind::Dir { .. } => unreachable!("directories are walked"),
        other => {
            if !ctx.clear_way(&path) {
                return Ok(());
            }
            let made = match other {
                EntryKind::Symlink { target } => {
                    std::os::unix::fs::symlink(bytes_path(target), &path)
                }
                EntryKind::Fifo => crate::meta::mknod(&path, libc::S_IFIFO | 0o600, 0),
                EntryKind::Socket => {
                    // A socket is only meaningful while its server runs; nothing to recreate.
                    ctx.other.fetch_add(1, Relaxed);
                    return Ok(());
                }
                EntryKind::CharDevice { rdev } => {
                    crate::meta::mknod(&path, libc::S_IFCHR | 0o600, *rdev)
                }
                EntryKind::BlockDevice { rdev } => {
                    crate::meta::mknod(&path, libc::S_IFBLK | 0o600, *rdev)
                }
                _ => Ok(()),
            };
            match made {
                Ok(()) => {
                    ctx.other.fetch_add(1, Relaxed);
                    if let Err(e) = set_meta(ctx, &path, &entry, None) {
                        ctx.warn(format!("{}: metadata not restored: {e}", path.display()));
                    }
                }
                Err(e) => ctx.warn(format!("{}: not created: {e}", path.display())),
            }
        }
    }
    Ok(())
}

/// Owner, mode, xattrs and times; on an open file when there is one.
fn set_meta(ctx: &Ctx, path: &Path, e: &Entry, file: Option<&File>) -> std::io::Result<()> {
    let is_link = matches!(e.kind, EntryKind::Symlink { .. });
    if ctx.root_owner {
        let uid = e
            .user
            .as_deref()
            .and_then(crate::meta::uid_of)
            .unwrap_or(e.uid);
        let gid = e
            .group
            .as_deref()
            .and_then(crate::meta::gid_of)
            .unwrap_or(e.gid);
        crate::meta::lchown(path, uid, gid)?;
    }
    if !is_link {
        let perm = std::fs::Permissions::from_mode(e.mode);
        match file {
            Some(f) => f.set_permissions(perm)?,
            None => std::fs::set_permissions(path, perm)?,
        }
    }
    for x in &e.xattrs {
        if let Err(err) = crate::meta::set_xattr(path, x) {
            // Trusted and security attributes need privileges; say so once per file.
            return Err(std::io::Error::new(
                err.kind(),
                format!("extended attribute {}: {err}", show(&x.name)),
            ));
        }
    }
    let atime = e.atime.unwrap_or(e.mtime);
    match file {
        Some(f) => crate::meta::set_fd_times(f, atime, e.mtime),
        None => crate::meta::set_times(path, atime, e.mtime),
    }
}

fn restore_file(ctx: &Ctx, e: &Entry, path: &Path) -> std::result::Result<(), String> {
    let EntryKind::File { size, content } = &e.kind else {
        return Ok(());
    };
    if let Ok(md) = path.symlink_metadata() {
        let same = md.is_file()
            && md.size() == *size
            && md.mtime() * 1_000_000_000 + md.mtime_nsec() == e.mtime;
        match ctx.opts.overwrite {
            Overwrite::Never => {
                ctx.left_alone(path);
                return Ok(());
            }
            Overwrite::IfChanged if same => {
                ctx.skipped.fetch_add(1, Relaxed);
                return Ok(());
            }
            _ => std::fs::remove_file(path)
                .map_err(|err| format!("{}: not replaced: {err}", path.display()))?,
        }
    }
    let f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|err| format!("{}: not created: {err}", path.display()))?;
    let written = write_content(ctx, &f, content, *size, path).and_then(|written| {
        if written != *size || matches!(content, Content::Index(_)) {
            // Trailing holes, or a file cut short by damage.
            f.set_len(*size)
                .map_err(|err| format!("{}: {err}", path.display()))?;
        }
        Ok(written)
    });
    let written = match written {
        Ok(n) => n,
        Err(msg) => {
            // What was written of it would pass for the file restored: it goes.
            drop(f);
            let removed = match std::fs::remove_file(path) {
                Ok(()) => "what was written of it was removed".to_string(),
                Err(e) => format!("what was written of it is left there ({e})"),
            };
            return Err(format!("{msg}; {removed}"));
        }
    };
    ctx.bytes.fetch_add(written, Relaxed);
    if let Err(err) = set_meta(ctx, path, e, Some(&f)) {
        ctx.warn(format!("{}: metadata not restored: {err}", path.display()));
    }
    drop(f);
    if ctx.opts.verify {
        verify(ctx, path, content, *size)?;
    }
    ctx.files.fetch_add(1, Relaxed);
    ctx.progress.add_file();
    Ok(())
}

/// Fetches blocks ahead of writing: the tickets of the next data pieces.
/// A piece and, for data, the fetch already under way.
type Fetching = (Piece, Option<Ticket<Option<Vec<u8>>>>);

struct Ahead<'r> {
    ctx: &'r Ctx<'r>,
    pieces: Pieces<'r>,
    queue: VecDeque<Fetching>,
}

enum Pieces<'r> {
    One(Option<Piece>),
    Tree(Reader<'r, FileTree>),
}

impl<'r> Ahead<'r> {
    fn next(&mut self) -> Result<Option<Fetching>> {
        let depth = if self.ctx.prefetch.is_some() {
            READ_AHEAD_FAR
        } else {
            READ_AHEAD
        };
        while self.queue.len() < depth {
            let p = match &mut self.pieces {
                Pieces::One(p) => p.take(),
                Pieces::Tree(r) => r.next_item()?,
            };
            let Some(p) = p else { break };
            let t = match &p {
                Piece::Data { key, .. } => Some(self.ctx.start_get(*key)),
                Piece::Hole { .. } => None,
            };
            self.queue.push_back((p, t));
        }
        Ok(self.queue.pop_front())
    }
}

fn pieces<'r>(repo: &'r Repo, fetch: &'r dyn Fetch, content: &Content, size: u64) -> Pieces<'r> {
    match content {
        Content::Empty => Pieces::One(None),
        Content::Chunk(key) => Pieces::One(Some(Piece::Data {
            key: *key,
            len: size,
        })),
        Content::Index(root) => Pieces::Tree(Reader::via(repo, fetch, *root)),
    }
}

fn damaged(ctx: &Ctx, path: &Path, e: Error) -> String {
    ctx.incomplete.store(true, Relaxed);
    format!("{}: not fully restored: {e}", path.display())
}

fn write_content(
    ctx: &Ctx,
    f: &File,
    content: &Content,
    size: u64,
    path: &Path,
) -> std::result::Result<u64, String> {
    let mut ahead = Ahead {
        ctx,
        pieces: pieces(ctx.repo, ctx.fetcher(), content, size),
        queue: VecDeque::new(),
    };
    let mut pos = 0u64;
    let mut first_problem = None;
    loop {
        let (piece, ticket) = match ahead.next() {
            Ok(Some(x)) => x,
            Ok(None) => break,
            Err(e) if crate::repo::is_damage(&e) => {
                first_problem.get_or_insert(damaged(ctx, path, e));
                break;
            }
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        match (piece, ticket) {
            (Piece::Hole { len }, _) => pos += len,
            (Piece::Data { key, len }, Some(t)) => {
                let data = match crate::repo::fetched(t.wait(), key, Kind::Chunk) {
                    Ok(stored) => block::open(&ctx.repo.keys, &key, Some(Kind::Chunk), stored),
                    Err(e) if crate::repo::is_damage(&e) => Err(e),
                    Err(e) => return Err(format!("{}: {e}", path.display())),
                };
                match data {
                    Ok(plain) => {
                        let d = plain.data();
                        f.write_all_at(d, pos)
                            .map_err(|err| format!("{}: write failed: {err}", path.display()))?;
                        ctx.progress.add_bytes(d.len() as u64);
                        pos += d.len() as u64;
                    }
                    Err(e) => {
                        let msg = damaged(ctx, path, e);
                        ctx.warn(msg);
                        pos += len;
                    }
                }
            }
            (Piece::Data { .. }, None) => unreachable!("data pieces always have a ticket"),
        }
    }
    match first_problem {
        Some(msg) => {
            ctx.warn(msg);
            Ok(pos)
        }
        None => Ok(pos),
    }
}

/// Re-reads a restored file and checks every piece against its key.
fn verify(ctx: &Ctx, path: &Path, content: &Content, size: u64) -> std::result::Result<(), String> {
    let f = File::open(path).map_err(|e| format!("{}: not verified: {e}", path.display()))?;
    let md = f
        .metadata()
        .map_err(|e| format!("{}: not verified: {e}", path.display()))?;
    if md.size() != size {
        return Err(format!(
            "{}: verify: size is {} but should be {size}",
            path.display(),
            md.size()
        ));
    }
    let mut pieces = pieces(ctx.repo, ctx.repo, content, size);
    let mut pos = 0u64;
    let mut buf = Vec::new();
    loop {
        let p = match &mut pieces {
            Pieces::One(p) => p.take(),
            Pieces::Tree(r) => r
                .next_item()
                .map_err(|e| format!("{}: not verified: {e}", path.display()))?,
        };
        let Some(p) = p else { break };
        let len = p.len() as usize;
        buf.resize(len, 0);
        f.read_exact_at(&mut buf, pos)
            .map_err(|e| format!("{}: verify: {e}", path.display()))?;
        let ok = match p {
            Piece::Data { key, .. } => ctx.repo.keys.key_of(Kind::Chunk as u8, &buf) == key,
            Piece::Hole { .. } => buf.iter().all(|&b| b == 0),
        };
        if !ok {
            return Err(format!(
                "{}: verify: bytes {pos}..{} differ from the snapshot",
                path.display(),
                pos + len as u64
            ));
        }
        pos += len as u64;
    }
    Ok(())
}
