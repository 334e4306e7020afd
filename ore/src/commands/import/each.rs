//! `ore import --each DIR`: one object per regular file under DIR, made from one stored tree.
//!
//! The directory is stored once, exactly as a snapshot stores it (the same walk, dedup and
//! file cache), and the objects are made afterwards from the stored entries. Each object's
//! tree is a directory of one entry, the file, under its parent directory's metadata; a hard
//! link becomes the file it names. So what `--each` costs beyond a snapshot is, per file, an
//! object block, a one-entry directory block and a read of its first bytes for its type, and
//! then one filing of every object in one index change and one tag move (docs/ARCHIVAL.md).
//!
//! The objects are made on every core at once (rayon), a window of files at a time: each
//! file is opened and its first bytes read for its type, and its two blocks sealed; then the
//! window's blocks are stored together, with one `exists` ([`Repo::put_sealed`]), while the
//! next window is made. Putting
//! each block from the workers themselves was slower than one at a time: they queued on
//! the store's lock (docs/ARCHIVAL.md, "Benchmarks").

use super::props::{of_entry, Props};
use super::ImportOptions;
use crate::core::archival::Object;
use crate::core::block::Kind;
use crate::core::entry::{encode, Entry, EntryKind, Snapshot, Warning};
use crate::core::error::Result;
use crate::core::repo::Repo;
use crate::core::tree::{Builder, DirTree, Reader, Store};
use protocol::Key;
use rayon::prelude::*;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// A regular file of the stored tree: where it is, its entry, its directory's entry.
struct Found {
    path: PathBuf,
    entry: Entry,
    parent: Entry,
}

/// The objects, one per regular file of the tree `stored` holds of directory `dir`, in
/// the tree's order, stored; each file's warnings go to `warnings`.
pub(super) fn objects(
    repo: &Repo,
    stored: &Snapshot,
    dir: &Path,
    opts: &ImportOptions,
    warnings: &mut Vec<Warning>,
) -> Result<Vec<(Key, Object)>> {
    let files = files(repo, &stored.root, dir)?;
    let mut out = Vec::with_capacity(files.len());
    // A window at a time, so that the sealed blocks waiting to be stored stay few; each
    // window's blocks are stored while the next window is made.
    std::thread::scope(|s| -> Result<()> {
        let mut storing: Option<std::thread::ScopedJoinHandle<'_, Result<()>>> = None;
        for window in files.chunks(WINDOW) {
            let made: Vec<Result<Made>> = window
                .par_iter()
                .map(|f| object(repo, stored, f, opts))
                .collect();
            let mut blocks = Vec::with_capacity(2 * made.len());
            for m in made {
                let m = m?;
                warnings.extend(m.warning);
                blocks.extend(m.blocks);
                out.push((m.key, m.object));
            }
            if let Some(t) = storing.take() {
                joined(t)?;
            }
            storing = Some(s.spawn(move || repo.put_sealed(blocks)));
        }
        storing.map_or(Ok(()), joined)
    })?;
    Ok(out)
}

/// What a thread storing blocks ended with (its panic goes on here).
fn joined(t: std::thread::ScopedJoinHandle<'_, Result<()>>) -> Result<()> {
    t.join().unwrap_or_else(|p| std::panic::resume_unwind(p))
}

/// Files made into objects at once.
const WINDOW: usize = 4096;

/// One file's object, its key, and its blocks (its tree's and its own), sealed.
struct Made {
    key: Key,
    object: Object,
    warning: Option<Warning>,
    blocks: Vec<(Key, Vec<u8>)>,
}

fn object(repo: &Repo, stored: &Snapshot, f: &Found, opts: &ImportOptions) -> Result<Made> {
    let (props, warning) = properties(f, opts);
    let size = file_size(&f.entry);
    let mut sealer = Sealer {
        repo,
        blocks: Vec::with_capacity(2),
    };
    let mut tree = Builder::<DirTree>::default();
    tree.push(f.entry.clone(), &mut sealer)?;
    let root = Entry {
        kind: EntryKind::Dir {
            tree: tree.finish(&mut sealer)?,
        },
        ..f.parent.clone()
    };
    let object = Object {
        props: props.finish(&opts.set),
        root,
        imported_ns: stored.time,
        host: stored.host.clone(),
        user: stored.user.clone(),
        source: crate::core::util::path_bytes(&f.path).to_vec(),
        parent: None,
        size,
    };
    let key = sealer.store(Kind::Object, &encode(&object))?;
    Ok(Made {
        key,
        object,
        warning,
        blocks: sealer.blocks,
    })
}

/// Every regular file below `root` (the stored tree of `dir`), hard links as the files they
/// name.
fn files(repo: &Repo, root: &Entry, dir: &Path) -> Result<Vec<Found>> {
    let mut out = Vec::new();
    let mut dirs = vec![(root.clone(), dir.to_path_buf())];
    while let Some((entry, at)) = dirs.pop() {
        let EntryKind::Dir { tree } = entry.kind else {
            continue;
        };
        let mut r = Reader::<DirTree>::new(repo, tree);
        let mut below = Vec::new();
        while let Some(e) = r.next_item()? {
            let path = at.join(std::ffi::OsStr::from_bytes(&e.name));
            let file = match &e.kind {
                EntryKind::Dir { .. } => {
                    below.push((e, path));
                    continue;
                }
                EntryKind::File { .. } => e,
                EntryKind::Hardlink { target } => {
                    let named = crate::core::tree::find(repo, root, target)?;
                    Entry {
                        name: e.name,
                        ..named
                    }
                }
                _ => continue,
            };
            out.push(Found {
                path,
                entry: file,
                parent: entry.clone(),
            });
        }
        // Depth first, in name order.
        dirs.extend(below.into_iter().rev());
    }
    Ok(out)
}

/// A file's properties (none but `--set` with `--no-extract`).
fn properties(f: &Found, opts: &ImportOptions) -> (Props, Option<Warning>) {
    if !opts.extract {
        return (Props::default(), None);
    }
    let name = f.path.file_name().map(|n| n.to_string_lossy().into_owned());
    let size = file_size(&f.entry);
    of_entry(&name.unwrap_or_default(), size, &f.entry, &f.path)
}

/// Seals blocks for [`Repo::put_sealed`], keeping them.
struct Sealer<'r> {
    repo: &'r Repo,
    blocks: Vec<(Key, Vec<u8>)>,
}

impl Store for Sealer<'_> {
    fn store(&mut self, kind: Kind, plain: &[u8]) -> Result<Key> {
        let key = self.repo.keys().key_of(kind as u8, plain);
        self.blocks
            .push((key, self.repo.sealed(kind, &key, plain)?));
        Ok(key)
    }
}

/// The bytes of a regular file's entry (0 for anything else).
fn file_size(e: &Entry) -> u64 {
    match &e.kind {
        EntryKind::File { size, .. } => *size,
        _ => 0,
    }
}
