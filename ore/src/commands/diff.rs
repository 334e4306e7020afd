//! `ore diff`: what changed between two snapshots.
//!
//! Directory trees are content-addressed, so two directories with the same tree key hold the
//! same entries all the way down: such subtrees are skipped without being read, and a diff of
//! two snapshots of a large tree with a few changes reads only the directories on the paths to
//! those changes. Files that disappeared in one place and appeared in another with the same
//! contents (same content key, not empty) are reported once, as renamed. A small file kept
//! as a slice of a bundle (format 3) is read again into another bundle when it moves, so its
//! content is known by the key its bytes would have as a chunk of their own; the bundle is
//! opened for that only when the other side has a file of the same size. A catalogued file
//! (`ore import --catalogue-only`) has no data, only that key, its content id: compared with
//! a stored file of the same size, the stored one's bytes are read and hashed
//! (`core::filelist::stored_id`), so a catalogue of a disk and a stored copy of it differ only
//! where the bytes do.

use crate::core::depth::{too_deep, MAX_DEPTH};
use crate::core::entry::{Content, Entry, EntryKind};
use crate::core::error::Result;
use crate::core::repo::Repo;
use crate::core::tree::{DirTree, Reader};
use crate::core::util::show;
use protocol::Key;
use std::cmp::Ordering;
use std::collections::HashMap;

/// One change.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Change {
    /// `added`, `removed`, `modified` or `renamed`.
    pub change: &'static str,
    pub path: String,
    /// For renames: where it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// For modifications (and renames with other changes): `content`, `type`, `mode`,
    /// `owner`, `mtime`, `xattrs`, `target`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub what: Vec<String>,
    /// `file`, `dir`, `symlink`, ...
    pub kind: &'static str,
}

fn kind_name(e: &Entry) -> &'static str {
    e.kind.type_name()
}

/// The block a file's content starts at, or a catalogued file's content id (none for an
/// empty file or anything else).
fn content_key(e: &Entry) -> Option<Key> {
    match &e.kind {
        EntryKind::File {
            content: crate::core::entry::Content::Catalogued { id },
            ..
        } => *id,
        EntryKind::File { content, .. } => content.first_block(),
        _ => None,
    }
}

/// The sizes of the catalogued files among `v`.
fn catalogued(v: &[(String, Entry)]) -> std::collections::HashSet<u64> {
    v.iter()
        .filter_map(|(_, e)| match &e.kind {
            EntryKind::File {
                size,
                content: Content::Catalogued { .. },
            } => Some(*size),
            _ => None,
        })
        .collect()
}

/// Sizes of the files in `v`.
fn sizes(v: &[(String, Entry)]) -> std::collections::HashSet<u64> {
    v.iter()
        .filter_map(|(_, e)| match e.kind {
            EntryKind::File { size, .. } => Some(size),
            _ => None,
        })
        .collect()
}

/// What differs between two entries of the same name.
pub fn what_differs(a: &Entry, b: &Entry) -> Vec<String> {
    let mut w = Vec::new();
    match (&a.kind, &b.kind) {
        (
            EntryKind::File {
                size: sa,
                content: ca,
            },
            EntryKind::File {
                size: sb,
                content: cb,
            },
        ) => {
            if sa != sb || ca != cb {
                w.push("content".into());
            }
        }
        (EntryKind::Dir { .. }, EntryKind::Dir { .. }) => {}
        (EntryKind::Symlink { target: x }, EntryKind::Symlink { target: y })
        | (EntryKind::Hardlink { target: x }, EntryKind::Hardlink { target: y }) => {
            if x != y {
                w.push("target".into());
            }
        }
        (x, y) if std::mem::discriminant(x) == std::mem::discriminant(y) => {
            if x != y {
                w.push("device".into());
            }
        }
        _ => w.push("type".into()),
    }
    if a.mode != b.mode {
        w.push("mode".into());
    }
    if (a.uid, a.gid, &a.user, &a.group) != (b.uid, b.gid, &b.user, &b.group) {
        w.push("owner".into());
    }
    if a.mtime != b.mtime {
        w.push("mtime".into());
    }
    if a.xattrs != b.xattrs {
        w.push("xattrs".into());
    }
    w
}

