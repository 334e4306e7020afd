//! Index trees: how long lists — a file's pieces, a directory's entries — are cut into blocks.
//!
//! A list is cut into leaf blocks at *content-defined* points: after an item whose hash has
//! certain low bits zero (a chunk's key for files, the name's BLAKE3 for directories). The keys
//! of the leaves form the next level's list, cut the same way by their keys, and so on up to a
//! single root. Because cut points depend only on nearby items, inserting or changing an entry
//! deep in a huge file or directory rewrites one leaf and the path above it, not everything
//! after it. A size cap forces a cut when items are unusually large.

use crate::core::block::Kind;
use crate::core::entry::{decode, encode, Child, DirSummary, Entry, EntryKind, Inner, Piece};
use crate::core::error::{Error, Result};
use crate::core::prefetch::Fetch;
use crate::core::repo::Repo;
use crate::core::util::show;
use protocol::Key;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// What differs between the tree of a file and of a directory.
pub trait TreeSpec {
    type Leaf: Serialize + DeserializeOwned + Clone;
    type Summary: Serialize + DeserializeOwned + Clone;
    const LEAF: Kind;
    const INNER: Kind;
    /// Whether the list is cut after this item.
    fn cut_after(item: &Self::Leaf) -> bool;
    /// Rough encoded size, for the size cap.
    fn weight(item: &Self::Leaf) -> usize;
    fn summarize(items: &[Self::Leaf]) -> Self::Summary;
    fn summarize_children(children: &[Child<Self::Summary>]) -> Self::Summary;
    /// Checks a decoded leaf's items: why they cannot be in the archive, if they cannot.
    fn check_leaf(_items: &[Self::Leaf]) -> Result<(), String> {
        Ok(())
    }
    /// Checks a decoded inner node's children the same way.
    fn check_inner(_children: &[Child<Self::Summary>]) -> Result<(), String> {
        Ok(())
    }
    /// Whether `next` may follow `prev` in the list (across leaves; within a leaf
    /// [`TreeSpec::check_leaf`] says).
    fn in_order(_prev: &Self::Leaf, _next: &Self::Leaf) -> bool {
        true
    }
}

/// Most items in one block, whatever the cut points say.
const MAX_ITEMS: usize = 8192;
/// Most bytes (roughly) in one block.
const MAX_WEIGHT: usize = 4 << 20;
/// Average children per inner node: a cut after a child whose key's low 6 bits are zero.
const INNER_MASK: u16 = 63;

fn key_bits(k: &Key) -> u16 {
    u16::from_le_bytes([k.0[30], k.0[31]])
}

/// Trees of file pieces.
#[derive(Debug)]
pub struct FileTree;

impl TreeSpec for FileTree {
    type Leaf = Piece;
    type Summary = u64;
    const LEAF: Kind = Kind::FileLeaf;
    const INNER: Kind = Kind::FileIndex;
    fn cut_after(item: &Piece) -> bool {
        matches!(item, Piece::Data { key, .. } if key_bits(key) & 255 == 0)
    }
    fn weight(_: &Piece) -> usize {
        48
    }
    fn summarize(items: &[Piece]) -> u64 {
        items.iter().map(Piece::len).sum()
    }
    fn summarize_children(children: &[Child<u64>]) -> u64 {
        children.iter().map(|c| c.summary).sum()
    }
    fn check_leaf(items: &[Piece]) -> Result<(), String> {
        match items.iter().position(|p| matches!(p, Piece::Slice { .. })) {
            Some(i) => Err(format!(
                "its piece {i} is a slice, which only a file's content may be"
            )),
            None => Ok(()),
        }
    }
}

/// Trees of directory entries.
#[derive(Debug)]
pub struct DirTree;

