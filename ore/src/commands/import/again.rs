//! An import of what its tag holds already.
//!
//! Running one `ore import` twice filed everything twice: two current objects of each file,
//! each found twice by every search, and nothing said so. Now an object the tag holds
//! already from the same place (the same host and source path) is recognised:
//! - when it is the same object (the same tree, so the same contents and metadata, the same
//!   properties and the same catalogue disk), it is not filed again, and the import names the
//!   object it already is;
//! - when it differs, it is filed beside the earlier one, and the import names that one,
//!   which `--replace` would have made it a new version of.
//!
//! Earlier objects are found through the `f` map, by the contents of the new object's files
//! (an unchanged object shares them), and for an object of one file also through the `n`
//! map, by its name (a changed file keeps it). Only current objects have such entries, so a
//! replaced or forgotten object is never named. A few objects are looked up one by one; many
//! (`--each`) in one pass over the tag's `f` map, which costs that map's size however many
//! objects are imported. A changed file of an `--each` import is not matched by name: names
//! repeat across a tree (a documentation tree holds hundreds of files called `copyright`),
//! and each candidate is a block to read. What no content id finds is found by name: an
//! `--each` file with more holes than are hashed (by its name in the `n` map; the same
//! chunks, not an id, then say it is the same file), and an object of no regular file (a
//! FIFO, an empty directory) by its `name` property.

use crate::core::archival::{entry_object, prop_prefix, value_bytes, Object, Value};
use crate::core::block::Kind;
use crate::core::entry::{Entry, EntryKind};
use crate::core::error::Result;
use crate::core::filelist::{content_prefix, name_prefix, Files, CONTENTS};
use crate::core::index::{Cursor, Root};
use crate::core::repo::Repo;
use crate::core::tree::lookup;
use protocol::Key;
use rayon::prelude::*;
use std::collections::HashMap;

/// A current object of the tag imported from the same place as a new one.
#[derive(Clone, Copy, Debug)]
pub struct Earlier {
    pub key: Key,
    /// It is the same object: the new one need not be filed.
    pub same: bool,
}

/// Objects of one file also looked up by name (more are not: names repeat in a tree).
const ONE_BY_ONE: usize = 256;
/// Content ids are looked up one by one while they are fewer than the index's entries
/// divided by this (a look-up reads a leaf); more are matched in one pass over the `f` map.
const SCAN_RATIO: u64 = 64;
/// Files of an object whose contents are looked up.
const FILES_LOOKED_UP: usize = 4;
/// Objects read of a content id that is not the one an earlier same object is found by, or
/// of a name that only finds changed objects: they are found for the note that names them.
const ENTRIES_READ: usize = 64;

/// Current objects of the index at `index` that hold a file of each content id of `ids`.
pub type ByContents = HashMap<Key, Vec<Key>>;

/// The current objects of the index at `index` holding files of the content ids `ids`: a
/// few looked up one by one (on every core), many in one pass over the `f` map.
pub fn by_contents(
    repo: &Repo,
    index: Option<&Root>,
    ids: &std::collections::HashSet<Key>,
) -> Result<ByContents> {
    let mut out = ByContents::new();
    let Some(index) = index.filter(|_| !ids.is_empty()) else {
        return Ok(out);
    };
    if (ids.len() as u64).saturating_mul(SCAN_RATIO) < index.count {
        let found: Vec<(Key, Vec<Key>)> = (ids.par_iter())
            .map(|id| Ok((*id, scan(repo, index, &content_prefix(id), usize::MAX)?)))
            .collect::<Result<_>>()?;
        out.extend(found.into_iter().filter(|(_, f)| !f.is_empty()));
        return Ok(out);
    }
    for item in Cursor::new(repo, Some(index), &[CONTENTS])? {
        let item = item?;
        if item.key.first() != Some(&CONTENTS) {
            break;
        }
        let Some(Ok(id)) = item.key.get(1..33).map(<[u8; 32]>::try_from) else {
            continue;
        };
        if let (true, Some(k)) = (ids.contains(&Key(id)), entry_object(&item.key)) {
            out.entry(Key(id)).or_default().push(k);
        }
    }
    Ok(out)
}