struct Differ<'r> {
    repo: &'r Repo,
    /// Bundles opened to compare small files' bytes.
    bundles: crate::core::plaincache::PlainCache,
    out: Vec<Change>,
    /// Removed and added files with contents, for finding renames.
    removed: Vec<(String, Entry)>,
    added: Vec<(String, Entry)>,
    /// Directory trees read (for tests and curiosity).
    dirs_read: u64,
}

fn join(base: &str, name: &[u8]) -> String {
    if base.is_empty() {
        show(name)
    } else {
        format!("{base}/{}", show(name))
    }
}

/// Two directories being compared, entry by entry in name order: the readers, the entry
/// each has next, and the directories' path.
struct Merge<'r> {
    ra: Reader<'r, DirTree>,
    rb: Reader<'r, DirTree>,
    ea: Option<Entry>,
    eb: Option<Entry>,
    path: String,
}

/// The entries at `path` in the snapshots `a` and `b` name (any form `ore::core::spec` reads):
/// what [`diff`] compares.
pub fn entries(repo: &Repo, a: &str, b: &str, path: &str) -> Result<(Entry, Entry)> {
    let (_, sa) = crate::core::spec::resolve(repo, a)?;
    let (_, sb) = crate::core::spec::resolve(repo, b)?;
    let ea = crate::core::tree::find(repo, &sa.root, path.as_bytes())?;
    let eb = crate::core::tree::find(repo, &sb.root, path.as_bytes())?;
    Ok((ea, eb))
}

/// The changes from entry `a` to entry `b` (normally the roots of two snapshots, or one
/// directory in each), with paths relative to them. Returns the changes and how many
/// directory trees were read.
///
/// The walk keeps the directories it is in on a stack of its own rather than recursing, and
/// stops with an error past [`MAX_DEPTH`](crate::core::depth::MAX_DEPTH) levels: a crafted snapshot
/// nested a hundred thousand deep overflowed the stack (an abort).
pub fn diff(repo: &Repo, a: &Entry, b: &Entry) -> Result<(Vec<Change>, u64)> {
    let mut d = Differ {
        repo,
        bundles: crate::core::plaincache::PlainCache::new(crate::core::plaincache::BUNDLE_BYTES),
        out: Vec::new(),
        removed: Vec::new(),
        added: Vec::new(),
        dirs_read: 0,
    };
    let mut open: Vec<Merge> = Vec::new();
    if let Some((ta, tb)) = d.pair("", a, b, 0)? {
        open.push(d.merge(String::new(), ta, tb)?);
    }
    loop {
        let depth = open.len();
        let Some(m) = open.last_mut() else { break };
        let (x, y) = (m.ea.take(), m.eb.take());
        let order = match (&x, &y) {
            (None, None) => {
                open.pop();
                continue;
            }
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some(x), Some(y)) => x.name.cmp(&y.name),
        };
        match (order, x, y) {
            (Ordering::Less, Some(x), y) => {
                (m.ea, m.eb) = (m.ra.next_item()?, y);
                let p = join(&m.path, &x.name);
                d.gone(&p, &x, depth)?;
            }
            (Ordering::Greater, x, Some(y)) => {
                (m.ea, m.eb) = (x, m.rb.next_item()?);
                let p = join(&m.path, &y.name);
                d.came(&p, &y, depth)?;
            }
            (_, Some(x), Some(y)) => {
                (m.ea, m.eb) = (m.ra.next_item()?, m.rb.next_item()?);
                let p = join(&m.path, &x.name);
                if let Some((ta, tb)) = d.pair(&p, &x, &y, depth)? {
                    open.push(d.merge(p, ta, tb)?);
                }
            }
            _ => unreachable!("an order is only taken from the entries there are"),
        }
    }
    d.renames()?;
    let mut out = d.out;
    out.sort_by(|x, y| x.path.cmp(&y.path).then(x.change.cmp(y.change)));
    Ok((out, d.dirs_read))
}

