//! The walk: directories in name order, entries stat'ed, rules and the file cache applied.

use super::file::{self, FileDone};
use super::finish::{self, DirJob, Pending};
use super::Ctx;
use crate::entry::{Entry, EntryKind, Xattr};
use crate::error::{Error, Result};
use crate::filecache::{CacheReader, CacheWriter, Cached, Stamp};
use crate::rules::{ignored, read_ignore_file, IGNORE_FILE};
use crate::slot::Slot;
use crate::util::path_bytes;
use ignore::gitignore::Gitignore;
use std::collections::{HashMap, HashSet};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::{Arc, Condvar, Mutex};

/// Most files handed to the pool and not yet finished.
const MAX_FILES_IN_FLIGHT: usize = 2048;
/// Most finished directories waiting for the finisher.
const MAX_DIRS_WAITING: usize = 1024;

/// Counts files in flight and blocks the walk at the limit.
struct Gate {
    n: Mutex<usize>,
    cv: Condvar,
}

impl Gate {
    fn enter(&self) {
        let mut n = self.n.lock().unwrap_or_else(|p| p.into_inner());
        while *n >= MAX_FILES_IN_FLIGHT {
            n = self.cv.wait(n).unwrap_or_else(|p| p.into_inner());
        }
        *n += 1;
    }
    fn leave(&self) {
        *self.n.lock().unwrap_or_else(|p| p.into_inner()) -= 1;
        self.cv.notify_one();
    }
}

struct Walker<'c, 'r, 's> {
    ctx: &'c Ctx<'r>,
    scope: &'s rayon::Scope<'c>,
    cache: Option<CacheReader>,
    dirs: SyncSender<DirJob>,
    gate: &'c Gate,
    ignores: Vec<Gitignore>,
    hardlinks: HashMap<(u64, u64), Vec<u8>>,
    skip: HashSet<(u64, u64)>,
    root_dev: u64,
}

/// Walks `paths` and returns the snapshot's root entry once everything under it is stored.
pub(super) fn run(
    ctx: &Ctx,
    paths: &[PathBuf],
    cache: Option<CacheReader>,
    writer: Option<CacheWriter>,
) -> Result<(Entry, Option<CacheWriter>)> {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("ore-store-{i}"))
        .build()
        .map_err(|e| Error::Archive(format!("could not start worker threads: {e}")))?;
    let gate = &Gate {
        n: Mutex::new(0),
        cv: Condvar::new(),
    };
    let (tx, rx) = sync_channel::<DirJob>(MAX_DIRS_WAITING);
    let root_slot: Arc<Slot<Result<protocol::Key>>> = Arc::new(Slot::default());
    let walk_slot = root_slot.clone();
    let pool = &pool;
    std::thread::scope(|s| -> Result<(Entry, Option<CacheWriter>)> {
        let finisher = s.spawn(move || finish::run(ctx, rx, writer));
        let walked = std::thread::Builder::new()
            .name("ore-walk".into())
            .stack_size(256 << 20)
            .spawn_scoped(s, move || {
                pool.in_place_scope(|scope| {
                    let mut w = Walker {
                        ctx,
                        scope,
                        cache,
                        dirs: tx,
                        gate,
                        ignores: Vec::new(),
                        hardlinks: HashMap::new(),
                        skip: HashSet::new(),
                        root_dev: 0,
                    };
                    for p in &ctx.opts.skip {
                        if let Ok(md) = std::fs::metadata(p) {
                            w.skip.insert((md.dev(), md.ino()));
                        }
                    }
                    w.top(paths, walk_slot)
                })
            })
            .map_err(|e| Error::Archive(format!("could not start the walk: {e}")))?;
        let walked = walked
            .join()
            .unwrap_or_else(|_| Err(Error::Archive("the walk panicked".into())));
        let finished = finisher
            .join()
            .unwrap_or_else(|_| Err(Error::Archive("the finisher panicked".into())));
        let root = walked?;
        let writer = finished?;
        let mut root = root;
        root.kind = EntryKind::Dir {
            tree: root_slot.take()?,
        };
        if let (Some(w), Some(stamp), [p]) = (&writer, root_stamp(paths), paths) {
            let (dir, name) = split(path_bytes(p));
            w.put(dir, name, stamp, &root)?;
        }
        Ok((root, writer))
    })
}

