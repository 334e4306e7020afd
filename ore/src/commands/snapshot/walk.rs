//! The walk: a recursive, parallel descent that stores each directory once its children are.
//!
//! A directory is listed and its entries stat'ed (relative to the open directory), the
//! exclude rules and the file cache applied, and then its files and subdirectories are
//! processed in parallel on the pool — small files in runs, so a directory of many small files
//! does not cost a task each; subdirectories recursively, so both cores walk different parts
//! of the tree. When every child is done the directory's tree is built and stored, and its key
//! goes up to the parent. Directory entries are always kept in name order, so the result does
//! not depend on which thread did what.

use super::file;
use super::links::{Links, Met};
use super::Ctx;
use crate::commands::snapshot::rules::ignores_in;
use crate::core::block::Kind;
use crate::core::cpustat::{time, Stage};
use crate::core::entry::{Content, Entry, EntryKind, Xattr};
use crate::core::error::{Error, Result};
use crate::core::filecache::{CacheReader, CacheWriter, Cached, DirRows, Generation, Stamp};
use crate::core::fsys::{stat_path, Dir, Stat};
use crate::core::tree::{Builder, DirTree, Store};
use crate::core::util::{bytes_path, path_bytes};
use ignore::gitignore::Gitignore;
use ore_util::sync::{into_inner, lock};
use protocol::Key;
use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

mod listed;
mod reuse;
mod same;
mod small;

/// Entries of one directory handled by one task at least (files are cheap one by one).
const RUN: usize = 4;

/// What every task of the walk shares.
struct Walk<'c, 'r> {
    ctx: &'c Ctx<'r>,
    /// Idle read connections to the file cache (sqlite connections are per thread).
    readers: Option<Mutex<Vec<CacheReader>>>,
    reader_path: Option<PathBuf>,
    /// The generation of the cache's rows that are trusted as they are; the rows of a
    /// directory not marked with it are checked against the archive first (`None`: all are).
    trusted: Option<Generation>,
    writer: Option<Mutex<CacheWriter>>,
    /// The first path seen of each multiply linked inode with names still to come.
    hardlinks: Mutex<Links>,
    skip: HashSet<(u64, u64)>,
}

/// An entry of a directory being walked.
enum Item {
    /// Complete, and not something the file cache keeps.
    Ready(Entry),
    /// A file found unchanged in the file cache.
    Cached(Entry, Stamp),
    /// A file to read (or to take from the cache).
    File {
        entry: Entry,
        abs: PathBuf,
        stamp: Stamp,
        blocks: u64,
    },
    /// A subdirectory to walk.
    Dir {
        entry: Entry,
        abs: PathBuf,
        rel: Vec<u8>,
        stamp: Stamp,
        cached: Option<Box<Cached>>,
        descend: bool,
    },
}

impl Item {
    /// The entry as it stands when nothing is left to do for it (it holds no data, or the
    /// cache vouched for it); the item back otherwise. (Both are moved, not boxed: a box per
    /// entry is what this path exists to save.)
    #[allow(clippy::result_large_err)]
    fn finished(self) -> std::result::Result<Done, Item> {
        match self {
            Item::Ready(entry) => Ok(Done {
                entry,
                stamp: None,
                changed: false,
            }),
            Item::Cached(entry, stamp) => Ok(Done {
                entry,
                stamp: Some(stamp),
                changed: false,
            }),
            other => Err(other),
        }
    }
}