/// The objects of the first `most` entries under `prefix`.
fn scan(repo: &Repo, index: &Root, prefix: &[u8], most: usize) -> Result<Vec<Key>> {
    let mut found = Vec::new();
    for item in Cursor::new(repo, Some(index), prefix)?.take(most) {
        let item = item?;
        if !item.key.starts_with(prefix) {
            break;
        }
        found.extend(entry_object(&item.key));
    }
    Ok(found)
}

/// For each of `objects`, a current object of the index at `index` imported from the same
/// host and source path, the same one when there is such. Found by the contents of each
/// object's first files, and for an object of one file by its name too.
pub fn earlier(
    repo: &Repo,
    index: Option<&Root>,
    objects: &[&Object],
) -> Result<Vec<Option<Earlier>>> {
    let Some(root) = index else {
        return Ok(vec![None; objects.len()]);
    };
    let mut ids = std::collections::HashSet::new();
    let mut by_name: Vec<Vec<Key>> = Vec::with_capacity(objects.len());
    for o in objects {
        ids.extend(ids_of(repo, o)?);
        // Not for many: names repeat in a tree.
        by_name.push(match objects.len() <= ONE_BY_ONE {
            true => named(repo, root, o)?,
            false => Vec::new(),
        });
    }
    let contents = by_contents(repo, index, &ids)?;
    let candidates = (objects.iter().zip(by_name))
        .map(|(o, mut c)| {
            c.extend(of_contents(&ids_of(repo, o)?, &contents));
            Ok(c)
        })
        .collect::<Result<Vec<_>>>()?;
    judge(repo, objects, None, candidates)
}

/// The objects of the index at `root` that object `o` is found among by its name: for an
/// object of one file (`Object::one_file`), those holding a file of that name (a changed file
/// keeps it); for an object of no regular file (a FIFO, an empty directory), those of the
/// same `name` property, since no file list finds them.
///
/// An object that has a content id is found by it when it is the same; by name, only when it
/// changed, so only the first few of a name are read. One that has none is found by name
/// alone, so every object of that name is a candidate (each read once, [`judge`]).
pub fn named(repo: &Repo, root: &Root, o: &Object) -> Result<Vec<Key>> {
    let files = o.files.read_first(repo, 2)?;
    match (files.as_slice(), o.one_file(), o.prop("name")) {
        ([f], true, _) => {
            let most = if f.id.is_some() {
                ENTRIES_READ
            } else {
                usize::MAX
            };
            scan(repo, root, &name_prefix(&f.path, true), most)
        }
        ([], _, Some(name @ Value::Text(_))) => {
            let value = value_bytes(name).swap_remove(0);
            scan(repo, root, &prop_prefix("name", &value), usize::MAX)
        }
        _ => Ok(Vec::new()),
    }
}

/// The content ids of object `o`'s first files: those its earlier versions are found by.
pub fn ids_of(repo: &Repo, o: &Object) -> Result<Vec<Key>> {
    let files = o.files.read(repo)?;
    Ok(files
        .iter()
        .filter_map(|f| f.id)
        .take(FILES_LOOKED_UP)
        .collect())
}

/// The objects of `contents` that may be an object whose first files have the content ids
/// `ids` ([`ids_of`]), or an earlier version of it: every object holding all of them (the
/// same object does, however many other objects share one of them: an empty file, a
/// licence), and those holding one of them that few objects hold (a changed object, for the
/// note that names it).
pub fn of_contents(ids: &[Key], contents: &ByContents) -> Vec<Key> {
    let holders = |id: &Key| contents.get(id).map_or(&[][..], Vec::as_slice);
    let mut all: Option<Vec<Key>> = None;
    let mut out = Vec::new();
    for id in ids {
        let mut h = holders(id).to_vec();
        if h.len() <= ENTRIES_READ {
            out.extend_from_slice(&h);
        }
        h.sort_unstable();
        all = Some(match all {
            None => h,
            Some(a) => crate::core::browse::both(&a, &h),
        });
    }
    out.extend(all.unwrap_or_default());
    out
}

