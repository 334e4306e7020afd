//! Naming snapshots on the command line.
//!
//! `TAG` is the tag's newest snapshot, `TAG~N` the N-th before it along the chain, `TAG@DATE`
//! the newest made at or before DATE, and a hex prefix (at least 6 digits) a snapshot whose key
//! starts with it, searched along every tag's chain. `SNAPSHOT:PATH` names a path inside.

use crate::core::entry::Snapshot;
use crate::core::error::{Error, Result};
use crate::core::link::Node;
use crate::core::repo::Repo;
use protocol::{Backend, Key};
use std::collections::HashSet;
use std::sync::Arc;

/// A parsed snapshot name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Spec {
    Tag { tag: String, back: u64 },
    TagAt { tag: String, time: i64 },
    Prefix(String),
}

/// Splits `SNAPSHOT:PATH` into the snapshot name and the path (empty when absent). The time in
/// `TAG@DATE` has colons of its own (`home@2026-01-02T10:30:00:etc`): the path's colon is the
/// first one after it.
pub fn split_path(s: &str) -> (&str, &str) {
    let from = s.find('@').map_or(0, |at| at + 1 + date_len(&s[at + 1..]));
    match s[from..].find(':') {
        Some(i) => (&s[..from + i], s[from + i + 1..].trim_start_matches('/')),
        None => (s, ""),
    }
}

/// The length of what looks like a date at the start of `s`: `YYYY-MM-DD`, then optionally
/// `T` (or a space) and `HH:MM` or `HH:MM:SS`, then optionally `Z`. By shape only; whether it
/// is a real date is [`parse`]'s to say.
fn date_len(s: &str) -> usize {
    let b = s.as_bytes();
    let digits = |from: usize| {
        b.get(from..)
            .map_or(0, |r| r.iter().take_while(|c| c.is_ascii_digit()).count())
    };
    let mut len = b
        .iter()
        .take_while(|c| c.is_ascii_digit() || **c == b'-')
        .count();
    if matches!(b.get(len), Some(b'T' | b' ')) && digits(len + 1) > 0 {
        let mut end = len + 1 + digits(len + 1);
        let mut parts = 0;
        while parts < 2 && b.get(end) == Some(&b':') && digits(end + 1) > 0 {
            end += 1 + digits(end + 1);
            parts += 1;
        }
        if parts > 0 {
            len = end;
        }
    }
    if b.get(len) == Some(&b'Z') {
        len += 1;
    }
    len
}