/// A finished entry and what the file cache should remember about it.
struct Done {
    entry: Entry,
    /// Set for what the cache keeps (files and directories).
    stamp: Option<Stamp>,
    /// Whether the cache's knowledge of it changed.
    changed: bool,
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

/// Each walk thread's stack: directories nest deep, and the walk recurses into them.
const STACK: usize = 256 << 20;

/// Walks `paths` and returns the snapshot's root entry once everything under it is stored.
pub(super) fn run(
    ctx: &Ctx,
    paths: &[PathBuf],
    cache: Option<(CacheReader, PathBuf, Option<Generation>)>,
    writer: Option<CacheWriter>,
) -> Result<(Entry, Option<CacheWriter>)> {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let threads = super::threads::walk_threads(paths, &ctx.rules, cores);
    let threads = super::threads::within_address_space(threads, cores, STACK);
    let pool = |n| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .stack_size(STACK)
            .thread_name(|i| format!("ore-walk-{i}"))
            .build()
    };
    // The extra threads of a cold tree reserve their stacks too: where a limit refuses them
    // (one the check above cannot see, such as a commit limit), the walk runs with one
    // thread per core.
    let pool = pool(threads)
        .or_else(|e| if threads > cores { pool(cores) } else { Err(e) })
        .map_err(|e| Error::Archive(format!("could not start worker threads: {e}")))?;
    let (readers, reader_path, trusted) = match cache {
        Some((r, p, t)) => (Some(Mutex::new(vec![r])), Some(p), t),
        None => (None, None, None),
    };
    let mut w = Walk {
        ctx,
        readers,
        reader_path,
        trusted,
        writer: writer.map(Mutex::new),
        hardlinks: Mutex::new(Links::default()),
        skip: HashSet::new(),
    };
    for p in &ctx.opts.skip {
        if let Ok(st) = stat_path(p, true) {
            w.skip.insert((st.dev, st.ino));
        }
    }
    let root = pool
        .install(|| match ctx.opts.in_place {
            true => w.listed_top(paths),
            false => w.top(paths),
        })
        .map_err(|e| ctx.fail(e));
    let writer = w.writer.map(into_inner);
    Ok((root?, writer))
}

struct DirStore<'a, 'r> {
    ctx: &'a Ctx<'r>,
    known: Option<Key>,
}

impl Store for DirStore<'_, '_> {
    fn store(&mut self, kind: Kind, plain: &[u8]) -> Result<Key> {
        self.ctx.writer.store(kind, plain, self.known)
    }
}

impl Walk<'_, '_> {
    /// The cache rows of directory `dir` (absolute path bytes), and the mark of its tree
    /// (`same.rs`). Rows without a mark of the trusted generation are checked against the
    /// archive first, and come without a mark.
    fn rows(&self, dir: &[u8]) -> Result<DirRows> {
        let (Some(pool), Some(path)) = (&self.readers, &self.reader_path) else {
            return Ok((HashMap::new(), None));
        };
        let reader = lock(pool).pop();
        let reader = match reader {
            Some(r) => r,
            None => CacheReader::open(path)?,
        };
        let rows = reader.dir(dir, self.trusted.as_ref());
        lock(pool).push(reader);
        match rows? {
            (rows, Some(mark)) => Ok((rows, Some(mark))),
            (rows, None) => Ok((self.checked(rows)?, None)),
        }
    }

    /// What is left of a directory's rows once checked against the archive.
    fn checked(&self, mut rows: HashMap<Vec<u8>, Cached>) -> Result<HashMap<Vec<u8>, Cached>> {
        if !rows.is_empty() {
            // Directory trees are recomputed (and checked when stored); files are kept only
            // if their content block is still in the archive.
            rows.retain(|_, c| matches!(c.entry.kind, EntryKind::File { .. }));
            let keyed: Vec<(Vec<u8>, Key)> = rows
                .iter()
                .filter_map(|(n, c)| match &c.entry.kind {
                    EntryKind::File { content, .. } => {
                        content.first_block().map(|k| (n.clone(), k))
                    }
                    _ => None,
                })
                .collect();
            if !keyed.is_empty() {
                let keys: Vec<Key> = keyed.iter().map(|(_, k)| *k).collect();
                let present = self.ctx.repo.backend().exists(&keys)?;
                for ((name, _), there) in keyed.into_iter().zip(present) {
                    if !there {
                        rows.remove(&name);
                    }
                }
            }
        }
        Ok(rows)
    }

