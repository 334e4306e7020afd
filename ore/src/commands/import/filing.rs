//! Filing objects in an archive tag's index and moving the tag: the end of every change to
//! an archive tag (`ore import`, `ore props --set`, `ore forget --where`).
//!
//! A change is a plan worked out from the head it is applied to, never a fixed batch:
//! when another run moved the tag between the read and the compare-and-swap, the plan is
//! made again from the head that run stored, so its objects stay, counts stay the index's
//! own, and an object replaced or forgotten meanwhile is not replaced again (docs/ARCHIVAL.md,
//! "Imports, races and leases"; `tests/archival_races.rs`).

use crate::core::archival::{
    object_entry, search_entries, type_entries, type_entry, Head, Object, Summary, OBJECTS,
};
use crate::core::block::Kind;
use crate::core::entry::encode;
use crate::core::error::{Error, Result};
use crate::core::index::{self, Batch};
use crate::core::objects::head_of;
use crate::core::reflog::{self, RefEntry};
use crate::core::repo::Repo;
use protocol::Key;
use rayon::prelude::*;

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

    fn store_many(&self, kind: Kind, plains: Vec<Vec<u8>>) -> Result<Vec<Key>> {
        self.stored.set(self.stored.get() + plains.len() as u64);
        self.repo.store_many(kind, plains)
    }
}

/// Files `objects` in the index of the head `tag` names (and takes `replaced` out of the
/// searches), stores a new head and moves the tag to it. The new head's key, whether another
/// run moved the tag meanwhile, and the index nodes stored.
///
/// What is filed is worked out again from each head tried: `replaced` must still be a
/// current object of it. When another run replaced or forgot it meanwhile, nothing is filed
/// and the error says so: a version that replaced a version already replaced would fork the
/// object's history.
pub(super) fn commit(
    repo: &Repo,
    tag: &str,
    current: Option<(Key, Head)>,
    objects: &[(Key, Object)],
    replaced: Option<Key>,
) -> Result<(Key, bool, u64)> {
    let replaced_object: Option<Object> =
        replaced.map(|k| repo.get(k, Kind::Object)).transpose()?;
    let replaced_finding = match (replaced, &replaced_object) {
        (Some(k), Some(o)) => finding_entries(repo, &k, o)?,
        _ => Vec::new(),
    };
    let types = type_entries(objects.iter().map(|(_, o)| o))?;
    let mut plan = |head: Option<&Head>| -> Result<Vec<Batch>> {
        let index = head.and_then(|h| h.index.as_ref());
        // Every core: `--each` files tens of thousands of objects at once, each object's
        // changes packed into one batch (`index::Batch`). Made afresh for each head tried
        // rather than kept: held beside the changes, they doubled the memory of an import of
        // 48,000 files.
        let mut changes: Vec<Batch> = objects
            .par_iter()
            .map(|(key, o)| {
                let entries = finding_entries(repo, key, o)?;
                let summary = encode(&Summary::of(o));
                let bytes = entries.iter().map(Vec::len).sum::<usize>() + 33 + summary.len();
                let mut b = Batch::with_capacity(entries.len() + 1, bytes);
                b.put(&object_entry(key), &summary);
                for e in &entries {
                    b.put(e, &[]);
                }
                Ok(b)
            })
            .collect::<Result<_>>()?;
        changes.push(typing(repo, index, tag, &types)?);
        if let (Some(old), Some(o)) = (replaced, &replaced_object) {
            match crate::core::objects::summary_of(repo, index, &old)? {
                None => {
                    return Err(Error::Usage(format!(
                        "object {old} is no longer on {tag}: another run forgot it meanwhile, so \
                         nothing was filed"
                    )))
                }
                Some(s) if s.replaced => {
                    let newest = match crate::core::objects::newest_version(repo, index, &old).ok()
                    {
                        Some(Some(n)) => n.to_string(),
                        _ => format!("`ore search {tag} ...`"),
                    };
                    return Err(Error::Usage(format!(
                        "object {old} on {tag} was replaced by another run meanwhile, so nothing \
                         was filed: replace the newest version ({newest})"
                    )));
                }
                Some(_) => {}
            }
            let mut summary = Summary::of(o);
            summary.replaced = true;
            let mut b = Batch::default();
            b.put(&object_entry(&old), &encode(&summary));
            for e in &replaced_finding {
                b.remove(e);
            }
            changes.push(b);
        }
        Ok(changes)
    };
    commit_changes(repo, tag, current, "import", &mut plan)
}

