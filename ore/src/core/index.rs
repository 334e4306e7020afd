//! The index of an archive tag: a sorted map from byte strings to byte strings, stored as a
//! B+tree of blocks (kinds [`Kind::IndexLeaf`] and [`Kind::IndexInner`]) and changed by
//! copying paths.
//!
//! Archival mode (docs/ARCHIVAL.md) keeps every object of a tag, and every property, word,
//! name and content hash that finds one, as entries of this one map. A million objects make
//! some ten million entries, so a change must not rewrite the map: [`apply`] takes a sorted
//! batch of puts and removals, descends only into the children their keys fall in, and
//! rewrites the leaves they land in and the nodes above them. A node that grows past
//! [`NODE_BYTES`] or [`NODE_ITEMS`] is split evenly; a node left empty disappears; a root
//! left with one child gives way to it. An import that adds one object with a dozen entries
//! rewrites at most a dozen leaves and the few nodes above them, whatever the index's size.
//!
//! Why a B+tree and not a tree cut at content-defined points (a prolly tree, whose shape
//! depends only on its entries): two imports racing on one tag are merged by applying the
//! loser's batch to the winner's index, never by merging two trees, so nothing needs the
//! shape to be independent of history; and a path copy is simple enough to check completely.
//!
//! Nothing read is trusted: [`check`] walks a whole index and names each node that is out of
//! order, claims a wrong first key or count, sits at the wrong level or is missing, and every
//! reader checks as it goes what it relies on (levels that fall by one at each step, so no
//! walk descends for ever; keys that only ever increase, so a crafted index that names one
//! node twice ends a scan with an error instead of a loop).

mod batch;
mod check;
mod diff;
mod entries;
mod scan;
#[cfg(test)]
pub(crate) mod tests;

pub use batch::Batch;
pub use check::{check, Problem};
pub use diff::{diff, Delta, DiffStats};
pub use entries::{Entries, Tree};
pub use scan::Cursor;

use crate::core::block::Kind;
use crate::core::entry::{decode, encode};
use crate::core::error::{Error, Result};
use protocol::Key;
use serde::{Deserialize, Serialize};

/// A node is split when its encoding would pass this many bytes (a point look-up reads one
/// leaf whole: 32 KiB made a search that shows 88 objects 40% slower, docs/ARCHIVAL.md)…
pub const NODE_BYTES: usize = 8 * 1024;
/// …or it would hold more items than this.
pub const NODE_ITEMS: usize = 256;
/// The longest key an entry may have.
pub const MAX_KEY: usize = 1024;
/// The longest value an entry may have.
pub const MAX_VALUE: usize = 8 * 1024;
/// The most levels above the leaves an index may have. With at least two children per node
/// that is 2^24 leaves at the least; a real index of ten million entries has three.
pub const MAX_LEVEL: u8 = 24;

/// Where the index's blocks are kept: an archive ([`crate::core::repo::Repo`]), or memory in
/// tests.
pub trait Nodes {
    /// The plaintext of node `key`, of `kind`.
    fn load(&self, key: Key, kind: Kind) -> Result<Vec<u8>>;
    /// Stores a node; its key.
    fn store(&self, kind: Kind, plain: Vec<u8>) -> Result<Key>;
    /// Stores several nodes of one kind; their keys, in order. A batch of thousands (an
    /// import of many objects) is sealed on every core by the archive's own version.
    fn store_many(&self, kind: Kind, plains: Vec<Vec<u8>>) -> Result<Vec<Key>> {
        plains.into_iter().map(|p| self.store(kind, p)).collect()
    }
}

impl Nodes for crate::core::repo::Repo {
    fn load(&self, key: Key, kind: Kind) -> Result<Vec<u8>> {
        match kind {
            Kind::IndexInner => Ok(self.inner_node(key)?.as_ref().clone()),
            _ => Ok(self.get_block(key, kind)?.data().to_vec()),
        }
    }

    fn store(&self, kind: Kind, plain: Vec<u8>) -> Result<Key> {
        Ok(self.put_block(kind, &plain)?.0)
    }

    fn store_many(&self, kind: Kind, plains: Vec<Vec<u8>>) -> Result<Vec<Key>> {
        use rayon::prelude::*;
        let sealed: Vec<(Key, Vec<u8>)> = plains
            .par_iter()
            .map(|p| {
                let key = self.keys().key_of(kind as u8, p);
                Ok((key, self.sealed(kind, &key, p)?))
            })
            .collect::<Result<_>>()?;
        let keys = sealed.iter().map(|(k, _)| *k).collect();
        self.put_sealed(sealed)?;
        Ok(keys)
    }
}

