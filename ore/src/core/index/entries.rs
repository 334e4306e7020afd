//! Reading a sorted map by ranges, wherever it is kept: an archive tag's index in the
//! archive ([`Tree`]), or a local copy of one (`core::searchcache`). Searches read through
//! [`Entries`], so that one evaluation of a query serves both, and a copy can only ever give
//! the answers the index itself gives.

use super::{load_inner, load_leaf, Cursor, Inner, Leaf, Nodes, Root};
use crate::core::error::Result;

/// A sorted map from byte strings to byte strings, read by ranges.
pub trait Entries {
    /// Shows `each` the entries from key `from` on (at least `from`), in key order, until it
    /// returns `false` or the map ends.
    fn scan(&self, from: &[u8], each: &mut dyn FnMut(&[u8], &[u8]) -> bool) -> Result<()>;

    /// The values of `keys`, in their order (`None` where the map has no such key).
    fn get_many(&self, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>>;

    /// Shows `each` every entry whose key starts with `prefix`, in key order.
    fn prefixed(&self, prefix: &[u8], each: &mut dyn FnMut(&[u8], &[u8])) -> Result<()> {
        self.scan(prefix, &mut |k, v| {
            let inside = k.starts_with(prefix);
            if inside {
                each(k, v);
            }
            inside
        })
    }
}

/// An index in an archive (`None`: empty).
pub struct Tree<'n, N: Nodes> {
    nodes: &'n N,
    root: Option<&'n Root>,
}

impl<'n, N: Nodes> Tree<'n, N> {
    pub fn new(nodes: &'n N, root: Option<&'n Root>) -> Self {
        Tree { nodes, root }
    }
}

impl<N: Nodes + Sync> Entries for Tree<'_, N> {
    fn scan(&self, from: &[u8], each: &mut dyn FnMut(&[u8], &[u8]) -> bool) -> Result<()> {
        for item in Cursor::new(self.nodes, self.root, from)? {
            let item = item?;
            if !each(&item.key, &item.value) {
                break;
            }
        }
        Ok(())
    }

    /// One descent from the root per key, on every core: the keys a search looks up (its
    /// hits' summaries) are spread over the whole map, nearly one leaf each. The keys are
    /// taken in order, so each descent reuses the nodes above it that the one before read
    /// and decoded ([`Descent`]).
    fn get_many(&self, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>> {
        use rayon::prelude::*;
        let mut order: Vec<usize> = (0..keys.len()).collect();
        order.sort_by(|&a, &b| keys[a].cmp(&keys[b]));
        let per = order
            .len()
            .div_ceil(rayon::current_num_threads().max(1))
            .max(1);
        let found: Vec<Vec<(usize, Option<Vec<u8>>)>> = order
            .par_chunks(per)
            .map(|part| {
                let mut d = Descent::new(self.nodes, self.root);
                part.iter().map(|&i| Ok((i, d.get(&keys[i])?))).collect()
            })
            .collect::<Result<_>>()?;
        let mut out = vec![None; keys.len()];
        for (i, v) in found.into_iter().flatten() {
            out[i] = v;
        }
        Ok(out)
    }
}

/// Point look-ups that keep the last node read at each level: a look-up after another
/// nearby one decodes only what differs (on a million objects, the inner nodes above the
/// `o` leaves were decoded again for every hit).
struct Descent<'n, N: Nodes> {
    nodes: &'n N,
    root: Option<&'n Root>,
    /// By level: the inner node held there.
    inners: Vec<Option<(protocol::Key, Inner)>>,
    leaf: Option<(protocol::Key, Leaf)>,
}

impl<'n, N: Nodes> Descent<'n, N> {
    fn new(nodes: &'n N, root: Option<&'n Root>) -> Self {
        let levels = root.map_or(0, |r| usize::from(r.level) + 1);
        Descent {
            nodes,
            root,
            inners: (0..levels).map(|_| None).collect(),
            leaf: None,
        }
    }

    /// The value of `key` (`None`: no such entry).
    fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let Some(root) = self.root else {
            return Ok(None);
        };
        let (mut node, mut level) = (root.node, root.level);
        while level > 0 {
            let slot = &mut self.inners[usize::from(level)];
            let inner = match slot {
                Some((k, inner)) if *k == node => inner,
                _ => &mut slot.insert((node, load_inner(self.nodes, node, level)?)).1,
            };
            // The last child whose first key is at or before `key` (or the first child).
            let i = inner
                .children
                .partition_point(|ch| ch.first.as_slice() <= key)
                .saturating_sub(1);
            node = inner.children[i].node;
            level -= 1;
        }
        let leaf = match &mut self.leaf {
            Some((k, leaf)) if *k == node => leaf,
            slot => &mut slot.insert((node, load_leaf(self.nodes, node)?)).1,
        };
        Ok(leaf
            .items
            .binary_search_by(|it| it.key.as_slice().cmp(key))
            .ok()
            .map(|i| leaf.items[i].value.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::Memory;
    use super::super::{apply, Change};
    use super::*;

    #[test]
    fn look_ups_in_any_order_find_what_a_scan_finds() {
        let m = Memory::default();
        let changes: Vec<Change> = (0..50_000u32)
            .map(|i| {
                let key = format!("k{:08}", i * 2).into_bytes();
                (key, Some(format!("v{i}").into_bytes()))
            })
            .collect();
        let root = apply(&m, None, changes).expect("apply").expect("root");
        assert!(root.level >= 1, "{root:?}");
        // Present and absent keys, before, between and after the entries, out of order and
        // repeated: each as a fresh cursor finds it.
        let mut wanted: Vec<Vec<u8>> = (0..3_000u32)
            .map(|i| format!("k{:08}", (i * 7919) % 100_003).into_bytes())
            .collect();
        wanted.extend([
            b"a".to_vec(),
            b"z".to_vec(),
            b"k".to_vec(),
            wanted[5].clone(),
        ]);
        let mut d = Descent::new(&m, Some(&root));
        for key in &wanted {
            let by_scan = Cursor::new(&m, Some(&root), key)
                .expect("cursor")
                .next()
                .transpose()
                .expect("entry")
                .filter(|it| it.key == *key)
                .map(|it| it.value);
            assert_eq!(
                d.get(key).expect("get"),
                by_scan,
                "{}",
                String::from_utf8_lossy(key)
            );
        }
        assert_eq!(Descent::new(&m, None).get(b"k00000000").expect("get"), None);
    }
}
