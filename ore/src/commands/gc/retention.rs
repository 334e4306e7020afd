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
    let read_history = crate::core::reflog::read_history;
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
    // Checked again just before: every earlier head holds only what the reflog still has or
    // what was just expired.
    let history = read_history(repo)?;
    crate::core::reflog::expire_old_heads(repo, &history, cutoff)?;
    match opts.reflog {
        // Asked for by name: every kept value goes, whenever it was replaced.
        ReflogExpiry::All => {
            repo.backend().admin(EXPIRE, &["0".into()])?;
        }
        ReflogExpiry::Retention => {
            crate::core::reflog::expire_replaced(repo, &history, cutoff / NS, &[])?
        }
    }
    Ok(out)
}

const NS: i64 = 1_000_000_000;
