//! `ore import TAG PATH...`: each PATH stored as one archive object with its properties, and
//! filed in the tag's index (docs/ARCHIVAL.md, [`crate::core::archival`]).
//!
//! Each tree is stored exactly as a snapshot stores it ([`crate::commands::snapshot::store`]),
//! under a lease, so its blocks dedup against every snapshot and object of the archive and no
//! gc removes them before the tag names them. Only then are the object blocks, the index's
//! new nodes and a new head stored, and the tag moved by compare-and-swap. When another run
//! moved the tag meanwhile, the same changes are applied to the index that run made, so
//! neither run's objects are lost. Everything a user can get wrong (the tag, `--set`,
//! `--replace`) is checked before anything is stored, and the tag moves only at the end.
//!
//! The file cache is read, so unchanged files are not read again, but not written: a
//! snapshot's cache rows describe the snapshot's own trees.

use crate::commands::snapshot::{store, SnapshotOptions};
use crate::core::archival::{
    object_entry, search_entries, Head, Object, Prop, Summary, Value, ARCHIVAL_FROM,
};
use crate::core::block::Kind;
use crate::core::entry::{encode, Entry, EntryKind, Warning};
use crate::core::error::{Error, Result};
use crate::core::index::{self, Change};
pub use crate::core::objects::{find_object, head_of};
use crate::core::reflog::{self, RefEntry};
use crate::core::repo::Repo;
use protocol::Key;
use std::path::PathBuf;

/// What to import and how.
#[derive(Debug, Default)]
pub struct ImportOptions {
    pub tag: String,
    pub paths: Vec<PathBuf>,
    /// `--set`: wins over what is extracted.
    pub set: Vec<(String, Value)>,
    /// The object (a key or a unique prefix of one) the one imported replaces.
    pub replace: Option<String>,
    /// Find size, mtime, name and type from the files.
    pub extract: bool,
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
    pub warnings: Vec<Warning>,
}

/// Stores index nodes through an archive, counting them.
struct Counting<'r> {
    repo: &'r Repo,
    stored: std::cell::Cell<u64>,
}

impl index::Nodes for Counting<'_> {
    fn load(&self, key: Key, kind: Kind) -> Result<Vec<u8>> {
        self.repo.load(key, kind)
    }

    fn store(&self, kind: Kind, plain: Vec<u8>) -> Result<Key> {
        self.stored.set(self.stored.get() + 1);
        self.repo.store(kind, plain)
    }
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
    if repo.format().format < ARCHIVAL_FROM {
        return Err(Error::Usage(format!(
            "this archive has format {}, and archive tags need format {ARCHIVAL_FROM}: run `ore upgrade` \
             (ore releases before it then refuse the archive)",
            repo.format().format
        )));
    }
    if opts.paths.is_empty() {
        return Err(Error::Usage(
            "nothing to import: give at least one PATH".into(),
        ));
    }
    let start = head_of(repo, &opts.tag)?;
    let replaced = match &opts.replace {
        None => None,
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
    let (mut head, mut raced, mut index_nodes) = (None, false, 0);
    let mut start = start;
    for path in &opts.paths {
        let one = SnapshotOptions {
            tag: opts.tag.clone(),
            paths: vec![path.clone()],
            archive_object: true,
            ..clone_store(&opts.store)
        };
        let mut stored = store(repo, &one)?;
        // Not written: the rows describe this tree, not a snapshot (see the module doc).
        stored.done.writer = None;
        warnings.extend(std::mem::take(&mut stored.snap.warnings));
        let object = Object {
            props: properties(&stored.snap.root, path, stored.snap.stats.bytes, opts),
            root: stored.snap.root,
            imported_ns: stored.snap.time,
            host: stored.snap.host,
            user: stored.snap.user,
            source: crate::core::util::path_bytes(path).to_vec(),
            parent: replaced,
            size: stored.snap.stats.bytes,
        };
        let (key, _) = repo.put_block(Kind::Object, &encode(&object))?;
        if let Some(l) = &mut stored.lease {
            l.confirm(repo)?;
        }
        let one = [(key, object)];
        let (h, r, n) = commit(repo, &opts.tag, start.take(), &one, replaced)?;
        let [(key, object)] = one;
        objects.push((key, object));
        (head, raced, index_nodes) = (Some(h), raced || r, index_nodes + n);
        drop(stored.lease);
        start = head_of(repo, &opts.tag)?;
    }
    let head =
        head.ok_or_else(|| Error::Usage("nothing to import: give at least one PATH".into()))?;
    Ok(ImportOutcome {
        objects,
        head,
        raced,
        index_nodes,
        warnings,
    })
}

