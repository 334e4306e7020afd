//! Restoring a snapshot, a subtree or one file.
//!
//! The walk creates directories as it meets them and hands files to a pool of threads that
//! fetch, check, decompress and write them in parallel, fetching a few blocks ahead of the one
//! being written. Hard links are made once every file exists, and directory metadata (modes,
//! times) is set last, deepest first, so writing into a directory never disturbs its times.
//!
//! A block that is missing or corrupt is reported with its key and the path it belongs to; the
//! file is left with the bytes that could be restored, and the rest of the restore goes on.

use crate::block::{self, Kind};
use crate::entry::{Content, Entry, EntryKind, Piece, Snapshot};
use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::repo::Repo;
use crate::tree::{DirTree, FileTree, Reader};
use crate::util::{bytes_path, show};
use protocol::{Key, Ticket};
use std::collections::VecDeque;
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
}

/// Blocks fetched ahead of the one being written.
const READ_AHEAD: usize = 16;
const MAX_FILES_IN_FLIGHT: usize = 1024;

struct Ctx<'r> {
    repo: &'r Repo,
    opts: &'r RestoreOptions,
    root_owner: bool,
    warnings: Mutex<Vec<String>>,
    incomplete: AtomicBool,
    files: AtomicU64,
    bytes: AtomicU64,
    skipped: AtomicU64,
    progress: Arc<Progress>,
    gate: crate::slot::Gate,
}

impl Ctx<'_> {
    fn warn(&self, msg: String) {
        protocol::log::warning(&msg);
        self.warnings
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(msg);
    }
    fn enter(&self) {
        self.gate.enter(1);
    }
    fn leave(&self) {
        self.gate.leave(1);
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
        opts,
        root_owner: crate::meta::is_root() && !opts.no_owner,
        warnings: Mutex::new(Vec::new()),
        incomplete: AtomicBool::new(false),
        files: AtomicU64::new(0),
        bytes: AtomicU64::new(0),
        skipped: AtomicU64::new(0),
        progress,
        gate: crate::slot::Gate::new(MAX_FILES_IN_FLIGHT),
    };
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("ore-restore-{i}"))
        .build()
        .map_err(|e| Error::Archive(format!("could not start worker threads: {e}")))?;
    let mut out = RestoreOutcome::default();
    let mut dirs: Vec<(PathBuf, Entry)> = Vec::new();
    let mut links: Vec<(PathBuf, Vec<u8>, Entry)> = Vec::new();
    let ctx = &ctx;
    let walked = pool.in_place_scope(|scope| -> Result<()> {
        if let EntryKind::Dir { tree } = &target.kind {
            std::fs::create_dir_all(dest).map_err(|e| Error::io(dest, e))?;
            dirs.push((dest.to_path_buf(), target.clone()));
            walk(
                ctx, scope, *tree, dest, sub, &mut dirs, &mut links, &mut out,
            )
        } else {
            let to = if dest.is_dir() {
                dest.join(bytes_path(&target.name))
            } else {
                dest.to_path_buf()
            };
            one(
                ctx,
                scope,
                target.clone(),
                to,
                sub.to_vec(),
                &mut links,
                &mut out,
            )
        }
    });
    walked?;
    // Hard links, once every file exists. A link whose target lies outside what was restored
    // gets the target's contents instead.
    for (path, target, entry) in links {
        let rel_target = if sub.is_empty() {
            Some(target.as_slice())
        } else {
            target.strip_prefix(sub).and_then(|t| t.strip_prefix(b"/"))
        };
        let linked = match rel_target {
            Some(t) => {
                let src = dest.join(bytes_path(t));
                if ctx.opts.overwrite != Overwrite::Never {
                    let _ = std::fs::remove_file(&path);
                }
                std::fs::hard_link(&src, &path).map_err(|e| {
                    format!(
                        "{}: hard link to {} not made: {e}",
                        path.display(),
                        src.display()
                    )
                })
            }
            None => Err(String::new()),
        };
        if let Err(msg) = linked {
            if msg.is_empty() {
                // Restore the linked file's contents under this name.
                match find(repo, &snap.root, &target) {
                    Ok(mut t) => {
                        t.name = entry.name.clone();
                        pool.in_place_scope(|scope| {
                            one(
                                ctx,
                                scope,
                                t,
                                path.clone(),
                                target.clone(),
                                &mut Vec::new(),
                                &mut out,
                            )
                        })?;
                    }
                    Err(e) => ctx.warn(format!(
                        "{}: hard link target {} not found: {e}",
                        path.display(),
                        show(&target)
                    )),
                }
            } else {
                ctx.warn(msg);
            }
        } else {
            out.other += 1;
        }
    }
    // Directory metadata last, deepest first.
    for (path, entry) in dirs.iter().rev() {
        if let Err(e) = set_meta(ctx, path, entry, None) {
            ctx.warn(format!("{}: metadata not restored: {e}", path.display()));
        }
    }
    out.files = ctx.files.load(Relaxed);
    out.bytes = ctx.bytes.load(Relaxed);
    out.skipped = ctx.skipped.load(Relaxed);
    out.dirs = dirs.len() as u64;
    out.incomplete = ctx.incomplete.load(Relaxed);
    out.warnings = std::mem::take(&mut *ctx.warnings.lock().unwrap_or_else(|p| p.into_inner()));
    Ok(out)
}

