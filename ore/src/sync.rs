//! `ore sync`: copy tags, with every block they reach, to another archive.
//!
//! Two ways, chosen by the keys:
//!
//! - **As stored**, when both archives derive their keys from one master key (the destination
//!   was made with `ore init --from SOURCE`): every block the tags reach is asked about in
//!   batches of `exists`, and those the destination lacks are read and put unchanged — the
//!   destination never decrypts anything, and many puts are in flight at once.
//! - **Re-encrypted**, otherwise: every block is opened and stored again under the
//!   destination's keys and compression. Keys change, so trees are rebuilt bottom up (a
//!   directory shared by many snapshots is translated once per run), and chains are rebuilt
//!   oldest first. Chunk boundaries stay those of the source.
//!
//! Either way blocks are flushed before any destination tag moves, and a tag moves only
//! forward: created if missing, moved if it names a snapshot of the source's chain (an older
//! sync), left alone and reported if it names anything else. Runs are idempotent: a second one
//! finds every block present and every tag in place.

use crate::block::Kind;
use crate::entry::{Content, Entry, EntryKind, Piece, Snapshot};
use crate::error::{Error, Result};
use crate::keyset::KeySet;
use crate::reach::{self, Counts, Node, Visitor};
use crate::repo::Repo;
use crate::tree::{Builder, DirTree, Pieces, Reader, Store};
use crate::util::show;
use protocol::{Key, Ticket};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

/// What happened to one tag.
#[derive(Clone, Debug, serde::Serialize)]
pub struct TagSync {
    pub tag: String,
    /// `created`, `moved`, `unchanged` or `conflict`.
    pub status: &'static str,
    #[serde(serialize_with = "crate::util::ser_opt_key")]
    pub was: Option<Key>,
    #[serde(serialize_with = "crate::util::ser_key")]
    pub now: Key,
    pub message: String,
}

/// What a sync did.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct SyncOutcome {
    /// `as stored` or `re-encrypted`.
    pub mode: &'static str,
    pub blocks: u64,
    pub copied: u64,
    pub bytes: u64,
    pub tags: Vec<TagSync>,
    pub duration_ms: u64,
}

/// Copies `tags` (all user tags when empty) from `src` to `dst`.
pub fn sync(src: &Repo, dst: &Repo, tags: &[String]) -> Result<SyncOutcome> {
    let started = std::time::Instant::now();
    let _lease = crate::lease::Lease::acquire(dst)?;
    let all = src.tags()?;
    let heads: Vec<(String, Key)> = if tags.is_empty() {
        all
    } else {
        tags.iter()
            .map(|t| {
                all.iter()
                    .find(|(n, _)| n == t)
                    .cloned()
                    .ok_or_else(|| Error::Usage(format!("the source has no tag called `{t}`")))
            })
            .collect::<Result<_>>()?
    };
    let mut out = SyncOutcome::default();
    // For each tag: the destination's key of each snapshot of the source chain, newest first.
    let chains: Vec<(String, Vec<Key>)> = if dst.shares_keys(src) {
        out.mode = "as stored";
        copy_stored(src, dst, &heads, &mut out)?;
        heads
            .iter()
            .map(|(t, _)| Ok((t.clone(), chain_keys(src, t)?)))
            .collect::<Result<_>>()?
    } else {
        out.mode = "re-encrypted";
        let mut t = Translator {
            src,
            dst,
            memo: HashMap::new(),
            at: String::new(),
            blocks: 0,
            copied: 0,
            bytes: 0,
        };
        let mut chains = Vec::new();
        for (tag, _) in &heads {
            let chain = crate::spec::chain(src, tag)?;
            let mut keys = Vec::new();
            let mut below: Option<Key> = None;
            for (k, s) in chain.iter().rev() {
                let nk = t.snapshot(*k, s, below)?;
                keys.push(nk);
                below = Some(nk);
            }
            keys.reverse();
            chains.push((tag.clone(), keys));
        }
        (out.blocks, out.copied, out.bytes) = (t.blocks, t.copied, t.bytes);
        chains
    };
    dst.backend.flush()?;
    for (tag, keys) in chains {
        let Some(&head) = keys.first() else { continue };
        out.tags.push(move_tag(dst, &tag, head, &keys)?);
    }
    out.duration_ms = started.elapsed().as_millis() as u64;
    Ok(out)
}

fn chain_keys(repo: &Repo, tag: &str) -> Result<Vec<Key>> {
    Ok(crate::spec::chain(repo, tag)?
        .into_iter()
        .map(|(k, _)| k)
        .collect())
}

/// Moves the destination's `tag` to `head` if it is missing or names a snapshot of `chain`.
fn move_tag(dst: &Repo, tag: &str, head: Key, chain: &[Key]) -> Result<TagSync> {
    let was = dst.tag(tag)?;
    let (status, message) = match was {
        Some(w) if w == head => ("unchanged", "already in place".to_string()),
        Some(w) if !chain.contains(&w) => (
            "conflict",
            format!(
                "the destination's tag names {w}, which is not on the source's chain (it moved \
                 independently); left as it is"
            ),
        ),
        _ => {
            if dst.move_tag(tag, was, head, "sync")? {
                (
                    if was.is_some() { "moved" } else { "created" },
                    String::new(),
                )
            } else {
                (
                    "conflict",
                    "the destination's tag moved while syncing; left as it is".to_string(),
                )
            }
        }
    };
    Ok(TagSync {
        tag: tag.to_string(),
        status,
        was,
        now: head,
        message,
    })
}

