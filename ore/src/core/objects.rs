//! Finding archive tags' heads and objects: what `ore import` and `ore search` start from,
//! and what lets every command that takes a snapshot name take an object's key instead
//! ([`object_node`]): an object reads as a snapshot of its tree, so `ore ls`, `ore cat` and
//! `ore restore` work on it unchanged.

use crate::core::archival::{Head, Object};
use crate::core::block::Kind;
use crate::core::entry::{Snapshot, SnapshotStats};
use crate::core::error::{Error, Result};
use crate::core::index::Cursor;
use crate::core::link::Node;
use crate::core::repo::Repo;
use protocol::Key;

/// The head archive tag `tag` names, with its key (`None`: no such tag yet); an error naming
/// the tag when it names something else (a snapshot).
pub fn head_of(repo: &Repo, tag: &str) -> Result<Option<(Key, Head)>> {
    let Some(key) = repo.tag(tag)? else {
        return Ok(None);
    };
    let plain = repo.get_block_any(key)?;
    if plain.kind != Kind::Head {
        return Err(Error::Usage(format!(
            "{tag} is a snapshot tag, not an archive tag: its snapshots are listed with `ore log {tag}` \
             and made with `ore snapshot`; objects go on an archive tag of another name"
        )));
    }
    Ok(Some((
        key,
        crate::core::entry::decode(plain.data(), &key, Kind::Head)?,
    )))
}

/// The object on `head`'s index whose key is `spec` or starts with it.
pub fn find_object(repo: &Repo, tag: &str, head: Option<&Head>, spec: &str) -> Result<Key> {
    match matching(repo, head, spec)?.as_slice() {
        [k] => Ok(*k),
        [] => Err(Error::Usage(format!(
            "no object {spec} on archive tag {tag}"
        ))),
        _ => Err(Error::Usage(format!(
            "`{spec}` names more than one object on {tag}: give more digits"
        ))),
    }
}

/// Up to two objects of `head`'s index whose keys start with `spec` (hex).
fn matching(repo: &Repo, head: Option<&Head>, spec: &str) -> Result<Vec<Key>> {
    let bad = || Error::Usage(format!("`{spec}` is not an object key (hex digits)"));
    if spec.is_empty() || spec.len() > 64 || !spec.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad());
    }
    // As for a snapshot (`core::spec`): two digits would name whichever object came first.
    if spec.len() < 6 {
        return Err(Error::Usage(format!(
            "`{spec}` is too short for an object key: give 6 or more of its hex digits"
        )));
    }
    let spec = spec.to_ascii_lowercase();
    let index = head.and_then(|h| h.index.as_ref());
    let even = hex::decode(&spec[..spec.len() & !1]).map_err(|_| bad())?;
    let mut from = vec![crate::core::archival::OBJECTS];
    from.extend_from_slice(&even);
    let mut found = Vec::new();
    for item in Cursor::new(repo, index, &from)? {
        let item = item?;
        if !item.key.starts_with(&from) {
            break;
        }
        let key = crate::core::archival::entry_object(&item.key);
        if let Some(k) = key.filter(|k| k.to_hex().starts_with(&spec)) {
            found.push(k);
            if found.len() > 1 {
                break;
            }
        }
    }
    Ok(found)
}

/// The label a catalogue object's chain node carries, naming its volume: no user's label can
/// have this key (`:` is not allowed in one), so it tells restore that no data is there.
pub const CATALOGUE_LABEL: &str = "ore:catalogue";

/// Object `key` of archive tag `tag` as a chain node: a snapshot of its tree, taken when it
/// was imported, on the tag (so `TAG` shows in listings), its source as its path.
pub fn object_node(repo: &Repo, tag: &str, key: Key) -> Result<Node> {
    let o: Object = repo.get(key, Kind::Object)?;
    let title = match o.prop("title") {
        Some(crate::core::archival::Value::Text(t)) => t.clone(),
        _ => String::new(),
    };
    let snapshot = Snapshot {
        previous: Vec::new(),
        root: o.tree(repo)?,
        time: o.imported_ns,
        host: o.host,
        user: o.user,
        tag: tag.to_string(),
        paths: vec![serde_bytes::ByteBuf::from(o.source)],
        comment: title,
        stats: SnapshotStats {
            bytes: o.size,
            files: o.files.count(),
            ..SnapshotStats::default()
        },
        warnings: Vec::new(),
        warnings_total: 0,
        labels: o
            .catalogue
            .iter()
            .map(|v| crate::core::labels::Label {
                key: CATALOGUE_LABEL.into(),
                value: v.describe(),
            })
            .collect(),
    };
    Ok(Node {
        node: key,
        key,
        snapshot,
        previous: Vec::new(),
    })
}

