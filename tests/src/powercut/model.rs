//! The durable state behind the live tree, kept as an undo log, and the power cut that
//! rolls the live tree back to it.
//!
//! Every operation goes to the live tree at once (so reads see it, as they would see the page
//! cache). Before the first change to a file since its last `fsync`, the model notes the file's
//! length; before each later write or truncation it saves the bytes about to be overwritten
//! that were part of the durable contents. Before the first change to a directory's entries
//! since its last `fsync`, it notes the directory's entries (name → inode). A name that goes
//! away keeps its inode alive in the attic (a hard link, or the directory itself), so the cut
//! can bring it back. An `fsync` drops what the model kept for that inode: its present state is
//! durable. The cut rebuilds the tree from the root: each directory's noted entries (or its live
//! ones when it has none noted), each file's live bytes with the saved bytes put back and its
//! noted length restored.
//!
//! Memory is proportional to the unsynced overwrites (appends past the durable length cost
//! nothing); the attic holds the unlinked inodes until the file system stops.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::os::unix::fs::{DirEntryExt, FileExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The kind of a directory entry, as far as the rebuild needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Dir,
    /// A regular file, a symlink or anything else that is not a directory: brought back by
    /// linking its inode.
    Other,
}

/// A directory's entries: name → (inode, kind).
pub type Entries = BTreeMap<OsString, (u64, Kind)>;

/// What a file looked like at its last sync: its length, and the durable bytes overwritten
/// since (oldest first).
#[derive(Debug)]
struct FileUndo {
    durable_len: u64,
    saved: Vec<(u64, Vec<u8>)>,
}

/// The live tree (`ROOT/data`), the attic (`ROOT/attic`) and what is not yet durable.
#[derive(Debug)]
pub struct Model {
    root: PathBuf,
    pub data: PathBuf,
    pub attic: PathBuf,
    files: HashMap<u64, FileUndo>,
    dirs: HashMap<u64, Entries>,
}

fn other(msg: String) -> io::Error {
    io::Error::other(msg)
}

/// The entries of the directory at `path`, as they are now.
pub fn entries(path: &Path) -> io::Result<Entries> {
    let mut out = Entries::new();
    for e in std::fs::read_dir(path)? {
        let e = e?;
        let kind = if e.file_type()?.is_dir() {
            Kind::Dir
        } else {
            Kind::Other
        };
        out.insert(e.file_name(), (e.ino(), kind));
    }
    Ok(out)
}

impl Model {
    /// The model over `root`: everything already in `root/data` is durable (the state a
    /// previous cut left, or a fresh directory).
    pub fn open(root: &Path) -> io::Result<Model> {
        let data = root.join("data");
        let attic = root.join("attic");
        std::fs::create_dir_all(&data)?;
        if attic.exists() {
            std::fs::remove_dir_all(&attic)?;
        }
        std::fs::create_dir(&attic)?;
        Ok(Model {
            root: root.to_path_buf(),
            data,
            attic,
            files: HashMap::new(),
            dirs: HashMap::new(),
        })
    }

    /// Before bytes `[off, off + len)` of inode `ino` (open as `file`) change: saves the
    /// durable bytes among them. A truncation to `n` is a change of `[n, ∞)`.
    pub fn before_write(&mut self, ino: u64, file: &File, off: u64, len: u64) -> io::Result<()> {
        let live_len = file.metadata()?.len();
        let undo = self.files.entry(ino).or_insert(FileUndo {
            durable_len: live_len,
            saved: Vec::new(),
        });
        let end = off.saturating_add(len).min(undo.durable_len).min(live_len);
        if off < end {
            let mut buf = vec![0; (end - off) as usize];
            file.read_exact_at(&mut buf, off)?;
            undo.saved.push((off, buf));
        }
        Ok(())
    }

    /// A file was just created: none of it is durable.
    pub fn created_file(&mut self, ino: u64) {
        self.files.insert(
            ino,
            FileUndo {
                durable_len: 0,
                saved: Vec::new(),
            },
        );
    }

    /// A directory was just created: none of its entries are durable.
    pub fn created_dir(&mut self, ino: u64) {
        self.dirs.insert(ino, Entries::new());
    }

    /// Before the entries of directory `ino` (at `path`) change.
    pub fn before_entries_change(&mut self, ino: u64, path: &Path) -> io::Result<()> {
        if let std::collections::hash_map::Entry::Vacant(e) = self.dirs.entry(ino) {
            e.insert(entries(path)?);
        }
        Ok(())
    }

