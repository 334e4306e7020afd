//! `ore import --each DIR`: one object per regular file under DIR, made from one stored tree.
//!
//! The directory is stored once, exactly as a snapshot stores it (the same walk, dedup and
//! file cache), and the objects are made afterwards from the stored entries. Each object's
//! root is the file's own entry (a hard link becomes the file it names), read as a nameless
//! directory holding it whose block is implied, not stored (`core::implied`). Each file's
//! content id and type come from the store's own read (`snapshot::seen`); a file is opened
//! again only when the store did not see it whole, or when its type's properties are read
//! from it (photos, audio). So what `--each` costs beyond a snapshot is, per file, one object
//! block, and then one filing of every object in one index change and one tag move
//! (docs/ARCHIVAL.md).
//!
//! The objects are made on every core at once (rayon), a window of files at a time: each
//! object's block is sealed; then the window's blocks are stored together, without asking
//! which are stored already ([`Repo::put_sealed_new`]), while the next window is made. Putting each block from the
//! workers themselves was slower than one at a time: they queued on the store's lock
//! (docs/ARCHIVAL.md, "Benchmarks").

use super::again;
use super::contents::{file_size, files, id_of, unhashed, Found};
use super::props::{of_entry, open, Contents, Props};
use super::{Beside, ImportOptions};
use crate::commands::snapshot::seen::SeenFiles;
use crate::core::archival::{around, Object, Value, FILE_ROOTS_FROM};
use crate::core::block::Kind;
use crate::core::entry::{encode, Entry, Snapshot, Warning};
use crate::core::error::Result;
use crate::core::filelist::{FileRef, Files};
use crate::core::index::Root;
use crate::core::repo::Repo;
use crate::core::volume::Volume;
use protocol::Key;
use rayon::prelude::*;
use std::collections::HashSet;
use std::path::Path;

/// What [`objects`] made.
#[derive(Default)]
pub(super) struct Each {
    /// The objects to file, stored.
    pub objects: Vec<(Key, Object)>,
    /// Files the tag holds already, unchanged (`again`): not made into objects again.
    pub unchanged: Vec<(Vec<u8>, Key)>,
    /// Objects of files the tag holds an earlier, different object of.
    pub beside: Vec<Beside>,
}

/// The objects, one per regular file of the tree `stored` holds of directory `dir`, in
/// the tree's order, stored, but for files the index at `index` holds unchanged already
/// (`again`); each file's warnings go to `warnings`.
pub(super) fn objects(
    repo: &Repo,
    stored: &Snapshot,
    dir: &Path,
    index: Option<&Root>,
    opts: &ImportOptions,
    shared: &Shared<'_>,
    warnings: &mut Vec<Warning>,
) -> Result<Each> {
    let files = files(repo, &stored.root, dir)?;
    let mut each = Each {
        objects: Vec::with_capacity(files.len()),
        ..Each::default()
    };
    // Earlier objects of the files whose ids the store's read gave, found in one go; those of
    // the rest a window at a time.
    let mut looked: HashSet<Key> = match index {
        Some(_) => shared.seen.values().map(|s| s.id).collect(),
        None => HashSet::new(),
    };
    let mut contents = again::by_contents(repo, index, &looked)?;
    // A window at a time, so that the sealed blocks waiting to be stored stay few; each
    // window's blocks are stored while the next window is made.
    std::thread::scope(|s| -> Result<()> {
        let mut storing: Option<std::thread::ScopedJoinHandle<'_, Result<()>>> = None;
        let mut opened = 0usize;
        for window in files.chunks(WINDOW) {
            let made: Vec<Made> = window
                .par_iter()
                .map(|f| object(repo, stored, f, opts, shared))
                .collect::<Result<_>>()?;
            let earlier = match index {
                None => vec![None; made.len()],
                Some(root) => {
                    let refs: Vec<&Object> = made.iter().map(|m| &m.object).collect();
                    let ids: Vec<Vec<Key>> = (refs.iter())
                        .map(|o| again::ids_of(repo, o))
                        .collect::<Result<_>>()?;
                    let missing: HashSet<Key> = (ids.iter().flatten())
                        .filter(|id| !looked.contains(*id))
                        .copied()
                        .collect();
                    contents.extend(again::by_contents(repo, index, &missing)?);
                    looked.extend(missing);
                    // A file of no content id (more holes than are hashed) is found by its
                    // name instead.
                    let candidates = (refs.iter().zip(&ids))
                        .map(|(o, ids)| match ids.is_empty() {
                            true => again::named(repo, root, o),
                            false => Ok(again::of_contents(ids, &contents)),
                        })
                        .collect::<Result<Vec<_>>>()?;
                    let entries: Vec<&Entry> = window.iter().map(|f| &f.entry).collect();
                    again::judge(repo, &refs, Some(&entries), candidates)?
                }
            };
            let mut blocks = Vec::with_capacity(made.len());
            for (m, e) in made.into_iter().zip(earlier) {
                warnings.extend(m.warnings);
                opened += usize::from(m.opened);
                match e {
                    Some(e) if e.same => {
                        each.unchanged.push((m.object.source, e.key));
                        continue;
                    }
                    Some(e) => each.beside.push(Beside {
                        source: m.object.source.clone(),
                        key: m.key,
                        earlier: e.key,
                    }),
                    None => {}
                }
                blocks.extend(m.blocks);
                each.objects.push((m.key, m.object));
            }
            if let Some(t) = storing.take() {
                joined(t)?;
            }
            storing = Some(
                s.spawn(move || match repo.format().format >= FILE_ROOTS_FROM {
                    true => repo.put_sealed_new(blocks),
                    // The directories of an older archive's objects may be stored already.
                    _ => repo.put_sealed(blocks),
                }),
            );
        }
        protocol::log::debug(&format!(
            "import --each: {} file(s), {opened} opened again after the store (`snapshot::seen`), \
             {} on the tag already, unchanged",
            files.len(),
            each.unchanged.len()
        ));
        storing.map_or(Ok(()), joined)
    })?;
    Ok(each)
}