/// A new version of object `spec` (a key or a unique prefix of one, on any archive tag) with
/// `set` applied to its properties: the same tree, not stored again, the old object as its
/// parent, filed on the old one's tag in its place. The tag, the new key and the new object.
pub fn reprop(repo: &Repo, spec: &str, set: &[(String, Value)]) -> Result<(String, Key, Object)> {
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
    let mut o: Object = repo.get(old, Kind::Object)?;
    for (key, value) in set {
        o.props.retain(|p| p.key != *key);
        o.props.push(Prop {
            key: key.clone(),
            value: value.clone(),
        });
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

/// The object's properties: what the files say (unless `--no-extract`), then `--set`.
fn properties(root: &Entry, path: &std::path::Path, bytes: u64, opts: &ImportOptions) -> Vec<Prop> {
    let mut props: Vec<Prop> = Vec::new();
    if opts.extract {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        props.push(Prop {
            key: "name".into(),
            value: Value::Text(name),
        });
        props.push(Prop {
            key: "size".into(),
            value: Value::Int(bytes as i64),
        });
        // A file PATH's root is the directory around it: its own time is the file's.
        let mtime = match std::fs::symlink_metadata(path) {
            Ok(m) if !m.is_dir() => {
                use std::os::unix::fs::MetadataExt;
                m.mtime()
            }
            _ => root.mtime.div_euclid(1_000_000_000),
        };
        props.push(Prop {
            key: "mtime".into(),
            value: Value::Date(mtime),
        });
        let kind = match &root.kind {
            EntryKind::Dir { .. } if path.is_file() => crate::core::extract::mime(path),
            EntryKind::Dir { .. } => Some("inode/directory".to_string()),
            _ => crate::core::extract::mime(path),
        };
        if path.is_file() {
            for (key, value) in crate::core::extract::properties(path, kind.as_deref()) {
                props.retain(|p| p.key != key);
                props.push(Prop { key, value });
            }
        }
        if let Some(kind) = kind {
            props.push(Prop {
                key: "type".into(),
                value: Value::Text(kind),
            });
        }
    }
    for (key, value) in &opts.set {
        props.retain(|p| p.key != *key);
        props.push(Prop {
            key: key.clone(),
            value: value.clone(),
        });
    }
    props.sort_by(|a, b| a.key.cmp(&b.key));
    props
}

/// The index changes that file `objects`, and take `replaced` out of the searches.
fn changes_for(
    repo: &Repo,
    objects: &[(Key, Object)],
    replaced: Option<Key>,
) -> Result<Vec<Change>> {
    let mut changes: Vec<Change> = Vec::new();
    for (key, o) in objects {
        changes.push((object_entry(key), Some(encode(&Summary::of(o)))));
        changes.extend(
            search_entries(key, o)
                .into_iter()
                .map(|e| (e, Some(Vec::new()))),
        );
    }
    if let Some(old) = replaced {
        let o: Object = repo.get(old, Kind::Object)?;
        let mut summary = Summary::of(&o);
        summary.replaced = true;
        changes.push((object_entry(&old), Some(encode(&summary))));
        changes.extend(search_entries(&old, &o).into_iter().map(|e| (e, None)));
    }
    Ok(changes)
}

/// Files `objects` in the index of the head `tag` names (and takes `replaced` out of the
/// searches), stores a new head and moves the tag to it. The new head's key, and whether
/// another run moved the tag meanwhile.
fn commit(
    repo: &Repo,
    tag: &str,
    current: Option<(Key, Head)>,
    objects: &[(Key, Object)],
    replaced: Option<Key>,
) -> Result<(Key, bool, u64)> {
    let changes = changes_for(repo, objects, replaced)?;
    let added = objects.len() as i64;
    let delta = (added, added - i64::from(replaced.is_some()));
    commit_changes(repo, tag, current, &changes, delta, "import")
}

/// Applies `changes` to the index of the head `tag` names, stores a new head whose counts of
/// objects and current objects change by `delta`, and moves the tag to it, recording
/// `action` in the reflog; on a race, does the same on the head the other run stored. The new
/// head's key, and whether there was a race.
pub(crate) fn commit_changes(
    repo: &Repo,
    tag: &str,
    mut current: Option<(Key, Head)>,
    changes: &[Change],
    delta: (i64, i64),
    action: &str,
) -> Result<(Key, bool, u64)> {
    let reflog_head = reflog::read_head_ahead(repo).decoded(repo);
    let mut raced = false;
    let count = |n: u64, d: i64| n.saturating_add_signed(d);
    loop {
        let (expected, before) = match &current {
            Some((k, h)) => (Some(*k), Some(h)),
            None => (None, None),
        };
        let counting = Counting {
            repo,
            stored: std::cell::Cell::new(0),
        };
        let index = index::apply(
            &counting,
            before.and_then(|h| h.index.as_ref()),
            changes.to_vec(),
        )?;
        let head = Head {
            index,
            objects: count(before.map_or(0, |h| h.objects), delta.0),
            current: count(before.map_or(0, |h| h.current), delta.1),
            previous: expected,
            made_ns: crate::core::util::now_ns(),
        };
        let plain = encode(&head);
        let key = repo.keys().key_of(Kind::Head as u8, &plain);
        let entry = RefEntry::now(tag, expected, Some(key), action);
        let staged = reflog_head
            .as_ref()
            .map(|h| reflog::stage(repo, h, &[entry]));
        let mut blocks: Vec<(Kind, &[u8])> = vec![(Kind::Head, &plain)];
        blocks.extend(staged.iter().map(|s| (Kind::Reflog, s.plain.as_slice())));
        repo.put_blocks_durably(&blocks)?;
        if repo.move_tag_staged(tag, expected, key, action, staged)? {
            return Ok((key, raced, counting.stored.get()));
        }
        raced = true;
        current = head_of(repo, tag)?;
    }
}

/// `ore forget TAG --where QUERY` on an archive tag: the objects matching `query`, with the
/// versions they replaced, leave the index (gc then frees what nothing else holds). With
/// `dry_run`, only says which. The objects matched.
pub fn forget_where(
    repo: &Repo,
    tag: &str,
    query: &crate::core::query::Query,
    dry_run: bool,
) -> Result<Vec<crate::commands::search::Hit>> {
    let hits = crate::commands::search::search(repo, tag, query)?;
    if dry_run || hits.is_empty() {
        return Ok(hits);
    }
    let _lease = crate::core::lease::Lease::acquire(repo)?;
    let Some((head_key, head)) = head_of(repo, tag)? else {
        return Err(Error::Usage(format!("there is no archive tag {tag}")));
    };
    let mut changes: Vec<Change> = Vec::new();
    let mut gone = 0i64;
    let mut seen = std::collections::HashSet::new();
    for hit in &hits {
        // The object, and the older versions it replaced, while the index lists them.
        let mut at = Some(hit.key);
        while let Some(key) = at {
            if !seen.insert(key)
                || crate::core::objects::summary_of(repo, head.index.as_ref(), &key)?.is_none()
            {
                break;
            }
            let o: Object = repo.get(key, Kind::Object)?;
            changes.push((object_entry(&key), None));
            changes.extend(search_entries(&key, &o).into_iter().map(|e| (e, None)));
            gone += 1;
            at = o.parent;
        }
    }
    commit_changes(
        repo,
        tag,
        Some((head_key, head)),
        &changes,
        (-gone, -(hits.len() as i64)),
        "forget",
    )?;
    Ok(hits)
}
