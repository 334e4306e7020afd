//! Filing objects in an archive tag's index and moving the tag: the end of every change to
//! an archive tag (`ore import`, `ore props --set`, `ore forget --where`).
//!
//! A change is a [`Plan`] worked out from the head it is applied to, never a fixed batch:
//! when another run moved the tag between the read and the compare-and-swap, the plan is
//! made again from the head that run stored, so its objects stay, counts stay the index's
//! own, and an object replaced or forgotten meanwhile is not replaced again (docs/ARCHIVAL.md,
//! "Imports, races and leases"; `tests/archival_races.rs`).

use crate::core::archival::{object_entry, search_entries, Head, Object, Summary};
use crate::core::block::Kind;
use crate::core::entry::encode;
use crate::core::error::{Error, Result};
use crate::core::index::{self, Change};
use crate::core::objects::head_of;
use crate::core::reflog::{self, RefEntry};
use crate::core::repo::Repo;
use protocol::Key;

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

/// Files `objects` in the index of the head `tag` names (and takes `replaced` out of the
/// searches), stores a new head and moves the tag to it. The new head's key, whether another
/// run moved the tag meanwhile, and the index nodes stored.
///
/// What is filed is worked out again from each head tried: an object the index holds already
/// is not counted twice, and `replaced` must still be a current object of it. When another
/// run replaced or forgot it meanwhile, nothing is filed and the error says so: a version
/// that replaced a version already replaced would fork the object's history.
pub(super) fn commit(
    repo: &Repo,
    tag: &str,
    current: Option<(Key, Head)>,
    objects: &[(Key, Object)],
    replaced: Option<Key>,
) -> Result<(Key, bool, u64)> {
    let replaced_object: Option<Object> =
        replaced.map(|k| repo.get(k, Kind::Object)).transpose()?;
    let mut plan = |head: Option<&Head>| -> Result<Plan> {
        let index = head.and_then(|h| h.index.as_ref());
        let mut changes: Vec<Change> = Vec::new();
        let mut added = 0;
        for (key, o) in objects {
            if crate::core::objects::summary_of(repo, index, key)?.is_some() {
                continue;
            }
            changes.push((object_entry(key), Some(encode(&Summary::of(o)))));
            changes.extend(
                search_entries(key, o)
                    .into_iter()
                    .map(|e| (e, Some(Vec::new()))),
            );
            added += 1;
        }
        let mut current = added;
        if let (Some(old), Some(o)) = (replaced, &replaced_object) {
            match crate::core::objects::summary_of(repo, index, &old)? {
                None => {
                    return Err(Error::Usage(format!(
                        "object {old} is no longer on {tag}: another run forgot it meanwhile, so \
                         nothing was filed"
                    )))
                }
                Some(s) if s.replaced => {
                    return Err(Error::Usage(format!(
                        "object {old} on {tag} was replaced by another run meanwhile, so nothing \
                         was filed: replace the newest version (`ore search {tag} ...`)"
                    )))
                }
                Some(_) => {}
            }
            let mut summary = Summary::of(o);
            summary.replaced = true;
            changes.push((object_entry(&old), Some(encode(&summary))));
            changes.extend(search_entries(&old, o).into_iter().map(|e| (e, None)));
            current -= 1;
        }
        Ok(Plan {
            changes,
            delta: (added, current),
        })
    };
    commit_changes(repo, tag, current, "import", &mut plan)
}

/// What one try of a commit does to the index of the head it starts from.
struct Plan {
    pub changes: Vec<Change>,
    /// How the counts of objects and of current objects change.
    pub delta: (i64, i64),
}

/// Applies what `plan` makes of the head `tag` names to its index, stores a new head whose
/// counts change by the plan's delta, and moves the tag to it, recording `action` in the
/// reflog. On a race it asks `plan` again, of the head the other run stored, and tries again.
/// The new head's key, whether there was a race, and the index nodes the last try stored.
fn commit_changes(
    repo: &Repo,
    tag: &str,
    mut current: Option<(Key, Head)>,
    action: &str,
    plan: &mut dyn FnMut(Option<&Head>) -> Result<Plan>,
) -> Result<(Key, bool, u64)> {
    let reflog_head = reflog::read_head_ahead(repo).decoded(repo);
    let mut raced = false;
    let count = |n: u64, d: i64| n.saturating_add_signed(d);
    loop {
        let (expected, before) = match &current {
            Some((k, h)) => (Some(*k), Some(h)),
            None => (None, None),
        };
        let Plan { changes, delta } = plan(before)?;
        let counting = Counting {
            repo,
            stored: std::cell::Cell::new(0),
        };
        let index = index::apply(&counting, before.and_then(|h| h.index.as_ref()), changes)?;
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
    let Some(start) = head_of(repo, tag)? else {
        return Err(Error::Usage(format!("there is no archive tag {tag}")));
    };
    // Worked out again from each head tried, so that objects another run filed or forgot
    // meanwhile are counted as they are.
    let mut forgotten = hits;
    let mut plan = |head: Option<&Head>| -> Result<Plan> {
        let index = head.and_then(|h| h.index.as_ref());
        forgotten = crate::commands::search::search_in(repo, index, query)?;
        let mut changes: Vec<Change> = Vec::new();
        let (mut gone, mut current) = (0i64, 0i64);
        let mut seen = std::collections::HashSet::new();
        for hit in &forgotten {
            // The object, and the older versions it replaced, while the index lists them.
            let mut at = Some(hit.key);
            while let Some(key) = at {
                if !seen.insert(key) {
                    break;
                }
                let Some(summary) = crate::core::objects::summary_of(repo, index, &key)? else {
                    break;
                };
                let o: Object = repo.get(key, Kind::Object)?;
                changes.push((object_entry(&key), None));
                changes.extend(search_entries(&key, &o).into_iter().map(|e| (e, None)));
                gone += 1;
                current += i64::from(!summary.replaced);
                at = o.parent;
            }
        }
        Ok(Plan {
            changes,
            delta: (-gone, -current),
        })
    };
    commit_changes(repo, tag, Some(start), "forget", &mut plan)?;
    Ok(forgotten)
}