/// The `t` entries that record the types in `types` on the index at `index`: each key
/// outside the vocabulary keeps the type it was first filed with on the tag (another run
/// may have filed it meanwhile, so this is worked out on every head tried).
fn typing(
    repo: &Repo,
    index: Option<&index::Root>,
    tag: &str,
    types: &std::collections::BTreeMap<String, crate::core::archival::Type>,
) -> Result<Batch> {
    let recorded =
        crate::core::objects::recorded_types(&crate::core::index::Tree::new(repo, index))?;
    let mut out = Batch::default();
    for (key, &ty) in types {
        match recorded.get(key) {
            Some(&r) if r != ty => {
                return Err(Error::Usage(format!(
                    "`{key}` is {} property on archive tag {tag}, not {}: nothing was filed",
                    r.a(),
                    ty.name()
                )))
            }
            Some(_) => {}
            None => out.put(&type_entry(key), &[ty.byte()]),
        }
    }
    Ok(out)
}

/// Files `objects`, loaded from a dump stream and stored already, on archive tag `tag`:
/// those in `replaced` (named as parent by another of them) listed but out of the searches,
/// the rest current. The new head, whether another run moved the tag meanwhile, and the
/// index nodes stored.
pub(super) fn file_loaded(
    repo: &Repo,
    tag: &str,
    objects: &[(Key, Object)],
    replaced: &std::collections::HashSet<Key>,
) -> Result<(Key, bool, u64)> {
    // A replaced object's entries are removed, not put: loaded again over an earlier load
    // (a sync), it may have been current there.
    let finding: Vec<Vec<Vec<u8>>> = objects
        .par_iter()
        .map(|(key, o)| finding_entries(repo, key, o))
        .collect::<Result<_>>()?;
    let types = type_entries(objects.iter().map(|(_, o)| o))?;
    let mut plan = |head: Option<&Head>| -> Result<Vec<Batch>> {
        let index = head.and_then(|h| h.index.as_ref());
        let mut changes = typing(repo, index, tag, &types)?;
        // An object the tag holds as replaced already (a newer version was made there since
        // an earlier load or sync) stays replaced: it must not come back as a second current
        // version of the same object.
        let mut superseded = std::collections::HashSet::new();
        for (key, _) in objects.iter().filter(|(k, _)| !replaced.contains(k)) {
            if crate::core::objects::summary_of(repo, index, key)?.is_some_and(|s| s.replaced) {
                superseded.insert(*key);
            }
        }
        for ((key, o), entries) in objects.iter().zip(&finding) {
            let mut summary = Summary::of(o);
            summary.replaced = replaced.contains(key) || superseded.contains(key);
            changes.put(&object_entry(key), &encode(&summary));
            let value: Option<&[u8]> = (!summary.replaced).then_some(&[]);
            for e in entries {
                changes.push(e, value);
            }
        }
        Ok(vec![changes])
    };
    let start = head_of(repo, tag)?;
    commit_changes(repo, tag, start, "load", &mut plan)
}

/// Every entry that finds object `key` while it is current: its properties' and words' (`p`,
/// `w`) and its files' (`f`, `n`).
fn finding_entries(repo: &Repo, key: &Key, o: &Object) -> Result<Vec<Vec<u8>>> {
    let mut entries = search_entries(key, o);
    entries.extend(crate::core::filelist::file_entries(
        key,
        &o.files.read(repo)?,
    ));
    Ok(entries)
}

/// How an `o` entry counts: as an object, and as a current one unless it says it was
/// replaced (an entry that does not read counts as current, so a count never goes negative
/// through it).
fn counts(value: &[u8]) -> (u64, u64) {
    let replaced = postcard::from_bytes::<Summary>(value).is_ok_and(|s| s.replaced);
    (1, u64::from(!replaced))
}

