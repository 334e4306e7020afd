//! What changed between two indexes: the entries put (added or given another value) and
//! the entries removed, in key order, reading only the nodes that differ.
//!
//! A change copies the path from the root to the leaves it touches and keeps every other
//! node as it was (`apply`), and a node's key is the keyed hash of its bytes, so two indexes
//! that share a subtree name it by the same key. The difference is found by walking both
//! trees side by side from their roots: two nodes with one key hold the same entries and are
//! passed over unread; otherwise the node that is higher (or, at one level, starts earlier)
//! is opened into its children, until entries meet entries. An index one import newer than
//! another is thus compared in a few dozen node reads, whatever its size; an empty old index
//! gives every entry of the new one (how a local copy is first filled, `core::searchcache`).
//!
//! Nothing read is trusted: a node must start at exactly the first key its parent claims for
//! it and hold nothing at or past the next node's, and each side's entries must increase, or
//! the walk stops with an error naming the index as damaged. Two nodes are passed over as
//! the same only when their parents also place them alike. A comparison that relied on a
//! false first key could call an entry added that is in fact in the other tree, and a copy
//! made by it could answer what a scan of the index, which seeks by those keys, would not.
//! By induction every node of a copy's root was opened and checked once under the place it
//! has: the first copy opens every node, and a later one opens all but what it shares.

use super::{load_inner, load_leaf, Item, Nodes, Root};
use crate::core::error::{Error, Result};
use protocol::Key;

/// One side of the walk: what is left to compare, the next one last.
struct Side<'n, N: Nodes> {
    nodes: &'n N,
    stack: Vec<Front>,
    /// The last key taken from this side: every later one must be greater.
    last: Option<Vec<u8>>,
    /// Nodes read.
    read: u64,
}

enum Front {
    /// A node not yet opened, with where its parent places it: the first key it claims for it
    /// (none for a root) and the first key of the node after it (none for the last).
    Node {
        node: Key,
        level: u8,
        first: Option<Vec<u8>>,
        upto: Option<Vec<u8>>,
    },
    Entry(Item),
}

impl Front {
    /// The first key a node may hold, as its parent says: empty for a root.
    fn first(&self) -> &[u8] {
        match self {
            Front::Node { first, .. } => first.as_deref().unwrap_or_default(),
            Front::Entry(e) => &e.key,
        }
    }
}

impl<'n, N: Nodes> Side<'n, N> {
    fn new(nodes: &'n N, root: Option<&Root>) -> Self {
        let stack = root
            .map(|r| Front::Node {
                node: r.node,
                level: r.level,
                first: None,
                upto: None,
            })
            .into_iter()
            .collect();
        Side {
            nodes,
            stack,
            last: None,
            read: 0,
        }
    }

    /// Replaces the node at the front by its children or entries, which must lie where its
    /// parent places it: starting at exactly the first key it claims, and before the next
    /// node's (as `check` demands, and as a scan of the index relies on when it seeks).
    fn open(&mut self) -> Result<()> {
        let Some(Front::Node {
            node,
            level,
            first,
            upto,
        }) = self.stack.pop()
        else {
            return Ok(());
        };
        self.read += 1;
        let misplaced = |why: &str| damaged(format!("node {node} {why}"));
        let check = |lowest: &[u8], highest: &[u8]| {
            if first.as_deref().is_some_and(|f| f != lowest) {
                return Err(misplaced("does not start at the key its parent names"));
            }
            if upto.as_deref().is_some_and(|u| highest >= u) {
                return Err(misplaced("holds a key its parent places in the next node"));
            }
            Ok(())
        };
        if level == 0 {
            let leaf = load_leaf(self.nodes, node)?;
            let (lo, hi) = (&leaf.items[0].key, &leaf.items[leaf.items.len() - 1].key);
            check(lo, hi)?;
            self.stack
                .extend(leaf.items.into_iter().rev().map(Front::Entry));
        } else {
            let inner = load_inner(self.nodes, node, level)?;
            let n = inner.children.len();
            check(&inner.children[0].first, &inner.children[n - 1].first)?;
            let mut after = upto;
            for c in inner.children.into_iter().rev() {
                let next = Some(c.first.clone());
                self.stack.push(Front::Node {
                    node: c.node,
                    level: level - 1,
                    first: Some(c.first),
                    upto: std::mem::replace(&mut after, next),
                });
            }
        }
        Ok(())
    }

    /// Takes the entry at the front, checking that keys increase.
    fn take(&mut self) -> Result<Item> {
        let Some(Front::Entry(item)) = self.stack.pop() else {
            unreachable!("take is only called with an entry at the front")
        };
        if self.last.as_ref().is_some_and(|l| *l >= item.key) {
            return Err(damaged(
                "its keys do not increase from one node to the next".into(),
            ));
        }
        self.last = Some(item.key.clone());
        Ok(item)
    }
}

