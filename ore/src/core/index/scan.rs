//! Reading an index in key order from a given key on: a cursor that holds one node per level
//! and loads the next leaf only when it is reached, so a scan of a short range reads a few
//! blocks whatever the index's size, and a scan of everything holds only the path to where it
//! is.

use super::{load_inner, load_leaf, Child, Item, Nodes, Root};
use crate::core::error::Result;

/// The entries of an index from a key on, in order; see [`Cursor::new`].
pub struct Cursor<'n, N: Nodes> {
    nodes: &'n N,
    /// For each inner level from the top: its children and the one being read.
    path: Vec<(Vec<Child>, usize)>,
    /// The rest of the leaf being read.
    leaf: std::vec::IntoIter<Item>,
    /// The root's level.
    top: u8,
    /// The last key given out: every later one must be greater.
    last: Option<Vec<u8>>,
    failed: bool,
}

impl<'n, N: Nodes> Cursor<'n, N> {
    /// A cursor at the first entry of `root`'s index whose key is `from` or greater.
    pub fn new(nodes: &'n N, root: Option<&Root>, from: &[u8]) -> Result<Cursor<'n, N>> {
        let mut c = Cursor {
            nodes,
            path: Vec::new(),
            leaf: Vec::new().into_iter(),
            top: root.map_or(0, |r| r.level),
            last: None,
            failed: false,
        };
        let Some(root) = root else {
            return Ok(c);
        };
        let (mut node, mut level) = (root.node, root.level);
        while level > 0 {
            let inner = load_inner(nodes, node, level)?;
            // The last child whose first key is at or before `from` (or the first child).
            let i = inner
                .children
                .partition_point(|ch| ch.first.as_slice() <= from)
                .saturating_sub(1);
            node = inner.children[i].node;
            c.path.push((inner.children, i));
            level -= 1;
        }
        let mut items = load_leaf(nodes, node)?.items;
        let skip = items.partition_point(|it| it.key.as_slice() < from);
        items.drain(..skip);
        c.leaf = items.into_iter();
        Ok(c)
    }

    /// Moves to the next leaf; `false` at the end of the index.
    fn next_leaf(&mut self) -> Result<bool> {
        // The deepest level with a child after the one being read. `path[j]` is at level
        // `top - j`, so its children are at `top - j - 1`.
        let Some(j) = self.path.iter().rposition(|(ch, i)| i + 1 < ch.len()) else {
            return Ok(false);
        };
        self.path.truncate(j + 1);
        let (children, i) = &mut self.path[j];
        *i += 1;
        let mut node = children[*i].node;
        let mut level = self.top - j as u8 - 1;
        while level > 0 {
            let inner = load_inner(self.nodes, node, level)?;
            node = inner.children[0].node;
            self.path.push((inner.children, 0));
            level -= 1;
        }
        self.leaf = load_leaf(self.nodes, node)?.items.into_iter();
        Ok(true)
    }
}

impl<N: Nodes> Iterator for Cursor<'_, N> {
    type Item = Result<Item>;

    fn next(&mut self) -> Option<Result<Item>> {
        if self.failed {
            return None;
        }
        let item = loop {
            if let Some(item) = self.leaf.next() {
                break item;
            }
            match self.next_leaf() {
                Ok(true) => {}
                Ok(false) => return None,
                Err(e) => {
                    self.failed = true;
                    return Some(Err(e));
                }
            }
        };
        if self.last.as_ref().is_some_and(|l| *l >= item.key) {
            self.failed = true;
            return Some(Err(crate::core::error::Error::Archive(
                "the index's keys do not increase from one leaf to the next: it is damaged (run `ore check`)".into(),
            )));
        }
        self.last = Some(item.key.clone());
        Some(Ok(item))
    }
}