/// Blocks waiting for one `exists` batch: their keys and, for tree blocks, their bytes.
type Batch = Vec<(Key, Option<Vec<u8>>)>;

struct Copier<'r> {
    src: &'r Repo,
    dst: &'r Repo,
    pending: Mutex<Batch>,
    puts: Mutex<Vec<Ticket<()>>>,
    copied: AtomicU64,
    bytes: AtomicU64,
}

const BATCH: usize = 512;

impl Copier<'_> {
    fn add(&self, key: Key, stored: Option<Vec<u8>>) -> Result<()> {
        let batch = {
            let mut p = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            p.push((key, stored));
            if p.len() < BATCH {
                return Ok(());
            }
            std::mem::take(&mut *p)
        };
        self.copy(batch)
    }

    fn copy(&self, batch: Batch) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let keys: Vec<Key> = batch.iter().map(|(k, _)| *k).collect();
        let present = self.dst.backend.exists(&keys)?;
        let missing: Vec<(Key, Option<Vec<u8>>)> = batch
            .into_iter()
            .zip(present)
            .filter(|(_, p)| !p)
            .map(|(b, _)| b)
            .collect();
        let gets: Vec<(Key, Ticket<Option<Vec<u8>>>)> = missing
            .into_iter()
            .map(|(k, stored)| match stored {
                Some(b) => (k, Ticket::ready(Ok(Some(b)))),
                None => (k, self.src.backend.start_get(k)),
            })
            .collect();
        let mut tickets = Vec::with_capacity(gets.len());
        for (k, t) in gets {
            let data = crate::repo::fetched(t.wait(), k, Kind::Chunk)?;
            self.copied.fetch_add(1, Relaxed);
            self.bytes.fetch_add(data.len() as u64, Relaxed);
            let len = data.len() as u64;
            tickets.push(self.dst.backend.start_put(k, data));
            self.dst.stored(len)?;
        }
        let mut puts = self.puts.lock().unwrap_or_else(|p| p.into_inner());
        puts.extend(tickets);
        // Keep the number in flight bounded: settle the older half when there are many.
        if puts.len() > 4 * BATCH {
            let older: Vec<_> = puts.drain(..2 * BATCH).collect();
            drop(puts);
            for t in older {
                t.wait()?;
            }
        }
        Ok(())
    }
}

impl Visitor for Copier<'_> {
    fn block(&self, key: Key, node: Node, stored: &[u8], _: &crate::block::Plain) -> Result<()> {
        match node {
            Node::Reflog | Node::Format => Ok(()),
            _ => self.add(key, Some(stored.to_vec())),
        }
    }
    fn chunk(&self, key: Key) -> Result<()> {
        self.add(key, None)
    }
}

fn copy_stored(
    src: &Repo,
    dst: &Repo,
    heads: &[(String, Key)],
    out: &mut SyncOutcome,
) -> Result<()> {
    let copier = Copier {
        src,
        dst,
        pending: Mutex::new(Vec::new()),
        puts: Mutex::new(Vec::new()),
        copied: AtomicU64::new(0),
        bytes: AtomicU64::new(0),
    };
    let roots: Vec<(Key, Node)> = heads.iter().map(|(_, k)| (*k, Node::Snapshot)).collect();
    let counts = Counts::default();
    reach::walk(src, &roots, &KeySet::new(), &copier, &counts)?;
    let rest = std::mem::take(&mut *copier.pending.lock().unwrap_or_else(|p| p.into_inner()));
    copier.copy(rest)?;
    for t in copier.puts.into_inner().unwrap_or_else(|p| p.into_inner()) {
        t.wait()?;
    }
    out.blocks = counts.trees.load(Relaxed) + counts.chunks.load(Relaxed);
    out.copied = copier.copied.load(Relaxed);
    out.bytes = copier.bytes.load(Relaxed);
    Ok(())
}

/// Re-encrypts trees into the destination, remembering what it translated.
struct Translator<'r> {
    src: &'r Repo,
    dst: &'r Repo,
    memo: HashMap<Key, Key>,
    /// The snapshot being translated, as errors name it.
    at: String,
    blocks: u64,
    copied: u64,
    bytes: u64,
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

    fn snapshot(&mut self, key: Key, s: &Snapshot, below: Option<Key>) -> Result<Key> {
        if let Some(k) = self.memo.get(&key) {
            return Ok(*k);
        }
        let mut t = s.clone();
        self.at = format!("snapshot {key} (tag {})", s.tag);
        t.root = self.entry(&s.root)?;
        t.previous = below
            .into_iter()
            .chain(s.previous.iter().skip(1).copied())
            .collect();
        self.blocks += 1;
        let nk = self
            .store()
            .store(Kind::Snapshot, &crate::entry::encode(&t))?;
        self.memo.insert(key, nk);
        Ok(nk)
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
    /// error past [`MAX_DEPTH`](crate::depth::MAX_DEPTH) levels: a crafted snapshot nested a
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
                        if depth >= crate::depth::MAX_DEPTH {
                            return Err(crate::depth::too_deep(
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
        for p in crate::tree::file_pieces(self.src, c, size)? {
            let p = match p {
                Piece::Data { key, len } => Piece::Data {
                    key: self.chunk(key)?,
                    len,
                },
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
