//! Which files a damaged block belongs to: every `SNAPSHOT:PATH` that reaches it.
//!
//! It costs a second walk over the directory trees, so it is done only when something is
//! damaged: each directory and file index is read once (results remembered by key) and every
//! snapshot that reaches a damaged block reports the paths through which it does. A directory
//! or file index that cannot be read on the way is itself reported at the path that reaches it.

use crate::core::entry::{Content, EntryKind, Piece};
use crate::core::error::{Error, Result};
use crate::core::keyset::KeySet;
use crate::core::repo::Repo;
use crate::core::tree::{DirTree, FileTree, Node as TreeNode, Reader};
use protocol::Key;
use std::collections::{HashMap, HashSet};

/// Every snapshot the tags' chains and the reflog name, labelled for people (`TAG~N`, or the
/// key for snapshots only the reflog still names).
pub(super) fn every_snapshot(repo: &Repo) -> Result<Vec<(String, Key)>> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for (tag, head) in repo.tags()? {
        let mut next = Some(head);
        let mut i = 0;
        while let Some(k) = next {
            if !seen.insert(k) {
                break;
            }
            out.push((format!("{tag}~{i}"), k));
            i += 1;
            next = match repo.node(k) {
                Ok(n) => n.below(),
                Err(_) => None,
            };
        }
    }
    if let Ok(entries) = crate::core::reflog::entries(repo) {
        for e in entries {
            for k in e.old.into_iter().chain(e.new) {
                if seen.insert(k) {
                    // Named by the snapshot's key, the one users know (the node's, unread).
                    let shown = repo.snapshot_key(k).unwrap_or(k);
                    out.push((shown.to_hex(), k));
                }
            }
        }
    }
    Ok(out)
}

/// Bad keys below a tree, each with the path (relative to the tree) through which it is
/// reached; remembered by tree key so that shared trees are read once.
struct Attributor<'r> {
    repo: &'r Repo,
    bad: &'r HashSet<Key>,
    clean: KeySet,
    dirty: HashMap<Key, Vec<(Vec<u8>, Key)>>,
    /// Directories not followed because they are nested past [`crate::core::depth::MAX_DEPTH`]: a
    /// tree with such a directory below it is not remembered as clean (reached again less
    /// deep, it is searched again). Its bad blocks are still reported, without paths.
    cut: usize,
}

/// Most paths listed for one block.
const MAX_PATHS: usize = 50;

/// Finds, for each bad key, the `SNAPSHOT:PATH`s that reach it.
pub(super) fn attribute(
    repo: &Repo,
    snapshots: &[(String, Key)],
    bad: &HashSet<Key>,
) -> Result<HashMap<Key, Vec<String>>> {
    // Deep trees recurse deeply: give the walk a stack to match.
    std::thread::scope(|s| {
        std::thread::Builder::new()
            .stack_size(256 << 20)
            .spawn_scoped(s, || {
                let mut a = Attributor {
                    repo,
                    bad,
                    clean: KeySet::new(),
                    dirty: HashMap::new(),
                    cut: 0,
                };
                let mut out: HashMap<Key, Vec<String>> = HashMap::new();
                let mut add = |k: Key, p: String| {
                    let v = out.entry(k).or_default();
                    if v.len() < MAX_PATHS {
                        v.push(p);
                    }
                };
                for (label, key) in snapshots {
                    if bad.contains(key) {
                        add(*key, format!("{label} (the snapshot itself)"));
                        continue;
                    }
                    let Ok(node) = repo.node(*key) else {
                        // A sound link to a damaged snapshot: the snapshot is what is bad.
                        if let Some(s) = repo.snapshot_key(*key).ok().filter(|s| bad.contains(s)) {
                            add(s, format!("{label} (the snapshot itself)"));
                        }
                        continue;
                    };
                    if bad.contains(&node.key) {
                        add(node.key, format!("{label} (the snapshot itself)"));
                        continue;
                    }
                    let EntryKind::Dir { tree } = node.snapshot.root.kind else {
                        continue;
                    };
                    for (path, k) in a.dir(tree, 0)? {
                        add(k, format!("{label}:/{}", crate::core::util::show(&path)));
                    }
                }
                Ok(out)
            })
            .map_err(|e| Error::Local(format!("starting a thread: {e}")))?
            .join()
            .unwrap_or_else(|_| Err(Error::Local("the path search panicked".into())))
    })
}

