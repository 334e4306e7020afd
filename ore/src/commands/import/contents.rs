//! The regular files of a stored tree, and their content ids (`core::filelist`): what an
//! object lists so that `ore search --file` and `--name` find it.
//!
//! An id costs nothing for a file stored as one chunk (its chunk's key is its id) or a
//! catalogued one (the catalogue recorded it). Any other file (a slice of a bundle, a file of
//! several chunks or with holes) is read once more and hashed, from the file it was stored
//! from, and only when that file is still the version stored ([`super::props::open`]):
//! otherwise it is listed by name, not by content, and a warning says why.

use super::props::{open, Opened};
use crate::core::block::Kind;
use crate::core::entry::{Content, Entry, EntryKind, Warning};
use crate::core::error::Result;
use crate::core::filelist::{content_id, too_sparse, FileRef, ID_HOLES_SHOWN};
use crate::core::repo::Repo;
use crate::core::tree::{DirTree, Reader};
use protocol::Key;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// A regular file of the stored tree: where it is on disk, its path from the object's root,
/// its entry.
pub(super) struct Found {
    pub path: PathBuf,
    pub rel: Vec<u8>,
    pub entry: Entry,
}

/// Every regular file below `root` (the stored tree of `dir`), hard links as the files they
/// name, depth first in name order.
pub(super) fn files(repo: &Repo, root: &Entry, dir: &Path) -> Result<Vec<Found>> {
    let mut out = Vec::new();
    let mut dirs = vec![(root.clone(), dir.to_path_buf(), Vec::new())];
    while let Some((entry, at, rel)) = dirs.pop() {
        let EntryKind::Dir { tree } = entry.kind else {
            continue;
        };
        let mut r = Reader::<DirTree>::new(repo, tree);
        let mut below = Vec::new();
        while let Some(e) = r.next_item()? {
            let path = at.join(std::ffi::OsStr::from_bytes(&e.name));
            let rel = match rel.is_empty() {
                true => e.name.clone(),
                false => [&rel[..], b"/", &e.name].concat(),
            };
            let file = match &e.kind {
                EntryKind::Dir { .. } => {
                    below.push((e, path, rel));
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
                rel,
                entry: file,
            });
        }
        dirs.extend(below.into_iter().rev());
    }
    Ok(out)
}

/// The content id of stored file `entry`, read when needed from `file` (see the module doc);
/// why not, when it cannot be known.
pub(super) fn id_of(
    repo: &Repo,
    entry: &Entry,
    file: Option<&Opened>,
) -> std::result::Result<Key, String> {
    let EntryKind::File { size, content } = &entry.kind else {
        return Err("not a regular file".into());
    };
    match content {
        Content::Empty => Ok(repo.keys().key_of(Kind::Chunk as u8, b"")),
        Content::Chunk(k) => Ok(*k),
        Content::Catalogued { id } => id.ok_or_else(|| {
            format!(
                "it has more than {} of holes, which are not hashed",
                ID_HOLES_SHOWN
            )
        }),
        Content::Slice { .. } | Content::Index(_) => match file {
            Some(Ok(f)) if too_sparse(f) => Err(format!(
                "it has more than {} of holes, which are not hashed",
                ID_HOLES_SHOWN
            )),
            Some(Ok(f)) => match content_id(repo.keys(), f) {
                Ok((id, n)) if n == *size => Ok(id),
                Ok(_) => Err("it changed while it was imported".into()),
                Err(e) => Err(format!("not read again: {e}")),
            },
            Some(Err(why)) => Err(why.clone()),
            None => Err("not opened again".into()),
        },
    }
}

/// The list of every regular file of the tree `root` stored from `dir` (a file PATH's root is
/// the directory made around it, so `dir` is then its parent), with a warning for each file
/// listed without its content id.
pub(super) fn list(
    repo: &Repo,
    root: &Entry,
    dir: &Path,
    warnings: &mut Vec<Warning>,
) -> Result<Vec<FileRef>> {
    use rayon::prelude::*;
    let found = files(repo, root, dir)?;
    let ids: Vec<std::result::Result<Key, String>> = found
        .par_iter()
        .map(|f| {
            let file = match &f.entry.kind {
                EntryKind::File {
                    content: Content::Slice { .. } | Content::Index(_),
                    ..
                } => open(&f.entry, &f.path),
                _ => None,
            };
            id_of(repo, &f.entry, file.as_ref())
        })
        .collect();
    let mut out = Vec::with_capacity(found.len());
    for (f, id) in found.into_iter().zip(ids) {
        let id = match id {
            Ok(id) => Some(id),
            Err(why) => {
                warnings.push(unhashed(&f.path, &why));
                None
            }
        };
        out.push(FileRef {
            size: file_size(&f.entry),
            path: f.rel,
            id,
        });
    }
    Ok(out)
}

/// The warning for a file listed without its content id.
pub(super) fn unhashed(path: &Path, why: &str) -> Warning {
    Warning {
        path: crate::core::util::path_bytes(path).to_vec(),
        message: format!(
            "`ore search --file` will not find it by its contents (`--name` will): {why}"
        ),
    }
}

/// The bytes of a regular file's entry (0 for anything else).
pub(super) fn file_size(e: &Entry) -> u64 {
    match &e.kind {
        EntryKind::File { size, .. } => *size,
        _ => 0,
    }
}
