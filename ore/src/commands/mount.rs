//! `ore mount`: the archive's tree ([`crate::core::vtree`]) as a read-only FUSE file system.
//!
//! Inodes are handed out as names are first looked up or listed and kept for the life of the
//! mount (an archive is immutable, so attributes and contents can be cached by the kernel for
//! an hour). A tag's `current` is a symlink to its newest snapshot. Hard links show as the
//! files they name.
//!
//! Reading a file fetches only the chunks the read touches, through a cache bounded in bytes
//! ([`CACHE_BYTES`]); each read also starts fetching the next chunks in the background —
//! many when the file is being read from start to end — so a sequential read finds its data
//! already opened (decrypted, decompressed, verified). Reads are answered from a pool of
//! threads, so several can be in progress at once.

use crate::core::entry::{Entry, EntryKind, Piece};
use crate::core::error::{Error, Result};
use crate::core::plaincache::PlainCache;
use crate::core::repo::Repo;
use crate::core::vtree::{VNode, VTree, CURRENT};
use fuser::{
    FileAttr, FileType, Filesystem, ReplyAttr, ReplyData, ReplyDirectory, ReplyEntry, ReplyOpen,
    ReplyXattr, Request,
};
use protocol::Key;
use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Most bytes of opened chunks kept in memory.
pub const CACHE_BYTES: u64 = 128 << 20;
/// Chunks fetched ahead of a sequential reader.
const AHEAD_SEQUENTIAL: usize = 24;
/// Chunks fetched ahead of other reads.
const AHEAD_RANDOM: usize = 1;
/// How long the kernel may keep names and attributes.
const TTL: Duration = Duration::from_secs(3600);

/// What an inode is.
#[derive(Clone)]
enum MNode {
    V(VNode),
    /// A symlink to `target`, made at that time: a tag's `current` (to its newest snapshot's
    /// name), or an object below an archive tag's value (to its place in `by-key/`). Kept as
    /// its target alone: a value of a million objects is a million of them, and each kept as
    /// a whole entry held about 1.4 KB.
    Current(String, i64),
}

/// A directory's names and their inodes, in order.
type Listing = Arc<Vec<(Vec<u8>, u64)>>;

struct Inode {
    node: MNode,
    attr: FileAttr,
    children: Option<Listing>,
    /// For files: the entry whose contents are read (a hard link's target).
    file: Option<Entry>,
    /// For entries of a snapshot: the inode of the snapshot's root directory.
    snap_root: u64,
}

/// Opened chunks, shared by the threads that answer reads.
struct Chunks {
    repo: Arc<Repo>,
    cache: PlainCache,
}

impl Chunks {
    /// A chunk's plaintext, from the cache or the archive.
    fn get(&self, key: Key) -> Result<Arc<Vec<u8>>> {
        self.cache.chunk(&self.repo, key)
    }

    /// Starts fetching `key` in the background unless it is held or on its way.
    fn prefetch(self: &Arc<Self>, key: Key) {
        if self.cache.has(&key) {
            return;
        }
        let me = self.clone();
        rayon::spawn(move || {
            let _ = me.get(key);
        });
    }
}

/// An open file: where each piece starts.
struct Open {
    pieces: Vec<(u64, Piece)>,
    size: u64,
    /// Where the last read ended (to tell sequential reading).
    next: AtomicU64,
}

/// The file system.
pub struct OreFs {
    tree: VTree<'static>,
    inodes: Vec<Inode>,
    names: HashMap<(u64, Vec<u8>), u64>,
    open: HashMap<u64, Arc<Open>>,
    next_fh: u64,
    chunks: Arc<Chunks>,
    uid: u32,
    gid: u32,
}

fn time(ns: i64) -> SystemTime {
    if ns >= 0 {
        UNIX_EPOCH + Duration::from_nanos(ns as u64)
    } else {
        UNIX_EPOCH - Duration::from_nanos(ns.unsigned_abs())
    }
}

/// A node as warnings name it: `TAG/SNAPSHOT/PATH`.
fn shown(v: &VNode) -> String {
    match v {
        VNode::Root => "/".into(),
        VNode::Tag(t) => t.clone(),
        VNode::Archive { tag, .. } => format!("{tag}/…"),
        VNode::Entry {
            tag,
            snapshot,
            path,
            ..
        } if path.is_empty() => format!("{tag}/{snapshot}"),
        VNode::Entry {
            tag,
            snapshot,
            path,
            ..
        } => format!("{tag}/{snapshot}/{}", crate::core::util::show(path)),
    }
}

