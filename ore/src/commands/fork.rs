//! `ore fork TAG NEW`: starts a new tag at the snapshot another names, so that two chains can
//! grow from one point (a machine's backups carried on under a new name, say).
//!
//! A module of its own because creating a tag is a compare-and-swap from nothing, under a
//! lease, recorded in the reflog: an existing tag is never overwritten.

use crate::core::error::{Error, Result};
use crate::core::repo::Repo;
use protocol::Key;

/// Creates tag `new_tag` naming the snapshot `from` names (any form `ore::core::spec` reads)
/// and returns the snapshot's key. Fails with [`Error::Conflict`] when `new_tag` exists (nothing is
/// changed).
pub fn fork(repo: &Repo, from: &str, new_tag: &str) -> Result<Key> {
    crate::core::format::check_user_tag(new_tag)?;
    let _lease = crate::core::lease::Lease::acquire(repo)?;
    let found = crate::core::spec::find(repo, from, None)?;
    repo.whole_chain(found.node)?;
    if !repo.move_tag(new_tag, None, found.node, "fork")? {
        return Err(Error::Conflict(format!(
            "tag `{new_tag}` already exists; nothing was changed"
        )));
    }
    Ok(found.key)
}
