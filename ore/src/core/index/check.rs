//! Checking a whole index: every node is read once, and everything an update or a scan
//! relies on is verified and, when wrong, named with the node it is wrong in.
//!
//! The walk cannot run away on a crafted index: it descends by level, and each level must be
//! one below its parent's ([`super::MAX_LEVEL`] at most), and a node met a second time is a
//! problem of its own and is not read again, so the work is bounded by the number of distinct
//! nodes, however often a crafted node names another.

use super::{load_inner, load_leaf, Nodes, Root, MAX_LEVEL};
use crate::core::block::Kind;
use protocol::Key;
use std::collections::HashSet;

/// Something wrong in an index: the node, and what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub node: Key,
    pub what: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "index node {}: {}", self.node, self.what)
    }
}

/// Every problem of the index at `root`: an empty list when it is sound.
pub fn check(nodes: &impl Nodes, root: &Root) -> Vec<Problem> {
    let mut c = Checker {
        nodes,
        seen: HashSet::new(),
        problems: Vec::new(),
        last: None,
    };
    if root.level > MAX_LEVEL {
        c.problem(
            root.node,
            format!(
                "the root claims {} levels, more than {MAX_LEVEL}",
                root.level
            ),
        );
        return c.problems;
    }
    if let Some((_, count)) = c.node(root.node, root.level) {
        if count != root.count {
            c.problem(
                root.node,
                format!(
                    "holds {count} entries where the tag's head says {}",
                    root.count
                ),
            );
        }
    }
    c.problems
}

struct Checker<'n, N: Nodes> {
    nodes: &'n N,
    seen: HashSet<Key>,
    problems: Vec<Problem>,
    /// The greatest key met so far, in key order: each leaf's keys must pass it.
    last: Option<Vec<u8>>,
}

impl<N: Nodes> Checker<'_, N> {
    fn problem(&mut self, node: Key, what: String) {
        self.problems.push(Problem { node, what });
    }

    /// Checks node `node` at `level` and everything below it; its first key and number of
    /// entries, or `None` when it or a node below it could not be read.
    fn node(&mut self, node: Key, level: u8) -> Option<(Vec<u8>, u64)> {
        if !self.seen.insert(node) {
            self.problem(node, "named a second time in the index".into());
            return None;
        }
        if level == 0 {
            return self.leaf(node);
        }
        let inner = match load_inner(self.nodes, node, level) {
            Ok(inner) => inner,
            Err(e) => {
                self.problem(
                    node,
                    format!("{} at level {level}: {e}", Kind::IndexInner.name()),
                );
                return None;
            }
        };
        let mut total = 0u64;
        let mut whole = true;
        for (i, child) in inner.children.iter().enumerate() {
            let Some((first, count)) = self.node(child.node, level - 1) else {
                // Its problem is named; counts above it would only repeat it.
                whole = false;
                continue;
            };
            if first != child.first {
                self.problem(
                    node,
                    format!(
                        "child {i} ({}) says its first key is {:?}, but it is {:?}",
                        child.node,
                        bytes(&child.first),
                        bytes(&first)
                    ),
                );
            }
            if count != child.count {
                self.problem(
                    node,
                    format!(
                        "child {i} ({}) says it holds {} entries, but it holds {count}",
                        child.node, child.count
                    ),
                );
            }
            total = total.saturating_add(count);
        }
        whole.then(|| (inner.children[0].first.clone(), total))
    }

    fn leaf(&mut self, node: Key) -> Option<(Vec<u8>, u64)> {
        let leaf = match load_leaf(self.nodes, node) {
            Ok(leaf) => leaf,
            Err(e) => {
                self.problem(node, format!("{}: {e}", Kind::IndexLeaf.name()));
                return None;
            }
        };
        let first = leaf.items[0].key.clone();
        if self.last.as_ref().is_some_and(|l| *l >= first) {
            self.problem(
                node,
                format!(
                    "its first key {:?} is not after the previous leaf's last",
                    bytes(&first)
                ),
            );
        }
        self.last = leaf.items.last().map(|i| i.key.clone());
        Some((first, leaf.items.len() as u64))
    }
}

/// A key for a message: text where it is text, else hex.
fn bytes(b: &[u8]) -> String {
    match std::str::from_utf8(b) {
        Ok(s) if !s.chars().any(char::is_control) => s.to_string(),
        _ => hex::encode(b),
    }
}
