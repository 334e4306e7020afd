//! `ore reflog`: the record of every tag move (`ore::core::reflog`), listed, expired, or
//! pointed back at an earlier head.
//!
//! The reflog itself — its blocks, its head tag, appending — is core, since every tag move
//! writes it. What lives here is the command's part: the lease around the changes, the
//! filtering of a listing, and telling a lost compare-and-swap apart from success.

use crate::core::error::{Error, Result};
use crate::core::reflog::RefEntry;
use crate::core::repo::Repo;
use protocol::Key;

/// The entries, newest first, of every tag or only of `tag`.
pub fn entries(repo: &Repo, tag: Option<&str>) -> Result<Vec<RefEntry>> {
    let mut all = crate::core::reflog::entries(repo)?;
    all.reverse();
    all.retain(|e| tag.is_none_or(|t| t == e.tag));
    Ok(all)
}

/// The snapshot key of each value `entries` name (tags and the reflog hold chain nodes, which
/// are links from format 2 on), so that a listing shows the keys users know; a value that
/// cannot be read maps to itself.
pub fn snapshot_keys(repo: &Repo, entries: &[RefEntry]) -> std::collections::HashMap<Key, Key> {
    let mut out = std::collections::HashMap::new();
    for k in entries.iter().flat_map(|e| e.old.into_iter().chain(e.new)) {
        out.entry(k)
            .or_insert_with(|| repo.snapshot_key(k).unwrap_or(k));
    }
    out
}

/// Points the reflog's head at `key` (an earlier head) under a lease. Fails with
/// [`Error::Conflict`] when another run added to the reflog meanwhile (nothing is changed).
pub fn reset_head(repo: &Repo, key: Key) -> Result<()> {
    let _lease = crate::core::lease::Lease::acquire(repo)?;
    if !crate::core::reflog::reset_head(repo, key)? {
        return Err(Error::Conflict(
            "the reflog moved meanwhile (another run added to it); nothing was changed".into(),
        ));
    }
    Ok(())
}

/// How many entries an expiry dropped (or would drop) and kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expired {
    pub dropped: usize,
    pub kept: usize,
}

/// Drops the entries older than `cutoff` (ns since the epoch), and the backend's tag history
/// with them, under a lease; `dry_run` only counts (and takes no lease).
pub fn expire(repo: &Repo, cutoff: i64, dry_run: bool) -> Result<Expired> {
    let _lease = (!dry_run)
        .then(|| crate::core::lease::Lease::acquire(repo))
        .transpose()?;
    let (dropped, kept) = crate::core::reflog::expire(repo, cutoff, dry_run)?;
    Ok(Expired { dropped, kept })
}

/// Refuses, before anything changes, a connection that may not expire history or remove
/// blocks: `forget --prune` would otherwise forget and then fail half way.
pub fn may_expire(repo: &Repo) -> Result<()> {
    let info = repo.backend().info();
    if info.can_remove
        && info
            .admin_commands
            .iter()
            .any(|c| c == protocol::history::EXPIRE)
    {
        return Ok(());
    }
    Err(Error::Archive(format!(
        "archive {} ({}): --prune needs full access (expiring history and removing blocks), \
         which this connection does not have; nothing was changed — forget without --prune, \
         and let the owner collect",
        repo.id(),
        info.description
    )))
}

/// Drops what holds the snapshots a `forget` of `tag` dropped ([`crate::commands::forget::holders`]),
/// under a lease: see [`crate::core::reflog::expire_dropped`]. Other moves keep their undo.
pub fn expire_dropped(
    repo: &Repo,
    tag: &str,
    gone: &crate::core::reflog::Holders,
) -> Result<crate::core::reflog::Dropped> {
    let _lease = crate::core::lease::Lease::acquire(repo)?;
    crate::core::reflog::expire_dropped(repo, tag, gone)
}
