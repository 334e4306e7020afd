//! The walk: directories in name order, entries stat'ed, rules and the file cache applied.

use super::file::{self, FileDone};
use super::finish::{self, DirJob, Pending};
use super::Ctx;
use crate::entry::{Entry, EntryKind, Xattr};
use crate::error::{Error, Result};
use crate::filecache::{CacheReader, CacheWriter, Cached, Stamp};
use crate::fsys::{stat_path, Dir, Stat};
use crate::rules::{ignored, read_ignore_file, IGNORE_FILE};
use crate::slot::{Gate, Slot};
use crate::util::path_bytes;
use ignore::gitignore::Gitignore;
use protocol::Key;
use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::Arc;

/// Most files handed to the pool and not yet finished.
const MAX_FILES_IN_FLIGHT: usize = 2048;
/// Most finished directories waiting for the finisher.
const MAX_DIRS_WAITING: usize = 1024;

/// A file handed to the pool.
struct FileJob {
    abs: PathBuf,
    stamp: Stamp,
    blocks: u64,
    slot: Arc<Slot<FileDone>>,
}

/// Files are handed to the pool in batches of this many (or fewer, at the end of a directory),
/// so a tree of small files does not cost a thread wake-up per file.
const BATCH_FILES: usize = 32;
const BATCH_BYTES: u64 = 8 << 20;

struct Walker<'c, 'r, 's> {
    ctx: &'c Ctx<'r>,
    scope: &'s rayon::Scope<'c>,
    cache: Option<CacheReader>,
    dirs: SyncSender<DirJob>,
    gate: &'c Gate,
    batch: Vec<FileJob>,
    batch_bytes: u64,
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
    let gate = &Gate::new(MAX_FILES_IN_FLIGHT);
    let (tx, rx) = sync_channel::<DirJob>(MAX_DIRS_WAITING);
    let root_slot: Arc<Slot<Result<Key>>> = Arc::new(Slot::default());
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
                        batch: Vec::new(),
                        batch_bytes: 0,
                        ignores: Vec::new(),
                        hardlinks: HashMap::new(),
                        skip: HashSet::new(),
                        root_dev: 0,
                    };
                    for p in &ctx.opts.skip {
                        if let Ok(st) = stat_path(p, true) {
                            w.skip.insert((st.dev, st.ino));
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
        let (mut root, root_stamp) = walked?;
        let writer = finished?;
        root.kind = EntryKind::Dir {
            tree: root_slot.take()?,
        };
        if let (Some(w), Some(stamp), [p]) = (&writer, root_stamp, paths) {
            let (dir, name) = split(path_bytes(p));
            w.put(dir, name, stamp, &root)?;
        }
        Ok((root, writer))
    })
}