fn errno(e: &Error) -> i32 {
    match e {
        Error::Missing { .. } | Error::Corrupt { .. } => libc::EIO,
        Error::Usage(_) => libc::ENOENT,
        _ => libc::EIO,
    }
}

impl OreFs {
    /// A file system over `repo`, showing every tag or only `tag`.
    pub fn new(repo: Arc<Repo>, tag: Option<String>) -> Result<OreFs> {
        // The tree borrows the archive for as long as the mount lives, which is the process.
        let leaked: &'static Arc<Repo> = Box::leak(Box::new(repo.clone()));
        let shared = Arc::new(Chunks {
            repo,
            cache: PlainCache::new(CACHE_BYTES),
        });
        let tree = VTree::new(leaked, tag);
        tree.tags()?;
        // SAFETY: getuid/getgid cannot fail.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        let mut fs = OreFs {
            tree,
            inodes: Vec::new(),
            names: HashMap::new(),
            open: HashMap::new(),
            next_fh: 1,
            chunks: shared,
            uid,
            gid,
        };
        let root = fs.dir_attr(1, UNIX_EPOCH);
        fs.inodes.push(Inode {
            node: MNode::V(VNode::Root),
            attr: root,
            children: None,
            file: None,
            snap_root: 0,
        });
        Ok(fs)
    }

    fn dir_attr(&self, ino: u64, t: SystemTime) -> FileAttr {
        FileAttr {
            ino,
            size: 0,
            blocks: 0,
            atime: t,
            mtime: t,
            ctime: t,
            crtime: t,
            kind: FileType::Directory,
            perm: 0o555,
            nlink: 2,
            uid: self.uid,
            gid: self.gid,
            rdev: 0,
            blksize: 4096,
            flags: 0,
        }
    }

    fn entry_attr(&self, ino: u64, e: &Entry) -> FileAttr {
        let (kind, size, rdev) = match &e.kind {
            EntryKind::File { size, .. } => (FileType::RegularFile, *size, 0),
            EntryKind::Hardlink { .. } => (FileType::RegularFile, 0, 0),
            EntryKind::Dir { .. } => (FileType::Directory, 0, 0),
            EntryKind::Symlink { target } => (FileType::Symlink, target.len() as u64, 0),
            EntryKind::Fifo => (FileType::NamedPipe, 0, 0),
            EntryKind::Socket => (FileType::Socket, 0, 0),
            EntryKind::CharDevice { rdev } => (FileType::CharDevice, 0, *rdev),
            EntryKind::BlockDevice { rdev } => (FileType::BlockDevice, 0, *rdev),
        };
        let mtime = time(e.mtime);
        FileAttr {
            ino,
            size,
            blocks: size.div_ceil(512),
            atime: e.atime.map_or(mtime, time),
            mtime,
            ctime: e.ctime.map_or(mtime, time),
            crtime: mtime,
            kind,
            perm: (e.mode & 0o7777) as u16,
            nlink: if kind == FileType::Directory { 2 } else { 1 },
            uid: e.uid,
            gid: e.gid,
            rdev: rdev as u32,
            blksize: 4096,
            flags: 0,
        }
    }

    fn inode(&self, ino: u64) -> Option<&Inode> {
        self.inodes.get(ino.checked_sub(1)? as usize)
    }

    /// The inode of `name` in directory `parent`, made on first sight.
    fn child_ino(&mut self, parent: u64, name: &[u8], node: MNode) -> Result<u64> {
        if let Some(&ino) = self.names.get(&(parent, name.to_vec())) {
            return Ok(ino);
        }
        let ino = self.inodes.len() as u64 + 1;
        let (attr, file) = match &node {
            MNode::Current(target, t) => {
                let mut a = self.dir_attr(ino, time(*t));
                a.kind = FileType::Symlink;
                a.perm = 0o777;
                a.nlink = 1;
                a.size = target.len() as u64;
                (a, None)
            }
            MNode::V(VNode::Root | VNode::Archive { .. }) => (self.dir_attr(ino, UNIX_EPOCH), None),
            MNode::V(VNode::Tag(t)) => {
                let newest = self
                    .tree
                    .chain(t)?
                    .first()
                    .map_or(UNIX_EPOCH, |s| time(s.snapshot.time));
                (self.dir_attr(ino, newest), None)
            }
            MNode::V(v @ VNode::Entry { entry, .. }) => {
                let mut a = self.entry_attr(ino, entry);
                let file = match &entry.kind {
                    // A hard link whose target cannot be found shows as an empty file that
                    // cannot be opened (EIO, with a warning): the rest of its directory
                    // still lists.
                    EntryKind::Hardlink { target } => match self.tree.resolve_hardlink(v) {
                        Ok(target) => {
                            if let EntryKind::File { size, .. } = &target.kind {
                                a.size = *size;
                                a.blocks = size.div_ceil(512);
                            }
                            Some(target)
                        }
                        Err(e) => {
                            protocol::log::warning(&format!(
                                "{}: a hard link to {}, which cannot be read: {e}",
                                shown(v),
                                crate::core::entry::quoted(target)
                            ));
                            None
                        }
                    },
                    EntryKind::File { .. } => Some((**entry).clone()),
                    _ => None,
                };
                (a, file)
            }
        };
        let snap_root = match &node {
            MNode::V(VNode::Entry { path, .. }) if path.is_empty() => ino,
            _ => self.inode(parent).map_or(0, |p| p.snap_root),
        };
        self.inodes.push(Inode {
            node,
            attr,
            children: None,
            file,
            snap_root,
        });
        self.names.insert((parent, name.to_vec()), ino);
        Ok(ino)
    }

    /// The children of a directory inode, listed once.
    fn children(&mut self, ino: u64) -> Result<Listing> {
        let inode = self
            .inode(ino)
            .ok_or_else(|| Error::Usage("no such inode".into()))?;
        if let Some(c) = &inode.children {
            return Ok(c.clone());
        }
        let MNode::V(v) = inode.node.clone() else {
            return Err(Error::Usage("not a directory".into()));
        };
        let mut out = Vec::new();
        for (name, child) in self.tree.list(&v)? {
            let node = match (&v, &child) {
                (VNode::Tag(t), _) if name == CURRENT.as_bytes() => {
                    let chain = self.tree.chain(t)?;
                    let newest = chain.first().map(|s| (s.name.clone(), s.snapshot.time));
                    let (name, at) = newest.unwrap_or_default();
                    MNode::Current(name, at)
                }
                (VNode::Archive { .. }, VNode::Entry { entry: e, .. }) => match &e.kind {
                    EntryKind::Symlink { target } => {
                        MNode::Current(String::from_utf8_lossy(target).into_owned(), e.mtime)
                    }
                    _ => MNode::V(child),
                },
                _ => MNode::V(child),
            };
            let c = self.child_ino(ino, &name, node)?;
            out.push((name, c));
        }
        let out = Arc::new(out);
        if let Some(i) = self.inodes.get_mut(ino as usize - 1) {
            i.children = Some(out.clone());
        }
        Ok(out)
    }
}