/// The object whose key starts with `prefix` (lower-case hex) on any archive tag, as a chain
/// node; `None` when no archive tag has one. Two objects (on one tag or two) are an error.
pub fn object_by_prefix(repo: &Repo, prefix: &str) -> Result<Option<Node>> {
    find_anywhere(repo, prefix)?
        .map(|(tag, k)| object_node(repo, &tag, k))
        .transpose()
}

/// Every archive tag of the archive with its head, in name order (a tag whose head does not
/// read is left out: `ore check` names it).
pub fn archive_heads(repo: &Repo) -> Result<Vec<(String, Head)>> {
    let mut out = Vec::new();
    for (tag, _) in repo.tags()? {
        if crate::core::format::is_system_tag(&tag) {
            continue;
        }
        if let Ok(Some((_, head))) = head_of(repo, &tag) {
            out.push((tag, head));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// The archive tag and key of the object whose key starts with `prefix`, on any archive tag.
pub fn find_anywhere(repo: &Repo, prefix: &str) -> Result<Option<(String, Key)>> {
    let mut found: Vec<(String, Key)> = Vec::new();
    for (tag, head) in archive_heads(repo)? {
        for k in matching(repo, Some(&head), prefix)? {
            if !found.iter().any(|(_, f)| *f == k) {
                found.push((tag.clone(), k));
            }
        }
        if let [(_, a), (_, b), ..] = found.as_slice() {
            return Err(Error::Usage(format!(
                "`{prefix}` names more than one object ({a} and {b}); give more digits"
            )));
        }
    }
    Ok(found.pop())
}

/// What the index at `index` keeps of object `key` (`None`: not on it).
pub fn summary_of(
    repo: &Repo,
    index: Option<&crate::core::index::Root>,
    key: &Key,
) -> Result<Option<crate::core::archival::Summary>> {
    let entry = crate::core::archival::object_entry(key);
    let Some(item) = Cursor::new(repo, index, &entry)?.next().transpose()? else {
        return Ok(None);
    };
    if item.key != entry {
        return Ok(None);
    }
    crate::core::entry::decode(&item.value, key, Kind::IndexLeaf).map(Some)
}

/// The types the map `entries` (an index, or a copy of one) records for properties outside
/// the vocabulary (its `t` map: one entry per key ever used on the tag, so a short scan).
pub fn recorded_types(
    entries: &dyn crate::core::index::Entries,
) -> Result<std::collections::HashMap<String, crate::core::archival::Type>> {
    use crate::core::archival::{Type, TYPES};
    let mut out = std::collections::HashMap::new();
    let mut bad = None;
    entries.prefixed(&[TYPES], &mut |k, v| {
        let key = &k[1..];
        let ty = match (std::str::from_utf8(key), v) {
            (Ok(k), &[b]) => Type::from_byte(b).map(|t| (k.to_string(), t)),
            _ => None,
        };
        match ty {
            Some((k, t)) => {
                out.insert(k, t);
            }
            None => bad = Some(String::from_utf8_lossy(key).into_owned()),
        }
    })?;
    match bad {
        Some(key) => Err(Error::Archive(format!(
            "the index records a property type it cannot read (`{key}`): run `ore check`"
        ))),
        None => Ok(out),
    }
}

/// Refuses an object already replaced: a new version replaces the newest one, which the
/// error names when [`newest_version`] finds it.
pub fn check_current(repo: &Repo, tag: &str, head: &Head, key: &Key) -> Result<()> {
    let index = head.index.as_ref();
    match summary_of(repo, index, key)? {
        Some(s) if s.replaced => {
            // Only a help to the message: what keeps it from being found does not hide why
            // the object is refused.
            let newest = match newest_version(repo, index, key).ok().flatten() {
                Some(n) => format!(" ({n})"),
                None => String::new(),
            };
            Err(Error::Usage(format!(
                "object {key} on {tag} was replaced by a newer version already{newest}: replace \
                 the newest one (`ore search {tag} ...` lists only current objects)"
            )))
        }
        _ => Ok(()),
    }
}

/// The current version of replaced object `key` on the index at `index`. Only a version names
/// the one it replaced, so it is looked for among the current objects that hold a copy of one
/// of `key`'s first files (`f` entries, which only current objects have), followed back
/// through their parents: first those holding it at the same path (a version made by `ore
/// props --set` holds the very same files there), then at any path (one made by `--replace`
/// usually holds some of them). A content many objects hold, or a long chain of versions,
/// costs at most [`VERSIONS_READ`] object reads in all: `None` when none of them found it.
pub fn newest_version(
    repo: &Repo,
    index: Option<&crate::core::index::Root>,
    key: &Key,
) -> Result<Option<Key>> {
    let o: Object = repo.get(*key, Kind::Object)?;
    let mut ids = std::collections::HashSet::new();
    let files: Vec<_> = (o.files.read_first(repo, 64)?.into_iter())
        .filter_map(|f| f.id.filter(|id| ids.insert(*id)).map(|id| (id, f.path)))
        .take(4)
        .collect();
    let mut search = Versions {
        repo,
        key: *key,
        reads: VERSIONS_READ,
        not: std::collections::HashSet::from([*key]),
    };
    let same_path = files.iter().map(|(id, path)| {
        let mut p = crate::core::filelist::content_prefix(id);
        p.extend_from_slice(path);
        p.push(0);
        p
    });
    let any_path = (files.iter()).map(|(id, _)| crate::core::filelist::content_prefix(id));
    for prefix in same_path.collect::<Vec<_>>().into_iter().chain(any_path) {
        for item in Cursor::new(repo, index, &prefix)?.take(ENTRIES_SCANNED) {
            let item = item?;
            if !item.key.starts_with(&prefix) || search.reads == 0 {
                break;
            }
            if let Some(k) = crate::core::archival::entry_object(&item.key) {
                if search.descends(k) {
                    return Ok(Some(k));
                }
            }
        }
    }
    Ok(None)
}

/// Object reads [`newest_version`] may make in all.
const VERSIONS_READ: usize = 256;
/// `f` entries it looks at for one prefix.
const ENTRIES_SCANNED: usize = 4096;

/// A search for the versions that descend from one object.
struct Versions<'r> {
    repo: &'r Repo,
    key: Key,
    /// Object reads left.
    reads: usize,
    /// Objects known not to descend from `key` (and `key` itself).
    not: std::collections::HashSet<Key>,
}

impl Versions<'_> {
    /// Whether object `from` replaced the searched one, directly or through versions between
    /// them. An object that does not read ends its chain, as a chain without `key` does;
    /// every object on such a chain is then known not to descend.
    fn descends(&mut self, from: Key) -> bool {
        let mut chain = Vec::new();
        let mut at = from;
        while self.reads > 0 && !self.not.contains(&at) && !chain.contains(&at) {
            self.reads -= 1;
            chain.push(at);
            let parent = match self.repo.get::<Object>(at, Kind::Object) {
                Ok(o) => o.parent,
                Err(_) => None,
            };
            match parent {
                Some(p) if p == self.key => return true,
                Some(p) => at = p,
                None => break,
            }
        }
        if self.reads > 0 {
            self.not.extend(chain);
        }
        false
    }
}

/// How many objects the index at `index` holds, and how many of them are current (not
/// replaced): what its head should say.
pub fn count(repo: &Repo, index: Option<&crate::core::index::Root>) -> Result<(u64, u64)> {
    let from = [crate::core::archival::OBJECTS];
    let (mut objects, mut current) = (0, 0);
    for item in Cursor::new(repo, index, &from)? {
        let item = item?;
        if item.key.first() != Some(&crate::core::archival::OBJECTS) {
            break;
        }
        let Some(key) = crate::core::archival::entry_object(&item.key) else {
            continue;
        };
        let s: crate::core::archival::Summary =
            crate::core::entry::decode(&item.value, &key, Kind::IndexLeaf)?;
        objects += 1;
        current += u64::from(!s.replaced);
    }
    Ok((objects, current))
}