/// A path's parent and last component, as bytes (`/` is its own parent with an empty name).
pub(super) fn split(p: &[u8]) -> (&[u8], &[u8]) {
    match p.iter().rposition(|&b| b == b'/') {
        Some(0) => (b"/", &p[1..]),
        Some(i) => (&p[..i], &p[i + 1..]),
        None => (b"", p),
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

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl<'c, 'r, 's> Walker<'c, 'r, 's> {
    /// The top level: one directory becomes the root itself; anything else (a file, several
    /// paths) goes into a made-up root directory, each under its last component.
    fn top(
        &mut self,
        paths: &[PathBuf],
        root_slot: Arc<Slot<Result<Key>>>,
    ) -> Result<(Entry, Option<Stamp>)> {
        if let [p] = paths {
            let st = stat_path(p, true).map_err(|e| Error::io(p, e))?;
            if st.is_dir() {
                self.root_dev = st.dev;
                let (dir, name) = split(path_bytes(p));
                let cached = match &self.cache {
                    Some(c) => c.dir(dir)?.remove(name),
                    None => None,
                };
                let entry = self.base_entry(name.to_vec(), &st, p, b"")?;
                self.ignores = vec![self.ctx.rules.root_ignore(p)?];
                let known = cached.and_then(|c| match c.entry.kind {
                    EntryKind::Dir { tree } => Some(tree),
                    _ => None,
                });
                self.walk_dir(p.clone(), Vec::new(), root_slot, known)?;
                lock(&self.ctx.stats).dirs += 1;
                return Ok((entry, Some(Stamp::of(&st))));
            }
        }
        let mut seen = HashMap::new();
        let mut pending = Vec::new();
        let mut sorted: Vec<&PathBuf> = paths.iter().collect();
        sorted.sort_by(|a, b| split(path_bytes(a)).1.cmp(split(path_bytes(b)).1));
        for p in sorted {
            let (dir, name) = split(path_bytes(p));
            if let Some(other) = seen.insert(name.to_vec(), p.clone()) {
                return Err(Error::Usage(format!(
                    "{} and {} would both be saved as `{}`: snapshot them under different tags, or their common parent",
                    other.display(),
                    p.display(),
                    crate::util::show(name)
                )));
            }
            let st = stat_path(p, true).map_err(|e| Error::io(p, e))?;
            self.root_dev = st.dev;
            self.ignores = vec![self.ctx.rules.root_ignore(p)?];
            let cached = match &self.cache {
                Some(c) => c.dir(dir)?.remove(name),
                None => None,
            };
            if let Some(x) = self.entry(p.clone(), name.to_vec(), name.to_vec(), st, cached)? {
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
        lock(&self.ctx.stats).dirs += 1;
        Ok((
            Entry {
                name: Vec::new(),
                kind: EntryKind::Dir { tree: Key([0; 32]) },
                mode: 0o755,
                uid,
                gid,
                user: crate::meta::user_name(uid),
                group: crate::meta::group_name(gid),
                mtime: now,
                atime: None,
                ctime: None,
                xattrs: Vec::new(),
            },
            None,
        ))
    }

    /// Hands the batched files to the pool.
    fn flush_batch(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let jobs = std::mem::take(&mut self.batch);
        self.batch_bytes = 0;
        let (ctx, gate) = (self.ctx, self.gate);
        gate.enter(jobs.len());
        self.scope.spawn(move |_| {
            let n = jobs.len();
            for j in jobs {
                let r = if ctx.stopped() {
                    FileDone::Skipped
                } else {
                    file::store(ctx, &j.abs, j.stamp, j.blocks)
                };
                j.slot.set(r);
            }
            gate.leave(n);
        });
    }

    fn send(&mut self, job: DirJob) -> Result<()> {
        // The finisher will wait for these files: they must be on their way first.
        self.flush_batch();
        self.dirs
            .send(job)
            .map_err(|_| Error::Archive("the directory finisher stopped".into()))
    }

    /// The metadata every entry has; the kind is filled in by the caller.
    fn base_entry(&self, name: Vec<u8>, st: &Stat, abs: &Path, rel: &[u8]) -> Result<Entry> {
        let o = self.ctx.opts;
        let xattrs = match crate::meta::read_xattrs(abs) {
            Ok(x) => x,
            Err(e) => {
                self.ctx
                    .warn(rel, format!("extended attributes not saved: {e}"));
                Vec::<Xattr>::new()
            }
        };
        Ok(Entry {
            name,
            kind: EntryKind::Fifo,
            mode: st.mode & 0o7777,
            uid: st.uid,
            gid: st.gid,
            user: crate::meta::user_name(st.uid),
            group: crate::meta::group_name(st.gid),
            mtime: st.mtime,
            atime: o.atime.then_some(st.atime),
            ctime: o.ctime.then_some(st.ctime),
            xattrs,
        })
    }

    /// Walks the directory `abs` (`rel` from the snapshot root) and queues it for the finisher.
    fn walk_dir(
        &mut self,
        abs: PathBuf,
        rel: Vec<u8>,
        slot: Arc<Slot<Result<Key>>>,
        known: Option<Key>,
    ) -> Result<()> {
        let (dir, mut names) = match Dir::open(&abs).and_then(|d| d.names().map(|n| (d, n))) {
            Ok((d, n)) => (Some(d), n),
            Err(e) => {
                self.ctx.warn(&rel, format!("directory not read: {e}"));
                (None, Vec::new())
            }
        };
        names.sort_unstable();
        let pushed_ignore = names.iter().any(|n| n.as_slice() == IGNORE_FILE.as_bytes());
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
        if let Some(dir) = &dir {
            for name in names {
                if self.ctx.stopped() {
                    break;
                }
                let child_rel = join_rel(&rel, &name);
                let st = match dir.lstat(&name) {
                    Ok(st) => st,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        self.ctx.warn(&child_rel, "vanished during the snapshot");
                        continue;
                    }
                    Err(e) => {
                        self.ctx.warn(&child_rel, format!("not saved: {e}"));
                        continue;
                    }
                };
                let child = abs.join(OsStr::from_bytes(&name));
                if self.excluded(&child, &st) {
                    continue;
                }
                let cached = rows.remove(&name);
                if let Some(p) = self.entry(child, name, child_rel, st, cached)? {
                    pending.push(p);
                }
            }
        }
        drop(dir);
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

    fn excluded(&self, path: &Path, st: &Stat) -> bool {
        if st.is_dir() && self.skip.contains(&(st.dev, st.ino)) {
            return true;
        }
        if ignored(&self.ignores, path, st.is_dir()) {
            return true;
        }
        self.ctx.rules.config_excludes(path, st)
    }

    /// The pending entry for one path.
    fn entry(
        &mut self,
        abs: PathBuf,
        name: Vec<u8>,
        rel: Vec<u8>,
        st: Stat,
        cached: Option<Cached>,
    ) -> Result<Option<Pending>> {
        let ctx = self.ctx;
        ctx.progress.add_file();
        let stamp = Stamp::of(&st);
        if st.is_dir() {
            let mut entry = self.base_entry(name, &st, &abs, &rel)?;
            entry.kind = EntryKind::Dir { tree: Key([0; 32]) };
            let slot = Arc::new(Slot::default());
            let (known, unchanged_since) = match cached {
                Some(Cached {
                    stamp: s,
                    entry:
                        Entry {
                            kind: EntryKind::Dir { tree },
                            ..
                        },
                }) => (Some(tree), Some(s)),
                _ => (None, None),
            };
            lock(&ctx.stats).dirs += 1;
            if ctx.opts.one_file_system && st.dev != self.root_dev {
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
                stamp,
                cached: unchanged_since.filter(|s| *s == stamp).and(known),
            }));
        }
        if st.is_file() {
            if st.nlink > 1 {
                match self.hardlinks.get(&(st.dev, st.ino)) {
                    Some(target) => {
                        let mut entry = self.base_entry(name, &st, &abs, &rel)?;
                        entry.kind = EntryKind::Hardlink {
                            target: target.clone(),
                        };
                        lock(&ctx.stats).other += 1;
                        return Ok(Some(Pending::Ready(entry)));
                    }
                    None => {
                        self.hardlinks.insert((st.dev, st.ino), rel.clone());
                    }
                }
            }
            {
                let mut s = lock(&ctx.stats);
                s.files += 1;
                s.bytes += st.size;
            }
            if let Some(c) = cached {
                if c.stamp == stamp && matches!(c.entry.kind, EntryKind::File { .. }) {
                    let mut entry = c.entry;
                    entry.atime = ctx.opts.atime.then_some(st.atime);
                    entry.ctime = ctx.opts.ctime.then_some(st.ctime);
                    ctx.progress.add_bytes(st.size);
                    return Ok(Some(Pending::Ready(entry)));
                }
            }
            let entry = self.base_entry(name, &st, &abs, &rel)?;
            let slot: Arc<Slot<FileDone>> = Arc::new(Slot::default());
            self.batch_bytes += st.size;
            self.batch.push(FileJob {
                abs,
                stamp,
                blocks: st.blocks,
                slot: slot.clone(),
            });
            if self.batch.len() >= BATCH_FILES || self.batch_bytes >= BATCH_BYTES {
                self.flush_batch();
            }
            lock(&ctx.stats).files_read += 1;
            return Ok(Some(Pending::File { entry, slot, stamp }));
        }
        let mut entry = self.base_entry(name, &st, &abs, &rel)?;
        entry.kind = if st.is_symlink() {
            match std::fs::read_link(&abs) {
                Ok(t) => EntryKind::Symlink {
                    target: t.as_os_str().as_bytes().to_vec(),
                },
                Err(e) => {
                    ctx.warn(&rel, format!("symlink not saved: {e}"));
                    return Ok(None);
                }
            }
        } else if st.is_fifo() {
            EntryKind::Fifo
        } else if st.is_socket() {
            EntryKind::Socket
        } else if st.is_char_device() {
            EntryKind::CharDevice { rdev: st.rdev }
        } else if st.is_block_device() {
            EntryKind::BlockDevice { rdev: st.rdev }
        } else {
            ctx.warn(&rel, "of an unknown type; not saved");
            return Ok(None);
        };
        lock(&ctx.stats).other += 1;
        Ok(Some(Pending::Ready(entry)))
    }
}
