//! Blocks in packs: the open pack a put adds to, the packs on their way to the store, and
//! the index of everything stored (LAYOUT.md, "Packs").
//!
//! A put is answered once its block is in the open pack (the protocol promises durability
//! only after a flush). A full pack is written by a task of its own while puts go on filling
//! the next; at most [`UPLOADS`] are finished and not yet stored, and a flush waits for all of
//! them and writes out the open pack too. A pack's bytes wait in a scratch file
//! (`Builder::scratch`) and are read into memory when its upload begins, one upload at a time,
//! so the backend holds one pack in memory, not two. Until its upload is done a pack stays
//! readable here, so a get never misses a block this process accepted. A block this process
//! has not heard of may be in a pack another process wrote since: a miss reads the index
//! objects that are new.

use crate::index::{self, Index};
use crate::packs::{scratch_failed, Builder, Loc};
use crate::readahead::Readahead;
use crate::spill::Spill;
use crate::store::Store;
use ore_util::sync::{lock, read, write};
use protocol::{Error, ErrorCode, Key, Result};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, RwLock};

/// Packs finished and not yet stored at most (one being written, one waiting in its scratch
/// file); a put that finishes one more waits for the oldest.
const UPLOADS: usize = 2;
/// Packs being written at once, each read into memory for its upload. One: two on their way
/// cost 17 MB more at the peak and bought no speed, directly or 40 ms from the store
/// (/usr/share through SeaweedFS: 4.0 s either way; 5.41 s against 5.25 s through the delay).
const SENDING: usize = 1;
/// An exists batch with unknown keys reads new index objects only when the last read is older
/// than this: a stale "no" only makes the frontend store a block again (a duplicate, which gc
/// repacks away), while a read per batch would cost a LIST (two in layout 1) for every batch of a snapshot of
/// new data. A get that misses always reads them: a stale miss there would be wrong.
const EXISTS_STALENESS: std::time::Duration = std::time::Duration::from_secs(2);
/// Each such read that finds nothing new doubles the wait before the next, up to this: a
/// first snapshot of new data alone in its archive asked every 2 s, two LISTs each, so an
/// hour's snapshot would have made 3,600 LISTs to find nothing. A read that finds another
/// writer's objects brings the wait back to [`EXISTS_STALENESS`].
const EXISTS_STALENESS_MAX: std::time::Duration = std::time::Duration::from_secs(300);

/// Packs' ids and tables.
type Tables = Vec<(String, Vec<u8>)>;

/// A pack on its way. It stays listed (its blocks readable here) until its task has stored
/// and indexed it: whoever waits for the task takes it from `task`, and unlists the pack after.
struct Upload {
    pack: Arc<Builder>,
    task: Option<tokio::task::JoinHandle<Result<()>>>,
}

/// An upload taken to be waited for.
type Waited = (Arc<Builder>, tokio::task::JoinHandle<Result<()>>);

/// The oldest upload no one waits for yet, taken to be waited for (it stays listed).
fn unwaited(uploads: &mut VecDeque<Upload>) -> Option<Waited> {
    uploads
        .iter_mut()
        .find_map(|u| u.task.take().map(|t| (u.pack.clone(), t)))
}

/// The blocks of one archive as this process sees them.
pub(crate) struct Blocks {
    index: Arc<RwLock<Index>>,
    open: Mutex<Builder>,
    uploads: Mutex<VecDeque<Upload>>,
    /// Turns to write a pack ([`SENDING`]), taken in order.
    sending: Arc<tokio::sync::Semaphore>,
    /// When the last refresh that has finished began: everything stored before then is known.
    refreshed: Mutex<Option<std::time::Instant>>,
    /// How old that read may be before an exists batch reads them again.
    exists_wait: Mutex<std::time::Duration>,
    /// Refreshes begun, counted under `refreshing`, which one refresh holds at a time.
    refreshes: std::sync::atomic::AtomicU64,
    refreshing: tokio::sync::Mutex<()>,
    /// Segments of packs read, which answer the reads that follow.
    readahead: Readahead,
    /// Packs read whole into scratch files.
    spill: Spill,
    /// Stored packs whose index object is not written yet: (id, table).
    unindexed: Arc<Mutex<Tables>>,
    /// Each pack gets an index object of its own as soon as it is stored (on a store without
    /// conditional writes, where repacks hold no lock and may only delete what covers one pack).
    one_per_pack: bool,
}