fn damaged(why: String) -> Error {
    Error::Archive(format!("the index is damaged ({why}): run `ore check`"))
}

/// What a comparison read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DiffStats {
    /// Nodes read from the old index and from the new one.
    pub old_nodes: u64,
    pub new_nodes: u64,
}

/// One entry that differs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delta<'a> {
    /// Only the new index has this key, with this value.
    Added(&'a [u8], &'a [u8]),
    /// Both have the key; this is the new value.
    Changed(&'a [u8], &'a [u8]),
    /// Only the old index has this key.
    Removed(&'a [u8]),
}

/// Shows `each` every entry that differs between the index at `old` and the one at `new`
/// (`None`: empty), in key order.
pub fn diff<N: Nodes>(
    nodes: &N,
    old: Option<&Root>,
    new: Option<&Root>,
    each: &mut dyn FnMut(Delta) -> Result<()>,
) -> Result<DiffStats> {
    let mut a = Side::new(nodes, old);
    let mut b = Side::new(nodes, new);
    loop {
        match (a.stack.last(), b.stack.last()) {
            (None, None) => break,
            (Some(Front::Node { .. }), None) => a.open()?,
            (None, Some(Front::Node { .. })) => b.open()?,
            (Some(Front::Entry(_)), None) => each(Delta::Removed(&a.take()?.key))?,
            (None, Some(Front::Entry(_))) => {
                let item = b.take()?;
                each(Delta::Added(&item.key, &item.value))?
            }
            (
                Some(
                    fa @ Front::Node {
                        node: x,
                        level: lx,
                        upto: ux,
                        ..
                    },
                ),
                Some(
                    fb @ Front::Node {
                        node: y,
                        level: ly,
                        upto: uy,
                        ..
                    },
                ),
            ) => {
                let (fx, fy) = (fa.first(), fb.first());
                if x == y && fx == fy && ux == uy {
                    // One key, one content, one place: the same entries on both sides.
                    a.stack.pop();
                    b.stack.pop();
                } else if lx > ly || (lx == ly && fx < fy) {
                    a.open()?;
                } else if ly > lx || fy < fx {
                    b.open()?;
                } else {
                    a.open()?;
                    b.open()?;
                }
            }
            (Some(Front::Entry(e)), Some(n @ Front::Node { .. })) => {
                if e.key.as_slice() < n.first() {
                    each(Delta::Removed(&a.take()?.key))?;
                } else {
                    b.open()?;
                }
            }
            (Some(n @ Front::Node { .. }), Some(Front::Entry(e))) => {
                if e.key.as_slice() < n.first() {
                    let item = b.take()?;
                    each(Delta::Added(&item.key, &item.value))?;
                } else {
                    a.open()?;
                }
            }
            (Some(Front::Entry(x)), Some(Front::Entry(y))) => match x.key.cmp(&y.key) {
                std::cmp::Ordering::Less => each(Delta::Removed(&a.take()?.key))?,
                std::cmp::Ordering::Greater => {
                    let item = b.take()?;
                    each(Delta::Added(&item.key, &item.value))?;
                }
                std::cmp::Ordering::Equal => {
                    let (x, y) = (a.take()?, b.take()?);
                    if x.value != y.value {
                        each(Delta::Changed(&y.key, &y.value))?;
                    }
                }
            },
        }
    }
    Ok(DiffStats {
        old_nodes: a.read,
        new_nodes: b.read,
    })
}

#[cfg(test)]
mod tests {
    use super::super::tests::Memory;
    use super::super::{apply, Change, Child, Inner};
    use super::*;
    use crate::core::block::Kind;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    type Changes = Vec<(Vec<u8>, Option<Vec<u8>>)>;

    fn delta(m: &Memory, old: Option<&Root>, new: Option<&Root>) -> (Changes, DiffStats) {
        let mut out = Vec::new();
        let stats = diff(m, old, new, &mut |d| {
            out.push(match d {
                Delta::Added(k, v) | Delta::Changed(k, v) => (k.to_vec(), Some(v.to_vec())),
                Delta::Removed(k) => (k.to_vec(), None),
            });
            Ok(())
        })
        .expect("diff");
        (out, stats)
    }

    fn model_delta(old: &BTreeMap<Vec<u8>, Vec<u8>>, new: &BTreeMap<Vec<u8>, Vec<u8>>) -> Changes {
        let mut keys: Vec<&Vec<u8>> = old.keys().chain(new.keys()).collect();
        keys.sort();
        keys.dedup();
        keys.into_iter()
            .filter(|k| old.get(*k) != new.get(*k))
            .map(|k| (k.clone(), new.get(k).cloned()))
            .collect()
    }

