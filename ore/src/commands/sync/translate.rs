//! `ore sync` between archives that do not share keys: every block is opened and stored
//! again under the destination's keys. Trees are rebuilt bottom up, each source tree once a run
//! (remembered in `memo`), with the directories being rebuilt kept on a stack of their own.
//! In a module of its own so that `sync.rs` keeps to the copying as stored and the tags.

use crate::core::block::Kind;
use crate::core::entry::{Content, Entry, EntryKind, Piece};
use crate::core::error::Result;
use crate::core::link::Node;
use crate::core::repo::Repo;
use crate::core::tree::{Builder, DirTree, Pieces, Reader, Store};
use crate::core::util::show;
use protocol::Key;
use std::collections::HashMap;

/// Re-encrypts trees into the destination, remembering what it translated.
pub(super) struct Translator<'r> {
    pub(super) src: &'r Repo,
    pub(super) dst: &'r Repo,
    pub(super) memo: HashMap<Key, Key>,
    /// The snapshot being translated, as errors name it.
    pub(super) at: String,
    pub(super) blocks: u64,
    pub(super) copied: u64,
    pub(super) bytes: u64,
    /// Bundles opened to split into files for a destination older than slices.
    pub(super) bundles: crate::core::plaincache::PlainCache,
}

/// A directory being translated: its source tree, the reader of its entries, the builder of
/// its translation, the entry of the subdirectory being translated meanwhile, and its path.
struct Level<'r> {
    tree: Key,
    reader: Reader<'r, DirTree>,
    builder: Builder<DirTree>,
    waiting: Option<Entry>,
    path: String,
}

struct DstStore<'a, 'r> {
    dst: &'r Repo,
    copied: &'a mut u64,
    bytes: &'a mut u64,
}

impl Store for DstStore<'_, '_> {
    fn store(&mut self, kind: Kind, plain: &[u8]) -> Result<Key> {
        let (k, new) = self.dst.put_block(kind, plain)?;
        if let Some(n) = new {
            *self.copied += 1;
            *self.bytes += n;
        }
        Ok(k)
    }
}

