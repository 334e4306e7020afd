//! The archive as one tree of names, for people to walk: `ore explore` and `ore mount`.
//!
//! ```text
//! /                          the tags
//! /TAG                       its snapshots, newest first, named by time (UTC), and `current`
//! /TAG/2026-11-22T05:07:45   a snapshot: the files it saved
//! /TAG/current               the newest snapshot (a symlink in a mount)
//! ```
//!
//! Snapshot names are `YYYY-MM-DDTHH:MM:SS`; two snapshots of one tag made within the same
//! second are told apart by `.1`, `.2`, ... on the older ones. Chains are read once and kept.
//!
//! An archive tag shows its objects by key and by property instead ([`archive`],
//! [`crate::core::browse`]); an object is an entry like a snapshot's root, its key its name.

mod archive;

pub use archive::{Links, Place};

use crate::core::entry::{Entry, EntryKind, Snapshot};
use crate::core::error::{Error, Result};
use crate::core::repo::Repo;
use crate::core::tree::{DirTree, Reader};
use ore_util::sync::lock;
use protocol::Key;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The name of the newest snapshot of a tag.
pub const CURRENT: &str = "current";

/// A place in the tree.
#[derive(Clone, Debug)]
pub enum VNode {
    /// `/`: the tags.
    Root,
    /// `/TAG`: its snapshots.
    Tag(String),
    /// A place under an archive tag: `by-key`, `by-PROP`, a value's directory.
    Archive { tag: String, place: Place },
    /// A file, directory or other entry of a snapshot (the snapshot itself is its root
    /// directory entry, with `path` empty); under an archive tag, of an object (`snapshot`
    /// is then the object's key).
    Entry {
        tag: String,
        /// The snapshot's name under its tag.
        snapshot: String,
        key: Key,
        /// From the snapshot's root.
        path: Vec<u8>,
        entry: Box<Entry>,
    },
}

impl VNode {
    /// Whether it holds other nodes.
    pub fn is_dir(&self) -> bool {
        match self {
            VNode::Root | VNode::Tag(_) | VNode::Archive { .. } => true,
            VNode::Entry { entry, .. } => matches!(entry.kind, EntryKind::Dir { .. }),
        }
    }
}

/// One snapshot of a tag's chain, with its name.
#[derive(Clone, Debug)]
pub struct Named {
    pub name: String,
    pub key: Key,
    pub snapshot: Arc<Snapshot>,
    /// The key of the snapshot before it on the chain it was reached by.
    pub previous: Option<Key>,
}

/// The tree over one archive.
pub struct VTree<'r> {
    pub repo: &'r Repo,
    /// Only this tag, when set.
    only: Option<String>,
    chains: Mutex<HashMap<String, Arc<Vec<Named>>>>,
    /// Each tag's archive head, once read (`None`: a snapshot tag).
    heads: Mutex<HashMap<String, Option<crate::core::archival::Head>>>,
}

/// Entry `e` of the directory at `path` of a snapshot, as a node.
fn below(tag: &str, snapshot: &str, key: Key, path: &[u8], e: Entry) -> VNode {
    VNode::Entry {
        tag: tag.to_string(),
        snapshot: snapshot.to_string(),
        key,
        path: join(path, &e.name),
        entry: Box::new(e),
    }
}

/// `path/name`, or `name` at the top.
fn join(path: &[u8], name: &[u8]) -> Vec<u8> {
    let mut p = path.to_vec();
    if !p.is_empty() {
        p.push(b'/');
    }
    p.extend_from_slice(name);
    p
}

/// Refuses to read directory tree `tree`, at `path` in snapshot `TAG/SNAPSHOT`, when it is
/// nested deeper than any walk of a snapshot goes (`crate::core::depth`): each node holds its whole
/// path, so the nodes of a crafted snapshot nested a hundred thousand deep, as `find` in a
/// mount or in `explore` reaches them, would hold tens of gigabytes.
fn not_too_deep(tree: Key, tag: &str, snapshot: &str, path: &[u8]) -> Result<()> {
    // Names hold no `/` (entries are checked where they are decoded), so slashes count levels.
    let depth = path.iter().filter(|b| **b == b'/').count() + usize::from(!path.is_empty());
    if depth < crate::core::depth::MAX_DEPTH {
        return Ok(());
    }
    let at = format!("{tag}/{snapshot}/{}", crate::core::util::show(path));
    Err(crate::core::depth::too_deep(tree, &at))
}