impl<'r> Differ<'r> {
    /// Records how `a` became `b` (at `path`, `depth` directories down); the two directory
    /// trees to compare next when both are directories that differ.
    fn pair(
        &mut self,
        path: &str,
        a: &Entry,
        b: &Entry,
        depth: usize,
    ) -> Result<Option<(Key, Key)>> {
        let mut what = what_differs(a, b);
        if what.iter().any(|w| w == "content") && self.same_bytes(a, b)? {
            // A small file read again into another bundle: the same bytes.
            what.retain(|w| w != "content");
        }
        if what.iter().any(|w| w == "type") {
            self.gone(path, a, depth)?;
            self.came(path, b, depth)?;
            return Ok(None);
        }
        if !what.is_empty() {
            self.out.push(Change {
                change: "modified",
                path: if path.is_empty() {
                    ".".into()
                } else {
                    path.into()
                },
                from: None,
                what,
                kind: kind_name(b),
            });
        }
        match (&a.kind, &b.kind) {
            (EntryKind::Dir { tree: ta }, EntryKind::Dir { tree: tb }) if ta != tb => {
                if depth >= MAX_DEPTH {
                    return Err(too_deep(*tb, path));
                }
                Ok(Some((*ta, *tb)))
            }
            _ => Ok(None),
        }
    }

