//! `ore import TAG PATH...`: each PATH stored as one archive object with its properties, and
//! filed in the tag's index (docs/ARCHIVAL.md, [`crate::core::archival`]).
//!
//! Each tree is stored exactly as a snapshot stores it ([`crate::commands::snapshot::store`]),
//! under a lease, so its blocks dedup against every snapshot and object of the archive and no
//! gc removes them before the tag names them. Only then are the object blocks, the index's
//! new nodes and a new head stored, and the tag moved by compare-and-swap. When another run
//! moved the tag meanwhile, the changes are worked out again against the index that run made
//! ([`commit`]), so neither run's objects are lost and no object's history forks. Everything a user can get wrong (the tag, `--set`,
//! `--replace`) is checked before anything is stored, and the tag moves only at the end.
//!
//! The file cache is read, so unchanged files are not read again, but not written: a
//! snapshot's cache rows describe the snapshot's own trees. A catalogue reads and writes a
//! cache of its own (`core::filecache::catalogue_path`): its entries hold content ids.

mod again;
mod contents;
mod each;
mod filing;
mod props;

use crate::commands::snapshot::{store, SnapshotOptions};
use crate::core::archival::{settle, Object, Prop, Setting, Value};
use crate::core::block::Kind;
use crate::core::entry::{encode, EntryKind, Warning};
use crate::core::error::{Error, Result};
pub use crate::core::objects::{find_object, head_of};
use crate::core::repo::Repo;
use filing::commit;
pub use filing::forget_where;

/// Files objects loaded from an archive tag's dump stream ([`filing::file_loaded`]).
pub fn file_loaded(
    repo: &Repo,
    tag: &str,
    objects: &[(Key, Object)],
    replaced: &std::collections::HashSet<Key>,
) -> Result<(Key, bool, u64)> {
    crate::core::format::check_user_tag(tag)?;
    filing::file_loaded(repo, tag, objects, replaced)
}
use protocol::Key;
use std::path::PathBuf;

/// What to import and how.
#[derive(Debug, Default)]
pub struct ImportOptions {
    pub tag: String,
    pub paths: Vec<PathBuf>,
    /// `--set`: wins over what is extracted.
    pub set: Vec<Setting>,
    /// The object (a key or a unique prefix of one) the one imported replaces.
    pub replace: Option<String>,
    /// Find size, mtime, name and type from the files.
    pub extract: bool,
    /// `--each`: one object per regular file under each directory PATH.
    pub each: bool,
    /// `--catalogue-only`: record each tree's names, metadata and content ids, not its data.
    pub catalogue: bool,
    /// `--volume`: the name of the disk a catalogued tree is on (default: its label, else
    /// its mount point).
    pub volume: Option<String>,
    /// How to store each tree: exclude rules, file cache, host, progress… (its `tag` and
    /// `paths` are set per object).
    pub store: SnapshotOptions,
}

/// What an import did.
#[derive(Debug)]
pub struct ImportOutcome {
    pub objects: Vec<(Key, Object)>,
    pub head: Key,
    /// Another run moved the tag meanwhile (its objects are kept).
    pub raced: bool,
    /// Index nodes the last try stored: what filing the objects rewrote.
    pub index_nodes: u64,
    /// Files read (or for a catalogue, hashed); the rest were known to the cache unchanged.
    pub files_read: u64,
    pub warnings: Vec<Warning>,
    /// Objects not filed because the tag holds them already, unchanged (`again`): each
    /// one's source and the object it is.
    pub unchanged: Vec<(Vec<u8>, Key)>,
    /// Objects filed beside an earlier one from the same place that differs: the new one and
    /// the earlier one.
    pub beside: Vec<Beside>,
}

/// An object filed beside an earlier one imported from the same place.
#[derive(Debug)]
pub struct Beside {
    pub source: Vec<u8>,
    pub key: Key,
    pub earlier: Key,
}

/// Files `objects`, whose blocks (and trees) are stored already, on archive tag `tag`, under
/// a lease: what `ore import` does once it has stored them, for programs that make objects
/// themselves (the archival benchmark's generator). The new head, whether another run moved
/// the tag meanwhile, and the index nodes stored.
pub fn file(repo: &Repo, tag: &str, objects: &[(Key, Object)]) -> Result<(Key, bool, u64)> {
    crate::core::format::check_user_tag(tag)?;
    let _lease = crate::core::lease::Lease::acquire(repo)?;
    let start = head_of(repo, tag)?;
    commit(repo, tag, start, objects, None)
}