/// Applies the changes `plan` makes of the head `tag` names to its index, stores a new head,
/// and moves the tag to it, recording `action` in the reflog. On a race it asks `plan` again,
/// of the head the other run stored, and tries again. The new head's counts are those of the
/// head it replaces, less the `o` entries the changes overwrote or removed (as `apply` saw
/// them) and plus those they put, so they stay the index's own whatever a plan holds. The new
/// head's key, whether there was a race, and the index nodes the last try stored.
fn commit_changes(
    repo: &Repo,
    tag: &str,
    mut current: Option<(Key, Head)>,
    action: &str,
    plan: &mut dyn FnMut(Option<&Head>) -> Result<Vec<Batch>>,
) -> Result<(Key, bool, u64)> {
    let reflog_head = reflog::read_head_ahead(repo).decoded(repo);
    let mut raced = false;
    loop {
        let (expected, before) = match &current {
            Some((k, h)) => (Some(*k), Some(h)),
            None => (None, None),
        };
        let changes = plan(before)?;
        let counting = Counting {
            repo,
            stored: std::cell::Cell::new(0),
        };
        // Of two changes of one key the later is the one applied (`index::apply`).
        let mut put: std::collections::HashMap<&[u8], Option<&[u8]>> = Default::default();
        for (k, v) in changes.iter().flat_map(Batch::iter) {
            if k.first() == Some(&OBJECTS) {
                put.insert(k, v);
            }
        }
        let (objects, live) = before.map_or((0, 0), |h| (h.objects, h.current));
        let (o, c) = (put.par_iter())
            .filter_map(|(_, v)| v.map(counts))
            .reduce(|| (0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
        let (objects, live) = (objects.saturating_add(o), live.saturating_add(c));
        let mut gone = (0u64, 0u64);
        let index = index::apply_batches(
            &counting,
            before.and_then(|h| h.index.as_ref()),
            &changes,
            &mut |item| {
                if item.key.first() == Some(&OBJECTS) {
                    let (o, c) = counts(&item.value);
                    gone = (gone.0 + o, gone.1 + c);
                }
            },
        )?;
        // A change that changed nothing (a load of objects filed already) moves nothing.
        if let (Some((k, _)), true) = (&current, before.is_some_and(|b| b.index == index)) {
            return Ok((*k, raced, counting.stored.get()));
        }
        let head = Head {
            index,
            objects: objects.saturating_sub(gone.0),
            current: live.saturating_sub(gone.1),
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
    let hits = crate::commands::search::search(repo, tag, query, None)?;
    if dry_run || hits.is_empty() {
        return Ok(hits);
    }
    let _lease = crate::core::lease::Lease::acquire(repo)?;
    let Some(start) = head_of(repo, tag)? else {
        return Err(Error::Usage(format!("there is no archive tag {tag}")));
    };
    // Worked out again from each head tried, so that objects another run filed or forgot
    // meanwhile are counted as they are.
    let mut forgotten = hits;
    let mut plan = |head: Option<&Head>| -> Result<Vec<Batch>> {
        let index = head.and_then(|h| h.index.as_ref());
        forgotten = crate::commands::search::search_in(repo, index, query)?;
        let mut changes = Batch::default();
        let mut seen = std::collections::HashSet::new();
        for hit in &forgotten {
            // The object, and the older versions it replaced, while the index lists them.
            let mut at = Some(hit.key);
            while let Some(key) = at {
                if !seen.insert(key) {
                    break;
                }
                if crate::core::objects::summary_of(repo, index, &key)?.is_none() {
                    break;
                }
                let o: Object = repo.get(key, Kind::Object)?;
                changes.remove(&object_entry(&key));
                for e in finding_entries(repo, &key, &o)? {
                    changes.remove(&e);
                }
                at = o.parent;
            }
        }
        Ok(vec![changes])
    };
    commit_changes(repo, tag, Some(start), "forget", &mut plan)?;
    Ok(forgotten)
}
