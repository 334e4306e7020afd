//! Reading a sorted map by ranges, wherever it is kept: an archive tag's index in the
//! archive ([`Tree`]), or a local copy of one (`core::searchcache`). Searches read through
//! [`Entries`], so that one evaluation of a query serves both, and a copy can only ever give
//! the answers the index itself gives.

use super::{Cursor, Nodes, Root};
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

    /// One walk from the root per key, on every core: the keys a search looks up (its hits'
    /// summaries) are spread over the whole map, nearly one leaf each.
    fn get_many(&self, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>> {
        use rayon::prelude::*;
        keys.par_iter()
            .map(|key| {
                let item = Cursor::new(self.nodes, self.root, key)?
                    .next()
                    .transpose()?;
                Ok(item.filter(|i| i.key == *key).map(|i| i.value))
            })
            .collect()
    }
}