    /// Starts comparing directory trees `ta` and `tb` (at `path`).
    fn merge(&mut self, path: String, ta: Key, tb: Key) -> Result<Merge<'r>> {
        self.dirs_read += 2;
        let mut ra = Reader::<DirTree>::new(self.repo, ta);
        let mut rb = Reader::<DirTree>::new(self.repo, tb);
        let (ea, eb) = (ra.next_item()?, rb.next_item()?);
        Ok(Merge {
            ra,
            rb,
            ea,
            eb,
            path,
        })
    }

    /// Everything at and below `e` (in the old snapshot) was removed.
    fn gone(&mut self, path: &str, e: &Entry, depth: usize) -> Result<()> {
        self.each(path, e, depth, &mut |d, p, e| {
            if content_key(e).is_some() {
                d.removed.push((p.to_string(), e.clone()));
            } else {
                d.out.push(Change {
                    change: "removed",
                    path: p.to_string(),
                    from: None,
                    what: Vec::new(),
                    kind: kind_name(e),
                });
            }
        })
    }

    /// Everything at and below `e` (in the new snapshot) was added.
    fn came(&mut self, path: &str, e: &Entry, depth: usize) -> Result<()> {
        self.each(path, e, depth, &mut |d, p, e| {
            if content_key(e).is_some() {
                d.added.push((p.to_string(), e.clone()));
            } else {
                d.out.push(Change {
                    change: "added",
                    path: p.to_string(),
                    from: None,
                    what: Vec::new(),
                    kind: kind_name(e),
                });
            }
        })
    }

    /// Calls `f` on `e` (at `path`, `depth` directories down) and everything below it, depth
    /// first, on a stack of its own.
    fn each(
        &mut self,
        path: &str,
        e: &Entry,
        depth: usize,
        f: &mut dyn FnMut(&mut Self, &str, &Entry),
    ) -> Result<()> {
        f(self, path, e);
        let EntryKind::Dir { tree } = &e.kind else {
            return Ok(());
        };
        if depth >= MAX_DEPTH {
            return Err(too_deep(*tree, path));
        }
        self.dirs_read += 1;
        let mut open = vec![(Reader::<DirTree>::new(self.repo, *tree), path.to_string())];
        while let Some((r, dir)) = open.last_mut() {
            let Some(c) = r.next_item()? else {
                open.pop();
                continue;
            };
            let p = join(dir, &c.name);
            f(self, &p, &c);
            if let EntryKind::Dir { tree } = &c.kind {
                if depth + open.len() >= MAX_DEPTH {
                    return Err(too_deep(*tree, &p));
                }
                self.dirs_read += 1;
                open.push((Reader::new(self.repo, *tree), p));
            }
        }
        Ok(())
    }

    /// The key a one-chunk file's bytes have as a chunk of their own: its chunk's, or for a
    /// slice of a bundle, its bytes' (the bundle is opened). `None` for other contents.
    fn bytes_key(&self, e: &Entry) -> Result<Option<Key>> {
        match e.kind {
            EntryKind::File {
                content: Content::Chunk(k),
                ..
            } => Ok(Some(k)),
            EntryKind::File {
                content: Content::Slice { key, start, len },
                ..
            } => {
                let bundle = self.bundles.chunk(self.repo, key)?;
                let bytes =
                    crate::core::entry::Piece::Slice { key, start, len }.bytes_of(&bundle)?;
                let chunk = crate::core::block::Kind::Chunk as u8;
                Ok(Some(self.repo.keys().key_of(chunk, bytes)))
            }
            _ => Ok(None),
        }
    }

    /// Whether two files of the same size, one of them kept as a slice, hold the same bytes:
    /// a small file is read again into another bundle whenever its metadata changes. When
    /// one of them is catalogued (no data, only its content id), by content ids: a catalogue
    /// of a disk compared with a stored copy of it shows only what differs.
    fn same_bytes(&self, a: &Entry, b: &Entry) -> Result<bool> {
        let (
            EntryKind::File {
                size: sa,
                content: ca,
            },
            EntryKind::File {
                size: sb,
                content: cb,
            },
        ) = (&a.kind, &b.kind)
        else {
            return Ok(false);
        };
        let catalogued = |c: &Content| matches!(c, Content::Catalogued { .. });
        if sa == sb && (catalogued(ca) || catalogued(cb)) {
            // The catalogued side first: one recorded without an id (too many holes) is
            // compared with nothing, and the other is not read for it.
            let (first, second) = if catalogued(ca) { (a, b) } else { (b, a) };
            let id = crate::core::filelist::stored_id(self.repo, &self.bundles, first)?;
            return Ok(id.is_some()
                && id == crate::core::filelist::stored_id(self.repo, &self.bundles, second)?);
        }
        let slice = |c: &Content| matches!(c, Content::Slice { .. });
        if sa != sb || !(slice(ca) || slice(cb)) {
            return Ok(false);
        }
        let ka = self.bytes_key(a)?;
        Ok(ka.is_some() && ka == self.bytes_key(b)?)
    }

    /// What `e`'s content is for pairing renames: its first block, or for a slice whose size
    /// is among `sizes` (the other side's), the key of its bytes as a chunk; for a stored
    /// file whose size is among `catalogued` (the other side's catalogued files'), its
    /// content id, which is what a catalogued file is known by.
    fn identity(
        &self,
        e: &Entry,
        sizes: &std::collections::HashSet<u64>,
        catalogued: &std::collections::HashSet<u64>,
    ) -> Result<Option<Key>> {
        if let EntryKind::File { size, content } = &e.kind {
            let known = matches!(content, Content::Catalogued { .. } | Content::Chunk(_));
            if !known && catalogued.contains(size) {
                return crate::core::filelist::stored_id(self.repo, &self.bundles, e);
            }
        }
        match e.kind {
            EntryKind::File {
                size,
                content: Content::Slice { key, start, len },
            } if !sizes.contains(&size) => Ok(Some(crate::core::reach::slice_id(key, start, len))),
            EntryKind::File {
                content: Content::Slice { .. },
                ..
            } => self.bytes_key(e),
            _ => Ok(content_key(e)),
        }
    }

    /// Pairs removed and added files with the same contents as renames.
    fn renames(&mut self) -> Result<()> {
        let (removed_sizes, added_sizes) = (sizes(&self.removed), sizes(&self.added));
        let (removed_cat, added_cat) = (catalogued(&self.removed), catalogued(&self.added));
        let mut by_key: HashMap<Key, Vec<(String, Entry)>> = HashMap::new();
        for (p, e) in std::mem::take(&mut self.removed) {
            if let Some(k) = self.identity(&e, &added_sizes, &added_cat)? {
                by_key.entry(k).or_default().push((p, e));
            }
        }
        for (p, e) in std::mem::take(&mut self.added) {
            let from = self
                .identity(&e, &removed_sizes, &removed_cat)?
                .and_then(|k| by_key.get_mut(&k))
                .and_then(Vec::pop);
            match from {
                Some((old, oe)) => {
                    let what: Vec<String> = what_differs(&oe, &e)
                        .into_iter()
                        .filter(|w| w != "content")
                        .collect();
                    self.out.push(Change {
                        change: "renamed",
                        path: p,
                        from: Some(old),
                        what,
                        kind: kind_name(&e),
                    });
                }
                None => self.out.push(Change {
                    change: "added",
                    path: p,
                    from: None,
                    what: Vec::new(),
                    kind: kind_name(&e),
                }),
            }
        }
        for (_, left) in by_key {
            for (p, e) in left {
                self.out.push(Change {
                    change: "removed",
                    path: p,
                    from: None,
                    what: Vec::new(),
                    kind: kind_name(&e),
                });
            }
        }
        Ok(())
    }
}
