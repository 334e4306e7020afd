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
//! Either way blocks are flushed before any destination tag moves, and a tag follows the
//! source's: created if missing, moved if it names a snapshot of the source's chain (an older
//! sync) or one the source's tag itself once named or reached — the source moved away from it
//! by `forget`'s rewrite of the chain or by `reset`, recorded in its reflog and its backend's
//! tag history (`former.rs`) — and left alone and reported as a conflict if it names anything
//! else (it moved independently). Every move is compare-and-swap and is recorded in the
//! destination's reflog, so what the destination named before stays readable there until its
//! reflog expires. Runs are idempotent: a second one finds every block present and every tag
//! in place.

use crate::core::block::Kind;
use crate::core::error::{Error, Result};
use crate::core::keyset::KeySet;
use crate::core::reach::{self, Counts, Node, Visitor};
use crate::core::repo::Repo;
use ore_util::sync::{into_inner, lock};
use protocol::{Key, Ticket};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use translate::Translator;

mod archival;
mod former;
mod same;
mod translate;

pub use same::refuse_same_archive;

/// What happened to one tag.
#[derive(Clone, Debug, serde::Serialize)]
pub struct TagSync {
    pub tag: String,
    /// `created`, `moved`, `unchanged`, `conflict`, or `skipped` (an archive tag between
    /// archives of different keys).
    pub status: &'static str,
    #[serde(serialize_with = "crate::core::util::ser_opt_key")]
    pub was: Option<Key>,
    #[serde(serialize_with = "crate::core::util::ser_key")]
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
/// Refuses when both are one archive (opened through two identifiers): see also
/// [`refuse_same_archive`], which tells before the destination is opened when it can.
pub fn sync(src: &Repo, dst: &Repo, tags: &[String]) -> Result<SyncOutcome> {
    if dst.format().archive_id == src.format().archive_id {
        return Err(Error::Usage(format!(
            "{} and {} are the same archive",
            src.id(),
            dst.id()
        )));
    }
    let started = std::time::Instant::now();
    let _lease = crate::core::lease::Lease::acquire(dst)?;
    let (heads, archive_tags) = archival::split(src, select_heads(src, tags)?)?;
    let shared = dst.shares_keys(src);
    let mut out = SyncOutcome::default();
    // Between archives that do not share keys, the translator (kept to recognise former values
    // of the source's tags, which are translated too).
    let mut translator = None;
    // For each tag: the destination's key of each snapshot of the source chain, newest first.
    let chains: Vec<(String, Vec<Key>)> = if shared {
        let (from, to) = (src.format().format, dst.format().format);
        if from > to {
            return Err(Error::Usage(format!(
                "{} is an archive of format {to}, which cannot hold what {} (format {from}) \
                 stores as it is stored: run `ore -a {} upgrade` first; nothing was copied",
                dst.id(),
                src.id(),
                dst.id()
            )));
        }
        out.mode = "as stored";
        copy_stored(
            src,
            dst,
            &[&heads[..], &archive_tags[..]].concat(),
            &mut out,
        )?;
        heads
            .iter()
            .map(|(t, _)| Ok((t.clone(), chain_keys(src, t)?)))
            .collect::<Result<_>>()?
    } else {
        out.mode = "re-encrypted";
        let t = translator.insert(Translator {
            src,
            dst,
            memo: HashMap::new(),
            at: String::new(),
            blocks: 0,
            copied: 0,
            bytes: 0,
            bundles: crate::core::plaincache::PlainCache::new(
                crate::core::plaincache::BUNDLE_BYTES,
            ),
        });
        translate_chains(src, t, &heads)?
    };
    let plans = plan_moves(src, dst, chains, translator.as_mut())?;
    if let Some(t) = &translator {
        (out.blocks, out.copied, out.bytes) = (t.blocks, t.copied, t.bytes);
    }
    dst.backend().flush()?;
    for p in plans {
        out.tags.push(move_tag(
            src, dst, &p.tag, p.head, &p.keys, p.was, p.former,
        )?);
    }
    archival::move_tags(src, dst, &archive_tags, shared, &mut out)?;
    out.duration_ms = started.elapsed().as_millis() as u64;
    Ok(out)
}

/// The source's tags to copy, with their heads: `tags`, or every user tag when it is empty.
fn select_heads(src: &Repo, tags: &[String]) -> Result<Vec<(String, Key)>> {
    let all = src.tags()?;
    if tags.is_empty() {
        return Ok(all);
    }
    tags.iter()
        .map(|t| {
            all.iter()
                .find(|(n, _)| n == t)
                .cloned()
                .ok_or_else(|| Error::Usage(format!("the source has no tag called `{t}`")))
        })
        .collect()
}

/// Re-encrypts each tag's chain into the destination, oldest first so that each snapshot
/// chains onto its translated predecessor; the destination's keys, newest first.
fn translate_chains(
    src: &Repo,
    t: &mut Translator,
    heads: &[(String, Key)],
) -> Result<Vec<(String, Vec<Key>)>> {
    let mut chains = Vec::new();
    for (tag, _) in heads {
        let chain = crate::core::spec::chain(src, tag)?;
        let mut keys = Vec::new();
        let mut below: Option<Key> = None;
        for n in chain.iter().rev() {
            let nk = t.node(n, below)?;
            keys.push(nk);
            below = Some(nk);
        }
        keys.reverse();
        chains.push((tag.clone(), keys));
    }
    Ok(chains)
}

/// How one destination tag is to move once the blocks are flushed.
struct Plan {
    tag: String,
    /// The destination's key of the source's head.
    head: Key,
    /// The destination's keys of the source's chain, newest first.
    keys: Vec<Key>,
    /// What the destination's tag names now.
    was: Option<Key>,
    /// `was`, when it is a value the source's tag has since moved away from.
    former: Option<Key>,
}

/// The destination's values the source's tags have since moved away from (translated with
/// their chains first, when keys differ, so that the flush after this covers them).
fn plan_moves(
    src: &Repo,
    dst: &Repo,
    chains: Vec<(String, Vec<Key>)>,
    mut translator: Option<&mut Translator>,
) -> Result<Vec<Plan>> {
    let mut plans = Vec::new();
    for (tag, keys) in chains {
        let Some(&head) = keys.first() else { continue };
        let was = dst.tag(&tag)?;
        let former = match was {
            Some(w) if w != head && !keys.contains(&w) => {
                match former::find(src, dst, &tag, w, translator.as_deref_mut())? {
                    Some(f) => Some(f),
                    // The source's history of the move may be expired: a snapshot rewritten
                    // by a forget is still recognised by its contents and times.
                    None => {
                        let read = if translator.is_some() { dst } else { src };
                        former::rewritten_twin(read, &keys, dst, w)
                            .or_else(|| former::put_there_by_sync(dst, &tag, w).then_some(w))
                    }
                }
            }
            _ => None,
        };
        plans.push(Plan {
            tag,
            head,
            keys,
            was,
            former,
        });
    }
    Ok(plans)
}

fn chain_keys(repo: &Repo, tag: &str) -> Result<Vec<Key>> {
    Ok(crate::core::spec::chain(repo, tag)?
        .into_iter()
        .map(|n| n.node)
        .collect())
}

/// Moves the destination's `tag` (which names `was`) to `head` if it is missing, names a
/// snapshot of `chain`, or names the copy of `former`, a value the source's tag once had.
/// (All chain nodes; what it reports names their snapshots.)
fn move_tag(
    src: &Repo,
    dst: &Repo,
    tag: &str,
    head: Key,
    chain: &[Key],
    was: Option<Key>,
    former: Option<Key>,
) -> Result<TagSync> {
    let key = |r: &Repo, k: Key| r.snapshot_key(k).unwrap_or(k);
    let (status, message) = match was {
        Some(w) if w == head => ("unchanged", "already in place".to_string()),
        Some(w) if !chain.contains(&w) && former.is_none() => (
            "conflict",
            format!(
                "the destination's tag names {}, which is neither on the source's chain nor \
                 anything the source's tag ever named (it moved independently); left as it is",
                key(dst, w)
            ),
        ),
        _ => {
            if dst.move_tag(tag, was, head, "sync")? {
                let message = match (was, former) {
                    (Some(w), _) if key(dst, w) == key(dst, head) => format!(
                        "followed the source: the destination named {} at the place it had \
                         before the source's forget linked it anew; `ore reflog {tag}` on the \
                         destination still lists that place",
                        key(dst, w)
                    ),
                    (Some(w), Some(f)) => format!(
                        "followed the source: the destination named {}, {}which the source's \
                         tag moved away from (a forget's rewrite or a reset); `ore reflog {tag}` \
                         on the destination still lists it",
                        key(dst, w),
                        if f == w {
                            String::new()
                        } else {
                            format!("a copy of the source's {}, ", key(src, f))
                        }
                    ),
                    _ => String::new(),
                };
                (if was.is_some() { "moved" } else { "created" }, message)
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
        was: was.map(|w| key(dst, w)),
        now: key(dst, head),
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
            let mut p = lock(&self.pending);
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
        let present = self.dst.backend().exists(&keys)?;
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
                None => (k, self.src.backend().start_get(k)),
            })
            .collect();
        let mut tickets = Vec::with_capacity(gets.len());
        for (k, t) in gets {
            let data = crate::core::repo::fetched(t.wait(), k, Kind::Chunk)?;
            self.copied.fetch_add(1, Relaxed);
            self.bytes.fetch_add(data.len() as u64, Relaxed);
            let len = data.len() as u64;
            tickets.push(self.dst.backend().start_put(k, data));
            self.dst.stored(len)?;
        }
        let mut puts = lock(&self.puts);
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
    fn block(
        &self,
        key: Key,
        node: Node,
        stored: &[u8],
        _: &crate::core::block::Plain,
    ) -> Result<()> {
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
    let rest = std::mem::take(&mut *lock(&copier.pending));
    copier.copy(rest)?;
    for t in into_inner(copier.puts) {
        t.wait()?;
    }
    out.blocks = counts.trees.load(Relaxed) + counts.chunks.load(Relaxed);
    out.copied = copier.copied.load(Relaxed);
    out.bytes = copier.bytes.load(Relaxed);
    Ok(())
}
