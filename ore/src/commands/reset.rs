//! `ore reset TAG SNAPSHOT`: points a tag at a snapshot it named before (or any snapshot), the
//! owner's way back after a tag was moved where it should not have been.
//!
//! Why a module and not a line in the binary: the move is a compare-and-swap from exactly what
//! the tag holds, recorded in the reflog, and a tag holding something that is not a readable
//! snapshot (an append-only key may point it at any block key, or at garbage) must still be
//! movable without writing a reflog entry that names the unreadable value (gc would then keep
//! or stop on it).
//!
//! An archive tag is reset only to an archive head, named by a key the reflog records (its
//! own earlier heads, or another archive tag's): an archive tag turned into a snapshot tag
//! would leave every object it filed to gc, and a snapshot tag pointed at a head would stop
//! every snapshot command.

use crate::core::error::{Error, Result};
use crate::core::reflog::RefEntry;
use crate::core::repo::Repo;
use protocol::Key;

/// What a reset did (snapshot keys, as users know them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reset {
    /// The tag already named the snapshot: nothing was changed.
    Already(Key),
    /// The tag was moved from `old` (`None`: nothing, or a value that was not a readable
    /// snapshot) to `new`.
    Moved { old: Option<Key>, new: Key },
}

/// Points `tag` at the snapshot `snapshot` names (any form `ore::core::spec` reads), under a
/// lease, and records the move. Fails with [`Error::Conflict`] when another run moved the tag
/// meanwhile (nothing is changed then).
pub fn reset(repo: &Repo, tag: &str, snapshot: &str) -> Result<Reset> {
    crate::core::format::check_user_tag(tag)?;
    let _lease = crate::core::lease::Lease::acquire(repo)?;
    let raw = repo.backend().get_tag(tag)?;
    let old = raw
        .as_deref()
        .and_then(crate::core::format::parse_tag_value);
    let names_head = |k: Key| {
        repo.get_block_any(k)
            .is_ok_and(|p| p.kind == crate::core::block::Kind::Head)
    };
    let head = recorded_head(repo, tag, snapshot)?;
    match (old.filter(|k| names_head(*k)), head) {
        (Some(_), None) => {
            let short = snapshot.len() < 6 && snapshot.bytes().all(|b| b.is_ascii_hexdigit());
            return Err(Error::Usage(match short {
                true => format!(
                    "{tag} is an archive tag: give 6 or more hex digits of one of its earlier \
                     heads (`ore reflog {tag}` shows them)"
                ),
                false => format!(
                    "{tag} is an archive tag: reset it to one of its earlier heads, by a key \
                     `ore reflog {tag}` shows (`{snapshot}` is no archive head the reflog records)"
                ),
            }));
        }
        (_, Some(to)) => {
            if old.is_some_and(|k| repo.snapshot(k).is_ok()) {
                return Err(Error::Usage(format!(
                    "{tag} is a snapshot tag and {to} an archive head: a snapshot tag is reset \
                     to a snapshot"
                )));
            }
            return move_to_head(
                repo,
                tag,
                raw.as_deref(),
                old.filter(|k| names_head(*k)),
                to,
            );
        }
        (None, None) => {}
    }
    // The snapshot's place on a chain (on a tag's, or one the reflog still names), so that
    // the tag gets the history below it too.
    let found = crate::core::spec::find(repo, snapshot, Some(tag))?;
    repo.whole_chain(found.node)?;
    let key = found.node;
    // The tag's value as stored: a tag an append-only key (or anything else) pointed at
    // something that is not a readable snapshot — no key at all, a missing block, a block of
    // another kind — is recorded as having named nothing, since a reflog entry naming it would
    // stop gc; it is moved from exactly what it holds.
    if old == Some(key) {
        return Ok(Reset::Already(found.key));
    }
    let old_snapshot = old.and_then(|k| repo.snapshot_key(k).ok());
    let readable = old.is_some_and(|k| repo.snapshot(k).is_ok());
    let moved = if raw.is_none() || readable {
        repo.move_tag(tag, old, key, "reset")?
    } else {
        move_unreadable(repo, tag, raw.as_deref(), key)?
    };
    if !moved {
        return Err(Error::Conflict(format!(
            "tag {tag} moved while resetting it (another run changed it); nothing was changed"
        )));
    }
    Ok(Reset::Moved {
        old: old_snapshot,
        new: found.key,
    })
}

/// Moves `tag` from the raw value `raw` (not a readable snapshot) to `key`, recording the move
/// as one from nothing; `false` when the tag changed meanwhile.
fn move_unreadable(repo: &Repo, tag: &str, raw: Option<&[u8]>, key: Key) -> Result<bool> {
    let cas = repo.backend().set_tag(tag, raw, key.to_hex().as_bytes())?;
    let done = matches!(cas, protocol::CasOutcome::Done);
    if done {
        let entry = RefEntry::now(tag, None, Some(key), "reset");
        crate::core::reflog::append(repo, &[entry])?;
    }
    Ok(done)
}

/// The archive head the reflog records (for any tag) whose key starts with `spec` (hex, at
/// least 6 digits); `None` when `spec` names none.
fn recorded_head(repo: &Repo, tag: &str, spec: &str) -> Result<Option<Key>> {
    let spec = spec.to_ascii_lowercase();
    if spec.len() < 6 || spec.len() > 64 || !spec.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(None);
    }
    let mut found: Vec<Key> = Vec::new();
    for e in crate::core::reflog::entries(repo)? {
        for k in [e.old, e.new].into_iter().flatten() {
            if k.to_hex().starts_with(&spec) && !found.contains(&k) {
                found.push(k);
            }
        }
    }
    let heads: Vec<Key> = found
        .into_iter()
        .filter(|k| {
            repo.get_block_any(*k)
                .is_ok_and(|p| p.kind == crate::core::block::Kind::Head)
        })
        .collect();
    match heads.as_slice() {
        [] => Ok(None),
        [k] => Ok(Some(*k)),
        _ => Err(Error::Usage(format!(
            "`{spec}` names more than one archive head in the reflog (resetting {tag}): give \
             more digits"
        ))),
    }
}

/// Points `tag` (holding `raw`, an archive head `old` or nothing readable) at archive head
/// `to`, after reading its index's root.
fn move_to_head(
    repo: &Repo,
    tag: &str,
    raw: Option<&[u8]>,
    old: Option<Key>,
    to: Key,
) -> Result<Reset> {
    if old == Some(to) {
        return Ok(Reset::Already(to));
    }
    let head: crate::core::archival::Head = repo.get(to, crate::core::block::Kind::Head)?;
    if let Some(root) = &head.index {
        crate::core::index::read_node(&repo.get_block_any(root.node)?, root.node)?;
    }
    let moved = match (raw, old) {
        (Some(_), None) => move_unreadable(repo, tag, raw, to)?,
        _ => repo.move_tag(tag, old, to, "reset")?,
    };
    if !moved {
        return Err(Error::Conflict(format!(
            "tag {tag} moved while resetting it (another run changed it); nothing was changed"
        )));
    }
    Ok(Reset::Moved { old, new: to })
}