/// The top of a non-empty index: its node, that node's level (0: a leaf), and how many
/// entries the index holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Root {
    pub node: Key,
    pub level: u8,
    pub count: u64,
}

/// One entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    #[serde(with = "serde_bytes")]
    pub key: Vec<u8>,
    #[serde(with = "serde_bytes")]
    pub value: Vec<u8>,
}

/// A leaf: entries in strictly increasing key order.
#[derive(Debug, Serialize, Deserialize)]
struct Leaf {
    items: Vec<Item>,
}

/// A leaf to encode from entries held elsewhere: the same bytes as [`Leaf`].
#[derive(Serialize)]
struct LeafRef<'a> {
    items: &'a [ItemRef<'a>],
}

/// An entry held elsewhere: the same bytes as [`Item`].
#[derive(Serialize)]
struct ItemRef<'a> {
    #[serde(with = "serde_bytes")]
    key: &'a [u8],
    #[serde(with = "serde_bytes")]
    value: &'a [u8],
}

/// An inner node: children in increasing order of their first keys, each one level down.
#[derive(Debug, Serialize, Deserialize)]
struct Inner {
    level: u8,
    children: Vec<Child>,
}

/// What an inner node knows of a child: its first key, its number of entries, its block.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Child {
    #[serde(with = "serde_bytes")]
    first: Vec<u8>,
    count: u64,
    node: Key,
}

/// A change: put `key` with a value, or remove it (`None`).
pub type Change = (Vec<u8>, Option<Vec<u8>>);

/// Applies `changes` to the index at `root` (`None`: empty) and returns the new root (`None`
/// when nothing is left). Changes may come in any order; of two for one key the later wins.
/// Nothing is stored for an entry over [`MAX_KEY`] or [`MAX_VALUE`]: the whole batch is
/// refused first.
pub fn apply(
    nodes: &impl Nodes,
    root: Option<&Root>,
    changes: Vec<Change>,
) -> Result<Option<Root>> {
    apply_seeing(nodes, root, changes, &mut |_| {})
}

/// [`apply`], showing `seen` every entry the index held that a change overwrites or removes
/// (as it was), so that a caller can keep counts of what the index holds exact without
/// looking each key up first.
pub fn apply_seeing(
    nodes: &impl Nodes,
    root: Option<&Root>,
    changes: Vec<Change>,
    seen: &mut dyn FnMut(&Item),
) -> Result<Option<Root>> {
    let refs = changes
        .iter()
        .map(|(k, v)| (&k[..], v.as_deref()))
        .collect();
    apply_refs(nodes, root, refs, seen)
}

/// [`apply_seeing`] of the changes of `batches`, in order (of two for one key the later
/// wins, in one batch or across two).
pub fn apply_batches(
    nodes: &impl Nodes,
    root: Option<&Root>,
    batches: &[Batch],
    seen: &mut dyn FnMut(&Item),
) -> Result<Option<Root>> {
    let refs = batches.iter().flat_map(Batch::iter).collect();
    apply_refs(nodes, root, refs, seen)
}

fn apply_refs(
    nodes: &impl Nodes,
    root: Option<&Root>,
    changes: Vec<batch::Ref<'_>>,
    seen: &mut dyn FnMut(&Item),
) -> Result<Option<Root>> {
    for (k, v) in &changes {
        if k.len() > MAX_KEY || v.is_some_and(|v| v.len() > MAX_VALUE) {
            return Err(Error::Usage(format!(
                "an index entry of {} and {} bytes: keys are at most {MAX_KEY} bytes and values {MAX_VALUE}",
                k.len(),
                v.map_or(0, <[u8]>::len)
            )));
        }
    }
    let changes = batch::sorted(changes);
    let (mut level, mut children) = match root {
        // A new index: the puts are its entries, encoded where they lie.
        None => {
            let items: Vec<(&[u8], &[u8])> = changes
                .into_iter()
                .filter_map(|(key, value)| value.map(|value| (key, value)))
                .collect();
            (0, leaves(nodes, items)?)
        }
        Some(r) => (r.level, rewrite(nodes, r.node, r.level, &changes, seen)?),
    };
    loop {
        match children.len() {
            0 => return Ok(None),
            1 => {
                let top = &children[0];
                let (mut node, count) = (top.node, top.count);
                // A root with one child gives way to it.
                while level > 0 {
                    let inner = load_inner(nodes, node, level)?;
                    if inner.children.len() != 1 {
                        break;
                    }
                    node = inner.children[0].node;
                    level -= 1;
                }
                return Ok(Some(Root { node, level, count }));
            }
            _ if level >= MAX_LEVEL => {
                return Err(Error::Archive(format!(
                    "the index would pass {MAX_LEVEL} levels"
                )))
            }
            _ => {
                level += 1;
                children = inners(nodes, level, children)?;
            }
        }
    }
}

