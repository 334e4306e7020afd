//! Paths kept where they are: `ore snapshot TAG --files-from LIST` saves each path at its own
//! absolute place below the snapshot's root (`etc/hosts`, `home/me/notes`), with the
//! directories on the way made from the real ones (their metadata) but holding only what the
//! list reaches. So two listed files of the same name in different directories never collide,
//! as they would where several paths are kept side by side under their last components.
//!
//! The list becomes a tree of names. A listed directory is walked whole, like any; a path
//! below a listed directory adds nothing (the directory holds it already); an unlisted
//! directory on the way is stored with only its listed descendants. The file cache, hard
//! links, the exclude rules (anchored at each listed path's directory) and the warnings work
//! as in any walk.

use super::{DirStore, Walk};
use crate::core::entry::{Entry, EntryKind};
use crate::core::error::{Error, Result};
use crate::core::fsys::stat_path;
use crate::core::tree::{Builder, DirTree};
use crate::core::util::path_bytes;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A directory on the way to listed paths: its children by name.
#[derive(Default)]
struct Node {
    /// Listed itself: saved whole, and what is below it needs no node of its own.
    listed: bool,
    children: BTreeMap<Vec<u8>, Node>,
}

impl Node {
    fn add(&mut self, components: &[Vec<u8>]) {
        if self.listed {
            return;
        }
        match components.split_first() {
            None => {
                self.listed = true;
                self.children.clear();
            }
            Some((first, rest)) => self.children.entry(first.clone()).or_default().add(rest),
        }
    }
}

impl Walk<'_, '_> {
    /// The snapshot's root for `paths` (absolute, resolved) each kept at its own place: the
    /// real `/`, holding only what leads to them.
    pub(super) fn listed_top(&self, paths: &[PathBuf]) -> Result<Entry> {
        let mut root = Node::default();
        for p in paths {
            let components: Vec<Vec<u8>> = p
                .components()
                .filter_map(|c| match c {
                    std::path::Component::Normal(n) => Some(path_bytes(Path::new(n)).to_vec()),
                    _ => None,
                })
                .collect();
            root.add(&components);
        }
        let slash = Path::new("/");
        let st = stat_path(slash, true).map_err(|e| Error::io(slash, e))?;
        if root.listed {
            // `/` itself is listed: the whole tree, as a snapshot of `/` would be.
            return self.top(&[slash.to_path_buf()]);
        }
        let mut entry = self.entry_of(Vec::new(), &st);
        entry.kind = EntryKind::Dir {
            tree: self.on_the_way(slash, b"", &root)?,
        };
        self.ctx.count(|s| s.dirs += 1);
        Ok(entry)
    }

    /// Stores directory `abs` (`rel` from the root) with only the children `node` names: the
    /// listed ones walked whole, the others recursively on the way. Returns its tree.
    fn on_the_way(&self, abs: &Path, rel: &[u8], node: &Node) -> Result<protocol::Key> {
        let mut tree = Builder::<DirTree>::default();
        let mut store = DirStore {
            ctx: self.ctx,
            known: None,
        };
        for (name, child) in &node.children {
            let child_abs = abs.join(crate::core::util::bytes_path(name));
            let child_rel = super::join_rel(rel, name);
            let st = stat_path(&child_abs, false).map_err(|e| Error::io(&child_abs, e))?;
            if child.listed {
                let dir = path_bytes(abs).to_vec();
                let cached = self.rows(&dir)?.0.remove(name.as_slice());
                let ignores = Arc::new(vec![self.ctx.rules.root_ignore(abs)?]);
                let Some(item) = self.item(
                    child_abs.clone(),
                    name.clone(),
                    child_rel,
                    st,
                    cached,
                    st.dev,
                ) else {
                    continue;
                };
                if let Some(done) = self.resolve(item, &ignores)? {
                    if let (Some(w), Some(stamp), true) = (&self.writer, done.stamp, done.changed) {
                        ore_util::sync::lock(w).put_one(&dir, name, stamp, &done.entry)?;
                    }
                    tree.push(done.entry, &mut store)?;
                }
                continue;
            }
            if !st.is_dir() {
                return Err(Error::Usage(format!(
                    "{}: not a directory, yet a listed path is below it",
                    child_abs.display()
                )));
            }
            let mut entry = self.base_entry(name.clone(), &st, &child_abs, &child_rel);
            entry.kind = EntryKind::Dir {
                tree: self.on_the_way(&child_abs, &child_rel, child)?,
            };
            self.ctx.count(|s| s.dirs += 1);
            tree.push(entry, &mut store)?;
        }
        tree.finish(&mut store)
    }
}