    /// The top level: one directory becomes the root itself; anything else (a file, several
    /// paths) goes into a made-up root directory, each under its last component.
    fn top(&self, paths: &[PathBuf]) -> Result<Entry> {
        if let [p] = paths {
            let st = stat_path(p, true).map_err(|e| Error::io(p, e))?;
            if st.is_dir() {
                let (dir, name) = split(path_bytes(p));
                let cached = self.rows(dir)?.0.remove(name);
                let mut entry = self.base_entry(name.to_vec(), &st, p, b"");
                let ignores = Arc::new(vec![self.ctx.rules.root_ignore(p)?]);
                let known = cached_tree(&cached);
                let tree = self.walk_dir(p, b"", st.dev, &ignores, known)?;
                entry.kind = EntryKind::Dir { tree };
                self.ctx.count(|s| s.dirs += 1);
                if let Some(w) = &self.writer {
                    if known != Some(tree) {
                        lock(w).put_one(dir, name, Stamp::of(&st), &entry)?;
                    }
                }
                return Ok(entry);
            }
        }
        let mut seen = HashMap::new();
        let mut items = Vec::new();
        let mut sorted: Vec<&PathBuf> = paths.iter().collect();
        sorted.sort_by(|a, b| split(path_bytes(a)).1.cmp(split(path_bytes(b)).1));
        for p in sorted {
            let (dir, name) = split(path_bytes(p));
            if let Some(other) = seen.insert(name.to_vec(), p.clone()) {
                return Err(Error::Usage(format!(
                    "{} and {} would both be saved as `{}`: snapshot them under different tags, or their common parent",
                    other.display(),
                    p.display(),
                    crate::core::util::show(name)
                )));
            }
            let st = stat_path(p, true).map_err(|e| Error::io(p, e))?;
            let cached = self.rows(dir)?.0.remove(name);
            if let Some(item) =
                self.item(p.clone(), name.to_vec(), name.to_vec(), st, cached, st.dev)
            {
                items.push((item, dir.to_vec()));
            }
        }
        let mut tree = Builder::<DirTree>::default();
        let mut store = DirStore {
            ctx: self.ctx,
            known: None,
        };
        for (item, dir) in items {
            // `--exclude` patterns hold below each path too, anchored at the directory it is
            // in: the made-up root's entries are named as there (they were ignored here).
            let ignores = Arc::new(vec![self.ctx.rules.root_ignore(bytes_path(&dir))?]);
            if let Some(done) = self.resolve(item, &ignores)? {
                if let (Some(w), Some(stamp), true) = (&self.writer, done.stamp, done.changed) {
                    lock(w).put_one(&dir, &done.entry.name, stamp, &done.entry)?;
                }
                tree.push(done.entry, &mut store)?;
            }
        }
        let root_tree = tree.finish(&mut store)?;
        self.ctx.count(|s| s.dirs += 1);
        Ok(Entry::made_now(
            Vec::new(),
            EntryKind::Dir { tree: root_tree },
            0o755,
        ))
    }

    /// The metadata every entry has; the kind is filled in by the caller.
    fn base_entry(&self, name: Vec<u8>, st: &Stat, abs: &Path, rel: &[u8]) -> Entry {
        let mut entry = self.entry_of(name, st);
        entry.xattrs = self.xattrs_or_warn(crate::core::meta::read_xattrs(abs), rel);
        entry
    }

    /// Extended attributes as read, or none with a warning.
    fn xattrs_or_warn(&self, read: std::io::Result<Vec<Xattr>>, rel: &[u8]) -> Vec<Xattr> {
        read.unwrap_or_else(|e| {
            self.ctx
                .warn(rel, format!("extended attributes not saved: {e}"));
            Vec::new()
        })
    }

    /// The metadata every entry has but its extended attributes (a file that is read gets
    /// them from its open descriptor); the kind is filled in by the caller.
    fn entry_of(&self, name: Vec<u8>, st: &Stat) -> Entry {
        let o = self.ctx.opts;
        Entry {
            name,
            kind: EntryKind::Fifo,
            mode: st.mode & 0o7777,
            uid: st.uid,
            gid: st.gid,
            user: crate::core::meta::user_name(st.uid),
            group: crate::core::meta::group_name(st.gid),
            mtime: st.mtime,
            atime: o.atime.then_some(st.atime),
            ctime: o.ctime.then_some(st.ctime),
            xattrs: Vec::new(),
        }
    }

