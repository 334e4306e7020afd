//! Archive tags in `ore sync`: copied as they are stored between archives that share keys
//! (`ore init --from`), where a head, its index and its objects keep their keys; between
//! archives of different keys they are left out and reported, since an index names objects,
//! and objects trees, by keys that re-encryption would change (not built yet).
//!
//! A destination tag moves when it is missing or names a head the source's tag has passed
//! through (a `previous` of the source's head); one that moved on its own is a conflict, left
//! as it is, as for snapshot tags.

use super::{SyncOutcome, TagSync};
use crate::core::error::Result;
use crate::core::repo::Repo;
use protocol::Key;

/// Tags with the blocks they name.
type Heads = Vec<(String, Key)>;

/// Splits `heads` into snapshot tags and archive tags.
pub fn split(src: &Repo, heads: Vec<(String, Key)>) -> Result<(Heads, Heads)> {
    let mut snapshots = Vec::new();
    let mut archives = Vec::new();
    for (tag, key) in heads {
        match crate::core::objects::head_of(src, &tag) {
            Ok(Some(_)) => archives.push((tag, key)),
            _ => snapshots.push((tag, key)),
        }
    }
    Ok((snapshots, archives))
}

/// Whether `old` is `head` or a head before it.
fn passed_through(src: &Repo, head: Key, old: Key) -> Result<bool> {
    let mut at = Some(head);
    // Heads are content-addressed, so `previous` cannot loop; the bound only caps the work a
    // very long history costs.
    for _ in 0..1_000_000 {
        let Some(k) = at else { return Ok(false) };
        if k == old {
            return Ok(true);
        }
        // An earlier head the reflog no longer keeps may be gone: the history ends there.
        match src.get::<crate::core::archival::Head>(k, crate::core::block::Kind::Head) {
            Ok(h) => at = h.previous,
            Err(crate::core::error::Error::Missing { .. }) => return Ok(false),
            Err(e) => return Err(e),
        }
    }
    Ok(false)
}

/// Moves the destination's archive tags to the source's heads (their blocks copied already),
/// or, when the keys differ, reports each as not copied.
pub fn move_tags(
    src: &Repo,
    dst: &Repo,
    tags: &[(String, Key)],
    shared: bool,
    out: &mut SyncOutcome,
) -> Result<()> {
    for (tag, head) in tags {
        let was = dst.tag(tag)?;
        let (status, message) = if !shared {
            (
                "skipped",
                "an archive tag is copied only between archives that share keys (`ore init --from`); not copied".to_string(),
            )
        } else {
            match was {
                Some(w) if w == *head => ("unchanged", "already in place".to_string()),
                Some(w) if !passed_through(src, *head, w)? => (
                    "conflict",
                    format!("the destination's archive tag names {w}, which the source's never did (it moved independently); left as it is"),
                ),
                _ if dst.move_tag(tag, was, *head, "sync")? => {
                    (if was.is_some() { "moved" } else { "created" }, String::new())
                }
                _ => ("conflict", "the destination's tag moved while syncing; left as it is".to_string()),
            }
        };
        out.tags.push(TagSync {
            tag: tag.clone(),
            status,
            was,
            now: *head,
            message,
        });
    }
    Ok(())
}