fn join(rel: &[u8], name: &[u8]) -> Vec<u8> {
    let mut v = rel.to_vec();
    if !v.is_empty() {
        v.push(b'/');
    }
    v.extend_from_slice(name);
    v
}

#[allow(clippy::too_many_arguments)]
fn walk<'s>(
    ctx: &'s Ctx<'s>,
    scope: &rayon::Scope<'s>,
    tree: Key,
    dir: &Path,
    rel: &[u8],
    dirs: &mut Vec<(PathBuf, Entry)>,
    links: &mut Vec<(PathBuf, Vec<u8>, Entry)>,
    out: &mut RestoreOutcome,
) -> Result<()> {
    let mut reader = Reader::<DirTree>::new(ctx.repo, tree);
    loop {
        let entry = match reader.next_item() {
            Ok(Some(e)) => e,
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
        };
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
            continue;
        }
        let path = dir.join(bytes_path(&entry.name));
        let child_rel = join(rel, &entry.name);
        if let EntryKind::Dir { tree } = entry.kind {
            match std::fs::create_dir(&path) {
                Ok(()) => {}
                Err(e)
                    if e.kind() == std::io::ErrorKind::AlreadyExists
                        && path.symlink_metadata().is_ok_and(|m| m.is_dir()) => {}
                Err(e) => {
                    ctx.warn(format!("{}: directory not created: {e}", path.display()));
                    continue;
                }
            }
            dirs.push((path.clone(), entry));
            walk(ctx, scope, tree, &path, &child_rel, dirs, links, out)?;
        } else {
            one(ctx, scope, entry, path, child_rel, links, out)?;
        }
    }
    Ok(())
}

/// Restores one non-directory entry at `path`.
fn one<'s>(
    ctx: &'s Ctx<'s>,
    scope: &rayon::Scope<'s>,
    entry: Entry,
    path: PathBuf,
    rel: Vec<u8>,
    links: &mut Vec<(PathBuf, Vec<u8>, Entry)>,
    out: &mut RestoreOutcome,
) -> Result<()> {
    let _ = rel;
    match &entry.kind {
        EntryKind::File { .. } => {
            ctx.enter();
            scope.spawn(move |_| {
                if let Err(msg) = restore_file(ctx, &entry, &path) {
                    ctx.warn(msg);
                }
                ctx.leave();
            });
        }
        EntryKind::Hardlink { target } => links.push((path, target.clone(), entry.clone())),
        EntryKind::Dir { .. } => unreachable!("directories are walked"),
        other => {
            if path.symlink_metadata().is_ok() {
                match ctx.opts.overwrite {
                    Overwrite::Never => {
                        ctx.skipped.fetch_add(1, Relaxed);
                        ctx.warn(format!("{}: exists, not overwritten", path.display()));
                        return Ok(());
                    }
                    _ => {
                        let _ = std::fs::remove_file(&path);
                    }
                }
            }
            let made = match other {
                EntryKind::Symlink { target } => {
                    std::os::unix::fs::symlink(bytes_path(target), &path)
                }
                EntryKind::Fifo => crate::meta::mknod(&path, libc::S_IFIFO | 0o600, 0),
                EntryKind::Socket => {
                    // A socket is only meaningful while its server runs; nothing to recreate.
                    out.other += 1;
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
                    out.other += 1;
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
                ctx.skipped.fetch_add(1, Relaxed);
                return Err(format!("{}: exists, not overwritten", path.display()));
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
    let written = write_content(ctx, &f, content, *size, path)?;
    ctx.bytes.fetch_add(written, Relaxed);
    if written != *size || matches!(content, Content::Index(_)) {
        // Trailing holes, or a file cut short by damage.
        f.set_len(*size)
            .map_err(|err| format!("{}: {err}", path.display()))?;
    }
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
type Fetch = (Piece, Option<Ticket<Option<Vec<u8>>>>);

struct Ahead<'r> {
    repo: &'r Repo,
    pieces: Pieces<'r>,
    queue: VecDeque<Fetch>,
}

enum Pieces<'r> {
    One(Option<Piece>),
    Tree(Reader<'r, FileTree>),
}

impl<'r> Ahead<'r> {
    fn next(&mut self) -> Result<Option<Fetch>> {
        while self.queue.len() < READ_AHEAD {
            let p = match &mut self.pieces {
                Pieces::One(p) => p.take(),
                Pieces::Tree(r) => r.next_item()?,
            };
            let Some(p) = p else { break };
            let t = match &p {
                Piece::Data { key, .. } => Some(self.repo.backend.start_get(*key)),
                Piece::Hole { .. } => None,
            };
            self.queue.push_back((p, t));
        }
        Ok(self.queue.pop_front())
    }
}

fn pieces<'r>(repo: &'r Repo, content: &Content, size: u64) -> Pieces<'r> {
    match content {
        Content::Empty => Pieces::One(None),
        Content::Chunk(key) => Pieces::One(Some(Piece::Data {
            key: *key,
            len: size,
        })),
        Content::Index(root) => Pieces::Tree(Reader::new(repo, *root)),
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
        repo: ctx.repo,
        pieces: pieces(ctx.repo, content, size),
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
    let mut pieces = pieces(ctx.repo, content, size);
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
