//! Naming snapshots on the command line.
//!
//! `TAG` is the tag's newest snapshot, `TAG~N` the N-th before it along the chain, `TAG@DATE`
//! the newest made at or before DATE, and a hex prefix (at least 6 digits) a snapshot whose key
//! starts with it, searched along every tag's chain. `SNAPSHOT:PATH` names a path inside.

use crate::entry::Snapshot;
use crate::error::{Error, Result};
use crate::repo::Repo;
use protocol::Key;
use std::collections::HashSet;

/// A parsed snapshot name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Spec {
    Tag { tag: String, back: u64 },
    TagAt { tag: String, time: i64 },
    Prefix(String),
}

/// Splits `SNAPSHOT:PATH` into the snapshot name and the path (empty when absent).
pub fn split_path(s: &str) -> (&str, &str) {
    match s.find(':') {
        Some(i) => (&s[..i], s[i + 1..].trim_start_matches('/')),
        None => (s, ""),
    }
}

/// Parses a snapshot name.
pub fn parse(s: &str) -> Result<Spec> {
    if let Some((tag, n)) = s.split_once('~') {
        let back = if n.is_empty() {
            1
        } else {
            n.parse().map_err(|_| {
                Error::Usage(format!(
                    "`{s}`: `~` must be followed by a number of snapshots back"
                ))
            })?
        };
        return Ok(Spec::Tag {
            tag: tag.into(),
            back,
        });
    }
    if let Some((tag, date)) = s.split_once('@') {
        let time = crate::util::parse_time(date).ok_or_else(|| {
            Error::Usage(format!(
                "`{s}`: `{date}` is not a date (YYYY-MM-DD, or YYYY-MM-DDTHH:MM[:SS], UTC)"
            ))
        })?;
        return Ok(Spec::TagAt {
            tag: tag.into(),
            time,
        });
    }
    if s.is_empty() {
        return Err(Error::Usage("empty snapshot name".into()));
    }
    Ok(Spec::Tag {
        tag: s.into(),
        back: 0,
    })
}

/// The newest snapshot of `tag`.
fn head(repo: &Repo, tag: &str) -> Result<Option<Key>> {
    repo.tag(tag)
}

/// Resolves a snapshot name to its key and snapshot.
pub fn resolve(repo: &Repo, s: &str) -> Result<(Key, Snapshot)> {
    let spec = parse(s)?;
    match spec {
        Spec::Tag { tag, back } => match head(repo, &tag)? {
            Some(mut key) => {
                let mut snap = repo.snapshot(key)?;
                for i in 0..back {
                    key = *snap.previous.first().ok_or_else(|| {
                        Error::Usage(format!("`{s}`: tag {tag} has only {} snapshot(s)", i + 1))
                    })?;
                    snap = repo.snapshot(key)?;
                }
                Ok((key, snap))
            }
            None if back == 0 && s.len() >= 6 && s.bytes().all(|b| b.is_ascii_hexdigit()) => {
                by_prefix(repo, s)
            }
            None => Err(Error::Usage(format!(
                "no tag or snapshot called `{s}` (see `ore tags`)"
            ))),
        },
        Spec::TagAt { tag, time } => {
            let mut key =
                head(repo, &tag)?.ok_or_else(|| Error::Usage(format!("no tag called `{tag}`")))?;
            loop {
                let snap = repo.snapshot(key)?;
                if snap.time <= time {
                    return Ok((key, snap));
                }
                key = *snap.previous.first().ok_or_else(|| {
                    Error::Usage(format!("`{s}`: tag {tag} has no snapshot that old"))
                })?;
            }
        }
        Spec::Prefix(p) => by_prefix(repo, &p),
    }
}

fn by_prefix(repo: &Repo, prefix: &str) -> Result<(Key, Snapshot)> {
    let prefix = prefix.to_ascii_lowercase();
    // A whole key names a snapshot even when no tag reaches it any more (one found in a
    // backend's tag history, after a tag was moved away from it).
    if prefix.len() == 64 {
        if let Some(k) = crate::repo::parse_tag_value(prefix.as_bytes()) {
            if let Ok(snap) = repo.snapshot(k) {
                return Ok((k, snap));
            }
        }
    }
    let mut seen = HashSet::new();
    let mut found: Option<(Key, Snapshot)> = None;
    for (_, head) in repo.tags()? {
        let mut next = Some(head);
        while let Some(k) = next {
            if !seen.insert(k) {
                break;
            }
            // A tag that names something unreadable does not hide the other tags' snapshots.
            let Ok(snap) = repo.snapshot(k) else { break };
            next = snap.previous.first().copied();
            if k.to_hex().starts_with(&prefix) {
                if let Some((other, _)) = &found {
                    if *other != k {
                        return Err(Error::Usage(format!("`{prefix}` names more than one snapshot ({other} and {k}); give more digits")));
                    }
                }
                found = Some((k, snap));
            }
        }
    }
    found.ok_or_else(|| {
        Error::Usage(format!(
            "no tag or snapshot called `{prefix}` (see `ore tags`)"
        ))
    })
}

/// The chain of a tag, newest first.
pub fn chain(repo: &Repo, tag: &str) -> Result<Vec<(Key, Snapshot)>> {
    let mut out = Vec::new();
    let mut next = head(repo, tag)?;
    let mut seen = HashSet::new();
    while let Some(k) = next {
        if !seen.insert(k) {
            return Err(Error::Archive(format!(
                "tag {tag}: its chain loops back to {k}"
            )));
        }
        let snap = repo.snapshot(k)?;
        next = snap.previous.first().copied();
        out.push((k, snap));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(
            parse("home").unwrap(),
            Spec::Tag {
                tag: "home".into(),
                back: 0
            }
        );
        assert_eq!(
            parse("home~3").unwrap(),
            Spec::Tag {
                tag: "home".into(),
                back: 3
            }
        );
        assert!(matches!(
            parse("home@2026-01-02").unwrap(),
            Spec::TagAt { .. }
        ));
        assert!(parse("home@yesterday").is_err());
        assert!(parse("home~x").is_err());
        assert_eq!(split_path("home~1:etc/passwd"), ("home~1", "etc/passwd"));
        assert_eq!(split_path("home:/etc"), ("home", "etc"));
    }
}
