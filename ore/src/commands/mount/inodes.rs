//! The mount's inodes: handed out as names are first looked up or listed, and kept for the
//! life of the mount (an archive is immutable).
//!
//! A name costs what its inode holds, so the largest directories are kept lean. A value's
//! directory under an archive tag (`by-PROP/VALUE/`) lists its objects as links to
//! `by-key/KEY`; a million of them are a million names, and an inode, a name and a node each
//! took about 6 µs and 900 bytes to make: `find` over a `by-creator/` of a million objects
//! spent 6.7–11 s listing it the first time. Such a directory is kept as its objects' keys
//! (32 bytes each) and a range of inode numbers of its own, from [`LINKS_FROM`] on; a link's
//! name, target and attributes are worked out from its key and place when asked for.

use super::ahead::{Ahead, Job};
use super::{shown, time, OreFs};
use crate::core::entry::{Entry, EntryKind};
use crate::core::error::{Error, Result};
use crate::core::vtree::{Links, Place, VNode, CURRENT};
use fuser::{FileAttr, FileType};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// The first inode number of links in values' directories; those below are in the table.
pub(super) const LINKS_FROM: u64 = 1 << 40;

/// What an inode is.
#[derive(Clone)]
pub(super) enum MNode {
    V(VNode),
    /// A symlink to `target`, made at that time: a tag's `current` (to its newest snapshot's
    /// name), or an object below an archive tag's value (to its place in `by-key/`). Kept as
    /// its target alone: a value of a million objects is a million of them, and each kept as
    /// a whole entry held about 1.4 KB.
    Current(String, i64),
}

/// What a directory lists, in order: names and their inodes, or for a value's directory under
/// an archive tag, links to objects kept as their keys alone, numbered from `first`.
#[derive(Clone)]
pub(super) enum Listing {
    Named(Arc<Vec<(Vec<u8>, u64)>>),
    Links { links: Arc<Links>, first: u64 },
}

impl Listing {
    pub(super) fn len(&self) -> usize {
        match self {
            Listing::Named(n) => n.len(),
            Listing::Links { links, .. } => links.keys.len(),
        }
    }

    /// Entry `i`: its name and inode.
    pub(super) fn get(&self, i: usize) -> Option<(std::borrow::Cow<'_, [u8]>, u64)> {
        match self {
            Listing::Named(n) => n.get(i).map(|(name, ino)| (name.as_slice().into(), *ino)),
            Listing::Links { links, first } => (i < links.keys.len())
                .then(|| (links.name(i).into_bytes().into(), first + i as u64)),
        }
    }

    /// The inode of `name`.
    pub(super) fn find(&self, name: &[u8]) -> Option<u64> {
        match self {
            Listing::Named(n) => n.iter().find(|(n, _)| n == name).map(|(_, ino)| *ino),
            Listing::Links { links, first } => links.find(name).map(|i| first + i as u64),
        }
    }
}

pub(super) struct Inode {
    pub(super) node: MNode,
    pub(super) attr: FileAttr,
    pub(super) children: Option<Listing>,
    /// For files: the entry whose contents are read (a hard link's target).
    pub(super) file: Option<Entry>,
    /// For entries of a snapshot: the inode of the snapshot's root directory.
    pub(super) snap_root: u64,
}