    /// Walks the directory `abs` (`rel` from the snapshot root) and stores its tree.
    fn walk_dir(
        &self,
        abs: &Path,
        rel: &[u8],
        dev: u64,
        ignores: &Arc<Vec<Gitignore>>,
        known: Option<Key>,
    ) -> Result<Key> {
        let ctx = self.ctx;
        let (dir, names, ignores) = time(Stage::Walk, || {
            let (dir, mut names) = match Dir::open(abs).and_then(|d| d.names().map(|n| (d, n))) {
                Ok((d, n)) => (Some(d), n),
                Err(e) => {
                    ctx.warn(rel, format!("directory not read: {e}"));
                    (None, Vec::new())
                }
            };
            names.sort_unstable();
            let (ignores, bad) = ignores_in(abs, &names, ignores);
            if let Some(msg) = bad {
                ctx.warn(rel, msg);
            }
            (dir, names, ignores)
        });
        let abs_bytes = path_bytes(abs).to_vec();
        let (mut rows, had) = time(Stage::Walk, || self.rows(&abs_bytes))?;
        let cached_total = rows.len();
        let mut items = Vec::with_capacity(names.len());
        if let Some(dir) = &dir {
            time(Stage::Walk, || {
                for name in names {
                    if ctx.stopped() {
                        break;
                    }
                    let child_rel = join_rel(rel, &name);
                    let st = match dir.lstat(&name) {
                        Ok(st) => st,
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                            ctx.warn(&child_rel, "vanished during the snapshot");
                            continue;
                        }
                        Err(e) => {
                            ctx.warn(&child_rel, format!("not saved: {e}"));
                            continue;
                        }
                    };
                    let child = abs.join(OsStr::from_bytes(&name));
                    if self.excluded(&ignores, &child, &st) {
                        continue;
                    }
                    let cached = rows.remove(&name);
                    if let Some(item) = self.item(child, name, child_rel, st, cached, dev) {
                        items.push(item);
                    }
                }
            });
        }
        drop(dir);
        let done = self.resolve_all(items, &ignores)?;
        if ctx.stopped() {
            return Err(Error::Stopped);
        }
        self.finish_dir(&abs_bytes, done, (&rows, cached_total), had, known)
    }

    fn excluded(&self, ignores: &[Gitignore], path: &Path, st: &Stat) -> bool {
        if st.is_dir() && self.skip.contains(&(st.dev, st.ino)) {
            return true;
        }
        self.ctx.rules.excludes(ignores, path, st)
    }

    /// Classifies one entry; `None` when it is not saved (with a warning).
    fn item(
        &self,
        abs: PathBuf,
        name: Vec<u8>,
        rel: Vec<u8>,
        st: Stat,
        cached: Option<Cached>,
        dev: u64,
    ) -> Option<Item> {
        let ctx = self.ctx;
        ctx.progress.add_file();
        let stamp = Stamp::of(&st);
        if st.is_dir() {
            let entry = self.base_entry(name, &st, &abs, &rel);
            ctx.count(|s| s.dirs += 1);
            let descend = !(ctx.opts.one_file_system && st.dev != dev);
            return Some(Item::Dir {
                entry,
                abs,
                rel,
                stamp,
                cached: cached.map(Box::new),
                descend,
            });
        }
        if st.is_file() {
            return self.file_item(abs, name, rel, st, cached, stamp);
        }
        let mut entry = self.base_entry(name, &st, &abs, &rel);
        entry.kind = if st.is_symlink() {
            match std::fs::read_link(&abs) {
                Ok(t) => EntryKind::Symlink {
                    target: t.as_os_str().as_bytes().to_vec(),
                },
                Err(e) => {
                    ctx.warn(&rel, format!("symlink not saved: {e}"));
                    return None;
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
            return None;
        };
        ctx.count(|s| s.other += 1);
        Some(Item::Ready(entry))
    }

    /// Classifies a regular file: a hard link to a name met before, a file the cache vouches
    /// for, or one to read.
    fn file_item(
        &self,
        abs: PathBuf,
        name: Vec<u8>,
        rel: Vec<u8>,
        st: Stat,
        cached: Option<Cached>,
        stamp: Stamp,
    ) -> Option<Item> {
        let ctx = self.ctx;
        if st.nlink > 1 {
            // A later name of a file met before is a hard link to the first; one the list
            // cannot record (its temporary database failed) is saved as a file of its own.
            let met = lock(&self.hardlinks).meet((st.dev, st.ino), &rel, st.nlink);
            match met {
                Ok(Met::Again { target }) => {
                    let mut entry = self.base_entry(name, &st, &abs, &rel);
                    entry.kind = EntryKind::Hardlink { target };
                    ctx.count(|s| s.other += 1);
                    return Some(Item::Ready(entry));
                }
                Ok(Met::First) => {}
                Err(e) => ctx.warn(&rel, format!("saved apart from its other names: {e}")),
            }
        }
        ctx.count(|s| {
            s.files += 1;
            s.bytes += st.size;
        });
        if let Some(c) = cached {
            // Only an entry of this run's kind: a catalogue's entries hold content ids, and
            // one of them in a snapshot would be a file whose data was never stored.
            let fits = match &c.entry.kind {
                EntryKind::File { content, .. } => {
                    matches!(content, Content::Empty)
                        || matches!(content, Content::Catalogued { .. }) == ctx.opts.catalogue
                }
                _ => false,
            };
            if c.stamp == stamp && fits {
                let mut entry = c.entry;
                entry.atime = ctx.opts.atime.then_some(st.atime);
                entry.ctime = ctx.opts.ctime.then_some(st.ctime);
                ctx.progress.add_bytes(st.size);
                return Some(Item::Cached(entry, stamp));
            }
        }
        let entry = self.entry_of(name, &st);
        ctx.count(|s| s.files_read += 1);
        Some(Item::File {
            entry,
            abs,
            stamp,
            blocks: st.blocks,
        })
    }

    /// Finishes one entry: reads a file, walks a subdirectory. `None` when a file could not
    /// be saved (a warning says why).
    fn resolve(&self, item: Item, ignores: &Arc<Vec<Gitignore>>) -> Result<Option<Done>> {
        let ctx = self.ctx;
        if ctx.stopped() {
            return Err(Error::Stopped);
        }
        let item = match item.finished() {
            Ok(done) => return Ok(Some(done)),
            Err(item) => item,
        };
        match item {
            Item::Ready(_) | Item::Cached(..) => unreachable!("taken by Item::finished"),
            Item::File {
                entry,
                abs,
                stamp,
                blocks,
            } => {
                let result = file::store(ctx, &abs, stamp, blocks);
                self.file_done(entry, &abs, stamp, result)
            }
            Item::Dir {
                mut entry,
                abs,
                rel,
                stamp,
                cached,
                descend,
            } => {
                let cached = cached.map(|c| *c);
                let known = cached_tree(&cached);
                // Under `ore watch`, a directory the events say nothing changed in is taken
                // as the cache knows it (not when the cache must be checked: blocks went).
                let untouched = |k: Key| {
                    let same = cached.as_ref().is_some_and(|c| c.stamp == stamp);
                    let quiet = ctx.opts.changed.as_ref().is_some_and(|c| c.untouched(&abs));
                    (same && quiet && self.trusted.is_some()).then_some(k)
                };
                let reusable = match known.and_then(untouched).filter(|_| descend) {
                    Some(k) => self.count_tree(k)?.then_some(k),
                    None => None,
                };
                let tree = if let Some(k) = reusable {
                    k
                } else if descend {
                    self.walk_dir(&abs, &rel, stamp.dev, ignores, known)?
                } else {
                    // A mount point: kept as an empty directory.
                    let mut store = DirStore { ctx, known };
                    Builder::<DirTree>::default().finish(&mut store)?
                };
                entry.kind = EntryKind::Dir { tree };
                let unchanged = cached.is_some_and(|c| c.stamp == stamp) && known == Some(tree);
                Ok(Some(Done {
                    entry,
                    stamp: Some(stamp),
                    changed: !unchanged,
                }))
            }
        }
    }
}

fn cached_tree(c: &Option<Cached>) -> Option<Key> {
    match c {
        Some(Cached {
            entry:
                Entry {
                    kind: EntryKind::Dir { tree },
                    ..
                },
            ..
        }) => Some(*tree),
        _ => None,
    }
}

/// A path from the snapshot root, for warnings about files.
fn rel_of(ctx: &Ctx, abs: &Path) -> Vec<u8> {
    for root in &ctx.roots {
        if let Ok(r) = abs.strip_prefix(root) {
            return path_bytes(r).to_vec();
        }
    }
    path_bytes(abs).to_vec()
}