/// Imports `opts.paths` as objects on `opts.tag`.
pub fn import(repo: &Repo, opts: &ImportOptions) -> Result<ImportOutcome> {
    crate::core::format::check_user_tag(&opts.tag)?;
    crate::core::archival::check_writable(repo)?;
    if opts.paths.is_empty() {
        return Err(Error::Usage(
            "nothing to import: give at least one PATH".into(),
        ));
    }
    if opts.volume.as_deref().is_some_and(|v| v.trim().is_empty()) {
        return Err(Error::Usage("--volume: give the disk a name".into()));
    }
    let start = head_of(repo, &opts.tag)?;
    let index = start.as_ref().and_then(|(_, h)| h.index.as_ref());
    let recorded =
        crate::core::objects::recorded_types(&crate::core::index::Tree::new(repo, index))?;
    let set = settle(&opts.set, &opts.tag, &recorded)?;
    let replaced = match &opts.replace {
        None => None,
        Some(_) if opts.each => {
            return Err(Error::Usage(
                "--replace makes one object, and --each many: give one of them".into(),
            ))
        }
        Some(_) if opts.paths.len() > 1 => {
            return Err(Error::Usage(
                "--replace takes one PATH: the object that replaces it".into(),
            ))
        }
        Some(spec) => {
            let head = start.as_ref().map(|(_, h)| h);
            let old = find_object(repo, &opts.tag, head, spec)?;
            if let Some(h) = head {
                crate::core::objects::check_current(repo, &opts.tag, h, &old)?;
            }
            Some(old)
        }
    };
    // Each PATH is stored under its lease and filed (its tag moved) before the next one is
    // stored: a lease held while another is taken would wait for a gc that waits for it,
    // and many held at once made each new one slower to take.
    let mut objects = Vec::new();
    let mut warnings = Vec::new();
    let (mut unchanged, mut beside) = (Vec::new(), Vec::new());
    let (mut head, mut raced, mut index_nodes, mut files_read) = (None, false, 0, 0);
    let mut start = start;
    for path in &opts.paths {
        let was_dir = path.is_dir();
        let mut one = SnapshotOptions {
            tag: opts.tag.clone(),
            paths: vec![path.clone()],
            archive_object: true,
            catalogue: opts.catalogue,
            // Each file's id and type from the store's own read, not from reading it again.
            see_files: opts.each && was_dir && !opts.catalogue,
            ..clone_store(&opts.store)
        };
        // A catalogue describes one disk: another file system mounted inside it is another
        // disk, which it would name wrongly.
        one.one_file_system |= opts.catalogue;
        let volume = match opts.catalogue {
            // The file cache knows stored contents, not content ids: a catalogue has a cache
            // of its own beside it, which makes cataloguing a disk again cost a stat for each
            // file that did not change.
            true => {
                one.cache = (opts.store.cache.as_deref())
                    .and_then(|c| c.parent())
                    .map(|d| crate::core::filecache::catalogue_path(d, &repo.format().archive_id));
                Some(
                    crate::core::volume::of_path(path, opts.volume.as_deref()).map_err(
                        |cause| Error::Io {
                            path: path.clone(),
                            cause,
                        },
                    )?,
                )
            }
            false => None,
        };
        let mut stored = store(repo, &one)?;
        protocol::log::debug(&format!(
            "import: {} stored ({:.2} CPU-s so far)",
            path.display(),
            crate::core::cpustat::process_cpu()
        ));
        // The file cache is not written: its rows describe this tree, not a snapshot (see
        // the module doc). A catalogue's own cache is, once the object is filed.
        let catalogue_cache = stored.done.writer.take().filter(|_| opts.catalogue);
        files_read += stored.snap.stats.files_read;
        warnings.extend(std::mem::take(&mut stored.snap.warnings));
        let index = start.as_ref().and_then(|(_, h)| h.index.as_ref());
        let unchanged_before = unchanged.len();
        let filed = match opts.each && was_dir {
            true => {
                let seen = std::mem::take(&mut stored.seen);
                let shared = each::Shared {
                    set: &set,
                    catalogue: volume,
                    seen,
                    source: crate::core::util::path_bytes(&absolute(path)).to_vec(),
                };
                let made = each::objects(
                    repo,
                    &stored.snap,
                    path,
                    index,
                    opts,
                    &shared,
                    &mut warnings,
                )?;
                unchanged.extend(made.unchanged);
                beside.extend(made.beside);
                made.objects
            }
            false => {
                // A file PATH's root is the directory made around it.
                let base = match was_dir {
                    true => path.clone(),
                    false => path.parent().map(PathBuf::from).unwrap_or_default(),
                };
                let listed = contents::list(repo, &stored.snap.root, &base, &mut warnings)?;
                let object = Object {
                    props: properties(
                        repo,
                        &stored.snap,
                        path,
                        was_dir,
                        opts,
                        &set,
                        &mut warnings,
                    )?,
                    root: stored.snap.root,
                    imported_ns: stored.snap.time,
                    host: stored.snap.host,
                    user: stored.snap.user,
                    source: crate::core::util::path_bytes(&absolute(path)).to_vec(),
                    parent: replaced,
                    size: stored.snap.stats.bytes,
                    files: crate::core::filelist::Files::make(repo, listed)?,
                    catalogue: volume,
                };
                // What the tag holds already from the same place (`again`): the same is not
                // filed again, a different one is filed beside it and named. Stored only
                // once it is to be filed.
                let key = repo.keys().key_of(Kind::Object as u8, &encode(&object));
                match again::earlier(repo, index, &[&object])?.pop().flatten() {
                    Some(e) if e.same && replaced != Some(e.key) => {
                        unchanged.push((object.source, e.key));
                        Vec::new()
                    }
                    e => {
                        if let Some(e) = e.filter(|e| replaced != Some(e.key)) {
                            beside.push(Beside {
                                source: object.source.clone(),
                                key,
                                earlier: e.key,
                            });
                        }
                        repo.put_block(Kind::Object, &encode(&object))?;
                        vec![(key, object)]
                    }
                }
            }
        };
        protocol::log::debug(&format!(
            "import: {} object(s) made ({:.2} CPU-s so far)",
            filed.len(),
            crate::core::cpustat::process_cpu()
        ));
        if filed.is_empty() && unchanged.len() > unchanged_before {
            // All on the tag already.
            continue;
        }
        if filed.is_empty() {
            // `--each` of a directory without a regular file: no head that changes nothing.
            warnings.push(Warning {
                path: crate::core::util::path_bytes(path).to_vec(),
                message: "it holds no regular file: nothing imported from it (--each makes \
                          an object of each regular file)"
                    .into(),
            });
            continue;
        }
        if let Some(l) = &mut stored.lease {
            l.confirm(repo)?;
        }
        let (h, r, n) = commit(repo, &opts.tag, start.take(), &filed, replaced)?;
        protocol::log::debug(&format!(
            "import: filed, {n} index node(s) stored ({:.2} CPU-s so far)",
            crate::core::cpustat::process_cpu()
        ));
        if let (Some(w), Some((object, _))) = (catalogue_cache, filed.first()) {
            // What the cache was written for: the object, which must still be in the archive
            // for the cache to be believed next time (`snapshot::open_cache`).
            w.set_meta("last_snapshot", object.to_hex().as_bytes())?;
            w.set_meta("gc", &stored.done.gc_value)?;
            w.commit()?;
        }
        objects.extend(filed);
        (head, raced, index_nodes) = (Some(h), raced || r, index_nodes + n);
        drop(stored.lease);
        start = head_of(repo, &opts.tag)?;
    }
    // Everything was on the tag already: its head stays.
    let head = head.or_else(|| {
        start
            .as_ref()
            .filter(|_| !unchanged.is_empty())
            .map(|(k, _)| *k)
    });
    let head = head.ok_or_else(|| {
        Error::Usage(match opts.each {
            true => "nothing imported: no PATH holds a regular file (--each makes an object of \
                     each regular file)"
                .into(),
            false => "nothing to import: give at least one PATH".into(),
        })
    })?;
    Ok(ImportOutcome {
        objects,
        head,
        raced,
        index_nodes,
        files_read,
        warnings,
        unchanged,
        beside,
    })
}