fn root_stamp(paths: &[PathBuf]) -> Option<Stamp> {
    match paths {
        [p] => std::fs::metadata(p)
            .ok()
            .filter(|m| m.is_dir())
            .map(|m| Stamp::of(&m)),
        _ => None,
    }
}

/// A path's parent and last component, as bytes (`/` is its own parent with an empty name).
pub(super) fn split(p: &[u8]) -> (&[u8], &[u8]) {
    match p.iter().rposition(|&b| b == b'/') {
        Some(0) => (b"/", &p[1..]),
        Some(i) => (&p[..i], &p[i + 1..]),
        None => (b"", p),
    }
}

impl<'c, 'r, 's> Walker<'c, 'r, 's> {
    /// The top level: one directory becomes the root itself; anything else (a file, several
    /// paths) goes into a made-up root directory, each under its last component.
    fn top(
        &mut self,
        paths: &[PathBuf],
        root_slot: Arc<Slot<Result<protocol::Key>>>,
    ) -> Result<Entry> {
        if let [p] = paths {
            let md = std::fs::metadata(p).map_err(|e| Error::io(p, e))?;
            if md.is_dir() {
                self.root_dev = md.dev();
                let (dir, name) = split(path_bytes(p));
                let cached = self
                    .cache
                    .as_ref()
                    .map(|c| c.dir(dir))
                    .transpose()?
                    .and_then(|mut m| m.remove(name));
                let entry = self.base_entry(name.to_vec(), &md, p, b"")?;
                let known = cached.and_then(|c| match c.entry.kind {
                    EntryKind::Dir { tree } => Some(tree),
                    _ => None,
                });
                self.walk_dir(p.clone(), Vec::new(), root_slot, known)?;
                self.ctx
                    .stats
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .dirs += 1;
                return Ok(entry);
            }
        }
        let mut seen = HashMap::new();
        let mut pending = Vec::new();
        let mut sorted: Vec<&PathBuf> = paths.iter().collect();
        sorted.sort_by(|a, b| split(path_bytes(a)).1.cmp(split(path_bytes(b)).1));
        for p in sorted {
            let (_, name) = split(path_bytes(p));
            if let Some(other) = seen.insert(name.to_vec(), p.clone()) {
                return Err(Error::Usage(format!(
                    "{} and {} would both be saved as `{}`: snapshot them under different tags, or their common parent",
                    other.display(),
                    p.display(),
                    crate::util::show(name)
                )));
            }
            let md = std::fs::metadata(p).map_err(|e| Error::io(p, e))?;
            self.root_dev = md.dev();
            let (dir, _) = split(path_bytes(p));
            let rows = match &self.cache {
                Some(c) => c.dir(dir)?,
                None => HashMap::new(),
            };
            if let Some(x) = self.entry(p.clone(), name.to_vec(), name.to_vec(), md, &rows)? {
                pending.push(x);
            }
        }
        self.send(DirJob {
            abs: Vec::new(),
            rel: Vec::new(),
            entries: pending,
            slot: root_slot,
            known: None,
            forget: Vec::new(),
        })?;
        let now = crate::util::now_ns();
        // SAFETY: getuid/getgid cannot fail.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        self.ctx
            .stats
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .dirs += 1;
        Ok(Entry {
            name: Vec::new(),
            kind: EntryKind::Dir {
                tree: protocol::Key([0; 32]),
            },
            mode: 0o755,
            uid,
            gid,
            user: crate::meta::user_name(uid),
            group: crate::meta::group_name(gid),
            mtime: now,
            atime: None,
            ctime: None,
            xattrs: Vec::new(),
        })
    }

    fn send(&self, job: DirJob) -> Result<()> {
        self.dirs
            .send(job)
            .map_err(|_| Error::Archive("the directory finisher stopped".into()))
    }

