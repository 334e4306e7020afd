//! Recognising a destination tag that names what the source's tag itself once named.
//!
//! `ore forget` rewrites a tag's chain (and `ore reset` moves a tag anywhere): afterwards the
//! source's chain no longer holds the snapshot a destination was synced to, and a sync that
//! only moves tags forward along the chain would call the destination's tag "moved
//! independently" on every later run. But the destination did not move: the source did, and it
//! recorded the move. So when the destination's value is not on the source's chain, it is
//! looked for among the source tag's former values — every value its reflog and its backend's
//! tag history name, and every snapshot on their chains. Found there, the destination follows
//! the source (compare-and-swap, recorded in the destination's reflog, so the snapshot it moved
//! away from stays there until the destination's reflog expires). Anything else is a real
//! independent move and stays a conflict.
//!
//! The source's history may have been expired since (`ore reflog expire` drops what a forget
//! left behind). The destination's snapshot can still be recognised: a forget rewrites the
//! snapshots it keeps with their contents, times, host and user unchanged — only the link to
//! the snapshot below differs — so a destination value whose snapshot equals one on the
//! source's current chain in all of those is that snapshot before the rewrite
//! ([`rewritten_twin`]), and the destination follows as well. A snapshot the forget dropped
//! has no twin; then the destination's own reflog decides ([`put_there_by_sync`]): when the
//! newest move of its tag is the sync that set this very value, the tag has not moved on its
//! own since, and it follows too.
//!
//! Between archives that share keys a former value is the destination's key itself. Otherwise
//! keys differ, and a former snapshot is translated (with the chain below it) to see whether it
//! is what the destination names; only snapshots taken at the same instant as the
//! destination's are tried, so an independent move translates nothing.

use super::translate::Translator;
use crate::core::entry::Snapshot;
use crate::core::error::Result;
use crate::core::format::parse_tag_value;
use crate::core::repo::Repo;
use protocol::history::{self, TAG_HISTORY};
use protocol::Key;
use std::collections::HashSet;

/// The source snapshot whose copy the destination's `tag` names (`dst_value`), when it is one
/// the source's tag once named or reached; `None` for a destination that moved on its own.
pub(super) fn find(
    src: &Repo,
    dst: &Repo,
    tag: &str,
    dst_value: Key,
    translator: Option<&mut Translator>,
) -> Result<Option<Key>> {
    let former = former_snapshots(src, tag);
    let Some(t) = translator else {
        return Ok(former.contains(&dst_value).then_some(dst_value));
    };
    let Ok(theirs) = dst.snapshot(dst_value) else {
        return Ok(None);
    };
    for candidate in former {
        let Ok(s) = src.snapshot(candidate) else {
            continue;
        };
        if s.time != theirs.time || s.host != theirs.host {
            continue;
        }
        if translated(src, t, candidate)? == Some(dst_value) {
            return Ok(Some(candidate));
        }
    }
    Ok(None)
}

/// Every snapshot the source's `tag` once named (its reflog's entries, its backend's kept
/// history) and every snapshot on their chains. What cannot be read is left out.
fn former_snapshots(src: &Repo, tag: &str) -> Vec<Key> {
    let mut values = Vec::new();
    match crate::core::reflog::entries(src) {
        Ok(entries) => {
            for e in entries.into_iter().filter(|e| e.tag == tag) {
                values.extend(e.old.into_iter().chain(e.new));
            }
        }
        Err(e) => protocol::log::debug(&format!("sync: the source's reflog: {e}")),
    }
    match src.backend().admin(TAG_HISTORY, &[tag.to_string()]) {
        Ok(out) => match history::parse(&out.json) {
            Ok(kept) => values.extend(
                kept.iter()
                    .filter(|e| e.tag == tag)
                    .filter_map(|e| parse_tag_value(e.value.as_bytes())),
            ),
            Err(e) => protocol::log::debug(&format!("sync: the source's tag history: {e}")),
        },
        Err(e) => protocol::log::debug(&format!("sync: the source's tag history: {e}")),
    }
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for v in values {
        let mut next = Some(v);
        while let Some(k) = next {
            if !seen.insert(k) {
                break;
            }
            out.push(k);
            next = src.node(k).ok().and_then(|n| n.below());
        }
    }
    out
}

/// The destination's key of source snapshot `key`, translated with the chain below it (as a
/// sync translates a chain: oldest first, each linked to the translation of the one before).
/// `None` when a snapshot of the chain cannot be read.
fn translated(src: &Repo, t: &mut Translator, key: Key) -> Result<Option<Key>> {
    let mut chain = Vec::new();
    let mut seen = HashSet::new();
    let mut next = Some(key);
    while let Some(k) = next {
        if !seen.insert(k) {
            return Ok(None);
        }
        let Ok(n) = src.node(k) else {
            return Ok(None);
        };
        next = n.below();
        chain.push(n);
    }
    let mut below = None;
    for n in chain.iter().rev() {
        below = Some(t.node(n, below)?);
    }
    Ok(below)
}

/// The snapshot of `chain` (keys readable in `read`: the source's own chain between archives
/// that share keys, its translation in the destination otherwise) of which the destination's
/// `dst_value` is a copy from before a rewrite: the same root, time, host, user, paths and
/// comment, with only the link below it different. `None` when there is none.
pub(super) fn rewritten_twin(
    read: &Repo,
    chain: &[Key],
    dst: &Repo,
    dst_value: Key,
) -> Option<Key> {
    let theirs = dst.snapshot(dst_value).ok()?;
    let same = |s: &Snapshot| {
        s.root == theirs.root
            && s.time == theirs.time
            && s.host == theirs.host
            && s.user == theirs.user
            && s.paths == theirs.paths
            && s.comment == theirs.comment
    };
    chain
        .iter()
        .copied()
        .find(|k| read.snapshot(*k).is_ok_and(|s| same(&s)))
}

/// Whether the newest move of the destination's `tag` in its own reflog is a sync that set it
/// to `dst_value`: then that value came from a source and the tag has not moved on its own
/// since (any other move — a snapshot, a reset — would be a newer entry).
pub(super) fn put_there_by_sync(dst: &Repo, tag: &str, dst_value: Key) -> bool {
    let Ok(entries) = crate::core::reflog::entries(dst) else {
        return false;
    };
    entries
        .iter()
        .rev()
        .find(|e| e.tag == tag)
        .is_some_and(|e| e.new == Some(dst_value) && e.action == "sync")
}