/// A new version of object `spec` (a key or a unique prefix of one, on any archive tag) with
/// `set` applied to its properties: the same tree, not stored again, the old object as its
/// parent, filed on the old one's tag in its place. The tag, the new key and the new object.
pub fn reprop(repo: &Repo, spec: &str, set: &[Setting]) -> Result<(String, Key, Object)> {
    crate::core::archival::check_writable(repo)?;
    let spec = spec.to_ascii_lowercase();
    let Some((tag, old)) = crate::core::objects::find_anywhere(repo, &spec)? else {
        return Err(Error::Usage(format!(
            "no archive object `{spec}` (see `ore search`)"
        )));
    };
    let start = head_of(repo, &tag)?;
    if let Some((_, h)) = &start {
        crate::core::objects::check_current(repo, &tag, h, &old)?;
    }
    let index = start.as_ref().and_then(|(_, h)| h.index.as_ref());
    let set = settle(
        set,
        &tag,
        &crate::core::objects::recorded_types(&crate::core::index::Tree::new(repo, index))?,
    )?;
    let mut o: Object = repo.get(old, Kind::Object)?;
    for (key, value) in set {
        o.props.retain(|p| p.key != key);
        o.props.push(Prop { key, value });
    }
    o.props.sort_by(|a, b| a.key.cmp(&b.key));
    o.parent = Some(old);
    o.imported_ns = crate::core::util::now_ns();
    o.host = crate::core::util::hostname();
    o.user = crate::core::meta::username();
    // Under a lease from the moment the new block is stored until the tag names it.
    let mut lease = crate::core::lease::Lease::acquire(repo)?;
    let (key, _) = repo.put_block(Kind::Object, &encode(&o))?;
    lease.confirm(repo)?;
    commit(repo, &tag, start, &[(key, o.clone())], Some(old))?;
    drop(lease);
    Ok((tag, key, o))
}

