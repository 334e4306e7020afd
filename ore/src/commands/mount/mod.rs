//! `ore mount`: the archive's tree ([`crate::core::vtree`]) as a read-only FUSE file system.
//!
//! Inodes are handed out as names are first looked up or listed and kept for the life of the
//! mount (an archive is immutable, so attributes and contents can be cached by the kernel for
//! an hour; [`inodes`]). A tag's `current` is a symlink to its newest snapshot. Hard links
//! show as the files they name.
//!
//! Reading a file fetches only the chunks the read touches, through a cache bounded in bytes
//! ([`CACHE_BYTES`]); each read also starts fetching the next chunks in the background —
//! many when the file is being read from start to end — so a sequential read finds its data
//! already opened (decrypted, decompressed, verified). Reads are answered from a pool of
//! threads, so several can be in progress at once.

mod ahead;
mod inodes;
mod read;

use crate::core::entry::EntryKind;
use crate::core::error::{Error, Result};
use crate::core::plaincache::PlainCache;
use crate::core::repo::Repo;
use crate::core::vtree::{VNode, VTree};
use fuser::{
    FileType, Filesystem, ReplyAttr, ReplyData, ReplyDirectory, ReplyEntry, ReplyOpen, ReplyXattr,
    Request,
};
use inodes::{Inode, Listing, MNode, LINKS_FROM};
use read::{read_range, Chunks, Open};
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
/// `(property, value)` pairs an archive tag's objects are narrowed by.
type Filters = Vec<(String, Vec<u8>)>;
/// How long the kernel may keep names and attributes.
const TTL: Duration = Duration::from_secs(3600);

/// The file system.
pub struct OreFs {
    tree: VTree<'static>,
    inodes: Vec<Inode>,
    names: HashMap<(u64, Vec<u8>), u64>,
    /// The link inodes of values' directories: each directory's first, and its inode, in
    /// increasing order.
    link_dirs: Vec<(u64, u64)>,
    /// The next link inode to hand out.
    next_link: u64,
    /// Values' directories read ahead, by the `by-PROP/` they are in: archive tag, the
    /// filters above it, and the property.
    aheads: HashMap<(String, Filters, String), Arc<ahead::Ahead>>,
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
            link_dirs: Vec::new(),
            next_link: LINKS_FROM,
            aheads: HashMap::new(),
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
}

impl Filesystem for OreFs {
    fn lookup(&mut self, _req: &Request<'_>, parent: u64, name: &OsStr, reply: ReplyEntry) {
        match self.lookup_ino(parent, name.as_bytes()) {
            Ok(Some(ino)) => match self.attr(ino) {
                Some(a) => reply.entry(&TTL, &a, 0),
                None => reply.error(libc::ENOENT),
            },
            Ok(None) => reply.error(libc::ENOENT),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn getattr(&mut self, _req: &Request<'_>, ino: u64, _fh: Option<u64>, reply: ReplyAttr) {
        match self.attr(ino) {
            Some(a) => reply.attr(&TTL, &a),
            None => reply.error(libc::ENOENT),
        }
    }

    fn readlink(&mut self, _req: &Request<'_>, ino: u64, reply: ReplyData) {
        match self.target(ino) {
            Some(t) => reply.data(&t),
            None => reply.error(libc::EINVAL),
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
        // `.` and `..`, then the listing from where the last reply ended, without making
        // the whole of it again for each reply (a million links are thousands of replies).
        let parent = if ino == 1 { 1 } else { ino };
        let offset = offset.max(0) as usize;
        for (i, (dot_ino, dot)) in [(ino, b".".as_slice()), (parent, b"..".as_slice())]
            .into_iter()
            .enumerate()
            .skip(offset)
        {
            if reply.add(
                dot_ino,
                i as i64 + 1,
                FileType::Directory,
                OsStr::from_bytes(dot),
            ) {
                return reply.ok();
            }
        }
        for i in offset.saturating_sub(2)..children.len() {
            let Some((name, c)) = children.get(i) else {
                break;
            };
            let kind = match &children {
                Listing::Links { .. } => FileType::Symlink,
                Listing::Named(_) => self.inode(c).map_or(FileType::RegularFile, |n| n.attr.kind),
            };
            if reply.add(c, i as i64 + 3, kind, OsStr::from_bytes(&name)) {
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
