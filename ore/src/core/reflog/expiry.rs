//! Expiring history: reflog entries, the tags' kept values and earlier reflog heads, without
//! ever dropping what the user did not ask to lose.
//!
//! Three callers: `ore reflog expire --older-than D`, gc's retention, and `ore forget
//! --prune`. Each first checks that no earlier reflog head holds entries the reflog lost
//! ([`rewound`]): an append-only key may point the reflog back at an old head, and expiring
//! the head it left would destroy the moves it hid. A tag's kept values are expired by when the
//! move that *replaced* them happened, not by when they were first seen: a snapshot a tag named
//! for a year and an append-only key moved the tag off yesterday is kept as long as yesterday's
//! move is ([`expire_replaced`]). The backend expires by first sight (`expire-tag-history
//! SECONDS TAG`), so each tag is given the age that reaches exactly its values replaced in
//! time — never one that shares its second with a value replaced later.

use super::{blocks, read_block, rewrite_without, RefEntry, REFLOG_TAG};
use crate::core::error::{Error, Result};
use crate::core::format::parse_tag_value;
use crate::core::repo::Repo;
use protocol::history::{Entry, EXPIRE};
use protocol::Key;
use std::collections::{BTreeMap, HashSet};

const NS: i64 = 1_000_000_000;

/// Every kept value of every tag, oldest first.
pub fn read_history(repo: &Repo) -> Result<Vec<Entry>> {
    use protocol::history::{parse, TAG_HISTORY};
    let out = repo.backend().admin(TAG_HISTORY, &[])?;
    Ok(parse(&out.json.to_string())?)
}

/// Refuses a connection that may not expire history.
fn may_expire(repo: &Repo) -> Result<()> {
    let info = repo.backend().info();
    if info.admin_commands.iter().any(|c| c == EXPIRE) {
        return Ok(());
    }
    Err(Error::Archive(format!(
        "archive {} keeps every value each tag has had, and this connection may not expire \
         that history ({}: `{EXPIRE}` is not offered); nothing was dropped — the owner, with \
         full access, can",
        repo.id(),
        info.description
    )))
}

/// Drops the entries older than `cutoff` (ns since the epoch), the kept values replaced
/// before it and the earlier reflog heads; `(dropped, kept)` entries. Refuses, changing
/// nothing, a connection that may not expire history, and a reflog pointed back.
pub fn expire(repo: &Repo, cutoff: i64, dry_run: bool) -> Result<(usize, usize)> {
    expire_tags(repo, cutoff, &[], dry_run)
}

/// [`expire`] for the entries and kept values of `tags` only (every tag when empty).
pub fn expire_tags(
    repo: &Repo,
    cutoff: i64,
    tags: &[String],
    dry_run: bool,
) -> Result<(usize, usize)> {
    if !dry_run {
        may_expire(repo)?;
    }
    // Asked for by name: a pointed-back reflog stops it only where it hides entries that
    // are not being expired (`--older-than 0s` is the owner clearing everything).
    refuse_if_rewound(repo, &read_history(repo)?, cutoff)?;
    let picked = |e: &RefEntry| tags.is_empty() || tags.contains(&e.tag);
    let counted = rewrite_without(repo, &|e| e.time < cutoff && picked(e), dry_run)?;
    if dry_run {
        return Ok(counted);
    }
    let history = read_history(repo)?;
    expire_old_heads(repo, &history, cutoff)?;
    expire_replaced(repo, &history, cutoff / NS, tags)?;
    Ok(counted)
}

/// What [`expire_dropped`] did.
#[derive(Debug, Clone, Copy, Default)]
pub struct Dropped {
    /// Reflog entries dropped.
    pub entries: usize,
    /// Kept values of the tag expired, and those left because an older value not dropped was
    /// seen in the same span (they go with the retention).
    pub values: usize,
    pub values_left: usize,
}

/// The chain nodes a tag's history names, sorted for [`expire_dropped`] after a `forget`.
#[derive(Debug, Default)]
pub struct Holders {
    /// Nodes whose whole chain is snapshots the forget decided on (kept or dropped): letting
    /// them go loses nothing but the record of moves among those.
    pub free: HashSet<Key>,
    /// Those of them whose chain reaches a snapshot the forget dropped.
    pub holding: HashSet<Key>,
}