impl Translator<'_> {
    fn store(&mut self) -> DstStore<'_, '_> {
        DstStore {
            dst: self.dst,
            copied: &mut self.copied,
            bytes: &mut self.bytes,
        }
    }

    /// The destination's node for the source's chain node `n`, put after the destination's
    /// node `below`, as the destination's format chains snapshots. Only the first node before
    /// `n` is followed (and translated, as `below`): `ore` makes no other, and one named
    /// untranslated would be a key the destination lacks.
    pub(super) fn node(&mut self, n: &Node, below: Option<Key>) -> Result<Key> {
        if let Some(k) = self.memo.get(&n.node) {
            return Ok(*k);
        }
        let mut t = n.snapshot.clone();
        self.at = format!("snapshot {} (tag {})", n.key, n.snapshot.tag);
        t.root = self.entry(&n.snapshot.root)?;
        let c = self.dst.chained(&t, below.into_iter().collect());
        self.blocks += 1;
        for (kind, plain) in &c.blocks {
            self.store().store(*kind, plain)?;
        }
        self.memo.insert(n.node, c.node);
        Ok(c.node)
    }

    fn entry(&mut self, e: &Entry) -> Result<Entry> {
        let mut out = e.clone();
        match &e.kind {
            EntryKind::Dir { tree } => {
                out.kind = EntryKind::Dir {
                    tree: self.dir(*tree)?,
                }
            }
            EntryKind::File { size, content } => {
                out.kind = EntryKind::File {
                    size: *size,
                    content: self.content(content, *size)?,
                }
            }
            _ => {}
        }
        Ok(out)
    }

    /// The destination's key of directory tree `tree`, translated bottom up. The walk keeps
    /// the directories it is in on a stack of its own rather than recursing, and stops with an
    /// error past [`MAX_DEPTH`](crate::core::depth::MAX_DEPTH) levels: a crafted snapshot nested a
    /// hundred thousand deep overflowed the stack (an abort).
    fn dir(&mut self, tree: Key) -> Result<Key> {
        if let Some(k) = self.memo.get(&tree) {
            return Ok(*k);
        }
        let src = self.src;
        let level = |tree: Key, path: String| Level {
            tree,
            reader: Reader::new(src, tree),
            builder: Builder::default(),
            waiting: None,
            path,
        };
        let mut open = vec![level(tree, String::new())];
        loop {
            let depth = open.len();
            let Some(top) = open.last_mut() else {
                unreachable!("the walk returns when it closes its first directory")
            };
            if let Some(e) = top.reader.next_item()? {
                self.blocks += 1;
                match &e.kind {
                    EntryKind::Dir { tree } if !self.memo.contains_key(tree) => {
                        let path = format!("{}/{}", top.path, show(&e.name));
                        if depth >= crate::core::depth::MAX_DEPTH {
                            return Err(crate::core::depth::too_deep(
                                *tree,
                                &format!("{}:{path}", self.at),
                            ));
                        }
                        let tree = *tree;
                        top.waiting = Some(e);
                        open.push(level(tree, path));
                    }
                    _ => {
                        let t = self.entry(&e)?;
                        top.builder.push(t, &mut self.store())?;
                    }
                }
                continue;
            }
            let Some(done) = open.pop() else {
                unreachable!("a directory was open")
            };
            let nk = done.builder.finish(&mut self.store())?;
            self.memo.insert(done.tree, nk);
            let Some(parent) = open.last_mut() else {
                return Ok(nk);
            };
            if let Some(mut e) = parent.waiting.take() {
                e.kind = EntryKind::Dir { tree: nk };
                parent.builder.push(e, &mut self.store())?;
            }
        }
    }

    fn content(&mut self, c: &Content, size: u64) -> Result<Content> {
        if let Content::Index(k) | Content::Chunk(k) = c {
            if let Some(done) = self.memo.get(k) {
                return Ok(match c {
                    Content::Chunk(_) => Content::Chunk(*done),
                    _ => Content::Index(*done),
                });
            }
        }
        let mut pieces = Pieces::default();
        for p in crate::core::tree::file_pieces(self.src, c, size)? {
            let p = match p {
                Piece::Data { key, len } => Piece::Data {
                    key: self.chunk(key)?,
                    len,
                },
                Piece::Slice { key, start, len } if self.slices() => Piece::Slice {
                    key: self.chunk(key)?,
                    start,
                    len,
                },
                // A destination older than slices gets the file as a chunk of its own.
                Piece::Slice { key, .. } => {
                    let bundle = self.bundles.chunk(self.src, key)?;
                    self.blocks += 1;
                    Piece::Data {
                        key: self.store().store(Kind::Chunk, p.bytes_of(&bundle)?)?,
                        len: p.len(),
                    }
                }
                hole => hole,
            };
            pieces.push(&mut self.store(), p)?;
        }
        let out = pieces.finish(&mut self.store())?;
        if let (Content::Index(k) | Content::Chunk(k), Content::Index(n) | Content::Chunk(n)) =
            (c, &out)
        {
            self.memo.insert(*k, *n);
        }
        Ok(out)
    }

    /// Whether the destination's format holds slices of bundles.
    fn slices(&self) -> bool {
        self.dst.format().format >= crate::core::format::SLICES_FROM
    }

    fn chunk(&mut self, key: Key) -> Result<Key> {
        if let Some(k) = self.memo.get(&key) {
            return Ok(*k);
        }
        self.blocks += 1;
        let plain = self.src.get_block(key, Kind::Chunk)?;
        let nk = self.store().store(Kind::Chunk, plain.data())?;
        self.memo.insert(key, nk);
        Ok(nk)
    }
}