/// A snapshot's name: its time to the second, UTC.
pub fn time_name(ns: i64) -> String {
    crate::core::util::format_time(ns).replace(' ', "T")
}

impl<'r> VTree<'r> {
    /// The tree of every tag (or only `only`).
    pub fn new(repo: &'r Repo, only: Option<String>) -> VTree<'r> {
        VTree {
            repo,
            only,
            chains: Mutex::new(HashMap::new()),
            heads: Mutex::new(HashMap::new()),
        }
    }

    /// The tags shown.
    pub fn tags(&self) -> Result<Vec<String>> {
        let mut tags: Vec<String> = self.repo.tags()?.into_iter().map(|(n, _)| n).collect();
        if let Some(o) = &self.only {
            tags.retain(|t| t == o);
            if tags.is_empty() {
                return Err(Error::Usage(format!(
                    "no tag called `{o}` (see `ore tags`)"
                )));
            }
        }
        Ok(tags)
    }

    /// A tag's snapshots, newest first, named.
    pub fn chain(&self, tag: &str) -> Result<Arc<Vec<Named>>> {
        if let Some(c) = lock(&self.chains).get(tag) {
            return Ok(c.clone());
        }
        let mut out: Vec<Named> = Vec::new();
        let mut seen: HashMap<String, u32> = HashMap::new();
        // An archive tag has no chain: its objects are reached through its places.
        let chain = match self.head(tag) {
            Some(_) => Vec::new(),
            None => crate::core::spec::chain(self.repo, tag)?,
        };
        let below: Vec<Option<Key>> = (0..chain.len())
            .map(|i| chain.get(i + 1).map(|n| n.key))
            .collect();
        for (node, previous) in chain.into_iter().zip(below) {
            let (key, snap) = (node.key, node.snapshot);
            let base = time_name(snap.time);
            let n = seen.entry(base.clone()).or_insert(0);
            let name = if *n == 0 { base } else { format!("{base}.{n}") };
            *n += 1;
            out.push(Named {
                name,
                key,
                snapshot: Arc::new(snap),
                previous,
            });
        }
        let out = Arc::new(out);
        lock(&self.chains).insert(tag.to_string(), out.clone());
        Ok(out)
    }

    /// A snapshot of `tag` by name (`current` is the newest).
    pub fn snapshot(&self, tag: &str, name: &str) -> Result<Option<Named>> {
        if self.head(tag).is_some() {
            // An archive tag's "snapshots" are its objects, named by their keys.
            let key = name.parse::<Key>().ok();
            return key.map(|k| self.object(tag, k)).transpose();
        }
        let chain = self.chain(tag)?;
        Ok(if name == CURRENT {
            chain.first().cloned()
        } else {
            chain.iter().find(|n| n.name == name).cloned()
        })
    }

    /// The root directory of snapshot `n` of `tag`, reached under the name `as_name` (its
    /// own, or `current`).
    fn snapshot_node(tag: &str, n: &Named, as_name: &str) -> VNode {
        VNode::Entry {
            tag: tag.to_string(),
            snapshot: as_name.to_string(),
            key: n.key,
            path: Vec::new(),
            entry: Box::new(n.snapshot.root.clone()),
        }
    }

    /// For a value's directory under an archive tag, the links it lists, as keys (what
    /// [`VTree::list`] gives as nodes); `None` for any other node.
    pub fn links(&self, node: &VNode) -> Result<Option<Links>> {
        match node {
            VNode::Archive {
                tag,
                place: Place::Narrowed { filters },
            } => self.narrowed(tag, filters).map(Some),
            _ => Ok(None),
        }
    }

    /// What a directory node holds, in order (for a tag: `current`, then newest first).
    pub fn list(&self, node: &VNode) -> Result<Vec<(Vec<u8>, VNode)>> {
        match node {
            VNode::Root => Ok(self
                .tags()?
                .into_iter()
                .map(|t| (t.clone().into_bytes(), VNode::Tag(t)))
                .collect()),
            VNode::Tag(tag) if self.head(tag).is_some() => self.list_archive(tag, &Place::Top),
            VNode::Archive { tag, place } => self.list_archive(tag, place),
            VNode::Tag(tag) => {
                let chain = self.chain(tag)?;
                let mut out = Vec::with_capacity(chain.len() + 1);
                if let Some(first) = chain.first() {
                    let cur = VTree::snapshot_node(tag, first, CURRENT);
                    out.push((CURRENT.as_bytes().to_vec(), cur));
                }
                for n in chain.iter() {
                    let node = VTree::snapshot_node(tag, n, &n.name);
                    out.push((n.name.clone().into_bytes(), node));
                }
                Ok(out)
            }
            VNode::Entry {
                tag,
                snapshot,
                key,
                path,
                entry,
            } => {
                let EntryKind::Dir { tree } = &entry.kind else {
                    return Err(Error::Usage(format!(
                        "{} is not a directory",
                        crate::core::util::show(path)
                    )));
                };
                not_too_deep(*tree, tag, snapshot, path)?;
                let mut out = Vec::new();
                let mut r = Reader::<DirTree>::new(self.repo, *tree);
                while let Some(e) = r.next_item()? {
                    out.push((e.name.clone(), below(tag, snapshot, *key, path, e)));
                }
                Ok(out)
            }
        }
    }

    /// The child `name` of a directory node.
    pub fn child(&self, node: &VNode, name: &[u8]) -> Result<Option<VNode>> {
        match node {
            VNode::Root => {
                let Ok(n) = std::str::from_utf8(name) else {
                    return Ok(None);
                };
                Ok(self.tags()?.into_iter().find(|t| t == n).map(VNode::Tag))
            }
            VNode::Tag(tag) if self.head(tag).is_some() => {
                self.child_archive(tag, &Place::Top, name)
            }
            VNode::Archive { tag, place } => self.child_archive(tag, place, name),
            VNode::Tag(tag) => {
                let Ok(n) = std::str::from_utf8(name) else {
                    return Ok(None);
                };
                Ok(self
                    .snapshot(tag, n)?
                    .map(|s| VTree::snapshot_node(tag, &s, n)))
            }
            VNode::Entry {
                tag,
                snapshot,
                key,
                path,
                entry,
            } => {
                let EntryKind::Dir { tree } = &entry.kind else {
                    return Ok(None);
                };
                not_too_deep(*tree, tag, snapshot, path)?;
                Ok(crate::core::tree::lookup(self.repo, *tree, name)?
                    .map(|e| below(tag, snapshot, *key, path, e)))
            }
        }
    }

    /// The snapshot a node belongs to, if any.
    pub fn snapshot_of(&self, node: &VNode) -> Result<Option<Named>> {
        match node {
            VNode::Entry { tag, snapshot, .. } => self.snapshot(tag, snapshot),
            _ => Ok(None),
        }
    }

    /// The archive tag and object key of a node inside an object's tree (its root included);
    /// `None` for anything else.
    pub fn object_of(&self, node: &VNode) -> Option<(String, Key)> {
        match node {
            VNode::Entry { tag, snapshot, .. } if self.head(tag).is_some() => {
                snapshot.parse::<Key>().ok().map(|k| (tag.clone(), k))
            }
            _ => None,
        }
    }

    /// The file entry a hard link names (from the snapshot's root), or the entry itself.
    pub fn resolve_hardlink(&self, node: &VNode) -> Result<Entry> {
        let VNode::Entry {
            entry,
            tag,
            snapshot,
            ..
        } = node
        else {
            return Err(Error::Usage("not a file".into()));
        };
        if let EntryKind::Hardlink { target } = &entry.kind {
            let snap = self
                .snapshot(tag, snapshot)?
                .ok_or_else(|| Error::Usage(format!("no snapshot {snapshot}")))?;
            let mut e = crate::core::tree::find(self.repo, &snap.snapshot.root, target)?;
            e.name = entry.name.clone();
            return Ok(e);
        }
        Ok((**entry).clone())
    }
}