impl TreeSpec for DirTree {
    type Leaf = Entry;
    type Summary = DirSummary;
    const LEAF: Kind = Kind::Dir;
    const INNER: Kind = Kind::DirIndex;
    fn cut_after(item: &Entry) -> bool {
        let h = blake3::hash(&item.name);
        u16::from_le_bytes([h.as_bytes()[0], h.as_bytes()[1]]) & 255 == 0
    }
    fn weight(e: &Entry) -> usize {
        64 + e.name.len()
            + e.xattrs
                .iter()
                .map(|x| x.name.len() + x.value.len() + 4)
                .sum::<usize>()
            + match &e.kind {
                EntryKind::Symlink { target } | EntryKind::Hardlink { target } => target.len(),
                _ => 0,
            }
    }
    fn summarize(items: &[Entry]) -> DirSummary {
        DirSummary {
            first: items.first().map(|e| e.name.clone()).unwrap_or_default(),
            count: items.len() as u64,
        }
    }
    fn summarize_children(children: &[Child<DirSummary>]) -> DirSummary {
        DirSummary {
            first: children
                .first()
                .map(|c| c.summary.first.clone())
                .unwrap_or_default(),
            count: children.iter().map(|c| c.summary.count).sum(),
        }
    }
    /// Every entry's name and hard-link target is checked ([`crate::core::entry::check_entry`]),
    /// and names must be sorted without duplicates (FORMAT.md §4): this is where every reader
    /// of a directory gets its entries, so nothing past it meets `..` or `/` in a name.
    fn check_leaf(items: &[Entry]) -> Result<(), String> {
        for (i, e) in items.iter().enumerate() {
            crate::core::entry::check_entry(e)?;
            if i > 0 && !Self::in_order(&items[i - 1], e) {
                return Err(out_of_order(&items[i - 1].name, &e.name));
            }
        }
        Ok(())
    }
    fn check_inner(children: &[Child<DirSummary>]) -> Result<(), String> {
        for w in children.windows(2) {
            if w[0].summary.first >= w[1].summary.first {
                return Err(out_of_order(&w[0].summary.first, &w[1].summary.first));
            }
        }
        Ok(())
    }
    fn in_order(prev: &Entry, next: &Entry) -> bool {
        prev.name < next.name
    }
}

fn out_of_order(a: &[u8], b: &[u8]) -> String {
    use crate::core::entry::quoted;
    if a == b {
        format!("the name {} appears twice", quoted(a))
    } else {
        format!("the names {} and {} are out of order", quoted(a), quoted(b))
    }
}

/// Stores a block and returns its key: the builder's way out.
pub trait Store {
    fn store(&mut self, kind: Kind, plain: &[u8]) -> Result<Key>;
}

/// Builds a tree from items given in order. Leaves are stored as a plain list of items, inner
/// nodes as [`Inner`].
pub struct Builder<S: TreeSpec> {
    leaf: Vec<S::Leaf>,
    leaf_weight: usize,
    inner: Vec<Vec<Child<S::Summary>>>,
}

impl<S: TreeSpec> Default for Builder<S> {
    fn default() -> Self {
        Builder {
            leaf: Vec::new(),
            leaf_weight: 0,
            inner: Vec::new(),
        }
    }
}

impl<S: TreeSpec> Builder<S> {
    /// Adds the next item.
    pub fn push(&mut self, item: S::Leaf, store: &mut dyn Store) -> Result<()> {
        let cut = S::cut_after(&item);
        self.leaf_weight += S::weight(&item);
        self.leaf.push(item);
        if cut || self.leaf.len() >= MAX_ITEMS || self.leaf_weight >= MAX_WEIGHT {
            self.flush_leaf(store)?;
        }
        Ok(())
    }

    fn flush_leaf(&mut self, store: &mut dyn Store) -> Result<()> {
        let summary = S::summarize(&self.leaf);
        let key = store.store(S::LEAF, &encode(&self.leaf))?;
        self.leaf.clear();
        self.leaf_weight = 0;
        self.push_child(0, Child { key, summary }, store)
    }

    fn push_child(
        &mut self,
        level: usize,
        child: Child<S::Summary>,
        store: &mut dyn Store,
    ) -> Result<()> {
        if self.inner.len() <= level {
            self.inner.push(Vec::new());
        }
        let cut = key_bits(&child.key) & INNER_MASK == 0;
        self.inner[level].push(child);
        if cut || self.inner[level].len() >= MAX_ITEMS {
            self.flush_inner(level, store)?;
        }
        Ok(())
    }