/// `path` from the root, as the object's source: where its files were is what `ore search
/// --file` and `--name` answer, whatever directory the import ran in.
pub(super) fn absolute(path: &std::path::Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// `store` without what is set per object.
fn clone_store(s: &SnapshotOptions) -> SnapshotOptions {
    SnapshotOptions {
        excludes: s.excludes.clone(),
        rules: s.rules.clone(),
        one_file_system: s.one_file_system,
        atime: s.atime,
        ctime: s.ctime,
        cache: s.cache.clone(),
        skip: s.skip.clone(),
        progress: s.progress.clone(),
        interrupted: s.interrupted.clone(),
        host: s.host.clone(),
        ..SnapshotOptions::default()
    }
}

/// The object's properties: what the stored tree and the contents of a file PATH say
/// (unless `--no-extract`, [`props::of_entry`]), then `--set`.
fn properties(
    repo: &Repo,
    stored: &crate::core::entry::Snapshot,
    path: &std::path::Path,
    was_dir: bool,
    opts: &ImportOptions,
    set: &[(String, Value)],
    warnings: &mut Vec<Warning>,
) -> Result<Vec<Prop>> {
    let mut found = props::Props::default();
    if opts.extract {
        let raw = path.file_name().unwrap_or_default();
        let name = raw.to_string_lossy().into_owned();
        // A file PATH's root is the directory made around it, and the file its one entry:
        // taken as the entry, not looked up by PATH's name, which is not the entry's when
        // PATH is a symlink to the file (the file was given the directory's type and time).
        let entry = match (&stored.root.kind, was_dir) {
            (EntryKind::Dir { tree }, false) => {
                let mut r =
                    crate::core::tree::Reader::<crate::core::tree::DirTree>::new(repo, *tree);
                match (r.next_item()?, r.next_item()?) {
                    (Some(only), None) => only,
                    _ => stored.root.clone(),
                }
            }
            _ => stored.root.clone(),
        };
        let warning;
        // Opened where the store read it (PATH with its symlinks resolved, which the stored
        // tree records), not resolved again: a symlink moved since would name another file.
        let stored_from = (stored.paths.first()).map_or(path, |p| crate::core::util::bytes_path(p));
        let file = props::open(&entry, stored_from);
        let contents = file
            .as_ref()
            .map_or(props::Contents::None, props::Contents::Opened);
        (found, warning) = props::of_entry(&name, stored.stats.bytes, &entry, path, contents);
        warnings.extend(warning);
    }
    Ok(found.finish(set))
}