    /// The metadata every entry has; the kind is filled in by the caller.
    fn base_entry(
        &self,
        name: Vec<u8>,
        md: &std::fs::Metadata,
        abs: &Path,
        rel: &[u8],
    ) -> Result<Entry> {
        let o = self.ctx.opts;
        let xattrs = if md.file_type().is_symlink() && !cfg!(target_os = "linux") {
            Vec::new()
        } else {
            match crate::meta::read_xattrs(abs) {
                Ok(x) => x,
                Err(e) => {
                    self.ctx
                        .warn(rel, format!("extended attributes not saved: {e}"));
                    Vec::<Xattr>::new()
                }
            }
        };
        Ok(Entry {
            name,
            kind: EntryKind::Fifo,
            mode: md.mode() & 0o7777,
            uid: md.uid(),
            gid: md.gid(),
            user: crate::meta::user_name(md.uid()),
            group: crate::meta::group_name(md.gid()),
            mtime: md.mtime() * 1_000_000_000 + md.mtime_nsec(),
            atime: o
                .atime
                .then(|| md.atime() * 1_000_000_000 + md.atime_nsec()),
            ctime: o
                .ctime
                .then(|| md.ctime() * 1_000_000_000 + md.ctime_nsec()),
            xattrs,
        })
    }

    /// Walks the directory `abs` (`rel` from the snapshot root) and queues it for the finisher.
    fn walk_dir(
        &mut self,
        abs: PathBuf,
        rel: Vec<u8>,
        slot: Arc<Slot<Result<protocol::Key>>>,
        known: Option<protocol::Key>,
    ) -> Result<()> {
        let mut names = Vec::new();
        match std::fs::read_dir(&abs) {
            Ok(rd) => {
                for de in rd {
                    match de {
                        Ok(de) => names.push(de.file_name()),
                        Err(e) => {
                            self.ctx
                                .warn(&rel, format!("directory listing incomplete: {e}"));
                            break;
                        }
                    }
                }
            }
            Err(e) => self.ctx.warn(&rel, format!("directory not read: {e}")),
        }
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        let pushed_ignore = names.iter().any(|n| n.as_bytes() == IGNORE_FILE.as_bytes());
        if pushed_ignore {
            match read_ignore_file(&abs) {
                Ok(gi) => self.ignores.push(gi),
                Err(msg) => {
                    self.ctx.warn(&rel, msg);
                    self.ignores.push(Gitignore::empty());
                }
            }
        }
        let abs_bytes = path_bytes(&abs).to_vec();
        let mut rows = match &self.cache {
            Some(c) => c.dir(&abs_bytes)?,
            None => HashMap::new(),
        };
        let mut pending = Vec::with_capacity(names.len());
        for name in names {
            if self.ctx.stopped() {
                break;
            }
            let name = name.as_bytes().to_vec();
            let child = abs.join(std::ffi::OsStr::from_bytes(&name));
            let child_rel = join_rel(&rel, &name);
            let md = match std::fs::symlink_metadata(&child) {
                Ok(md) => md,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    self.ctx.warn(&child_rel, "vanished during the snapshot");
                    continue;
                }
                Err(e) => {
                    self.ctx.warn(&child_rel, format!("not saved: {e}"));
                    continue;
                }
            };
            if self.excluded(&child, &md) {
                continue;
            }
            if let Some(p) = self.entry(child, name.clone(), child_rel, md, &rows)? {
                rows.remove(&name);
                pending.push(p);
            }
        }
        if pushed_ignore {
            self.ignores.pop();
        }
        let forget = rows.into_keys().collect();
        self.send(DirJob {
            abs: abs_bytes,
            rel,
            entries: pending,
            slot,
            known,
            forget,
        })
    }

    fn excluded(&self, path: &Path, md: &std::fs::Metadata) -> bool {
        if md.is_dir() && self.skip.contains(&(md.dev(), md.ino())) {
            return true;
        }
        if ignored(&self.ignores, path, md.is_dir()) {
            return true;
        }
        self.ctx.rules.config_excludes(path, md)
    }

    /// The pending entry for one path.
    fn entry(
        &mut self,
        abs: PathBuf,
        name: Vec<u8>,
        rel: Vec<u8>,
        md: std::fs::Metadata,
        rows: &HashMap<Vec<u8>, Cached>,
    ) -> Result<Option<Pending>> {
        let ft = md.file_type();
        let ctx = self.ctx;
        ctx.progress.add_file();
        if ft.is_dir() {
            let mut entry = self.base_entry(name.clone(), &md, &abs, &rel)?;
            entry.kind = EntryKind::Dir {
                tree: protocol::Key([0; 32]),
            };
            let slot = Arc::new(Slot::default());
            let known = rows.get(&name).and_then(|c| match c.entry.kind {
                EntryKind::Dir { tree } => Some(tree),
                _ => None,
            });
            ctx.stats.lock().unwrap_or_else(|p| p.into_inner()).dirs += 1;
            if self.ctx.opts.one_file_system && md.dev() != self.root_dev {
                // A mount point: kept as an empty directory.
                self.send(DirJob {
                    abs: path_bytes(&abs).to_vec(),
                    rel,
                    entries: Vec::new(),
                    slot: slot.clone(),
                    known,
                    forget: Vec::new(),
                })?;
            } else {
                self.walk_dir(abs, rel, slot.clone(), known)?;
            }
            return Ok(Some(Pending::Dir {
                entry,
                slot,
                stamp: Stamp::of(&md),
            }));
        }
        if ft.is_file() {
            if md.nlink() > 1 {
                match self.hardlinks.get(&(md.dev(), md.ino())) {
                    Some(target) => {
                        let mut entry = self.base_entry(name, &md, &abs, &rel)?;
                        entry.kind = EntryKind::Hardlink {
                            target: target.clone(),
                        };
                        ctx.stats.lock().unwrap_or_else(|p| p.into_inner()).other += 1;
                        return Ok(Some(Pending::Ready(entry)));
                    }
                    None => {
                        self.hardlinks.insert((md.dev(), md.ino()), rel.clone());
                    }
                }
            }
            let stamp = Stamp::of(&md);
            {
                let mut st = ctx.stats.lock().unwrap_or_else(|p| p.into_inner());
                st.files += 1;
                st.bytes += md.size();
            }
            if let Some(c) = rows.get(&name) {
                if c.stamp == stamp && matches!(c.entry.kind, EntryKind::File { .. }) {
                    let mut entry = c.entry.clone();
                    entry.atime = ctx
                        .opts
                        .atime
                        .then(|| md.atime() * 1_000_000_000 + md.atime_nsec());
                    entry.ctime = ctx
                        .opts
                        .ctime
                        .then(|| md.ctime() * 1_000_000_000 + md.ctime_nsec());
                    ctx.progress.add_bytes(md.size());
                    return Ok(Some(Pending::Ready(entry)));
                }
            }
            let entry = self.base_entry(name, &md, &abs, &rel)?;
            let slot: Arc<Slot<FileDone>> = Arc::new(Slot::default());
            self.gate.enter();
            let (s2, gate, blocks) = (slot.clone(), self.gate, md.blocks());
            self.scope.spawn(move |_| {
                let r = if ctx.stopped() {
                    FileDone::Skipped
                } else {
                    file::store(ctx, &abs, stamp, blocks)
                };
                s2.set(r);
                gate.leave();
            });
            ctx.stats
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .files_read += 1;
            return Ok(Some(Pending::File { entry, slot, stamp }));
        }
        let mut entry = self.base_entry(name, &md, &abs, &rel)?;
        entry.kind = if ft.is_symlink() {
            match std::fs::read_link(&abs) {
                Ok(t) => EntryKind::Symlink {
                    target: t.as_os_str().as_bytes().to_vec(),
                },
                Err(e) => {
                    ctx.warn(&rel, format!("symlink not saved: {e}"));
                    return Ok(None);
                }
            }
        } else if ft.is_fifo() {
            EntryKind::Fifo
        } else if ft.is_socket() {
            EntryKind::Socket
        } else if ft.is_char_device() {
            EntryKind::CharDevice { rdev: md.rdev() }
        } else if ft.is_block_device() {
            EntryKind::BlockDevice { rdev: md.rdev() }
        } else {
            ctx.warn(&rel, "of an unknown type; not saved");
            return Ok(None);
        };
        ctx.stats.lock().unwrap_or_else(|p| p.into_inner()).other += 1;
        Ok(Some(Pending::Ready(entry)))
    }
}

fn join_rel(rel: &[u8], name: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(rel.len() + name.len() + 1);
    v.extend_from_slice(rel);
    if !rel.is_empty() {
        v.push(b'/');
    }
    v.extend_from_slice(name);
    v
}
