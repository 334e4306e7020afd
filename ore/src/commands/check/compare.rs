//! `ore check --compare`: does a directory on disk match a snapshot, byte for byte and in
//! metadata? Used to prove a restore, or to see what changed on disk since a snapshot.

use crate::core::entry::{Entry, EntryKind, Piece};
use crate::core::error::Result;
use crate::core::fsys::{stat_path, Stat};
use crate::core::repo::Repo;
use crate::core::tree::{DirTree, Reader};
use crate::core::util::{bytes_path, show};
use protocol::Key;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

/// One path that differs.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Difference {
    /// Relative to the compared directory.
    pub path: String,
    /// What differs: `missing on disk`, `only on disk`, `type`, `content`, `size`, `mode`,
    /// `mtime`, `owner`, `target`, `xattrs`, or an error reading either side.
    pub what: Vec<String>,
}

/// The entry `spec` (`SNAPSHOT[:PATH]`) names: what [`compare`] compares a directory with.
pub fn root(repo: &Repo, spec: &str) -> Result<Entry> {
    let (name, path) = crate::core::spec::split_path(spec);
    let (_, snap) = crate::core::spec::resolve(repo, name)?;
    crate::core::tree::find(repo, &snap.root, path.as_bytes())
}

/// Compares the tree of directory entry `root` (from a snapshot) with the directory `disk`.
///
/// The walk keeps the directories it is in on a stack of its own rather than recursing (a
/// tree a few thousand deep overflowed the stack), and stops with an error past
/// [`MAX_DEPTH`](crate::core::depth::MAX_DEPTH) levels.
pub fn compare(repo: &Repo, root: &Entry, disk: &Path) -> Result<Vec<Difference>> {
    let mut out = Vec::new();
    let st = stat_path(disk, false).map_err(|e| crate::Error::io(disk, e))?;
    let mut c = Cmp {
        repo,
        bundles: crate::core::plaincache::PlainCache::new(crate::core::plaincache::BUNDLE_BYTES),
        top: disk.to_path_buf(),
        out: &mut out,
    };
    let mut open = Vec::new();
    if let Some(tree) = c.entry(root, &st, &[], disk)? {
        open.extend(c.open(tree, Vec::new(), disk.to_path_buf()));
    }
    loop {
        let depth = open.len();
        let Some(dir) = open.last_mut() else { break };
        let Some(e) = dir.reader.next_item()? else {
            if let Some(done) = open.pop() {
                for name in done.on_disk.into_keys() {
                    c.report(&join(&done.rel, &name), vec!["only on disk".into()]);
                }
            }
            continue;
        };
        let r = join(&dir.rel, &e.name);
        if dir.on_disk.remove(&e.name).is_none() {
            c.report(&r, vec!["missing on disk".into()]);
            continue;
        }
        let p = dir.path.join(bytes_path(&e.name));
        let st = match stat_path(&p, false) {
            Ok(st) => st,
            Err(err) => {
                c.report(&r, vec![format!("cannot stat: {err}")]);
                continue;
            }
        };
        if let Some(tree) = c.entry(&e, &st, &r, &p)? {
            if depth >= crate::core::depth::MAX_DEPTH {
                return Err(crate::core::depth::too_deep(tree, &show(&r)));
            }
            open.extend(c.open(tree, r, p));
        }
    }
    Ok(out)
}

/// `rel/name`, or `name` at the top.
fn join(rel: &[u8], name: &[u8]) -> Vec<u8> {
    let mut r = rel.to_vec();
    if !r.is_empty() {
        r.push(b'/');
    }
    r.extend_from_slice(name);
    r
}

/// A directory being compared: the snapshot's entries still to come, the names on disk not
/// yet matched, and where it is.
struct Open<'a> {
    reader: Reader<'a, DirTree>,
    on_disk: BTreeMap<Vec<u8>, ()>,
    rel: Vec<u8>,
    path: PathBuf,
}

struct Cmp<'a> {
    repo: &'a Repo,
    /// Bundles of small files, read once for all their files.
    bundles: crate::core::plaincache::PlainCache,
    top: PathBuf,
    out: &'a mut Vec<Difference>,
}

impl<'a> Cmp<'a> {
    fn report(&mut self, rel: &[u8], what: Vec<String>) {
        if !what.is_empty() {
            self.out.push(Difference {
                path: if rel.is_empty() {
                    ".".into()
                } else {
                    show(rel)
                },
                what,
            });
        }
    }