    #[test]
    fn one_more_entry_in_a_large_index_is_found_by_reading_the_path_to_it() {
        let m = Memory::default();
        let changes: Vec<Change> = (0..200_000u32)
            .map(|i| (format!("k{i:08}").into_bytes(), Some(b"v".to_vec())))
            .collect();
        let old = apply(&m, None, changes).expect("apply").expect("root");
        let new = apply(
            &m,
            Some(&old),
            vec![(b"k00123456x".to_vec(), Some(b"new".to_vec()))],
        )
        .expect("apply")
        .expect("root");
        let (d, stats) = delta(&m, Some(&old), Some(&new));
        assert_eq!(d, vec![(b"k00123456x".to_vec(), Some(b"new".to_vec()))]);
        let levels = u64::from(new.level) + 1;
        assert!(
            stats.old_nodes <= levels + 1 && stats.new_nodes <= levels + 2,
            "{stats:?} for an index of {levels} levels"
        );
        // From nothing: every entry, each node read once.
        let (all, stats) = delta(&m, None, Some(&old));
        assert_eq!(all.len(), 200_000);
        assert_eq!(stats.old_nodes, 0);
        let (gone, _) = delta(&m, Some(&new), None);
        assert_eq!(gone.len(), 200_001);
        assert!(gone.iter().all(|(_, v)| v.is_none()));
    }

    #[test]
    fn a_crafted_node_whose_entries_start_before_its_first_key_stops_the_walk() {
        let m = Memory::default();
        let leaf = |ks: &[&str]| m.plant_leaf(ks);
        let (l1, l2) = (leaf(&["a", "b"]), leaf(&["c", "d"]));
        let lying = Child {
            first: b"x".to_vec(),
            count: 2,
            node: l2,
        };
        let honest = Child {
            first: b"a".to_vec(),
            count: 2,
            node: l1,
        };
        let node = m.plant(
            Kind::IndexInner,
            &Inner {
                level: 1,
                children: vec![honest, lying],
            },
        );
        let crafted = Root {
            node,
            level: 1,
            count: 4,
        };
        let other = Root {
            node: leaf(&["c"]),
            level: 0,
            count: 1,
        };
        let err =
            diff(&m, Some(&other), Some(&crafted), &mut |_| Ok(())).expect_err("a lying first key");
        assert!(err.to_string().contains("damaged"), "{err}");
    }

    #[test]
    fn a_crafted_node_placed_inside_its_left_neighbour_stops_the_walk() {
        // The second leaf claims to start at `b`, inside the first leaf's keys: a scan that
        // seeks `b` would start in the second leaf and miss `b` and `c`, so a copy must not
        // be made that holds them.
        let m = Memory::default();
        let leaf = |ks: &[&str]| m.plant_leaf(ks);
        let child = |first: &str, node| Child {
            first: first.as_bytes().to_vec(),
            count: 2,
            node,
        };
        let children = vec![
            child("a", leaf(&["a", "b", "c"])),
            child("b", leaf(&["d", "e"])),
        ];
        let node = m.plant(Kind::IndexInner, &Inner { level: 1, children });
        let crafted = Root {
            node,
            level: 1,
            count: 5,
        };
        let err = diff(&m, None, Some(&crafted), &mut |_| Ok(())).expect_err("misplaced");
        assert!(err.to_string().contains("damaged"), "{err}");
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

        /// Two indexes a few batches apart differ by what two sorted maps differ by.
        #[test]
        fn the_difference_of_two_indexes_is_that_of_two_sorted_maps(
            batches in prop::collection::vec(
                prop::collection::vec((0u32..3000, prop::option::of(0u32..200)), 0..600),
                2..5,
            ),
            from in 0usize..4,
        ) {
            let m = Memory::default();
            let mut model = BTreeMap::new();
            let mut roots = vec![(None, model.clone())];
            for batch in &batches {
                let changes: Vec<Change> = batch
                    .iter()
                    .map(|(k, v)| (format!("{k:05}").into_bytes(), v.map(|v| vec![b'v'; v as usize])))
                    .collect();
                for (k, v) in &changes {
                    match v {
                        Some(v) => model.insert(k.clone(), v.clone()),
                        None => model.remove(k),
                    };
                }
                let prev: Option<Root> = roots.last().and_then(|r| r.0.clone());
                let root = apply(&m, prev.as_ref(), changes).expect("apply");
                roots.push((root, model.clone()));
            }
            let (old, old_model) = &roots[from.min(roots.len() - 1)];
            let (new, new_model) = roots.last().expect("one");
            let (got, _) = delta(&m, old.as_ref(), new.as_ref());
            prop_assert_eq!(&got, &model_delta(old_model, new_model));
            let (back, _) = delta(&m, new.as_ref(), old.as_ref());
            prop_assert_eq!(back, model_delta(new_model, old_model));
        }
    }
}
