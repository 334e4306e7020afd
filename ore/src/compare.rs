//! `ore check --compare`: does a directory on disk match a snapshot, byte for byte and in
//! metadata? Used to prove a restore, or to see what changed on disk since a snapshot.

use crate::block::Kind;
use crate::entry::{Entry, EntryKind, Piece};
use crate::error::Result;
use crate::fsys::{stat_path, Stat};
use crate::repo::Repo;
use crate::tree::{DirTree, Reader};
use crate::util::{bytes_path, show};
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

/// Compares the tree of directory entry `root` (from a snapshot) with the directory `disk`.
pub fn compare(repo: &Repo, root: &Entry, disk: &Path) -> Result<Vec<Difference>> {
    let mut out = Vec::new();
    let st = stat_path(disk, false).map_err(|e| crate::Error::io(disk, e))?;
    let mut c = Cmp {
        repo,
        top: disk.to_path_buf(),
        out: &mut out,
    };
    c.entry(root, &st, Vec::new(), disk)?;
    Ok(out)
}

struct Cmp<'a> {
    repo: &'a Repo,
    top: PathBuf,
    out: &'a mut Vec<Difference>,
}

impl Cmp<'_> {
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

    fn entry(&mut self, e: &Entry, st: &Stat, rel: Vec<u8>, path: &Path) -> Result<()> {
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
            self.report(&rel, vec!["type".into()]);
            return Ok(());
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
                Ok(t) if crate::util::path_bytes(&t) == target.as_slice() => {}
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
            match crate::meta::read_xattrs(path) {
                Ok(mut x) => {
                    x.sort_by(|a, b| a.name.cmp(&b.name));
                    if x != e.xattrs {
                        what.push("xattrs".into());
                    }
                }
                Err(err) => what.push(format!("cannot read xattrs: {err}")),
            }
        }
        self.report(&rel, what);
        if let EntryKind::Dir { tree } = &e.kind {
            self.dir(*tree, &rel, path)?;
        }
        Ok(())
    }

    fn dir(&mut self, tree: protocol::Key, rel: &[u8], path: &Path) -> Result<()> {
        let mut on_disk: BTreeMap<Vec<u8>, ()> = BTreeMap::new();
        match crate::fsys::Dir::open(path).and_then(|d| d.names()) {
            Ok(names) => on_disk.extend(names.into_iter().map(|n| (n, ()))),
            Err(e) => {
                self.report(rel, vec![format!("cannot list the directory: {e}")]);
                return Ok(());
            }
        }
        let mut reader = Reader::<DirTree>::new(self.repo, tree);
        while let Some(e) = reader.next_item()? {
            let mut r = rel.to_vec();
            if !r.is_empty() {
                r.push(b'/');
            }
            r.extend_from_slice(&e.name);
            if on_disk.remove(&e.name).is_none() {
                self.report(&r, vec!["missing on disk".into()]);
                continue;
            }
            let p = path.join(bytes_path(&e.name));
            match stat_path(&p, false) {
                Ok(st) => self.entry(&e, &st, r, &p)?,
                Err(err) => self.report(&r, vec![format!("cannot stat: {err}")]),
            }
        }
        for name in on_disk.into_keys() {
            let mut r = rel.to_vec();
            if !r.is_empty() {
                r.push(b'/');
            }
            r.extend_from_slice(&name);
            self.report(&r, vec!["only on disk".into()]);
        }
        Ok(())
    }

    /// `None` when the file on disk holds exactly the snapshot's bytes.
    fn content(
        &mut self,
        content: &crate::entry::Content,
        size: u64,
        path: &Path,
    ) -> Result<Option<String>> {
        let mut f = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) => return Ok(Some(format!("cannot open: {e}"))),
        };
        let mut buf = Vec::new();
        for p in crate::tree::file_pieces(self.repo, content, size)? {
            match p {
                Piece::Data { key, .. } => {
                    let want = self.repo.get_block(key, Kind::Chunk)?;
                    buf.resize(want.data().len(), 0);
                    if let Err(e) = f.read_exact(&mut buf) {
                        return Ok(Some(format!("content (reading: {e})")));
                    }
                    if buf != want.data() {
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