impl OreFs {
    /// The inode `name` in `parent` stands for: itself, or for a hard link, the inode of the
    /// file it names (so both names show one inode, as on the disk that was saved).
    fn lookup_ino(&mut self, parent: u64, name: &[u8]) -> Result<Option<u64>> {
        let under_archive = match self.inode(parent).map(|i| &i.node) {
            Some(MNode::V(v @ VNode::Archive { .. })) => Some(v.clone()),
            _ => None,
        };
        let known = self.names.get(&(parent, name.to_vec())).copied();
        let ino = match (known, under_archive) {
            (Some(ino), _) => ino,
            // Under an archive tag a name is looked up in the index, not in a listing: an
            // object in `by-key/` without listing every object, and the `by-OTHER` levels
            // below a value, which are reached but not listed.
            (None, Some(v)) => match self.tree.child(&v, name)? {
                Some(child) => self.child_ino(parent, name, MNode::V(child))?,
                None => return Ok(None),
            },
            (None, None) => match self.children(parent)?.iter().find(|(n, _)| n == name) {
                Some((_, ino)) => *ino,
                None => return Ok(None),
            },
        };
        let Some(i) = self.inode(ino) else {
            return Ok(None);
        };
        let target = match &i.node {
            MNode::V(VNode::Entry { entry, .. }) => match &entry.kind {
                EntryKind::Hardlink { target } => target.clone(),
                _ => return Ok(Some(ino)),
            },
            _ => return Ok(Some(ino)),
        };
        let mut cur = i.snap_root;
        for comp in target.split(|b| *b == b'/').filter(|c| !c.is_empty()) {
            match self.children(cur)?.iter().find(|(n, _)| n == comp) {
                Some((_, c)) => cur = *c,
                None => return Ok(Some(ino)),
            }
        }
        if let Some(t) = self.inodes.get_mut(cur as usize - 1) {
            t.attr.nlink = t.attr.nlink.max(2);
        }
        Ok(Some(cur))
    }
}