/// Drops what holds the snapshots a `forget` of `tag` dropped ([`Holders`]): the tag's reflog
/// entries whose every value is free and one of them holding, the oldest kept values of the
/// tag while they are free (the backend expires by age), up to the newest holding one, and
/// the earlier reflog heads. Nothing else — a reset made yesterday keeps its undo, and so does
/// any move whose other side holds a snapshot the forget did not decide on.
pub fn expire_dropped(repo: &Repo, tag: &str, h: &Holders) -> Result<Dropped> {
    may_expire(repo)?;
    let history = read_history(repo)?;
    refuse_if_rewound(repo, &history, i64::MIN)?;
    let names_gone = |e: &RefEntry| {
        let named: Vec<Key> = e.old.into_iter().chain(e.new).collect();
        e.tag == tag
            && named.iter().all(|k| h.free.contains(k))
            && named.iter().any(|k| h.holding.contains(k))
    };
    let (entries, _) = rewrite_without(repo, &names_gone, false)?;
    // The tag's newest entry says what it should name (`ore check` holds it to that). When the
    // entries that led to its value went and an older one is left newest, a fresh entry
    // records the value the tag has.
    let current = repo.tag(tag)?;
    let newest = super::entries(repo)?
        .into_iter()
        .rev()
        .find(|e| e.tag == tag)
        .map(|e| e.new);
    if entries > 0 && current.is_some() && newest.is_some_and(|n| n != current) {
        super::append(repo, &[RefEntry::now(tag, None, current, "forget --prune")])?;
    }
    let history = read_history(repo)?;
    // The old heads: what they held besides the entries just dropped is in the new reflog.
    let dropped_from = |e: &RefEntry| !names_gone(e);
    match rewound_except(repo, &history, &dropped_from)? {
        None => {
            repo.backend()
                .admin(EXPIRE, &["0".into(), REFLOG_TAG.into()])?;
        }
        Some(why) => protocol::log::warning(&format!("earlier reflog heads kept: {why}")),
    }
    // The tag's kept values, oldest first (time, free, holding): the longest run of free ones
    // from the start, ending at the newest holding one in it.
    let mut values: Vec<(i64, bool, bool)> = history
        .iter()
        .filter(|e| e.tag == tag)
        .map(|e| {
            let k = parse_tag_value(e.value.as_bytes());
            (
                e.time,
                k.is_some_and(|k| h.free.contains(&k)),
                k.is_some_and(|k| h.holding.contains(&k)),
            )
        })
        .collect();
    values.sort_by_key(|v| v.0);
    let all = values.iter().filter(|v| v.2).count();
    let run = values.iter().take_while(|v| v.1).count();
    // Not the last value (the current one), and never splitting a second.
    let mut n = run.min(values.len().saturating_sub(1));
    while n > 0 && (values.get(n).is_some_and(|v| v.0 == values[n - 1].0) || !values[n - 1].2) {
        n -= 1;
    }
    let expired = values[..n].iter().filter(|v| v.2).count();
    if n > 0 {
        let age = (crate::core::util::now_ns() / NS)
            .saturating_sub(values[n - 1].0)
            .max(0);
        repo.backend()
            .admin(EXPIRE, &[age.to_string(), tag.to_string()])?;
    }
    Ok(Dropped {
        entries,
        values: n,
        values_left: all.saturating_sub(expired),
    })
}

/// An earlier value of `ore:reflog` holding entries (of `cutoff` or later: older ones are
/// being expired) that the reflog no longer has, if there is one: someone pointed the reflog
/// back at an older head (an append-only key may), and the entries after it are held only by
/// that kept value. (An earlier head is usually not in the chain itself: an append stores the
/// newest block again with one entry more; its entries are all there.) A kept head no longer
/// stored, or that is no reflog block, holds nothing and is passed over; blocks shared by
/// several heads are read once.
pub fn rewound(repo: &Repo, history: &[Entry], cutoff: i64) -> Result<Option<String>> {
    rewound_except(repo, history, &|e| e.time >= cutoff)
}

/// [`rewound`], where only the entries `matters` picks must be in the reflog.
fn rewound_except(
    repo: &Repo,
    history: &[Entry],
    matters: &dyn Fn(&RefEntry) -> bool,
) -> Result<Option<String>> {
    let chain = blocks(repo)?;
    let mut read: HashSet<Key> = chain.iter().map(|(k, _)| *k).collect();
    let all: HashSet<&RefEntry> = chain.iter().flat_map(|(_, b)| b.entries.iter()).collect();
    for e in history.iter().filter(|e| e.tag == REFLOG_TAG) {
        let mut next = parse_tag_value(e.value.as_bytes());
        while let Some(k) = next.filter(|k| !read.contains(k)) {
            read.insert(k);
            if !repo
                .backend()
                .exists(&[k])?
                .first()
                .copied()
                .unwrap_or(false)
            {
                break;
            }
            // A value that is no reflog block (an append-only key may set any key) reaches
            // nothing, as gc's walk of the kept history treats it.
            let old = match read_block(repo, k) {
                Ok(b) => b,
                Err(e) if crate::core::repo::is_damage(&e) => break,
                Err(e) => return Err(e),
            };
            if let Some(x) = old.entries.iter().find(|x| matters(x) && !all.contains(x)) {
                return Ok(Some(format!(
                    "an earlier reflog head ({}) holds an entry the reflog no longer has ({} of \
                     tag {}; the reflog was pointed back: `ore tag-history {REFLOG_TAG}`, `ore \
                     reflog reset`)",
                    e.value, x.action, x.tag
                )));
            }
            next = old.previous;
        }
    }
    Ok(None)
}

