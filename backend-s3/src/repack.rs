//! Repacking: giving back the space of removed blocks and of duplicate copies, beside running
//! writers (LAYOUT.md, "Repacking").
//!
//! gc removes blocks by writing removal records; their bytes stay in their packs. A repack
//! weighs every pack: a block's copy is *live* when no record removed it and, on a store that
//! honours conditional writes, when it is the block's canonical copy (the one in the pack with
//! the smallest id; two writers that stored one block at once each packed a copy). A pack whose
//! dead share reaches the threshold has its live copies written into new packs, and is then
//! deleted — index object first, then the pack.
//!
//! The rules that keep a running snapshot whole are splitlog's compaction rules carried over to
//! many processes: a repack never drops a block, only a copy of one, and a live block is
//! written to its new pack (and that pack's index object stored) before its old pack is
//! deleted, so at every moment each block that was not removed has a stored copy that an
//! index object names. What a snapshot deduplicated against stays, whichever copy it saw;
//! removing blocks stays gc's sweep, guarded by leases as ever. Processes that read the old
//! index keep working: a get that finds its pack gone reads the index again (seeing the index
//! object gone) and reads the block's new place. Packs written after the repack read the index
//! are not weighed, so a writer's fresh pack is never touched.
//!
//! Dropping duplicate copies relies on the canonical copy staying; that holds for one repack
//! at a time, which the repack lock (`lock`) ensures. On a store without conditional writes
//! there is no exact lock, so repacks there keep every copy that was not removed: copying
//! before deleting is safe however many run at once.
//!
//! A removal that races a repack (gc's sweep in another process naming only the old pack)
//! would leave the block alive in the new pack; the repack reads the removal records again
//! after writing its packs and removes such blocks there too. Removal records whose packs are
//! all gone are deleted by the next repack that finds them so (not at once: a process reading
//! the index while the packs were deleted may still need them).

use crate::blocks::Blocks;
use crate::index::{self, Index};
use crate::lock::Lock;
use crate::packs::{scratch_failed, Builder, Entries};
use crate::store::Store;
use protocol::{Error, ErrorCode, Key, Result};
use std::collections::HashSet;

/// What a repack did.
#[derive(Debug, Default, serde::Serialize)]
pub(crate) struct Outcome {
    /// The share of dead bytes at which a pack was repacked.
    pub threshold: f64,
    /// Packs deleted after their live copies were written again.
    pub repacked: Vec<String>,
    /// New packs written.
    pub written: Vec<String>,
    /// Bytes of the packs deleted, and of the packs written.
    pub bytes_deleted: u64,
    pub bytes_written: u64,
    /// Removal records deleted (every pack they named was gone).
    pub records_deleted: usize,
    /// Index objects replaced (covering a pack that went, or merged).
    pub index_objects_replaced: usize,
    /// Why nothing was done: another repack holds the lock.
    pub skipped: Option<String>,
}

/// Packs to repack, each with its live copies, and removal records no longer needed.
struct Plan {
    moves: Vec<(String, Entries)>,
    stale_records: Vec<String>,
    /// Index objects to replace: those covering a pack that goes (or all, to merge them).
    replace: Vec<String>,
}

/// Index objects beyond which a repack (holding the lock) merges them all into few: each is
/// a GET for a process that starts without local copies.
const MERGE_OBJECTS: usize = 32;

fn plan(index: &Index, threshold: f64, exact: bool, stored: &HashSet<String>) -> Plan {
    let mut moves = Vec::new();
    // Only packs that an index object covers: this process's own packs still waiting for
    // theirs are left alone. Without the lock, only packs whose every index object covers
    // that pack alone: a replacement for an object covering others could race another
    // repack's (each keeping a pack the other deletes).
    let covered = index.covered();
    let alone: HashSet<&str> = index
        .objects
        .values()
        .filter(|c| c.len() > 1)
        .flatten()
        .map(String::as_str)
        .collect();
    // The canonical copy among the packs the listing found: an index object may still name a
    // pack that is gone (a writer's flush naming a pack that reindex indexed and a repack then
    // deleted), and a copy there must not make the stored copies look dead.
    let canonical = |k: &Key| {
        index
            .blocks
            .get(k)?
            .iter()
            .filter(|l| stored.contains(&*l.pack))
            .min_by(|a, b| a.pack.cmp(&b.pack))
    };
    for (pack, entries) in &index.packs {
        let pack: &str = pack;
        let skip =
            !covered.contains(pack) || !stored.contains(pack) || (!exact && alone.contains(pack));
        if skip {
            continue;
        }
        let live: Entries = entries
            .iter()
            .filter(|(k, _, _)| {
                let copies = index.blocks.get(k).into_iter().flatten();
                if exact {
                    canonical(k).is_some_and(|l| &*l.pack == pack)
                } else {
                    copies.into_iter().any(|l| &*l.pack == pack)
                }
            })
            .copied()
            .collect();
        let total: u64 = entries.iter().map(|e| u64::from(e.2)).sum();
        let kept: u64 = live.iter().map(|e| u64::from(e.2)).sum();
        let dead = total - kept;
        if dead > 0 && dead as f64 >= threshold * total as f64 {
            moves.push((pack.to_string(), live));
        }
    }
    let stale_records = index
        .records
        .iter()
        .filter(|(_, packs)| packs.iter().all(|p| !stored.contains(p)))
        .map(|(r, _)| r.clone())
        .collect();
    let going: HashSet<&str> = moves.iter().map(|(p, _)| p.as_str()).collect();
    let replace = if exact && index.objects.len() > MERGE_OBJECTS {
        index.objects.keys().cloned().collect()
    } else {
        index::objects_covering(index, &going)
    };
    Plan {
        moves,
        stale_records,
        replace,
    }
}