    fn flush_inner(&mut self, level: usize, store: &mut dyn Store) -> Result<()> {
        let children = std::mem::take(&mut self.inner[level]);
        let summary = S::summarize_children(&children);
        let block = Inner {
            level: level as u8 + 1,
            children,
        };
        let key = store.store(S::INNER, &encode(&block))?;
        self.push_child(level + 1, Child { key, summary }, store)
    }

    /// Stores what is left and returns the root's key (a leaf when everything fit in one).
    pub fn finish(mut self, store: &mut dyn Store) -> Result<Key> {
        if self.inner.is_empty() {
            return store.store(S::LEAF, &encode(&self.leaf));
        }
        if !self.leaf.is_empty() {
            self.flush_leaf(store)?;
        }
        let mut level = 0;
        loop {
            let above_empty = self.inner[level + 1..].iter().all(Vec::is_empty);
            if above_empty && self.inner[level].len() == 1 {
                return Ok(self.inner[level][0].key);
            }
            if !self.inner[level].is_empty() {
                self.flush_inner(level, store)?;
            }
            level += 1;
        }
    }
}

type Level<S> = (Vec<Child<S>>, usize, u8);

/// Reads a tree's items in order, fetching one block per level at a time.
pub struct Reader<'r, S: TreeSpec> {
    repo: &'r Repo,
    fetch: &'r dyn Fetch,
    /// Inner nodes being read: their children, the next child, their level.
    stack: Vec<Level<S::Summary>>,
    leaf: std::vec::IntoIter<S::Leaf>,
    /// The last item of the leaf before, to check the order across leaves.
    last: Option<S::Leaf>,
}

/// Reads a node: a leaf's items, or an inner node.
pub enum Node<S: TreeSpec> {
    Leaf(Vec<S::Leaf>),
    Inner(Inner<S::Summary>),
}

/// Fetches and decodes the node `key`.
pub fn read_node<S: TreeSpec>(repo: &Repo, key: Key) -> Result<Node<S>> {
    read_node_via(repo, repo, key)
}

/// Fetches (through `fetch`) and decodes the node `key`, or the implied one of that key
/// (`core::implied`), read through the same checks.
pub fn read_node_via<S: TreeSpec>(repo: &Repo, fetch: &dyn Fetch, key: Key) -> Result<Node<S>> {
    let plain = match repo.implied().get(&key) {
        Some(sealed) => sealed,
        None => crate::core::repo::fetched(fetch.fetch(key), key, S::LEAF)?,
    };
    let p = crate::core::block::open(repo.try_keys()?, &key, None, plain)?;
    decode_node(&p, key)
}

/// Decodes an opened block as a leaf or an inner node of a tree of type `S`.
///
/// Every node read from an archive passes through here, and its items are checked here
/// ([`TreeSpec::check_leaf`], [`TreeSpec::check_inner`]): a node that fails is corrupt.
pub fn decode_node<S: TreeSpec>(p: &crate::core::block::Plain, key: Key) -> Result<Node<S>> {
    let corrupt = |kind: Kind, why: String| Error::Corrupt {
        key,
        kind: kind.name(),
        why,
    };
    if p.kind == S::LEAF {
        let items: Vec<S::Leaf> = decode(p.data(), &key, S::LEAF)?;
        S::check_leaf(&items).map_err(|why| corrupt(S::LEAF, why))?;
        Ok(Node::Leaf(items))
    } else if p.kind == S::INNER {
        let inner: Inner<S::Summary> = decode(p.data(), &key, S::INNER)?;
        S::check_inner(&inner.children).map_err(|why| corrupt(S::INNER, why))?;
        Ok(Node::Inner(inner))
    } else {
        Err(Error::Corrupt {
            key,
            kind: S::LEAF.name(),
            why: format!("it holds a {} block", p.kind.name()),
        })
    }
}

impl<'r, S: TreeSpec> Reader<'r, S> {
    /// Starts reading the tree rooted at `root`.
    pub fn new(repo: &'r Repo, root: Key) -> Reader<'r, S> {
        Reader::via(repo, repo, root)
    }

    /// Starts reading the tree rooted at `root`, fetching its blocks through `fetch`.
    pub fn via(repo: &'r Repo, fetch: &'r dyn Fetch, root: Key) -> Reader<'r, S> {
        Reader {
            repo,
            fetch,
            stack: vec![(
                vec![Child {
                    key: root,
                    summary: S::summarize(&[]),
                }],
                0,
                u8::MAX,
            )],
            leaf: Vec::new().into_iter(),
            last: None,
        }
    }