impl Filesystem for OreFs {
    fn lookup(&mut self, _req: &Request<'_>, parent: u64, name: &OsStr, reply: ReplyEntry) {
        match self.lookup_ino(parent, name.as_bytes()) {
            Ok(Some(ino)) => match self.inode(ino) {
                Some(i) => reply.entry(&TTL, &i.attr, 0),
                None => reply.error(libc::ENOENT),
            },
            Ok(None) => reply.error(libc::ENOENT),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn getattr(&mut self, _req: &Request<'_>, ino: u64, _fh: Option<u64>, reply: ReplyAttr) {
        match self.inode(ino) {
            Some(i) => reply.attr(&TTL, &i.attr),
            None => reply.error(libc::ENOENT),
        }
    }

    fn readlink(&mut self, _req: &Request<'_>, ino: u64, reply: ReplyData) {
        match self.inode(ino).map(|i| &i.node) {
            Some(MNode::Current(t, _)) => reply.data(t.as_bytes()),
            Some(MNode::V(VNode::Entry { entry, .. })) => match &entry.kind {
                EntryKind::Symlink { target } => reply.data(target),
                _ => reply.error(libc::EINVAL),
            },
            _ => reply.error(libc::EINVAL),
        }
    }

    fn readdir(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        _fh: u64,
        offset: i64,
        mut reply: ReplyDirectory,
    ) {
        let children = match self.children(ino) {
            Ok(c) => c,
            Err(e) => {
                if let Some(MNode::V(v)) = self.inode(ino).map(|i| &i.node) {
                    protocol::log::warning(&format!("listing {}: {e}", shown(v)));
                }
                return reply.error(errno(&e));
            }
        };
        let parent = if ino == 1 { 1 } else { ino };
        let mut all: Vec<(u64, FileType, &[u8])> = vec![
            (ino, FileType::Directory, b"."),
            (parent, FileType::Directory, b".."),
        ];
        for (name, c) in children.iter() {
            let kind = self
                .inode(*c)
                .map_or(FileType::RegularFile, |i| i.attr.kind);
            all.push((*c, kind, name));
        }
        for (i, (c, kind, name)) in all.iter().enumerate().skip(offset.max(0) as usize) {
            if reply.add(*c, i as i64 + 1, *kind, OsStr::from_bytes(name)) {
                break;
            }
        }
        reply.ok();
    }

    fn open(&mut self, _req: &Request<'_>, ino: u64, flags: i32, reply: ReplyOpen) {
        if flags & libc::O_ACCMODE != libc::O_RDONLY {
            return reply.error(libc::EROFS);
        }
        let Some(inode) = self.inode(ino) else {
            return reply.error(libc::ENOENT);
        };
        let Some(file) = inode.file.clone() else {
            // A hard link whose target could not be read (warned about when it was listed).
            if let MNode::V(VNode::Entry { entry, .. }) = &inode.node {
                if matches!(entry.kind, EntryKind::Hardlink { .. }) {
                    return reply.error(libc::EIO);
                }
            }
            return reply.error(libc::EISDIR);
        };
        let EntryKind::File { size, content } = &file.kind else {
            return reply.error(libc::EINVAL);
        };
        let pieces = match crate::core::tree::file_pieces(&self.chunks.repo, content, *size) {
            Ok(p) => p,
            Err(e) => {
                protocol::log::warning(&format!(
                    "reading {}: {e}",
                    crate::core::util::show(&file.name)
                ));
                return reply.error(errno(&e));
            }
        };
        let mut at = 0;
        let pieces = pieces
            .into_iter()
            .map(|p| {
                let start = at;
                at += p.len();
                (start, p)
            })
            .collect();
        let fh = self.next_fh;
        self.next_fh += 1;
        self.open.insert(
            fh,
            Arc::new(Open {
                pieces,
                size: *size,
                next: AtomicU64::new(0),
            }),
        );
        // The contents never change: the kernel may keep them cached between opens.
        reply.opened(fh, fuser::consts::FOPEN_KEEP_CACHE);
    }

    fn read(
        &mut self,
        _req: &Request<'_>,
        _ino: u64,
        fh: u64,
        offset: i64,
        size: u32,
        _flags: i32,
        _lock: Option<u64>,
        reply: ReplyData,
    ) {
        let Some(open) = self.open.get(&fh).cloned() else {
            return reply.error(libc::EBADF);
        };
        let chunks = self.chunks.clone();
        rayon::spawn(
            move || match read_range(&chunks, &open, offset.max(0) as u64, size as u64) {
                Ok(data) => reply.data(&data),
                Err(e) => {
                    protocol::log::warning(&format!("read failed: {e}"));
                    reply.error(errno(&e))
                }
            },
        );
    }

    fn release(
        &mut self,
        _req: &Request<'_>,
        _ino: u64,
        fh: u64,
        _flags: i32,
        _lock: Option<u64>,
        _flush: bool,
        reply: fuser::ReplyEmpty,
    ) {
        self.open.remove(&fh);
        reply.ok();
    }

    fn getxattr(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        name: &OsStr,
        size: u32,
        reply: ReplyXattr,
    ) {
        let Some(MNode::V(VNode::Entry { entry, .. })) = self.inode(ino).map(|i| &i.node) else {
            return reply.error(libc::ENODATA);
        };
        match entry.xattrs.iter().find(|x| x.name == name.as_bytes()) {
            None => reply.error(libc::ENODATA),
            Some(x) if size == 0 => reply.size(x.value.len() as u32),
            Some(x) if x.value.len() > size as usize => reply.error(libc::ERANGE),
            Some(x) => reply.data(&x.value),
        }
    }

    fn listxattr(&mut self, _req: &Request<'_>, ino: u64, size: u32, reply: ReplyXattr) {
        let mut names = Vec::new();
        if let Some(MNode::V(VNode::Entry { entry, .. })) = self.inode(ino).map(|i| &i.node) {
            for x in &entry.xattrs {
                names.extend_from_slice(&x.name);
                names.push(0);
            }
        }
        if size == 0 {
            reply.size(names.len() as u32)
        } else if names.len() > size as usize {
            reply.error(libc::ERANGE)
        } else {
            reply.data(&names)
        }
    }
}

/// The bytes `[offset, offset + len)` of an open file, fetching ahead as it goes.
fn read_range(chunks: &Arc<Chunks>, open: &Open, offset: u64, len: u64) -> Result<Vec<u8>> {
    let end = (offset + len).min(open.size);
    if offset >= end {
        return Ok(Vec::new());
    }
    let sequential = open.next.swap(end, Relaxed) == offset;
    let first = open
        .pieces
        .partition_point(|(start, p)| start + p.len() <= offset);
    let mut out = Vec::with_capacity((end - offset) as usize);
    let mut i = first;
    while i < open.pieces.len() && open.pieces[i].0 < end {
        let (start, p) = &open.pieces[i];
        let from = offset.max(*start) - start;
        let to = end.min(start + p.len()) - start;
        match p.chunk() {
            Some(key) => {
                let chunk = chunks.get(key)?;
                let data = p.bytes_of(&chunk)?;
                let (from, to) = (from as usize, (to as usize).min(data.len()));
                out.extend_from_slice(&data[from.min(to)..to]);
            }
            None => out.resize(out.len() + (to - from) as usize, 0),
        }
        i += 1;
    }
    let ahead = if sequential {
        AHEAD_SEQUENTIAL
    } else {
        AHEAD_RANDOM
    };
    for (_, p) in open.pieces.iter().skip(i).take(ahead) {
        if let Some(key) = p.chunk() {
            chunks.prefetch(key);
        }
    }
    Ok(out)
}

/// Mounts `repo` at `mountpoint` and serves it until `stop` is set (a signal) or the file
/// system is unmounted from outside (`fusermount3 -u`); then unmounts and returns.
pub fn mount(
    repo: Arc<Repo>,
    mountpoint: &std::path::Path,
    tag: Option<String>,
    stop: &std::sync::atomic::AtomicBool,
) -> Result<()> {
    let fs = OreFs::new(repo, tag)?;
    let options = [
        fuser::MountOption::RO,
        fuser::MountOption::FSName("ore".into()),
        fuser::MountOption::Subtype("ore".into()),
        fuser::MountOption::NoDev,
        fuser::MountOption::NoSuid,
    ];
    let session = fuser::spawn_mount2(fs, mountpoint, &options).map_err(|e| {
        Error::Local(format!(
            "mounting on {}: {e} (is fuse3 installed, with fusermount3 on PATH?)",
            mountpoint.display()
        ))
    })?;
    while !stop.load(Relaxed) && !session.guard.is_finished() {
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(session);
    Ok(())
}