/// What the packs hold, as this process's index says (admin `packs`).
#[derive(Debug, Default, serde::Serialize)]
pub(crate) struct Census {
    pub packs: u64,
    /// Copies of blocks in the packs' tables, and their bytes.
    pub copies: u64,
    pub bytes: u64,
    /// Copies a repack would keep (one per block not removed), and their bytes.
    pub live: u64,
    pub live_bytes: u64,
    /// Copies of blocks stored more than once (beyond the canonical one).
    pub duplicates: u64,
    /// Copies of removed blocks.
    pub removed: u64,
}

pub(crate) fn census(index: &Index) -> Census {
    let mut c = Census::default();
    for (pack, entries) in &index.packs {
        c.packs += 1;
        for (k, _, len) in entries {
            c.copies += 1;
            c.bytes += u64::from(*len);
            if index.canonical(k).is_some_and(|l| &l.pack == pack) {
                c.live += 1;
                c.live_bytes += u64::from(*len);
            } else if index.is_deleted(k, pack) {
                c.removed += 1;
            } else {
                c.duplicates += 1;
            }
        }
    }
    c
}

fn corrupt(store: &Store, path: &str, why: &str) -> Error {
    Error::backend(
        ErrorCode::Corrupt,
        format!("{}: {path} {why}", store.archive),
    )
}

/// Repacks every pack whose dead share is at least `threshold`, under the repack lock when
/// the store honours conditional writes (`exact`).
pub(crate) async fn repack(
    store: &Store,
    blocks: &Blocks,
    threshold: f64,
    exact: bool,
) -> Result<Outcome> {
    let mut lock = None;
    if exact {
        match Lock::take(store).await? {
            Ok(l) => lock = Some(l),
            Err(busy) => {
                return Ok(Outcome {
                    threshold,
                    skipped: Some(busy),
                    ..Outcome::default()
                })
            }
        }
    }
    let done = run(store, blocks, threshold, exact, lock.as_mut()).await;
    if let Some(l) = lock {
        l.release().await?;
    }
    done
}

