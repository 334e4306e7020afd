//! What gc does with the reflog before it marks: the archive's reflog retention.
//!
//! `forget` moves a tag, but the reflog still names every snapshot the tag named before, and
//! the backend's tag history every value the tag had: both are roots, so that a mistaken
//! `forget` or `reset` can be undone (`ore reflog`, `ore reset`). Without an expiry they keep
//! everything forever, and `forget` then `gc` frees nothing. So an archive has a retention
//! (the format record's `reflog_keep`, 14 days unless set: `ore reflog keep`), and a gc that
//! may expire history (full access: the backend offers `expire-tag-history`) first drops the
//! entries and kept values older than that. A connection that may not remove — append-only —
//! never shortens history: there gc applies no retention, and says so.
//!
//! gc also says how many blocks only the reflog and the kept history still hold (blocks no
//! tag reaches), and how to free them: the first mark walks the tags, then the reflog and the
//! history, and counts what only the second part reached.

use super::GcOptions;
use crate::core::error::Result;
use crate::core::repo::Repo;
use std::collections::BTreeMap;

/// Which reflog entries gc expires before it marks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ReflogExpiry {
    /// Those older than the archive's retention (with full access).
    #[default]
    Retention,
    /// All of them, and every kept value of every tag (`gc --expire-reflog`).
    All,
}

/// What gc did with the reflog.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct ReflogOutcome {
    /// The retention applied (`14d`, `never`, `all` for `--expire-reflog`), or why none was
    /// (`append-only`).
    pub retention: String,
    /// Entries dropped (or, in a dry run, that would be).
    pub expired: usize,
    /// Entries kept.
    pub kept: usize,
    /// Blocks that no tag reaches and only the reflog or the tags' kept history still holds.
    pub held_only_by_reflog: u64,
}

/// Applies the reflog expiry `opts` asks for, when this connection may: the outcome so far.
pub(super) fn apply(repo: &Repo, opts: &GcOptions) -> Result<ReflogOutcome> {
    use protocol::history::EXPIRE;
    let mut out = ReflogOutcome::default();
    let info = repo.backend().info();
    if !info.admin_commands.iter().any(|c| c == EXPIRE) {
        out.retention = "append-only".into();
        return Ok(out);
    }
    let now = crate::core::util::now_ns();
    let cutoff = match opts.reflog {
        ReflogExpiry::All => {
            out.retention = "all".into();
            i64::MAX
        }
        ReflogExpiry::Retention => {
            let keep = repo.format().reflog_keep.clone();
            out.retention = keep.unwrap_or_else(|| crate::core::format::DEFAULT_REFLOG_KEEP.into());
            match repo.format().reflog_keep_secs()? {
                None => return Ok(out),
                Some(secs) => now.saturating_sub(secs.saturating_mul(1_000_000_000)),
            }
        }
    };
    let cutoff = cutoff.min(now);
    if let Some(why) = crate::core::reflog::rewound(repo, &read_history(repo)?, i64::MIN)? {
        out.retention = format!("not applied: {why}");
        return Ok(out);
    }
    let (expired, kept) = crate::core::reflog::expire_entries_only(repo, cutoff, true)?;
    out.expired = expired;
    out.kept = kept;
    if opts.dry_run {
        return Ok(out);
    }
    // The new reflog blocks are written under a lease, so that no other gc's sweep takes them
    // for garbage; only when there is something to drop (a lease taken for nothing would also
    // take over a dead run's slot unsaid, before the sweep that reports it).
    if expired > 0 {
        let _lease = crate::core::lease::Lease::acquire(repo)?;
        let (expired, kept) = crate::core::reflog::expire_entries_only(repo, cutoff, false)?;
        out.expired = expired;
        out.kept = kept;
    }
    use crate::core::reflog::REFLOG_TAG;
    // Checked again just before: every earlier head holds only what the reflog still has or
    // what was just expired.
    let history = read_history(repo)?;
    match crate::core::reflog::rewound(repo, &history, cutoff)? {
        None => {
            repo.backend()
                .admin(EXPIRE, &["0".into(), REFLOG_TAG.into()])?;
        }
        Some(why) => protocol::log::warning(&format!("gc: earlier reflog heads kept: {why}")),
    }
    match opts.reflog {
        // Asked for by name: every kept value goes, whenever it was replaced.
        ReflogExpiry::All => {
            repo.backend().admin(EXPIRE, &["0".into()])?;
        }
        ReflogExpiry::Retention => expire_history(repo, &history, cutoff / NS)?,
    }
    Ok(out)
}

const NS: i64 = 1_000_000_000;

/// Every kept value of every tag, oldest first.
fn read_history(repo: &Repo) -> Result<Vec<protocol::history::Entry>> {
    use protocol::history::{parse, TAG_HISTORY};
    let out = repo.backend().admin(TAG_HISTORY, &[])?;
    Ok(parse(&out.json.to_string())?)
}

/// Expires the kept values that stopped being their tag's value before `cutoff` (seconds):
/// a value's age counts from the move that replaced it, not from when it was first seen, so a
/// snapshot that a tag named for a year and someone moved the tag off yesterday stays kept for
/// the whole retention. The backend expires by first sight (`expire-tag-history SECONDS
/// TAG`): for each tag, the age given reaches exactly the values replaced before the cutoff.
fn expire_history(repo: &Repo, history: &[protocol::history::Entry], cutoff: i64) -> Result<()> {
    use protocol::history::EXPIRE;
    let now = crate::core::util::now_ns() / NS;
    let mut by_tag: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
    for e in history
        .iter()
        .filter(|e| !crate::core::format::is_system_tag(&e.tag))
    {
        by_tag.entry(&e.tag).or_default().push(e.time);
    }
    for (tag, mut times) in by_tag {
        times.sort_unstable();
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