/// What a thread storing blocks ended with (its panic goes on here).
fn joined(t: std::thread::ScopedJoinHandle<'_, Result<()>>) -> Result<()> {
    t.join().unwrap_or_else(|p| std::panic::resume_unwind(p))
}

/// Files made into objects at once.
const WINDOW: usize = 4096;

/// What every object of one run is made with: the user's `--set`, the disk a catalogue
/// describes, what the store's read saw of each file (`snapshot::seen`), and the directory's
/// absolute path, which each file's source extends.
pub(super) struct Shared<'a> {
    pub set: &'a [(String, Value)],
    pub catalogue: Option<Volume>,
    pub seen: SeenFiles,
    pub source: Vec<u8>,
}

/// One file's object, its key, and its blocks (its own, and in an archive older than
/// [`FILE_ROOTS_FROM`] its directory's), sealed.
struct Made {
    key: Key,
    object: Object,
    warnings: Vec<Warning>,
    blocks: Vec<(Key, Vec<u8>)>,
    /// Whether its file was opened again after the store.
    opened: bool,
}

fn object(
    repo: &Repo,
    stored: &Snapshot,
    f: &Found,
    opts: &ImportOptions,
    shared: &Shared<'_>,
) -> Result<Made> {
    // Opened again (once, for its properties and its content id) only when the store's read
    // did not see it whole (see `snapshot::seen`), or its type's properties are read from it.
    let seen = shared.seen.get(&f.rel);
    let file = match seen {
        Some(s) if !(opts.extract && crate::core::extract::reads_contents(s.mime)) => None,
        _ => open(&f.entry, &f.path),
    };
    let contents = match (seen, &file) {
        (Some(s), file) => Contents::Seen(s.mime, file.as_ref()),
        (None, Some(file)) => Contents::Opened(file),
        (None, None) => Contents::None,
    };
    let (props, warning) = properties(f, opts, contents);
    let mut warnings: Vec<Warning> = warning.into_iter().collect();
    let size = file_size(&f.entry);
    let id = match seen {
        Some(s) => Ok(s.id),
        None => id_of(repo, &f.entry, file.as_ref()),
    };
    let id = match id {
        Ok(id) => Some(id),
        Err(why) => {
            warnings.push(unhashed(&f.path, &why));
            None
        }
    };
    let listed = vec![FileRef {
        path: f.entry.name.clone(),
        size,
        id,
    }];
    // The file itself: read as a nameless directory holding it (`Object::tree`), whose block
    // is implied, not stored (`core::implied`); stored in an archive older than that.
    let mut blocks = Vec::with_capacity(1);
    let root = match repo.format().format >= FILE_ROOTS_FROM {
        true => f.entry.clone(),
        false => {
            let (leaf, made) = around(&f.entry);
            let key = repo.keys().key_of(Kind::Dir as u8, &leaf);
            blocks.push((key, repo.sealed(Kind::Dir, &key, &leaf)?));
            made(key)
        }
    };
    let object = Object {
        props: props.finish(shared.set),
        root,
        imported_ns: stored.time,
        host: stored.host.clone(),
        user: stored.user.clone(),
        source: crate::core::util::join_path(&shared.source, &f.rel),
        parent: None,
        size,
        files: Files::Inline(listed),
        catalogue: shared.catalogue.clone(),
    };
    let plain = encode(&object);
    let key = repo.keys().key_of(Kind::Object as u8, &plain);
    blocks.push((key, repo.sealed(Kind::Object, &key, &plain)?));
    Ok(Made {
        key,
        object,
        warnings,
        blocks,
        opened: file.is_some(),
    })
}

/// A file's properties (none but `--set` with `--no-extract`).
fn properties(f: &Found, opts: &ImportOptions, contents: Contents<'_>) -> (Props, Option<Warning>) {
    if !opts.extract {
        return (Props::default(), None);
    }
    let name = f.path.file_name().map(|n| n.to_string_lossy().into_owned());
    let size = file_size(&f.entry);
    of_entry(&name.unwrap_or_default(), size, &f.entry, &f.path, contents)
}