// Every change under these locks is a whole insert, take or push: a poisoned lock holds
// consistent data, so ore-util's poison-tolerant `lock`/`read`/`write` serve.

fn failed(store: &Store, e: tokio::task::JoinError) -> Error {
    Error::backend(
        ErrorCode::Internal,
        format!("{}: writing a pack failed: {e}", store.archive),
    )
}

impl Blocks {
    /// No blocks known yet; at most `spill_limit` bytes of packs read whole into scratch
    /// files; an index object per pack when `one_per_pack`, else one per flush.
    pub fn new(spill_limit: u64, one_per_pack: bool) -> Blocks {
        Blocks {
            index: Arc::default(),
            open: Mutex::new(Builder::scratch()),
            uploads: Mutex::default(),
            sending: Arc::new(tokio::sync::Semaphore::new(SENDING)),
            refreshed: Mutex::default(),
            exists_wait: Mutex::new(EXISTS_STALENESS),
            refreshes: Default::default(),
            refreshing: Default::default(),
            readahead: Readahead::default(),
            spill: Spill::new(spill_limit),
            unindexed: Arc::default(),
            one_per_pack,
        }
    }

    /// The block's bytes if it is in the open pack or one on its way.
    pub fn buffered(&self, key: &Key) -> Option<Vec<u8>> {
        if let Some(d) = lock(&self.open).get(key) {
            return Some(d);
        }
        lock(&self.uploads).iter().find_map(|u| u.pack.get(key))
    }

    fn located(&self, key: &Key) -> Option<Loc> {
        self.located_except(key, &[])
    }

    /// Where the block is, in none of the packs `gone` (found missing in the store).
    fn located_except(&self, key: &Key, gone: &[crate::packs::PackId]) -> Option<Loc> {
        let index = read(&self.index);
        let locs = index.blocks.get(key)?;
        locs.iter().find(|l| !gone.contains(&l.pack)).cloned()
    }

    /// Whether this process knows the block is stored (or about to be).
    pub fn known(&self, key: &Key) -> bool {
        self.located(key).is_some()
            || lock(&self.open).keys.contains_key(key)
            || lock(&self.uploads)
                .iter()
                .any(|u| u.pack.keys.contains_key(key))
    }

    /// Reads the index and deletion objects other processes wrote since the last refresh.
    pub async fn refresh(&self, store: &Store) -> Result<()> {
        let _one = self.refreshing.lock().await;
        self.refresh_held(store).await.map(|_| ())
    }

