//! Archive tags in `ore sync`: copied as they are stored between archives that share keys
//! (`ore init --from`), where a head, its index and its objects keep their keys. There a
//! destination tag moves when it is missing or names a head the source's tag has passed
//! through (a `previous` of the source's head); one that moved on its own is a conflict, left
//! as it is, as for snapshot tags.
//!
//! Between archives of different keys an index names objects, and objects trees, by keys that
//! re-encryption changes, so a tag is carried as `ore dump TAG | ore load TAG` would carry it
//! ([`crate::commands::dump::archive`]), through a pipe inside this process: every object
//! is stored again under the destination's keys (its data once, by dedup), its content ids
//! made again, and all are filed on the destination's tag in one change. The same objects
//! make the same blocks each time, so a sync that finds nothing new leaves the tag where it
//! is. Objects are only ever added: an object forgotten on the source stays on the
//! destination until forgotten there. A catalogue cannot be carried (its content ids need the
//! data to be made again) and is reported as skipped.

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
        let (status, message, now) = if !shared {
            carry(src, dst, tag, *head, was)?
        } else {
            let (status, message) = as_stored(src, dst, tag, *head, was)?;
            (status, message, *head)
        };
        out.tags.push(TagSync {
            tag: tag.clone(),
            status,
            was,
            now,
            message,
        });
    }
    Ok(())
}

/// Moves `dst`'s archive tag `tag` (naming `was`) to `head`, whose blocks are copied already.
fn as_stored(
    src: &Repo,
    dst: &Repo,
    tag: &str,
    head: Key,
    was: Option<Key>,
) -> Result<(&'static str, String)> {
    Ok(
        match was {
            Some(w) if w == head => ("unchanged", "already in place".to_string()),
            Some(w) if !passed_through(src, head, w)? => (
                "conflict",
                format!("the destination's archive tag names {w}, which the source's never did (it moved independently); left as it is"),
            ),
            _ if dst.move_tag(tag, was, head, "sync")? => {
                (if was.is_some() { "moved" } else { "created" }, String::new())
            }
            _ => ("conflict", "the destination's tag moved while syncing; left as it is".to_string()),
        },
    )
}

/// Carries archive tag `tag` to `dst`, an archive of other keys, as a dump stream loaded
/// there (see the module doc): the status, a message, and the head `tag` names on `dst`
/// after it.
fn carry(
    src: &Repo,
    dst: &Repo,
    tag: &str,
    src_head: Key,
    was: Option<Key>,
) -> Result<(&'static str, String, Key)> {
    let (mut reader, writer) = std::io::pipe()
        .map_err(|e| crate::core::error::Error::Local(format!("a pipe for {tag}: {e}")))?;
    let (dumped, loaded) = std::thread::scope(|s| {
        let dumping = s.spawn(move || {
            let mut writer = writer;
            crate::commands::dump::archive::dump_archive(src, tag, &mut writer)
        });
        let loaded = crate::commands::dump::load(dst, tag, &mut reader);
        // The loader may stop early (a catalogue): the dump then meets a closed pipe.
        drop(reader);
        let dumped = dumping
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p));
        (dumped, loaded)
    });
    let head = match loaded {
        Ok(crate::commands::dump::Loaded::Archive { head, .. }) => head,
        Ok(crate::commands::dump::Loaded::Snapshot { .. }) => {
            return Err(crate::core::error::Error::Archive(format!(
                "{tag}: its stream loaded as a snapshot"
            )))
        }
        Err(crate::core::error::Error::ForeignIds(why)) => {
            return Ok(("skipped", format!("not carried: {why}"), src_head));
        }
        Err(e) => return Err(e),
    };
    dumped?;
    Ok(match was {
        Some(w) if w == head => ("unchanged", "no object to add".to_string(), head),
        Some(_) => ("moved", "objects re-encrypted and filed".to_string(), head),
        None => (
            "created",
            "objects re-encrypted and filed".to_string(),
            head,
        ),
    })
}
