//! `ore log TAG`: the chain of snapshots a tag names, newest first.
//!
//! The chain is read by `ore::core::spec::chain`; this module is the command's rule that an
//! empty chain is a tag that does not exist, said as such.

use crate::core::entry::Snapshot;
use crate::core::error::{Error, Result};
use crate::core::repo::Repo;
use protocol::Key;

/// The snapshots of `tag`'s chain, newest first (`TAG~0`, `TAG~1`, …).
pub fn log(repo: &Repo, tag: &str) -> Result<Vec<(Key, Snapshot)>> {
    let chain = crate::core::spec::chain(repo, tag)?;
    if chain.is_empty() {
        return Err(Error::Usage(format!(
            "no tag called `{tag}` (see `ore tags`)"
        )));
    }
    Ok(chain.into_iter().map(|n| (n.key, n.snapshot)).collect())
}