impl OreFs {
    pub(super) fn dir_attr(&self, ino: u64, t: SystemTime) -> FileAttr {
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

    pub(super) fn inode(&self, ino: u64) -> Option<&Inode> {
        self.inodes.get(ino.checked_sub(1)? as usize)
    }

    /// The inode of `name` in directory `parent`, made on first sight.
    pub(super) fn child_ino(&mut self, parent: u64, name: &[u8], node: MNode) -> Result<u64> {
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
            MNode::V(VNode::Root) => (self.dir_attr(ino, UNIX_EPOCH), None),
            // An archive tag and its places show when its head was made.
            MNode::V(VNode::Archive { tag, .. }) => {
                let made = self.tree.archive_made(tag).map_or(UNIX_EPOCH, time);
                (self.dir_attr(ino, made), None)
            }
            MNode::V(VNode::Tag(t)) => {
                let newest = match self.tree.archive_made(t) {
                    Some(made) => time(made),
                    None => {
                        (self.tree.chain(t)?.first()).map_or(UNIX_EPOCH, |s| time(s.snapshot.time))
                    }
                };
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
    pub(super) fn children(&mut self, ino: u64) -> Result<Listing> {
        let inode = self
            .inode(ino)
            .ok_or_else(|| Error::Usage("no such inode".into()))?;
        if let Some(c) = &inode.children {
            return Ok(c.clone());
        }
        let MNode::V(v) = inode.node.clone() else {
            return Err(Error::Usage("not a directory".into()));
        };
        let links = match self.links_ahead(&v) {
            Some(links) => Some(links),
            None => self.tree.links(&v)?,
        };
        let listing = match links {
            Some(links) => {
                let first = self.next_link;
                self.next_link += links.keys.len().max(1) as u64;
                self.link_dirs.push((first, ino));
                Listing::Links {
                    links: Arc::new(links),
                    first,
                }
            }
            None => {
                let named = self.named_children(ino, &v)?;
                self.read_ahead(&v, &named);
                Listing::Named(Arc::new(named))
            }
        };
        if let Some(i) = self.inodes.get_mut(ino as usize - 1) {
            i.children = Some(listing.clone());
        }
        Ok(listing)
    }

    /// For a value's directory (`by-PROP/VALUE`), its listing, if it was read ahead.
    fn links_ahead(&mut self, v: &VNode) -> Option<Links> {
        let VNode::Archive {
            tag,
            place: Place::Narrowed { filters },
        } = v
        else {
            return None;
        };
        let ((key, value), up) = filters.split_last()?;
        let at = (tag.clone(), up.to_vec(), key.clone());
        let ahead = self.aheads.get(&at)?;
        let links = ahead.take(value);
        // A read-ahead that is over holds its values' names: let it go.
        if links.is_none() && ahead.spent() {
            self.aheads.remove(&at);
        }
        links
    }

    /// Once `by-PROP/` (node `v`) is listed as `named`, starts reading its values'
    /// directories ahead ([`Ahead`]).
    fn read_ahead(&mut self, v: &VNode, named: &[(Vec<u8>, u64)]) {
        let VNode::Archive {
            tag,
            place: Place::Values { filters, key },
        } = v
        else {
            return;
        };
        let values = named
            .iter()
            .filter_map(|(_, ino)| match &self.inode(*ino)?.node {
                MNode::V(VNode::Archive {
                    place: Place::Narrowed { filters },
                    ..
                }) => filters.last().map(|(_, value)| value.clone()),
                _ => None,
            })
            .collect();
        let Some(head) = self.tree.head(tag) else {
            return;
        };
        let job = Job {
            repo: self.chunks.repo.clone(),
            index: head.index,
            filters: filters.clone(),
            key: key.clone(),
            made_ns: head.made_ns,
        };
        self.aheads.retain(|_, a| !a.spent());
        let ahead = Ahead::start(job, values);
        self.aheads
            .insert((tag.clone(), filters.clone(), key.clone()), ahead);
    }

    /// The children of directory node `v` (inode `ino`), each given its inode.
    fn named_children(&mut self, ino: u64, v: &VNode) -> Result<Vec<(Vec<u8>, u64)>> {
        let mut out = Vec::new();
        for (name, child) in self.tree.list(v)? {
            let node = match (v, &child) {
                (VNode::Tag(t), _) if name == CURRENT.as_bytes() => {
                    let chain = self.tree.chain(t)?;
                    let newest = chain.first().map(|s| (s.name.clone(), s.snapshot.time));
                    let (name, at) = newest.unwrap_or_default();
                    MNode::Current(name, at)
                }
                _ => MNode::V(child),
            };
            let c = self.child_ino(ino, &name, node)?;
            out.push((name, c));
        }
        Ok(out)
    }

    /// Link inode `ino` of a value's directory: the objects it lists and which one it is.
    fn link(&self, ino: u64) -> Option<(&Links, usize)> {
        let at = self.link_dirs.partition_point(|(first, _)| *first <= ino);
        let (first, dir) = *self.link_dirs.get(at.checked_sub(1)?)?;
        match &self.inode(dir)?.children {
            Some(Listing::Links { links, .. }) => {
                let i = usize::try_from(ino - first).ok()?;
                (i < links.keys.len()).then_some((links.as_ref(), i))
            }
            _ => None,
        }
    }

    /// The attributes of inode `ino`.
    pub(super) fn attr(&self, ino: u64) -> Option<FileAttr> {
        if ino < LINKS_FROM {
            return self.inode(ino).map(|i| i.attr);
        }
        let (links, _) = self.link(ino)?;
        let mut a = self.dir_attr(ino, time(links.made_ns));
        a.kind = FileType::Symlink;
        a.perm = 0o777;
        a.nlink = 1;
        a.size = links.target_len();
        Some(a)
    }

    /// What symlink inode `ino` points to (`None`: it is no symlink).
    pub(super) fn target(&self, ino: u64) -> Option<Vec<u8>> {
        if ino >= LINKS_FROM {
            let (links, i) = self.link(ino)?;
            return Some(links.target(i));
        }
        match &self.inode(ino)?.node {
            MNode::Current(t, _) => Some(t.as_bytes().to_vec()),
            MNode::V(VNode::Entry { entry, .. }) => match &entry.kind {
                EntryKind::Symlink { target } => Some(target.clone()),
                _ => None,
            },
            _ => None,
        }
    }

    /// The inode `name` in `parent` stands for: itself, or for a hard link, the inode of the
    /// file it names (so both names show one inode, as on the disk that was saved).
    pub(super) fn lookup_ino(&mut self, parent: u64, name: &[u8]) -> Result<Option<u64>> {
        let under_archive = match self.inode(parent).map(|i| &i.node) {
            Some(MNode::V(v @ VNode::Archive { .. })) => Some(v.clone()),
            _ => None,
        };
        let known = self.names.get(&(parent, name.to_vec())).copied();
        let ino = match (known, under_archive) {
            (Some(ino), _) => ino,
            // An object below a value: from the value's listing, made once, so that the
            // name has the inode it is listed with.
            (
                None,
                Some(VNode::Archive {
                    place: Place::Narrowed { .. },
                    ..
                }),
            ) if !name.starts_with(b"by-") => match self.children(parent)?.find(name) {
                Some(ino) => ino,
                None => return Ok(None),
            },
            // Under an archive tag a name is looked up in the index, not in a listing: an
            // object in `by-key/` without listing every object, and the `by-OTHER` levels
            // below a value, which are reached but not listed.
            (None, Some(v)) => match self.tree.child(&v, name)? {
                Some(child) => self.child_ino(parent, name, MNode::V(child))?,
                None => return Ok(None),
            },
            (None, None) => match self.children(parent)?.find(name) {
                Some(ino) => ino,
                None => return Ok(None),
            },
        };
        let Some(i) = self.inode(ino) else {
            return Ok(Some(ino));
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
            match self.children(cur)?.find(comp) {
                Some(c) => cur = c,
                None => return Ok(Some(ino)),
            }
        }
        if let Some(t) = self.inodes.get_mut(cur as usize - 1) {
            t.attr.nlink = t.attr.nlink.max(2);
        }
        Ok(Some(cur))
    }
}
