//! `ore check`'s comparison of every tag with its own history.
//!
//! A tag is the only thing that says which snapshot is a tag's newest. If the backend loses a
//! tag's newest value — a repair that could not read the record that set it, a tag file put
//! back from an old copy — the tag quietly names an older snapshot whose blocks are all sound,
//! and a walk of the blocks finds nothing wrong. The reflog (FORMAT.md §9) records every move
//! of every tag, so the newest entry for a tag says what it should name at least; the
//! backend's tag history (PROTOCOL.md §6) says, in the order the backend saw them, every value
//! it had. A tag is **behind its own history** when it differs from the value the reflog's
//! newest entry gave it and neither of these holds:
//!
//! - it descends from that value (a snapshot's chain reaches it): a run made the move and was
//!   killed before recording it, which loses only that entry;
//! - the backend's tag history saw its value set after that one: a later move whose record was
//!   lost the same way (a `forget` or `reset` killed between moving the tag and recording it).
//!
//! Such a tag is reported with both keys, the reflog entry's time and the command that puts it
//! back. A reflog that cannot be read is reported, and so is one that is gone while the
//! backend's tag history shows it existed (or, without such a history, while tags exist that
//! every move records in it). A freshly made archive whose tags never moved has no reflog, and
//! that is fine.

use crate::core::error::Result;
use crate::core::reflog::{RefEntry, REFLOG_TAG};
use crate::core::repo::Repo;
use protocol::history::{self, TAG_HISTORY};
use protocol::Key;
use std::collections::{BTreeMap, HashSet};

/// A tag (or the reflog) that does not agree with its history.
#[derive(Clone, Debug, serde::Serialize)]
pub struct HistoryProblem {
    /// The tag (`ore:reflog` for the reflog itself).
    pub tag: String,
    /// What it names now (`None`: it does not exist).
    #[serde(serialize_with = "crate::core::util::ser_opt_key")]
    pub current: Option<Key>,
    /// What its history says it should name.
    #[serde(serialize_with = "crate::core::util::ser_opt_key")]
    pub expected: Option<Key>,
    /// When the history recorded that, ns since the epoch, if it says.
    pub time: Option<i64>,
    pub message: String,
    /// The command that puts it back, when there is one.
    pub repair: Option<String>,
}

/// Compares every tag with the reflog, and the reflog with the backend's tag history.
pub fn compare(repo: &Repo) -> Result<Vec<HistoryProblem>> {
    let (kept, damaged) = kept_history(repo);
    let mut out: Vec<HistoryProblem> = damaged.into_iter().collect();
    let raw = repo.backend().list_tags()?;
    let names: HashSet<&str> = raw.iter().map(|(n, _)| n.as_str()).collect();
    let tags: BTreeMap<String, Key> = repo.tags()?.into_iter().collect();
    if !names.contains(REFLOG_TAG) {
        out.extend(missing_reflog(&tags, kept.as_deref()));
        return Ok(out);
    }
    let entries = match crate::core::reflog::entries(repo) {
        Ok(e) => e,
        Err(e) => {
            out.push(unreadable_reflog(repo, &e.to_string(), kept.as_deref()));
            return Ok(out);
        }
    };
    let mut newest: BTreeMap<String, RefEntry> = BTreeMap::new();
    for e in entries {
        newest.insert(e.tag.clone(), e);
    }
    for (tag, e) in newest {
        // A tag that holds something other than a key is reported as such already.
        if names.contains(tag.as_str()) && !tags.contains_key(&tag) {
            continue;
        }
        let current = tags.get(&tag).copied();
        if current == e.new {
            continue;
        }
        if let (Some(c), Some(n)) = (current, e.new) {
            if descends(repo, c, n) || set_later(kept.as_deref(), &tag, c, n) {
                continue;
            }
        }
        out.push(behind(repo, &tag, current, &e));
    }
    Ok(out)
}

/// Every value each tag has had, as the backend kept it (oldest first); `None` when the
/// backend does not say. A backend that keeps a history and says it is damaged (a `Corrupt`
/// answer) is a problem to report: values it lost may be what gc was keeping.
fn kept_history(repo: &Repo) -> (Option<Vec<history::Entry>>, Option<HistoryProblem>) {
    let answer = match repo.backend().admin(TAG_HISTORY, &[]) {
        Ok(out) => history::parse(&out.json).map_err(crate::Error::from),
        Err(e) if e.code() == protocol::ErrorCode::Corrupt => {
            let problem = HistoryProblem {
                tag: TAG_HISTORY.into(),
                current: None,
                expected: None,
                time: None,
                message: format!("the backend's tag history is damaged: {e}"),
                repair: None,
            };
            return (None, Some(problem));
        }
        Err(e) => Err(e.into()),
    };
    match answer {
        Ok(h) => (Some(h), None),
        Err(e) => {
            protocol::log::debug(&format!(
                "check: the backend gave no tag history ({e}); tags are compared with the reflog alone"
            ));
            (None, None)
        }
    }
}

/// Whether `from`'s chain (its `previous` links) reaches `ancestor`. A snapshot that cannot be
/// read ends the search (its damage is reported by the walk).
fn descends(repo: &Repo, from: Key, ancestor: Key) -> bool {
    let mut seen = HashSet::new();
    let mut next = Some(from);
    while let Some(k) = next {
        if k == ancestor {
            return true;
        }
        if !seen.insert(k) {
            return false;
        }
        next = repo.node(k).ok().and_then(|n| n.below());
    }
    false
}