    /// Before the name `path` goes away (unlink, rmdir, rename over it): keeps its inode in
    /// the attic, so a cut that brings the name back finds it. Returns where it is kept.
    pub fn keep(&mut self, path: &Path) -> io::Result<PathBuf> {
        let meta = std::fs::symlink_metadata(path)?;
        if meta.is_dir() {
            let to = self.attic.join(format!("{}", meta.ino()));
            std::fs::rename(path, &to)?;
            return Ok(to);
        }
        let to = self.attic.join(format!("{}", meta.ino()));
        if std::fs::symlink_metadata(&to).is_err() {
            std::fs::hard_link(path, &to)?;
        }
        Ok(to)
    }

    /// `fsync` of a file: its present contents are durable.
    pub fn synced_file(&mut self, ino: u64) {
        self.files.remove(&ino);
    }

    /// `fsync` of a directory: its present entries are durable.
    pub fn synced_dir(&mut self, ino: u64) {
        self.dirs.remove(&ino);
    }

    /// `syncfs`: everything is durable.
    pub fn synced_all(&mut self) {
        self.files.clear();
        self.dirs.clear();
    }

    /// After a clean unmount: everything is durable; empties the attic.
    pub fn settle(self) -> io::Result<()> {
        std::fs::remove_dir_all(&self.attic)
    }

    /// The power cut: replaces the live tree by the durable one. Run after the unmount, with
    /// no one else using `ROOT`.
    pub fn cut(mut self) -> io::Result<()> {
        let mut found = HashMap::new();
        walk(&self.data, &mut found)?;
        for e in std::fs::read_dir(&self.attic)? {
            let e = e?;
            if let Some(ino) = e.file_name().to_str().and_then(|s| s.parse::<u64>().ok()) {
                found.entry(ino).or_insert_with(|| e.path());
            }
        }
        let root_ino = std::fs::metadata(&self.data)?.ino();
        let rebuilt = self.root.join("rebuilt");
        if rebuilt.exists() {
            std::fs::remove_dir_all(&rebuilt)?;
        }
        std::fs::create_dir(&rebuilt)?;
        let mut made = HashMap::new();
        made.insert(root_ino, rebuilt.clone());
        self.rebuild_dir(root_ino, &rebuilt, &found, &mut made)?;
        let lost = self.root.join("lost");
        std::fs::rename(&self.data, &lost)?;
        std::fs::rename(&rebuilt, &self.data)?;
        std::fs::remove_dir_all(&lost)?;
        std::fs::remove_dir_all(&self.attic)
    }

    fn rebuild_dir(
        &mut self,
        ino: u64,
        into: &Path,
        found: &HashMap<u64, PathBuf>,
        made: &mut HashMap<u64, PathBuf>,
    ) -> io::Result<()> {
        let durable = match (self.dirs.remove(&ino), found.get(&ino)) {
            (Some(noted), _) => noted,
            (None, Some(live)) => entries(live)?,
            (None, None) => Entries::new(),
        };
        for (name, (child, kind)) in durable {
            let dest = into.join(&name);
            if let Some(there) = made.get(&child) {
                // A directory has one name: the first one rebuilt wins. A file gets a link.
                if kind == Kind::Other {
                    std::fs::hard_link(there, &dest)?;
                }
                continue;
            }
            let src = found.get(&child).ok_or_else(|| {
                other(format!(
                    "power cut: inode {child} (durable name {}) is neither in the tree nor in \
                     the attic",
                    dest.display()
                ))
            })?;
            match kind {
                Kind::Dir => {
                    std::fs::create_dir(&dest)?;
                    let mode = std::fs::symlink_metadata(src)?.mode();
                    std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(mode))?;
                    made.insert(child, dest.clone());
                    self.rebuild_dir(child, &dest, found, made)?;
                }
                Kind::Other => {
                    // The live tree is thrown away: the inode itself is rolled back.
                    std::fs::hard_link(src, &dest)?;
                    if let Some(undo) = self.files.remove(&child) {
                        let f = std::fs::OpenOptions::new().write(true).open(&dest)?;
                        for (off, bytes) in undo.saved.iter().rev() {
                            f.write_all_at(bytes, *off)?;
                        }
                        f.set_len(undo.durable_len)?;
                    }
                    made.insert(child, dest);
                }
            }
        }
        Ok(())
    }
}

/// Every inode under `dir` (not following symlinks), with one path to it.
fn walk(dir: &Path, found: &mut HashMap<u64, PathBuf>) -> io::Result<()> {
    found.insert(std::fs::symlink_metadata(dir)?.ino(), dir.to_path_buf());
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        if e.file_type()?.is_dir() {
            walk(&e.path(), found)?;
        } else {
            found.entry(e.ino()).or_insert_with(|| e.path());
        }
    }
    Ok(())
}