    /// The next item, `None` at the end.
    pub fn next_item(&mut self) -> Result<Option<S::Leaf>> {
        loop {
            if let Some(item) = self.leaf.next() {
                return Ok(Some(item));
            }
            let Some((children, pos, level)) = self.stack.last_mut() else {
                return Ok(None);
            };
            if *pos >= children.len() {
                self.stack.pop();
                continue;
            }
            let key = children[*pos].key;
            let parent_level = *level;
            *pos += 1;
            match read_node_via::<S>(self.repo, self.fetch, key)? {
                Node::Leaf(items) => {
                    if parent_level != 1 && parent_level != u8::MAX {
                        return Err(bad_level(key, S::LEAF));
                    }
                    if let (Some(prev), Some(first)) = (&self.last, items.first()) {
                        if !S::in_order(prev, first) {
                            return Err(Error::Corrupt {
                                key,
                                kind: S::LEAF.name(),
                                why: "its items do not follow the leaf before it in order".into(),
                            });
                        }
                    }
                    if let Some(l) = items.last() {
                        self.last = Some(l.clone());
                    }
                    self.leaf = items.into_iter();
                }
                Node::Inner(inner) => {
                    let ok = inner.level >= 1
                        && inner.level < 40
                        && (parent_level == u8::MAX || inner.level + 1 == parent_level);
                    if !ok {
                        return Err(bad_level(key, S::INNER));
                    }
                    // The children will all be read, in order: ask for them together.
                    for c in &inner.children {
                        self.fetch.ask(c.key, 64 << 10);
                    }
                    self.stack.push((inner.children, 0, inner.level));
                }
            }
        }
    }
}

fn bad_level(key: Key, kind: Kind) -> Error {
    Error::Corrupt {
        key,
        kind: kind.name(),
        why: "it sits at the wrong level of its tree".into(),
    }
}

/// Finds the entry called `name` in the directory tree `root`, reading only the path to it.
pub fn lookup(repo: &Repo, root: Key, name: &[u8]) -> Result<Option<Entry>> {
    let mut key = root;
    loop {
        match read_node::<DirTree>(repo, key)? {
            Node::Leaf(items) => {
                return Ok(items
                    .binary_search_by(|e| e.name.as_slice().cmp(name))
                    .ok()
                    .map(|i| items[i].clone()))
            }
            Node::Inner(inner) => {
                let i = inner
                    .children
                    .partition_point(|c| c.summary.first.as_slice() <= name);
                if i == 0 {
                    return Ok(None);
                }
                key = inner.children[i - 1].key;
            }
        }
    }
}

