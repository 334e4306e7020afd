//! `ore tags`: each tag with the snapshot it names (or, for an archive tag, its head).
//!
//! A module because each tag's snapshot is a block read of its own; they come one at a time,
//! so a listing shows what it has read before a damaged snapshot stops it.

use crate::core::entry::Snapshot;
use crate::core::error::Result;
use crate::core::repo::Repo;
use protocol::Key;

/// A tag and the newest snapshot of its chain.
pub struct Head {
    pub tag: String,
    /// The snapshot's key.
    pub key: Key,
    /// What the tag holds: the newest link of its chain (or, in chains made before format 2,
    /// the snapshot itself).
    pub node: Key,
    pub snapshot: Snapshot,
}

/// A tag: a snapshot tag's newest snapshot, or an archive tag's head.
pub enum Tagged {
    Snapshots(Box<Head>),
    Archive {
        tag: String,
        node: Key,
        head: crate::core::archival::Head,
    },
}

/// The archive's tags (as `Repo::tags` lists them), each read with its snapshot as it is
/// reached.
pub fn tags(repo: &Repo) -> Result<impl Iterator<Item = Result<Tagged>> + '_> {
    Ok(repo
        .tags()?
        .into_iter()
        .map(|(tag, node)| match repo.node(node) {
            Ok(n) => Ok(Tagged::Snapshots(Box::new(Head {
                tag,
                key: n.key,
                node,
                snapshot: n.snapshot,
            }))),
            Err(crate::core::error::Error::ArchiveHead { .. }) => Ok(Tagged::Archive {
                head: repo.get(node, crate::core::block::Kind::Head)?,
                tag,
                node,
            }),
            Err(e) => Err(e),
        }))
}