/// For each of `objects`, which of its `candidates` was imported from the same host and
/// source path, the same object when one is. `entries`, when given, are the objects' files'
/// entries, for objects of one file whose directory is not stored yet (`--each` in an
/// archive of format 5).
pub fn judge(
    repo: &Repo,
    objects: &[&Object],
    entries: Option<&[&Entry]>,
    mut candidates: Vec<Vec<Key>>,
) -> Result<Vec<Option<Earlier>>> {
    for c in &mut candidates {
        c.sort_unstable();
        c.dedup();
    }
    // Each candidate read once, on every core.
    let mut keys: Vec<Key> = candidates.iter().flatten().copied().collect();
    keys.sort_unstable();
    keys.dedup();
    let read: HashMap<Key, Object> = (keys.par_iter())
        .map(|k| Ok((*k, repo.get(*k, Kind::Object)?)))
        .collect::<Result<_>>()?;
    (objects.par_iter().zip(&candidates).enumerate())
        .map(|(i, (o, keys))| {
            let entry = entries.and_then(|e| e.get(i).copied());
            let mut found: Option<Earlier> = None;
            for k in keys {
                let Some(c) = read.get(k) else { continue };
                if c.host != o.host || c.source != o.source {
                    continue;
                }
                let same = c.props == o.props
                    && c.catalogue == o.catalogue
                    && same_tree(repo, c, o, entry)?;
                if found.is_none_or(|f| same && !f.same) {
                    found = Some(Earlier { key: *k, same });
                }
            }
            Ok(found)
        })
        .collect()
}

/// Whether objects `a` and `b` hold the same tree: the same root, or for objects of one
/// file, the same file, whose bytes may lie in other chunks. A small file's bytes share a
/// chunk with its neighbours' (a bundle, FORMAT.md), so under `--each` a file beside which
/// another was added is the same file in a new bundle. `b_entry` is `b`'s file's entry when
/// its directory is not stored yet.
fn same_tree(repo: &Repo, a: &Object, b: &Object, b_entry: Option<&Entry>) -> Result<bool> {
    // A directory: the same tree, and the same metadata of its own (mode, owner, times but
    // its ctime and atime, which reading and listing it change). The nameless directory made
    // around a path that is no directory has made-up metadata: its tree alone counts.
    let dirs = |o: &Object| matches!(o.root.kind, EntryKind::Dir { .. });
    let meta = |e: &Entry| Entry {
        atime: None,
        ctime: None,
        ..e.clone()
    };
    if dirs(a) && dirs(b) && a.root.kind == b.root.kind {
        let around = a.root.name.is_empty() && b.root.name.is_empty();
        if around || meta(&a.root) == meta(&b.root) {
            return Ok(true);
        }
    }
    let (Files::Inline(fa), Files::Inline(fb)) = (&a.files, &b.files) else {
        return Ok(false);
    };
    let ([f], [g], true, true) = (fa.as_slice(), fb.as_slice(), a.one_file(), b.one_file()) else {
        return Ok(false);
    };
    // The directory made around a file is left out: older ores gave it the parent
    // directory's metadata, this one makes it up (`archival::around`), and the object is the
    // file either way.
    if f != g {
        return Ok(false);
    }
    // The file itself: an object's root, or the one entry of the directory made around it.
    let file = |o: &Object, path: &[u8]| match &o.root.kind {
        EntryKind::Dir { tree } => lookup(repo, *tree, path),
        _ => Ok(Some(o.root.clone())),
    };
    let eb = match b_entry {
        Some(e) => Some(e.clone()),
        None => file(b, &g.path)?,
    };
    let (Some(ea), Some(eb)) = (file(a, &f.path)?, eb) else {
        return Ok(false);
    };
    // Without a content id (more holes than are hashed, or changed while read), only the
    // same chunks say the bytes are the same: the whole entries must be equal.
    if f.id.is_none() {
        return Ok(ea == eb);
    }
    // The same content id says the bytes are the same; the rest of the entry must be too.
    let size_only = |e: &Entry| match &e.kind {
        EntryKind::File { size, .. } => Some(Entry {
            kind: EntryKind::File {
                size: *size,
                content: crate::core::entry::Content::Empty,
            },
            ..e.clone()
        }),
        _ => None,
    };
    Ok(size_only(&ea).is_some() && size_only(&ea) == size_only(&eb))
}