impl Attributor<'_> {
    /// Bad keys below directory tree `tree`, nested `depth` directories below a snapshot's
    /// root. The recursion is bounded by [`crate::core::depth::MAX_DEPTH`] (a crafted snapshot can
    /// nest directories a hundred thousand deep), well within the thread's stack.
    fn dir(&mut self, tree: Key, depth: usize) -> Result<Vec<(Vec<u8>, Key)>> {
        if let Some(v) = self.dirty.get(&tree) {
            return Ok(v.clone());
        }
        if self.clean.contains(&tree)? {
            return Ok(Vec::new());
        }
        if depth > crate::core::depth::MAX_DEPTH {
            self.cut += 1;
            return Ok(Vec::new());
        }
        let cut_before = self.cut;
        let mut found = Vec::new();
        let mut reader = Reader::<DirTree>::new(self.repo, tree);
        loop {
            let e = match reader.next_item() {
                Ok(Some(e)) => e,
                Ok(None) => break,
                Err(Error::Missing { key, .. } | Error::Corrupt { key, .. }) => {
                    found.push((Vec::new(), key));
                    break;
                }
                Err(e) => return Err(e),
            };
            let mut below = Vec::new();
            match &e.kind {
                EntryKind::File { content, .. } => match content {
                    Content::Empty | Content::Catalogued { .. } => {}
                    Content::Chunk(k) | Content::Slice { key: k, .. } => {
                        if self.bad.contains(k) {
                            below.push(*k);
                        }
                    }
                    Content::Index(k) => below = self.file(*k)?,
                },
                EntryKind::Dir { tree } => {
                    for (p, k) in self.dir(*tree, depth + 1)? {
                        let mut path = e.name.clone();
                        if !p.is_empty() {
                            path.push(b'/');
                            path.extend_from_slice(&p);
                        }
                        found.push((path, k));
                    }
                }
                _ => {}
            }
            found.extend(below.into_iter().map(|k| (e.name.clone(), k)));
        }
        if found.is_empty() {
            if self.cut == cut_before {
                self.clean.insert(tree)?;
            }
        } else {
            self.dirty.insert(tree, found.clone());
        }
        Ok(found)
    }

    /// Bad keys in a file's index tree.
    fn file(&mut self, root: Key) -> Result<Vec<Key>> {
        if let Some(v) = self.dirty.get(&root) {
            return Ok(v.iter().map(|(_, k)| *k).collect());
        }
        if self.clean.contains(&root)? {
            return Ok(Vec::new());
        }
        let mut found = Vec::new();
        let mut stack = vec![root];
        while let Some(k) = stack.pop() {
            if self.bad.contains(&k) {
                found.push(k);
                continue;
            }
            match crate::core::tree::read_node::<FileTree>(self.repo, k) {
                Ok(TreeNode::Leaf(pieces)) => {
                    for p in pieces {
                        if let Piece::Data { key, .. } = p {
                            if self.bad.contains(&key) {
                                found.push(key);
                            }
                        }
                    }
                }
                Ok(TreeNode::Inner(inner)) => stack.extend(inner.children.iter().map(|c| c.key)),
                Err(Error::Missing { key, .. } | Error::Corrupt { key, .. }) => found.push(key),
                Err(e) => return Err(e),
            }
        }
        if found.is_empty() {
            self.clean.insert(root)?;
        } else {
            self.dirty
                .insert(root, found.iter().map(|k| (Vec::new(), *k)).collect());
        }
        Ok(found)
    }
}