fn refuse_if_rewound(repo: &Repo, history: &[Entry], cutoff: i64) -> Result<()> {
    match rewound(repo, history, cutoff)? {
        None => Ok(()),
        Some(why) => Err(Error::Archive(format!(
            "archive {}: nothing expired: {why}",
            repo.id()
        ))),
    }
}

/// Expires the earlier reflog heads, once they are checked to hold nothing the reflog lacks
/// (but what is older than `cutoff`); else keeps them, with a warning.
pub(crate) fn expire_old_heads(repo: &Repo, history: &[Entry], cutoff: i64) -> Result<()> {
    match rewound(repo, history, cutoff)? {
        None => {
            repo.backend()
                .admin(EXPIRE, &["0".into(), REFLOG_TAG.into()])?;
        }
        Some(why) => protocol::log::warning(&format!("earlier reflog heads kept: {why}")),
    }
    Ok(())
}

/// Expires the kept values (of `tags`, or every user tag when empty) that stopped being their
/// tag's value before `cutoff` (seconds since the epoch).
pub(crate) fn expire_replaced(
    repo: &Repo,
    history: &[Entry],
    cutoff: i64,
    tags: &[String],
) -> Result<()> {
    let now = crate::core::util::now_ns() / NS;
    if cutoff >= now {
        // Every kept value was replaced by now: all of them go (never a current one).
        if tags.is_empty() {
            repo.backend().admin(EXPIRE, &["0".into()])?;
        }
        for tag in tags {
            repo.backend().admin(EXPIRE, &["0".into(), tag.clone()])?;
        }
        return Ok(());
    }
    let mut by_tag: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
    for e in history
        .iter()
        .filter(|e| !crate::core::format::is_system_tag(&e.tag))
    {
        if tags.is_empty() || tags.contains(&e.tag) {
            by_tag.entry(&e.tag).or_default().push(e.time);
        }
    }
    for (tag, mut times) in by_tag {
        times.sort_unstable();
        // The newest value (the current one) came at or before the cutoff: every other was
        // replaced by then, and all go, whatever second they share (`--older-than 0s`).
        if times.last().is_some_and(|&t| t <= cutoff) {
            repo.backend()
                .admin(EXPIRE, &["0".into(), tag.to_string()])?;
            continue;
        }
        if let Some(t) = last_replaced_before(&times, cutoff) {
            let age = now.saturating_sub(t).max(0);
            repo.backend()
                .admin(EXPIRE, &[age.to_string(), tag.to_string()])?;
        }
    }
    Ok(())
}

/// Of values first seen at `times` (sorted), the first-seen time of the newest one replaced
/// (by the next) at or before `cutoff`, such that no later value was first seen in the same
/// second (the backend's expiry would take that one too).
fn last_replaced_before(times: &[i64], cutoff: i64) -> Option<i64> {
    (0..times.len().saturating_sub(1))
        .rev()
        .find(|&i| times[i + 1] <= cutoff && times[i + 1] > times[i])
        .map(|i| times[i])
}

#[cfg(test)]
mod tests {
    use super::last_replaced_before;

    #[test]
    fn a_value_replaced_after_the_cutoff_is_kept_however_old() {
        // First seen at 10, replaced at 100: with a cutoff of 50 it stays.
        assert_eq!(last_replaced_before(&[10, 100], 50), None);
        assert_eq!(last_replaced_before(&[10, 40, 100], 50), Some(10));
        assert_eq!(last_replaced_before(&[10, 40, 45, 100], 50), Some(40));
    }

    #[test]
    fn values_seen_in_one_second_are_never_split() {
        // The value first seen at 40 was replaced at 60 (after the cutoff), and shares its
        // second with the one before: expiring up to 40 would take it too.
        assert_eq!(last_replaced_before(&[10, 40, 40, 60], 50), Some(10));
    }
}