    /// How many refreshes have begun: what a reader notes before it looks a key up, for
    /// [`Blocks::refresh_after`].
    fn refreshes(&self) -> u64 {
        self.refreshes.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Refreshes, unless a refresh began after the caller noted `since` (and so listed
    /// everything stored before the caller missed): the reads of a fresh process, which all
    /// miss at once, share one refresh instead of each listing the store (hundreds of LISTs
    /// were seen at the start of a restore).
    /// Whether the refresh found anything new; `None` when another's refresh served. With
    /// `fresh`, a refresh that finished and began within that time serves too.
    async fn refresh_after(
        &self,
        store: &Store,
        since: u64,
        fresh: Option<std::time::Duration>,
    ) -> Result<Option<bool>> {
        let _one = self.refreshing.lock().await;
        if self.refreshes() > since || fresh.is_some_and(|wait| self.refreshed_within(wait)) {
            return Ok(None);
        }
        self.refresh_held(store).await.map(|n| Some(n > 0))
    }

    /// Reads what is new; how many objects were.
    async fn refresh_held(&self, store: &Store) -> Result<usize> {
        self.refreshes
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        let began = std::time::Instant::now();
        let seen = read(&self.index).seen().clone();
        let found = index::read_new(store, &seen).await?;
        let new = found.objects.len() + found.dels.len() + found.vanished.len();
        index::apply(&mut write(&self.index), found);
        // Only now: a refresh under way has not made anything known yet, and an `exists` that
        // took its start for a finished read answered "not stored" for blocks the read was
        // about to find (a fresh process's first `exists` raced a `get` of another thread).
        *lock(&self.refreshed) = Some(began);
        Ok(new)
    }

    /// Whether a refresh that has finished began less than `wait` ago.
    fn refreshed_within(&self, wait: std::time::Duration) -> bool {
        lock(&self.refreshed).is_some_and(|t| t.elapsed() < wait)
    }

    /// Adds a block to the open pack, and starts writing the pack out when it is full.
    pub fn add(
        &self,
        rt: &tokio::runtime::Runtime,
        store: &Store,
        key: Key,
        block: &[u8],
    ) -> Result<()> {
        if self.known(&key) {
            return Ok(());
        }
        let mut waits = Vec::new();
        {
            // A pack leaves the open slot and joins the uploads under this lock, so that its
            // blocks are never out of both.
            let mut open = lock(&self.open);
            if open.keys.contains_key(&key) {
                return Ok(());
            }
            // A block that would take the pack past its size closes it first, so that a
            // pack's buffer never outgrows what it reserved.
            if !open.fits(block.len()) {
                let pack = std::mem::replace(&mut *open, Builder::scratch());
                waits.extend(self.upload(rt, store, pack)?);
            }
            open.add(key, block)
                .map_err(|e| scratch_failed(&store.archive, e))?;
            if open.full() {
                let pack = std::mem::replace(&mut *open, Builder::scratch());
                waits.extend(self.upload(rt, store, pack)?);
            }
        }
        let mut first_error = None;
        for w in waits {
            if let Err(e) = self.wait(rt, store, w) {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Waits for an upload, then unlists its pack (stored and indexed, or failed: the failure
    /// is returned).
    fn wait(
        &self,
        rt: &tokio::runtime::Runtime,
        store: &Store,
        (pack, task): Waited,
    ) -> Result<()> {
        let done = rt.block_on(task).map_err(|e| failed(store, e));
        lock(&self.uploads).retain(|u| !Arc::ptr_eq(&u.pack, &pack));
        done?
    }

    /// Starts writing `pack`; when more than [`UPLOADS`] are on their way, the oldest one no
    /// one waits for yet, for the caller to wait for (outside the open pack's lock).
    fn upload(
        &self,
        rt: &tokio::runtime::Runtime,
        store: &Store,
        mut pack: Builder,
    ) -> Result<Option<Waited>> {
        let (id, table) = pack
            .finish()
            .map_err(|e| scratch_failed(&store.archive, e))?;
        let pack = Arc::new(pack);
        let (s, index, held) = (store.clone(), self.index.clone(), pack.clone());
        let (unindexed, one_per_pack) = (self.unindexed.clone(), self.one_per_pack);
        let sending = self.sending.clone();
        let task = rt.spawn(async move {
            let _turn = sending.acquire().await;
            let bytes = held.seal().map_err(|e| scratch_failed(&s.archive, e))?;
            s.put_new(&format!("packs/{id}"), bytes).await?;
            write(&index).add(&id, &held.entries);
            held.release();
            let ready = {
                let mut waiting = lock(&unindexed);
                waiting.push((id, table));
                if one_per_pack || waiting.len() >= index::PACKS_PER_OBJECT {
                    std::mem::take(&mut *waiting)
                } else {
                    Vec::new()
                }
            };
            store_index(&s, &index, &unindexed, ready).await
        });
        let mut uploads = lock(&self.uploads);
        uploads.push_back(Upload {
            pack,
            task: Some(task),
        });
        Ok(match uploads.len() > UPLOADS {
            true => unwaited(&mut uploads),
            false => None,
        })
    }

    /// Writes out the open pack and waits until every pack is stored.
    pub fn flush(&self, rt: &tokio::runtime::Runtime, store: &Store) -> Result<()> {
        let mut first_error = None;
        let waited = {
            let mut open = lock(&self.open);
            match open.entries.is_empty() {
                true => None,
                false => {
                    let pack = std::mem::replace(&mut *open, Builder::scratch());
                    self.upload(rt, store, pack)?
                }
            }
        };
        if let Some(w) = waited {
            if let Err(e) = self.wait(rt, store, w) {
                first_error.get_or_insert(e);
            }
        }
        loop {
            let next = unwaited(&mut lock(&self.uploads));
            let Some(w) = next else {
                break;
            };
            if let Err(e) = self.wait(rt, store, w) {
                first_error.get_or_insert(e);
            }
        }
        if first_error.is_none() {
            let ready = std::mem::take(&mut *lock(&self.unindexed));
            let stored = store_index(store, &self.index, &self.unindexed, ready);
            if let Err(e) = rt.block_on(stored) {
                first_error = Some(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// The block's bytes when they are at hand without a request: in a pack not yet stored,
    /// or in one held in a scratch file. A restore's reads were each a task woken by its
    /// answer; most are at hand, and answering them on the caller's thread saves two thread
    /// switches a block.
    pub fn at_hand(&self, store: &Store, key: &Key) -> Option<Result<Vec<u8>>> {
        if let Some(d) = self.buffered(key) {
            return Some(Ok(d));
        }
        let loc = self.located(key)?;
        let data = self.spill.read_ready(&loc, &store.archive)?;
        let path = || format!("packs/{}", loc.pack);
        Some(data.and_then(|d| checked(store, key, &path(), &loc, d)))
    }

    /// The block's bytes from wherever it is, reading new index objects once on a miss. A
    /// pack that is gone (a repack moved its blocks) makes it read the index again and try
    /// the block's new place.
    pub async fn get(&self, store: &Store, key: Key) -> Result<Option<Vec<u8>>> {
        if let Some(d) = self.at_hand(store, &key) {
            return d.map(Some);
        }
        let mut refreshed = false;
        let mut missing = None;
        // Packs found missing: another copy, if the index names one, is tried next.
        let mut gone: Vec<crate::packs::PackId> = Vec::new();
        for _ in 0..3 {
            let since = self.refreshes();
            let loc = match self.located_except(&key, &gone) {
                Some(l) => l,
                None if refreshed => break,
                None => {
                    self.refresh_after(store, since, None).await?;
                    match self.located_except(&key, &gone) {
                        Some(l) => l,
                        None => break,
                    }
                }
            };
            let path = format!("packs/{}", loc.pack);
            let blocks_end = || {
                let index = read(&self.index);
                let entries = index.packs.get(&loc.pack).into_iter().flatten();
                entries.map(|e| e.1 + u64::from(e.2)).max().unwrap_or(0)
            };
            if let Some(d) = self.spill.read(store, &loc, blocks_end).await? {
                return checked(store, &key, &path, &loc, d).map(Some);
            }
            match self.readahead.read(store, &loc, blocks_end).await? {
                Some(data) => return checked(store, &key, &path, &loc, data).map(Some),
                None => {
                    missing = Some(path);
                    self.refresh_after(store, since, None).await?;
                    refreshed = true;
                    gone.push(loc.pack.clone());
                }
            }
        }
        match missing {
            Some(path) if self.located(&key).is_some() => Err(Error::backend(
                ErrorCode::Corrupt,
                format!(
                    "{}: block {key} is indexed in {path}, which is missing",
                    store.archive
                ),
            )),
            _ => Ok(None),
        }
    }

    /// Whether each key is stored, reading new index objects once if any is unknown.
    pub async fn exists(&self, store: &Store, keys: &[Key]) -> Result<Vec<bool>> {
        let since = self.refreshes();
        let mut out: Vec<bool> = keys.iter().map(|k| self.known(k)).collect();
        let wait = *lock(&self.exists_wait);
        if out.iter().all(|&b| b) || self.refreshed_within(wait) {
            return Ok(out);
        }
        let found = self.refresh_after(store, since, Some(wait)).await?;
        match found {
            Some(true) => *lock(&self.exists_wait) = EXISTS_STALENESS,
            Some(false) => *lock(&self.exists_wait) = (wait * 2).min(EXISTS_STALENESS_MAX),
            // Another task listed: its finding does not move the wait.
            None => {}
        }
        for (k, o) in keys.iter().zip(out.iter_mut()) {
            *o = *o || self.known(k);
        }
        Ok(out)
    }

    /// Removes blocks: records the (key, pack) pairs of every stored copy as deleted, after
    /// writing out the open pack (so no copy is still on its way).
    pub fn remove(&self, rt: &tokio::runtime::Runtime, store: &Store, keys: &[Key]) -> Result<()> {
        self.flush(rt, store)?;
        rt.block_on(async {
            self.refresh(store).await?;
            let pairs: Vec<(Key, String)> = {
                let index = self.read_index();
                keys.iter()
                    .flat_map(|k| {
                        index
                            .blocks
                            .get(k)
                            .into_iter()
                            .flatten()
                            .map(move |l| (*k, l.pack.to_string()))
                    })
                    .collect()
            };
            self.record_pairs(store, &pairs).await
        })
    }

    /// Writes one removal record for these (key, pack) pairs and applies it here.
    pub async fn record_pairs(&self, store: &Store, pairs: &[(Key, String)]) -> Result<()> {
        if pairs.is_empty() {
            return Ok(());
        }
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let record = crate::packs::deletion_record(pairs);
        let name = format!(
            "{}{nanos:024}-{}-{}",
            crate::packs::removals_dir(store.layout),
            std::process::id(),
            blake3::hash(&record).to_hex()
        );
        store.put_new(&name, record).await?;
        let mut index = self.write_index();
        index.delete(pairs);
        let named = pairs.iter().map(|(_, p)| p.clone()).collect();
        index.records.insert(name.clone(), named);
        index.mark_seen(name);
        Ok(())
    }

    /// The index itself, for code that takes its lock in turns.
    pub fn index(&self) -> &RwLock<Index> {
        &self.index
    }

    pub fn read_index(&self) -> std::sync::RwLockReadGuard<'_, Index> {
        read(&self.index)
    }

    pub fn write_index(&self) -> std::sync::RwLockWriteGuard<'_, Index> {
        write(&self.index)
    }

    /// Up to `limit` stored keys after `after`, ascending, and whether more follow.
    pub fn list(&self, after: Option<Key>, limit: usize) -> (Vec<Key>, bool) {
        let index = read(&self.index);
        let start = match after {
            Some(a) => std::ops::Bound::Excluded(a),
            None => std::ops::Bound::Unbounded,
        };
        let mut it = index
            .blocks
            .range((start, std::ops::Bound::Unbounded))
            .map(|(k, _)| *k);
        let keys: Vec<Key> = it.by_ref().take(limit).collect();
        let more = it.next().is_some();
        (keys, more)
    }

    /// Blocks and bytes stored, by the index.
    pub fn counts(&self) -> (u64, u64) {
        let index = read(&self.index);
        let bytes = index
            .blocks
            .values()
            .filter_map(|l| l.first())
            .map(|l| u64::from(l.len))
            .sum();
        (index.blocks.len() as u64, bytes)
    }
}

/// Stores the index object of packs that are stored (`ready`); on failure they wait again in
/// `unindexed`, for the next flush.
async fn store_index(
    store: &Store,
    index: &RwLock<Index>,
    unindexed: &Mutex<Tables>,
    ready: Tables,
) -> Result<()> {
    if ready.is_empty() {
        return Ok(());
    }
    let stored = index::store_object(store, index, &ready).await;
    if stored.is_err() {
        lock(unindexed).extend(ready);
    }
    stored
}

/// The bytes read for `key` at `loc`, or `Corrupt` when their length is not the indexed one.
fn checked(store: &Store, key: &Key, path: &str, loc: &Loc, data: Vec<u8>) -> Result<Vec<u8>> {
    if data.len() == loc.len as usize {
        return Ok(data);
    }
    Err(Error::backend(
        ErrorCode::Corrupt,
        format!(
            "{}: block {key} in {path} at {}: {} bytes instead of {}",
            store.archive,
            loc.offset,
            data.len(),
            loc.len
        ),
    ))
}