/// Whether the backend's tag history saw `tag` set to `current` after it saw it set to `newer`.
fn set_later(kept: Option<&[history::Entry]>, tag: &str, current: Key, newer: Key) -> bool {
    let Some(kept) = kept else { return false };
    let at = |k: Key| {
        let v = k.to_hex();
        kept.iter()
            .filter(|e| e.tag == tag)
            .position(|e| e.value == v)
    };
    matches!((at(current), at(newer)), (Some(c), Some(n)) if c > n)
}

fn show(k: Option<Key>) -> String {
    k.map_or("nothing".into(), |k| k.to_hex())
}

/// The report for a tag that differs from its newest reflog entry. It names snapshots by the
/// keys users know (a tag and the reflog hold chain links; `ore reset` takes either).
fn behind(repo: &Repo, tag: &str, current: Option<Key>, e: &RefEntry) -> HistoryProblem {
    let key = |k: Key| repo.snapshot_key(k).unwrap_or(k);
    let when = format!(
        "{}, {} by {}@{}",
        crate::core::util::format_time(e.time),
        e.action,
        e.user,
        e.host
    );
    let (message, repair) = match (current.map(key), e.new.map(key)) {
        // One snapshot at two places (a forget linked it anew): the places are what differ.
        (Some(c), Some(n)) if c == n => {
            let (cn, nn) = (show(current), show(e.new));
            (
                format!(
                    "tag {tag} names snapshot {c} through chain link {cn}, but its newest reflog \
                     entry ({when}) moved it to chain link {nn} (the same snapshot, another \
                     chain below it), and {cn} does not descend from it: the tag is behind its \
                     own history (rolled back, e.g. by a repair that lost the record that set it)"
                ),
                Some(format!("ore reset {tag} {nn}")),
            )
        }
        (Some(c), Some(n)) => (
            format!(
                "tag {tag} names {c}, but its newest reflog entry ({when}) moved it to {n}, and \
                 {c} does not descend from it: the tag is behind its own history (rolled back, \
                 e.g. by a repair that lost the record that set it)"
            ),
            Some(format!("ore reset {tag} {n}")),
        ),
        (None, Some(n)) => (
            format!(
                "tag {tag} does not exist, but its newest reflog entry ({when}) set it to {n}: \
                 the tag was lost"
            ),
            Some(format!("ore reset {tag} {n}")),
        ),
        (current, None) => (
            format!(
                "tag {tag} names {}, but its newest reflog entry ({when}) removed it",
                show(current)
            ),
            None,
        ),
    };
    HistoryProblem {
        tag: tag.to_string(),
        current,
        expected: e.new,
        time: Some(e.time),
        message,
        repair,
    }
}

/// The report for a reflog that is gone, if it should be there.
fn missing_reflog(
    tags: &BTreeMap<String, Key>,
    kept: Option<&[history::Entry]>,
) -> Option<HistoryProblem> {
    let problem = |message: String, expected: Option<(Key, i64)>| HistoryProblem {
        tag: REFLOG_TAG.into(),
        current: None,
        expected: expected.map(|(k, _)| k),
        time: expected.map(|(_, t)| t.saturating_mul(1_000_000_000)),
        repair: expected.map(|(k, _)| format!("ore reflog reset {k}")),
        message,
    };
    let Some(kept) = kept else {
        // Without the backend's history, any tag says there was a move to record.
        return (!tags.is_empty()).then(|| {
            problem(
                format!(
                    "the reflog is missing: tag {REFLOG_TAG} does not exist, though {} tag(s) \
                     do and every move of a tag is recorded in it",
                    tags.len()
                ),
                None,
            )
        });
    };
    let heads: Vec<&history::Entry> = kept.iter().filter(|e| e.tag == REFLOG_TAG).collect();
    if let Some(last) = heads.last() {
        let key = crate::core::format::parse_tag_value(last.value.as_bytes());
        return Some(problem(
            format!(
                "the reflog is missing: tag {REFLOG_TAG} does not exist, but the backend's tag \
                 history kept {} of its heads, the newest {} (first seen {}): the record of \
                 every tag's moves is lost",
                heads.len(),
                last.value,
                crate::core::util::format_time(last.time.saturating_mul(1_000_000_000))
            ),
            key.map(|k| (k, last.time)),
        ));
    }
    // No trace of a reflog at all: a tag that has had two values was moved at least twice, and
    // the second move could not have gone unrecorded unless the reflog was removed.
    tags.keys().find_map(|t| {
        let n = kept.iter().filter(|e| &e.tag == t).count();
        (n >= 2).then(|| {
            problem(
                format!(
                    "the reflog is missing: tag {t} has had {n} values, every move of a tag is \
                     recorded in the reflog, and tag {REFLOG_TAG} does not exist"
                ),
                None,
            )
        })
    })
}

/// The report for a reflog that cannot be read.
fn unreadable_reflog(repo: &Repo, why: &str, kept: Option<&[history::Entry]>) -> HistoryProblem {
    let earlier = kept.map_or(0, |k| k.iter().filter(|e| e.tag == REFLOG_TAG).count());
    HistoryProblem {
        tag: REFLOG_TAG.into(),
        current: crate::core::reflog::head(repo).ok().flatten(),
        expected: None,
        time: None,
        message: format!(
            "the reflog cannot be read ({why}): no tag could be compared with its history{}",
            if earlier > 1 {
                format!(
                    "; `ore tag-history {REFLOG_TAG}` lists its {earlier} kept heads and \
                     `ore reflog reset KEY` makes one of them the reflog again"
                )
            } else {
                String::new()
            }
        ),
        repair: None,
    }
}