/// The nodes that replace node `node` (at `level`) once `changes`, all of which fall in its
/// range, are applied: none, itself rewritten, or several when it had to split.
fn rewrite(
    nodes: &impl Nodes,
    node: Key,
    level: u8,
    changes: &[batch::Ref<'_>],
    seen: &mut dyn FnMut(&Item),
) -> Result<Vec<Child>> {
    if level == 0 {
        let leaf = load_leaf(nodes, node)?;
        let merged = merge(leaf.items, changes, seen);
        return leaves(
            nodes,
            (merged.iter())
                .map(|i| (&i.key[..], &i.value[..]))
                .collect(),
        );
    }
    let inner = load_inner(nodes, node, level)?;
    let n = inner.children.len();
    let mut out = Vec::with_capacity(n + 1);
    let mut rest = changes;
    for i in 0..n {
        // Child i takes the keys below child i + 1's first key (the first child also those
        // below its own first key; the last child the rest).
        let upto = match inner.children.get(i + 1) {
            Some(next) => rest.partition_point(|c| c.0 < &next.first[..]),
            None => rest.len(),
        };
        let (mine, after) = rest.split_at(upto);
        rest = after;
        let child = &inner.children[i];
        if mine.is_empty() {
            out.push(child.clone());
        } else {
            out.extend(rewrite(nodes, child.node, level - 1, mine, seen)?);
        }
    }
    inners(nodes, level, out)
}

/// `items` (sorted) with `changes` (sorted, one per key) applied; `seen` is shown each item a
/// change overwrites or removes.
fn merge(items: Vec<Item>, changes: &[batch::Ref<'_>], seen: &mut dyn FnMut(&Item)) -> Vec<Item> {
    let mut out = Vec::with_capacity(items.len() + changes.len());
    let mut changes = changes.iter().peekable();
    for item in items {
        while let Some((k, v)) = changes.next_if(|c| c.0 < &item.key[..]) {
            if let Some(v) = v {
                out.push(Item {
                    key: k.to_vec(),
                    value: v.to_vec(),
                });
            }
        }
        match changes.next_if(|c| c.0 == &item.key[..]) {
            Some((_, Some(v))) => {
                seen(&item);
                out.push(Item {
                    key: item.key,
                    value: v.to_vec(),
                })
            }
            Some((_, None)) => seen(&item),
            None => out.push(item),
        }
    }
    for (k, v) in changes {
        if let Some(v) = v {
            out.push(Item {
                key: k.to_vec(),
                value: v.to_vec(),
            });
        }
    }
    out
}

/// Splits `list` into runs of about equal encoded size, none over the node bounds (unless a
/// single element is), by the sizes `size` gives.
fn runs<T>(list: Vec<T>, size: impl Fn(&T) -> usize) -> Vec<Vec<T>> {
    let total: usize = list.iter().map(&size).sum();
    let pieces = total
        .div_ceil(NODE_BYTES)
        .max(list.len().div_ceil(NODE_ITEMS))
        .max(1);
    let (target, per) = (total.div_ceil(pieces), list.len().div_ceil(pieces));
    let mut out = Vec::with_capacity(pieces);
    let mut run: Vec<T> = Vec::with_capacity(per);
    let mut bytes = 0;
    for x in list {
        let n = size(&x);
        if !run.is_empty() && (bytes + n > target || run.len() >= per) {
            out.push(std::mem::replace(&mut run, Vec::with_capacity(per)));
            bytes = 0;
        }
        bytes += n;
        run.push(x);
    }
    if !run.is_empty() {
        out.push(run);
    }
    out
}

/// Stores `items` (key, value) as leaves; the children that name them.
fn leaves(nodes: &impl Nodes, items: Vec<(&[u8], &[u8])>) -> Result<Vec<Child>> {
    use rayon::prelude::*;
    // Encoded on every core: a first import of 46,000 objects makes 4,700 leaves at once.
    let runs = runs(items, |(k, v)| k.len() + v.len() + 4);
    let made = (runs.par_iter())
        .map(|run| {
            let refs: Vec<ItemRef<'_>> = (run.iter())
                .map(|&(key, value)| ItemRef { key, value })
                .collect();
            // Sized up front: grown as it was encoded, the buffer was copied again and again.
            let bytes: usize = run.iter().map(|(k, v)| k.len() + v.len() + 4).sum();
            let plain =
                postcard::to_extend(&LeafRef { items: &refs }, Vec::with_capacity(bytes + 8))
                    .expect("postcard serialisation into memory");
            (run[0].0.to_vec(), run.len() as u64, plain)
        })
        .collect();
    store_nodes(nodes, Kind::IndexLeaf, made)
}

/// Stores `children` as inner nodes of `level`; the children that name them.
fn inners(nodes: &impl Nodes, level: u8, children: Vec<Child>) -> Result<Vec<Child>> {
    let made = runs(children, |c| c.first.len() + 44)
        .into_iter()
        .map(|run| {
            let (first, count) = (run[0].first.clone(), run.iter().map(|c| c.count).sum());
            (
                first,
                count,
                encode(&Inner {
                    level,
                    children: run,
                }),
            )
        })
        .collect();
    store_nodes(nodes, Kind::IndexInner, made)
}

/// Stores nodes of `kind`, each given with its first key, its entry count and its plaintext,
/// all at once ([`Nodes::store_many`]); the children that name them.
fn store_nodes(
    nodes: &impl Nodes,
    kind: Kind,
    made: Vec<(Vec<u8>, u64, Vec<u8>)>,
) -> Result<Vec<Child>> {
    let (heads, plains): (Vec<_>, Vec<_>) = made
        .into_iter()
        .map(|(first, count, plain)| ((first, count), plain))
        .unzip();
    let keys = nodes.store_many(kind, plains)?;
    Ok(heads
        .into_iter()
        .zip(keys)
        .map(|((first, count), node)| Child { first, count, node })
        .collect())
}

/// What a node holds, for a walk over every block (`core::reach`).
pub enum NodeView {
    Leaf(Vec<Item>),
    /// The children's blocks.
    Inner(Vec<Key>),
}

/// Decodes index node `key` of either kind.
pub fn read_node(plain: &crate::core::block::Plain, key: Key) -> Result<NodeView> {
    match plain.kind {
        Kind::IndexLeaf => Ok(NodeView::Leaf(
            decode::<Leaf>(plain.data(), &key, Kind::IndexLeaf)?.items,
        )),
        Kind::IndexInner => {
            let inner: Inner = decode(plain.data(), &key, Kind::IndexInner)?;
            Ok(NodeView::Inner(
                inner.children.into_iter().map(|c| c.node).collect(),
            ))
        }
        other => Err(corrupt(
            key,
            Kind::IndexLeaf,
            format!("it is {} block", crate::core::util::a(other.name())),
        )),
    }
}

fn corrupt(node: Key, kind: Kind, why: String) -> Error {
    Error::Corrupt {
        key: node,
        kind: kind.name(),
        why,
    }
}

/// Leaf `node`, its keys checked to increase.
fn load_leaf(nodes: &impl Nodes, node: Key) -> Result<Leaf> {
    let plain = nodes.load(node, Kind::IndexLeaf)?;
    let leaf: Leaf = decode(&plain, &node, Kind::IndexLeaf)?;
    if leaf.items.is_empty() {
        return Err(corrupt(node, Kind::IndexLeaf, "an empty leaf".into()));
    }
    if let Some(i) = leaf.items.windows(2).position(|w| w[0].key >= w[1].key) {
        return Err(corrupt(
            node,
            Kind::IndexLeaf,
            format!("entries {i} and {} are out of order", i + 1),
        ));
    }
    Ok(leaf)
}

/// Inner node `node`, checked to be at `level` with children in increasing order.
fn load_inner(nodes: &impl Nodes, node: Key, level: u8) -> Result<Inner> {
    let plain = nodes.load(node, Kind::IndexInner)?;
    let inner: Inner = decode(&plain, &node, Kind::IndexInner)?;
    if inner.level != level {
        return Err(corrupt(
            node,
            Kind::IndexInner,
            format!("at level {} where {level} belongs", inner.level),
        ));
    }
    if inner.children.is_empty() {
        return Err(corrupt(
            node,
            Kind::IndexInner,
            "a node without children".into(),
        ));
    }
    if let Some(i) = inner
        .children
        .windows(2)
        .position(|w| w[0].first >= w[1].first)
    {
        return Err(corrupt(
            node,
            Kind::IndexInner,
            format!("children {i} and {} are out of order", i + 1),
        ));
    }
    Ok(inner)
}