    /// Compares one entry with what is at `path`; the directory tree to compare next when
    /// both are directories.
    fn entry(&mut self, e: &Entry, st: &Stat, rel: &[u8], path: &Path) -> Result<Option<Key>> {
        let mut what = Vec::new();
        let same_type = match &e.kind {
            EntryKind::File { .. } | EntryKind::Hardlink { .. } => st.is_file(),
            EntryKind::Dir { .. } => st.is_dir(),
            EntryKind::Symlink { .. } => st.is_symlink(),
            EntryKind::Fifo => st.is_fifo(),
            EntryKind::Socket => st.is_socket(),
            EntryKind::CharDevice { .. } => st.is_char_device(),
            EntryKind::BlockDevice { .. } => st.is_block_device(),
        };
        if !same_type {
            self.report(rel, vec!["type".into()]);
            return Ok(None);
        }
        match &e.kind {
            EntryKind::File { size, content } => {
                if *size != st.size {
                    what.push("size".into());
                } else if let Some(w) = self.content(content, *size, path)? {
                    what.push(w);
                }
            }
            EntryKind::Hardlink { target } => {
                let t = self.top.join(bytes_path(target));
                match stat_path(&t, false) {
                    Ok(ts) if ts.ino == st.ino && ts.dev == st.dev => {}
                    _ => what.push(format!("not a hard link to {}", show(target))),
                }
            }
            EntryKind::Symlink { target } => match std::fs::read_link(path) {
                Ok(t) if crate::core::util::path_bytes(&t) == target.as_slice() => {}
                Ok(_) => what.push("target".into()),
                Err(e) => what.push(format!("cannot read the link: {e}")),
            },
            EntryKind::CharDevice { rdev } | EntryKind::BlockDevice { rdev }
                if *rdev != st.rdev =>
            {
                what.push("device number".into());
            }
            _ => {}
        }
        if !matches!(
            e.kind,
            EntryKind::Symlink { .. } | EntryKind::Hardlink { .. }
        ) {
            if e.mode & 0o7777 != st.mode & 0o7777 {
                what.push(format!(
                    "mode {:o} vs {:o}",
                    e.mode & 0o7777,
                    st.mode & 0o7777
                ));
            }
            if e.mtime != st.mtime {
                what.push("mtime".into());
            }
        }
        if !matches!(e.kind, EntryKind::Hardlink { .. }) {
            if (e.uid, e.gid) != (st.uid, st.gid) {
                what.push("owner".into());
            }
            match crate::core::meta::read_xattrs(path) {
                Ok(mut x) => {
                    x.sort_by(|a, b| a.name.cmp(&b.name));
                    if x != e.xattrs {
                        what.push("xattrs".into());
                    }
                }
                Err(err) => what.push(format!("cannot read xattrs: {err}")),
            }
        }
        self.report(rel, what);
        match &e.kind {
            EntryKind::Dir { tree } => Ok(Some(*tree)),
            _ => Ok(None),
        }
    }

    /// Starts comparing directory tree `tree` with the directory at `path`; `None` (and a
    /// difference) when the directory cannot be listed.
    fn open(&mut self, tree: Key, rel: Vec<u8>, path: PathBuf) -> Option<Open<'a>> {
        let mut on_disk: BTreeMap<Vec<u8>, ()> = BTreeMap::new();
        match crate::core::fsys::Dir::open(&path).and_then(|d| d.names()) {
            Ok(names) => on_disk.extend(names.into_iter().map(|n| (n, ()))),
            Err(e) => {
                self.report(&rel, vec![format!("cannot list the directory: {e}")]);
                return None;
            }
        }
        Some(Open {
            reader: Reader::new(self.repo, tree),
            on_disk,
            rel,
            path,
        })
    }

    /// `None` when the file on disk holds exactly the snapshot's bytes.
    fn content(
        &mut self,
        content: &crate::core::entry::Content,
        size: u64,
        path: &Path,
    ) -> Result<Option<String>> {
        let mut f = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) => return Ok(Some(format!("cannot open: {e}"))),
        };
        let mut buf = Vec::new();
        for p in crate::core::tree::file_pieces(self.repo, content, size)? {
            match p {
                Piece::Data { key, .. } | Piece::Slice { key, .. } => {
                    let bundle = self.bundles.chunk(self.repo, key)?;
                    let want = p.bytes_of(&bundle)?;
                    buf.resize(want.len(), 0);
                    if let Err(e) = f.read_exact(&mut buf) {
                        return Ok(Some(format!("content (reading: {e})")));
                    }
                    if buf != want {
                        return Ok(Some("content".into()));
                    }
                }
                Piece::Hole { mut len } => {
                    while len > 0 {
                        let n = len.min(1 << 20) as usize;
                        buf.resize(n, 0);
                        if let Err(e) = f.read_exact(&mut buf) {
                            return Ok(Some(format!("content (reading: {e})")));
                        }
                        if buf.iter().any(|b| *b != 0) {
                            return Ok(Some("content".into()));
                        }
                        len -= n as u64;
                    }
                }
            }
        }
        Ok(None)
    }
}