/// Parses a snapshot name.
pub fn parse(s: &str) -> Result<Spec> {
    // A tag name is at most MAX_TAG_NAME bytes; with `~N` or `@DATE` a little more. Anything
    // longer names nothing, and is not echoed whole.
    let tag_len = s.find(['~', '@']).unwrap_or(s.len());
    if tag_len > protocol::key::MAX_TAG_NAME {
        return Err(Error::Usage(format!(
            "no tag or snapshot called `{}`: tag names are at most {} bytes",
            protocol::key::shown(s),
            protocol::key::MAX_TAG_NAME
        )));
    }
    if s.len() > protocol::key::MAX_TAG_NAME + 64 {
        return Err(Error::Usage(format!(
            "`{}` is not a snapshot name (TAG, TAG~N, TAG@DATE or a key)",
            protocol::key::shown(s)
        )));
    }
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
        let time = crate::core::util::parse_time(date).ok_or_else(|| {
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

/// A tag and the snapshot block it names, being read before the archive is unlocked.
///
/// Neither the tag nor the stored bytes of a block need the archive's keys, so a command that
/// names a snapshot can start reading both while the passphrase is checked (argon2 takes tens
/// of milliseconds): over a slow link that is two round trips fewer before the real work. The
/// block is opened and checked like any other once the keys are known ([`resolve_with`]); if
/// anything went wrong reading ahead, the ordinary reads run again and report it.
pub struct Ahead {
    tag: String,
    reading: std::thread::JoinHandle<Option<Read>>,
}

/// What was read ahead: the tag's value and, when it names a snapshot, that block's stored bytes.
type Read = (Option<Key>, Option<(Key, Vec<u8>)>);

impl Ahead {
    /// Starts reading the tag that snapshot name `name` starts from (`TAG`, `TAG~N`, `TAG@DATE`)
    /// and the block it names; `None` for names that do not start from a tag.
    pub fn start(backend: &Arc<dyn Backend>, name: &str) -> Option<Ahead> {
        let tag = match parse(name).ok()? {
            Spec::Tag { tag, .. } | Spec::TagAt { tag, .. } => tag,
            Spec::Prefix(_) => return None,
        };
        let (backend, t) = (backend.clone(), tag.clone());
        let reading = std::thread::Builder::new()
            .name("ore read ahead".into())
            .spawn(move || -> Option<Read> {
                let Some(value) = backend.get_tag(&t).ok()? else {
                    return Some((None, None));
                };
                let key = crate::core::format::parse_tag_value(&value)?;
                let stored = backend.get(key).ok()??;
                Some((Some(key), Some((key, stored))))
            })
            .ok()?;
        Some(Ahead { tag, reading })
    }
}

/// Reads for [`find_with`]: the tag and block read ahead first, the archive after.
struct Reads<'r> {
    repo: &'r Repo,
    ahead: Option<(String, Read)>,
}

impl Reads<'_> {
    /// The newest node of `tag`'s chain.
    fn head(&mut self, tag: &str) -> Result<Option<Key>> {
        match &self.ahead {
            Some((t, (value, _))) if t == tag => Ok(*value),
            _ => self.repo.tag(tag),
        }
    }

    fn node(&mut self, key: Key) -> Result<Node> {
        if let Some((_, (_, block))) = &mut self.ahead {
            if let Some((k, stored)) = block.take_if(|(k, _)| *k == key) {
                let stored = self.repo.open_node(k, stored)?;
                return self.repo.node_of(k, stored);
            }
        }
        self.repo.node(key)
    }
}

/// Resolves a snapshot name to its key and snapshot.
pub fn resolve(repo: &Repo, s: &str) -> Result<(Key, Snapshot)> {
    resolve_with(repo, s, None)
}

/// Resolves a snapshot name to its key and snapshot, using what `ahead` read for it.
pub fn resolve_with(repo: &Repo, s: &str, ahead: Option<Ahead>) -> Result<(Key, Snapshot)> {
    find_with(repo, s, ahead, Place::Any).map(|n| (n.key, n.snapshot))
}

/// Which place of a snapshot a name must resolve to, when it stands at several.
#[derive(Clone, Copy)]
enum Place<'a> {
    /// Any: only the snapshot is wanted (`ls`, `restore`, `cat`), so a whole key is read
    /// directly, without walking a chain — one read, however far the archive is.
    Any,
    /// Its place on a chain, preferring this tag's ([`find`]).
    On(Option<&'a str>),
}

/// Resolves a snapshot name to its place on a chain (what `fork` and `reset` point tags at).
/// A key is looked for on `prefer`'s chain and in its history first: a snapshot can stand at
/// several places (a fork relinked by a forget), and a tag being reset wants its own.
pub fn find(repo: &Repo, s: &str, prefer: Option<&str>) -> Result<Node> {
    find_with(repo, s, None, Place::On(prefer))
}

fn find_with(repo: &Repo, s: &str, ahead: Option<Ahead>, place: Place) -> Result<Node> {
    let spec = parse(s)?;
    let ahead = ahead.and_then(|a| Some((a.tag, a.reading.join().ok()??)));
    let mut reads = Reads { repo, ahead };
    match spec {
        Spec::Tag { tag, back } => match reads.head(&tag)? {
            Some(key) => {
                let mut node = reads.node(key)?;
                for i in 0..back {
                    let below = node.below().ok_or_else(|| {
                        Error::Usage(format!("`{s}`: tag {tag} has only {} snapshot(s)", i + 1))
                    })?;
                    node = reads.node(below)?;
                }
                Ok(node)
            }
            None if back == 0 && s.len() >= 6 && s.bytes().all(|b| b.is_ascii_hexdigit()) => {
                by_prefix(repo, s, place)
            }
            None => Err(Error::Usage(format!(
                "no tag or snapshot called `{s}` (see `ore tags`)"
            ))),
        },
        Spec::TagAt { tag, time } => {
            let mut key = reads
                .head(&tag)?
                .ok_or_else(|| Error::Usage(format!("no tag called `{tag}`")))?;
            loop {
                let node = reads.node(key)?;
                if node.snapshot.time <= time {
                    return Ok(node);
                }
                key = node.below().ok_or_else(|| {
                    Error::Usage(format!("`{s}`: tag {tag} has no snapshot that old"))
                })?;
            }
        }
        Spec::Prefix(p) => by_prefix(repo, &p, place),
    }
}

/// The place of the snapshot whose key (or whose node's key) starts with `prefix`. Looked for,
/// in order, on `prefer`'s chain, on the other tags' chains, then along what `prefer`'s and
/// then every tag's reflog entries name (a snapshot a forget dropped, a tag's value before a
/// reset): the first of these that holds it decides. A whole key is also read directly: a
/// link is its own place, and a snapshot no chain or entry reaches (one found in a backend's
/// tag history) stands alone — a format-1 snapshot with the chain it names itself, which is
/// only its chain if nothing relinked it since. Where any place will do ([`Place::Any`]), a
/// whole key read directly is the answer.
fn by_prefix(repo: &Repo, prefix: &str, place: Place) -> Result<Node> {
    let prefer = match place {
        Place::On(t) => t,
        Place::Any => None,
    };
    let prefix = prefix.to_ascii_lowercase();
    let mut direct = None;
    if prefix.len() == 64 {
        if let Some(k) = crate::core::format::parse_tag_value(prefix.as_bytes()) {
            match repo.node(k) {
                Ok(node) if node.node != node.key || matches!(place, Place::Any) => {
                    return Ok(node)
                }
                Ok(node) => direct = Some(node),
                // A stored block that does not read is damage (or not a snapshot), and is said
                // so: "no such snapshot" would send the user looking for the wrong thing. An
                // archive object reads as the snapshot of its tree.
                Err(e @ Error::Corrupt { .. }) => {
                    if let Some(node) = crate::core::objects::object_by_prefix(repo, &prefix)? {
                        return Ok(node);
                    }
                    // An object no tag's index lists (forgotten, or stored by an import that
                    // never filed it) is no damage: say what it is.
                    if repo
                        .get_block_any(k)
                        .is_ok_and(|p| p.kind == crate::core::block::Kind::Object)
                    {
                        return Err(Error::Usage(format!(
                            "`{prefix}` is an archive object that no archive tag lists (it was \
                             forgotten, or never filed): `ore search TAG ...` lists each tag's \
                             objects"
                        )));
                    }
                    return Err(Error::Archive(format!(
                        "`{prefix}` names a stored block that cannot be read as a snapshot: {e}"
                    )));
                }
                Err(_) => {}
            }
        }
    }
    let first = |yes: bool| move |t: &str| prefer.is_some_and(|p| p == t) == yes;
    let tags = repo.tags()?;
    let entries = crate::core::reflog::entries(repo).unwrap_or_default();
    let heads = |pick: &dyn Fn(&str) -> bool| -> Vec<Key> {
        tags.iter()
            .filter(|(t, _)| pick(t))
            .map(|(_, k)| *k)
            .collect()
    };
    let moved = |pick: &dyn Fn(&str) -> bool| -> Vec<Key> {
        entries
            .iter()
            .rev()
            .filter(|e| pick(&e.tag))
            .flat_map(|e| e.new.into_iter().chain(e.old))
            .collect()
    };
    let groups = [
        heads(&first(true)),
        heads(&first(false)),
        moved(&first(true)),
        moved(&first(false)),
    ];
    let mut seen = HashSet::new();
    let mut found: Option<Node> = None;
    for group in groups {
        for head in group {
            // A chain that stops at something unreadable does not hide the other snapshots.
            for node in repo.chain_part(head, &mut seen) {
                if node.key.to_hex().starts_with(&prefix) || node.node.to_hex().starts_with(&prefix)
                {
                    if let Some(other) = &found {
                        if other.key != node.key {
                            return Err(Error::Usage(format!("`{prefix}` names more than one snapshot ({} and {}); give more digits", other.key, node.key)));
                        }
                    }
                    found.get_or_insert(node);
                }
            }
        }
        if found.is_some() {
            break;
        }
    }
    if let Some(node) = found.or(direct) {
        return Ok(node);
    }
    // An archive object, as the snapshot of its tree.
    crate::core::objects::object_by_prefix(repo, &prefix)?.ok_or_else(|| {
        Error::Usage(format!(
            "no tag, snapshot or archive object called `{prefix}` (see `ore tags`)"
        ))
    })
}

/// The chain of a tag, newest first.
pub fn chain(repo: &Repo, tag: &str) -> Result<Vec<Node>> {
    repo.chain_from(repo.tag(tag)?, tag)
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

    /// Regression: `ore ls home@2026-12-04T15:02:43` was split at the time's first colon and
    /// failed with "`2026-12-04T15` is not a date".
    #[test]
    fn the_time_of_a_date_keeps_its_colons() {
        for (s, name, path) in [
            ("h@2026-12-04T15:02:43", "h@2026-12-04T15:02:43", ""),
            ("h@2026-12-04T15:02", "h@2026-12-04T15:02", ""),
            (
                "h@2026-12-04T15:02:43Z:etc/x",
                "h@2026-12-04T15:02:43Z",
                "etc/x",
            ),
            ("h@2026-12-04 15:02:43:/etc", "h@2026-12-04 15:02:43", "etc"),
            (
                "h@2026-12-04T15:02:43:20/x",
                "h@2026-12-04T15:02:43",
                "20/x",
            ),
            ("h@2026-12-04:12/x", "h@2026-12-04", "12/x"),
            ("h@2026-12-04", "h@2026-12-04", ""),
            ("h@2026-12-04:", "h@2026-12-04", ""),
            ("h@yesterday:a:b", "h@yesterday", "a:b"),
            ("h@", "h@", ""),
        ] {
            assert_eq!(split_path(s), (name, path), "{s}");
        }
        let (name, _) = split_path("h@2026-12-04T15:02:43:etc");
        assert!(matches!(parse(name).unwrap(), Spec::TagAt { .. }));
    }
}