async fn run(
    store: &Store,
    blocks: &Blocks,
    threshold: f64,
    exact: bool,
    mut lock: Option<&mut Lock>,
) -> Result<Outcome> {
    blocks.refresh(store).await?;
    let stored: HashSet<String> = store.list_all("packs/").await?.into_iter().collect();
    let plan = plan(&blocks.read_index(), threshold, exact, &stored);
    let mut out = Outcome {
        threshold,
        ..Outcome::default()
    };
    let mut open = Builder::default();
    // Each copied block: where it came from, and (once written) its new pack, to catch
    // removals that raced the copy.
    let mut from: Vec<(Key, String)> = Vec::new();
    let mut moved: Vec<(Key, String, String)> = Vec::new();
    let mut tables = Vec::new();
    for (pack, live) in &plan.moves {
        let path = format!("packs/{pack}");
        if live.is_empty() {
            out.bytes_deleted += store.head(&path).await?.unwrap_or(0);
            continue;
        }
        let Some(data) = store.get(&path).await? else {
            continue; // repacked by another process (a store without conditional writes)
        };
        out.bytes_deleted += data.len() as u64;
        for &(key, offset, len) in live {
            let start = usize::try_from(offset).unwrap_or(usize::MAX);
            let block = data
                .get(start..start.saturating_add(len as usize))
                .ok_or_else(|| corrupt(store, &path, &format!("is too short for block {key}")))?;
            open.add(key, block)
                .map_err(|e| scratch_failed(&store.archive, e))?;
            from.push((key, pack.clone()));
            if open.full() {
                let id = write(
                    store,
                    blocks,
                    std::mem::take(&mut open),
                    &mut out,
                    &mut tables,
                )
                .await?;
                moved.extend(from.drain(..).map(|(k, f)| (k, f, id.clone())));
            }
        }
    }
    if !open.entries.is_empty() {
        let id = write(store, blocks, open, &mut out, &mut tables).await?;
        moved.extend(from.drain(..).map(|(k, f)| (k, f, id.clone())));
    }
    replace_objects(store, blocks, &plan, tables, exact, &mut out).await?;
    remove_raced(store, blocks, &moved).await?;
    if let Some(l) = lock.as_deref_mut() {
        l.renew().await?;
    }
    for (i, object) in plan.replace.iter().enumerate() {
        if i % 64 == 63 {
            if let Some(l) = lock.as_deref_mut() {
                l.renew().await?;
            }
        }
        store.delete(object).await?;
        blocks.write_index().forget_object(object);
    }
    for (i, (pack, _)) in plan.moves.iter().enumerate() {
        if i % 64 == 63 {
            if let Some(l) = lock.as_deref_mut() {
                l.renew().await?;
            }
        }
        store.delete(&format!("packs/{pack}")).await?;
        blocks.write_index().forget_pack(pack);
        out.repacked.push(pack.clone());
    }
    for r in &plan.stale_records {
        store.delete(r).await?;
        blocks.write_index().records.remove(r);
        out.records_deleted += 1;
    }
    Ok(out)
}

/// Stores a new pack, adds it to this process's index, and keeps its table for the index
/// object that will cover it.
async fn write(
    store: &Store,
    blocks: &Blocks,
    mut pack: Builder,
    out: &mut Outcome,
    tables: &mut Vec<(String, Vec<u8>)>,
) -> Result<String> {
    let io = |e| scratch_failed(&store.archive, e);
    let (id, table) = pack.finish().map_err(io)?;
    out.bytes_written += pack.len() as u64;
    store
        .put_new(&format!("packs/{id}"), pack.seal().map_err(io)?)
        .await?;
    blocks.write_index().add(&id, &pack.entries);
    tables.push((id.clone(), table));
    out.written.push(id.clone());
    Ok(id)
}

/// Stores the index objects that replace `plan.replace`, before anything is deleted: the new
/// packs' tables, and those of every other pack a replaced object covered. Without the lock
/// (`plan.replace` then only covers packs that go) each new pack gets an object of its own.
async fn replace_objects(
    store: &Store,
    blocks: &Blocks,
    plan: &Plan,
    mut tables: Vec<(String, Vec<u8>)>,
    exact: bool,
    out: &mut Outcome,
) -> Result<()> {
    {
        let index = blocks.read_index();
        let going: HashSet<&str> = plan.moves.iter().map(|(p, _)| p.as_str()).collect();
        let mut kept: Vec<&String> = plan
            .replace
            .iter()
            .filter_map(|o| index.objects.get(o))
            .flatten()
            .filter(|p| !going.contains(p.as_str()))
            .collect();
        kept.sort();
        kept.dedup();
        for pack in kept {
            if let Some(entries) = index.packs.get(pack.as_str()) {
                tables.push((pack.clone(), crate::packs::table(entries)));
            }
        }
    }
    if plan.replace.is_empty() && plan.moves.is_empty() {
        return Ok(());
    }
    out.index_objects_replaced = plan.replace.len();
    let per_object = if exact { index::PACKS_PER_OBJECT } else { 1 };
    for one in tables.chunks(per_object) {
        index::store_object(store, blocks.index(), one).await?;
    }
    Ok(())
}

/// Blocks a removal record named in their old pack after the repack read the index: removed
/// from their new pack too (that copy only: a block stored again since by a writer stays), so
/// that a gc running beside the repack removes what it meant to.
async fn remove_raced(
    store: &Store,
    blocks: &Blocks,
    moved: &[(Key, String, String)],
) -> Result<()> {
    blocks.refresh(store).await?;
    let raced: Vec<(Key, String)> = {
        let index = blocks.read_index();
        moved
            .iter()
            .filter(|(k, from, _)| index.is_deleted(k, from))
            .map(|(k, _, to)| (*k, to.clone()))
            .collect()
    };
    if raced.is_empty() {
        return Ok(());
    }
    blocks.record_pairs(store, &raced).await
}