/// Finds the entry at `path` (components separated by `/`) below `root`.
pub fn find(repo: &Repo, root: &Entry, path: &[u8]) -> Result<Entry> {
    let mut cur = root.clone();
    for comp in path
        .split(|&b| b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
    {
        let EntryKind::Dir { tree } = cur.kind else {
            return Err(Error::Usage(format!(
                "`{}` is not a directory in the snapshot",
                show(&cur.name)
            )));
        };
        cur = lookup(repo, tree, comp)?
            .ok_or_else(|| Error::Usage(format!("`{}` is not in the snapshot", show(path))))?;
    }
    Ok(cur)
}

/// The pieces of a file of `size` bytes, in order (reading its index tree if it has one).
pub fn file_pieces(
    repo: &Repo,
    content: &crate::core::entry::Content,
    size: u64,
) -> Result<Vec<Piece>> {
    use crate::core::entry::Content;
    Ok(match content {
        Content::Empty => Vec::new(),
        Content::Chunk(k) => vec![Piece::Data { key: *k, len: size }],
        // Its length was checked against `size` where its directory was decoded
        // ([`crate::core::entry::check_details`]).
        &Content::Slice { key, start, len } => vec![Piece::Slice { key, start, len }],
        &Content::Catalogued { id } => return Err(Error::NotStored { id }),
        Content::Index(root) => {
            let mut out = Vec::new();
            let mut r = Reader::<FileTree>::new(repo, *root);
            let mut covered = 0u64;
            while let Some(p) = r.next_item()? {
                // The pieces must cover the file exactly (FORMAT.md §5): a crafted index that
                // claims more is refused before anyone reads or writes that much.
                covered = covered
                    .checked_add(p.len())
                    .filter(|&c| c <= size)
                    .ok_or_else(|| Error::Corrupt {
                        key: *root,
                        kind: Kind::FileIndex.name(),
                        why: format!("its pieces cover more than the file's {size} bytes"),
                    })?;
                out.push(p);
            }
            if covered != size {
                return Err(Error::Corrupt {
                    key: *root,
                    kind: Kind::FileIndex.name(),
                    why: format!("its pieces cover {covered} of the file's {size} bytes"),
                });
            }
            out
        }
    })
}

/// A file's pieces as they are produced: the first is held back so that a one-chunk file
/// needs no index block ([`Content::Chunk`](crate::core::entry::Content::Chunk)).
#[derive(Default)]
pub struct Pieces {
    first: Option<Piece>,
    tree: Option<Builder<FileTree>>,
}

impl Pieces {
    /// Adds the next piece.
    pub fn push(&mut self, store: &mut dyn Store, p: Piece) -> Result<()> {
        if let Some(tree) = &mut self.tree {
            return tree.push(p, store);
        }
        match self.first.take() {
            None => self.first = Some(p),
            Some(first) => {
                let mut tree = Builder::<FileTree>::default();
                tree.push(first, store)?;
                tree.push(p, store)?;
                self.tree = Some(tree);
            }
        }
        Ok(())
    }

    /// The file's content.
    pub fn finish(self, store: &mut dyn Store) -> Result<crate::core::entry::Content> {
        use crate::core::entry::Content;
        Ok(match (self.first, self.tree) {
            (_, Some(tree)) => Content::Index(tree.finish(store)?),
            (Some(Piece::Data { key, .. }), None) => Content::Chunk(key),
            (Some(Piece::Slice { key, start, len }), None) => Content::Slice { key, start, len },
            (Some(hole), None) => {
                let mut tree = Builder::<FileTree>::default();
                tree.push(hole, store)?;
                Content::Index(tree.finish(store)?)
            }
            (None, None) => Content::Empty,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::entry::EntryKind;

    fn named(name: &[u8]) -> Entry {
        Entry {
            name: name.to_vec(),
            kind: EntryKind::Fifo,
            mode: 0o644,
            uid: 0,
            gid: 0,
            user: None,
            group: None,
            mtime: 0,
            atime: None,
            ctime: None,
            xattrs: Vec::new(),
        }
    }

    #[test]
    fn a_directory_leaf_must_hold_valid_names_sorted_once() {
        let leaf = |names: &[&[u8]]| names.iter().map(|n| named(n)).collect::<Vec<_>>();
        assert_eq!(DirTree::check_leaf(&leaf(&[b"a", b"b", b"c"])), Ok(()));
        assert_eq!(DirTree::check_leaf(&[]), Ok(()));
        let err = DirTree::check_leaf(&leaf(&[b"a", b"a"])).unwrap_err();
        assert!(err.contains("appears twice"), "{err}");
        let err = DirTree::check_leaf(&leaf(&[b"b", b"a"])).unwrap_err();
        assert!(err.contains("out of order"), "{err}");
        let err = DirTree::check_leaf(&leaf(&[b".", b"a"])).unwrap_err();
        assert!(err.contains("\".\""), "{err}");
    }

    #[test]
    fn a_directory_index_must_name_its_children_in_order() {
        let child = |first: &[u8]| Child {
            key: Key([0; 32]),
            summary: DirSummary {
                first: first.to_vec(),
                count: 1,
            },
        };
        assert_eq!(DirTree::check_inner(&[child(b"a"), child(b"m")]), Ok(()));
        assert!(DirTree::check_inner(&[child(b"m"), child(b"a")]).is_err());
        assert!(DirTree::check_inner(&[child(b"m"), child(b"m")]).is_err());
    }
}
