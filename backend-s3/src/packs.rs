//! Packs: many blocks per object, and the index of where each block lies (LAYOUT.md, "Packs").
//!
//! One object per block would cost a request (and on paid stores a fee) for every chunk, and
//! a million small files are a million chunks. So blocks are gathered into packs of about
//! 16 MiB, each written once under a name derived from its bytes. A pack ends with its own
//! table of contents, so the pack alone is enough to rebuild its index; the same table is also
//! written as the small object `index/<id>`, which is what a process reads at start. Removals
//! are records `deleted/<ns>-<pid>-<n>` naming (key, pack) pairs, so that they apply whatever
//! order records are read in, and a block stored again after its removal (in a newer pack)
//! stays.

use crate::store::Store;
use protocol::{Error, ErrorCode, Key, Result};
use std::collections::{BTreeMap, HashSet};

/// A pack is written out once it holds this many bytes...
pub(crate) const PACK_BYTES: usize = 16 << 20;
/// ...or this many blocks.
pub(crate) const PACK_BLOCKS: usize = 4096;
const PACK_MAGIC: &[u8; 8] = b"oreS3pk1";
const INDEX_MAGIC: &[u8; 8] = b"oreS3ix1";
/// One table entry: key, offset (u64 LE), length (u32 LE).
const ENTRY: usize = 32 + 8 + 4;
/// The most a pack's table and the table's length take after its blocks.
const TABLE_MAX: usize = INDEX_MAGIC.len() + PACK_BLOCKS * ENTRY + 8;

/// Where a block's bytes are: pack id (64 hex digits), offset and length inside it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Loc {
    pub pack: String,
    pub offset: u64,
    pub len: u32,
}

/// Bytes of a pack being assembled: the blocks back to back after the magic.
#[derive(Default)]
pub(crate) struct Builder {
    pub data: Vec<u8>,
    /// The pack's bytes once sealed: shared by the upload and the reads answered meanwhile,
    /// so a pack on its way is held once, not twice.
    pub sealed: Option<bytes::Bytes>,
    pub entries: Vec<(Key, u64, u32)>,
    pub keys: BTreeMap<Key, usize>,
}

impl Builder {
    pub fn add(&mut self, key: Key, block: &[u8]) {
        if self.data.is_empty() {
            // Room for the whole pack and its table at once: a buffer grown by doubling would
            // hold twice the pack (measured: finishing each pack outgrew a reservation without
            // the table, and the backend's three packs in memory took 100 MB, not 48).
            self.data
                .reserve(PACK_BYTES.max(block.len() + 64) + TABLE_MAX);
            // The magic, then what makes this pack's bytes (and so its id) unique: a pack
            // written again with the same blocks after they were removed must not take the
            // old pack's name, whose removal records would hide its blocks.
            static PACKS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            self.data.extend_from_slice(PACK_MAGIC);
            self.data.extend_from_slice(&nanos.to_le_bytes());
            self.data
                .extend_from_slice(&std::process::id().to_le_bytes());
            let n = PACKS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.data.extend_from_slice(&n.to_le_bytes());
        }
        let offset = self.data.len() as u64;
        self.data.extend_from_slice(block);
        self.keys.insert(key, self.entries.len());
        self.entries.push((key, offset, block.len() as u32));
    }

    pub fn get(&self, key: &Key) -> Option<Vec<u8>> {
        let &(_, offset, len) = self.entries.get(*self.keys.get(key)?)?;
        let start = usize::try_from(offset).ok()?;
        let data: &[u8] = self.sealed.as_deref().unwrap_or(&self.data);
        data.get(start..start + len as usize).map(<[u8]>::to_vec)
    }

    /// Whether `len` more bytes of block keep the pack within [`PACK_BYTES`] (an empty pack
    /// takes any block, however large).
    pub fn fits(&self, len: usize) -> bool {
        self.data.is_empty() || self.data.len() + len <= PACK_BYTES
    }

    pub fn full(&self) -> bool {
        self.data.len() >= PACK_BYTES || self.entries.len() >= PACK_BLOCKS
    }

    /// Ends the pack (its table, then the table's length, after the blocks): its id and the
    /// index object's bytes. The blocks stay readable where they were.
    pub fn finish(&mut self) -> (String, Vec<u8>) {
        let table = table(&self.entries);
        self.data.extend_from_slice(&table);
        self.data
            .extend_from_slice(&(table.len() as u64).to_le_bytes());
        let id = blake3::hash(&self.data).to_hex().to_string();
        (id, table)
    }
}

impl Builder {
    /// Freezes the finished pack's bytes; the shared handle to upload.
    pub fn seal(&mut self) -> bytes::Bytes {
        let b = bytes::Bytes::from(std::mem::take(&mut self.data));
        self.sealed = Some(b.clone());
        b
    }
}

fn table(entries: &[(Key, u64, u32)]) -> Vec<u8> {
    let mut t = Vec::with_capacity(8 + entries.len() * ENTRY);
    t.extend_from_slice(INDEX_MAGIC);
    for (k, off, len) in entries {
        t.extend_from_slice(&k.0);
        t.extend_from_slice(&off.to_le_bytes());
        t.extend_from_slice(&len.to_le_bytes());
    }
    t
}

fn corrupt(store: &Store, what: &str, why: &str) -> Error {
    Error::backend(
        ErrorCode::Corrupt,
        format!("{}: {what} {why}", store.archive),
    )
}

/// The entries of a table (an index object, or a pack's footer).
fn parse_table(store: &Store, what: &str, t: &[u8]) -> Result<Entries> {
    let body = t
        .strip_prefix(INDEX_MAGIC)
        .ok_or_else(|| corrupt(store, what, "does not start with the index magic"))?;
    if body.len() % ENTRY != 0 {
        return Err(corrupt(store, what, "has a torn entry"));
    }
    Ok(body
        .chunks_exact(ENTRY)
        .map(|e| {
            let mut k = [0u8; 32];
            k.copy_from_slice(&e[..32]);
            let off = u64::from_le_bytes(e[32..40].try_into().unwrap_or_default());
            let len = u32::from_le_bytes(e[40..44].try_into().unwrap_or_default());
            (Key(k), off, len)
        })
        .collect())
}

/// A table's entries: key, offset, length.
pub(crate) type Entries = Vec<(Key, u64, u32)>;
/// Index objects read: pack id and its entries.
pub(crate) type NewPacks = Vec<(String, Entries)>;
/// What a refresh found: new index objects, new deletion records, and packs whose index
/// object is gone (repacked) since it was read.
pub(crate) struct Found {
    pub packs: NewPacks,
    pub dels: NewDeletions,
    pub vanished: Vec<String>,
}
/// Deletion records read: object name and its (key, pack) pairs.
pub(crate) type NewDeletions = Vec<(String, Vec<(Key, String)>)>;

/// Which blocks are where, as far as this process has read the store.
#[derive(Default)]
pub(crate) struct Index {
    pub blocks: BTreeMap<Key, Vec<Loc>>,
    /// The whole table of every pack read (removed blocks included): what a repack weighs.
    pub packs: BTreeMap<String, Entries>,
    /// Each deletion record read, and the packs it names (a repack deletes records whose
    /// packs are all gone).
    pub records: BTreeMap<String, HashSet<String>>,
    /// Index and deletion objects already applied.
    seen: HashSet<String>,
    /// Removed (key, pack) pairs: applied to index objects read later too.
    deleted: HashSet<(Key, String)>,
}

impl Index {
    pub fn add(&mut self, pack: &str, entries: &[(Key, u64, u32)]) {
        self.packs.insert(pack.to_string(), entries.to_vec());
        for &(key, offset, len) in entries {
            if self.deleted.contains(&(key, pack.to_string())) {
                continue;
            }
            let locs = self.blocks.entry(key).or_default();
            if !locs.iter().any(|l| l.pack == pack) {
                locs.push(Loc {
                    pack: pack.to_string(),
                    offset,
                    len,
                });
            }
        }
    }

    pub fn delete(&mut self, pairs: &[(Key, String)]) {
        for (key, pack) in pairs {
            if let Some(locs) = self.blocks.get_mut(key) {
                locs.retain(|l| &l.pack != pack);
                if locs.is_empty() {
                    self.blocks.remove(key);
                }
            }
            self.deleted.insert((*key, pack.clone()));
        }
    }

    /// Whether a removal record named this copy.
    pub fn is_deleted(&self, key: &Key, pack: &str) -> bool {
        self.deleted.contains(&(*key, pack.to_string()))
    }

    /// Forgets a pack that is gone from the store (repacked): its blocks' other copies stay.
    pub fn forget_pack(&mut self, pack: &str) {
        let Some(entries) = self.packs.remove(pack) else {
            return;
        };
        for (key, _, _) in entries {
            if let Some(locs) = self.blocks.get_mut(&key) {
                locs.retain(|l| l.pack != pack);
                if locs.is_empty() {
                    self.blocks.remove(&key);
                }
            }
        }
        self.seen.remove(&format!("index/{pack}"));
    }

    /// The copy of `key` that counts: the one in the pack with the smallest id. Every process
    /// and every repack picks the same one from the same copies, so a repack that drops the
    /// other copies keeps exactly this one.
    pub fn canonical(&self, key: &Key) -> Option<&Loc> {
        self.blocks
            .get(key)?
            .iter()
            .min_by(|a, b| a.pack.cmp(&b.pack))
    }

    pub fn mark_seen(&mut self, object: String) {
        self.seen.insert(object);
    }

    pub fn seen(&self) -> &HashSet<String> {
        &self.seen
    }
}

/// Reads the index and deletion objects this process has not applied yet. Returns the new
/// (pack, entries) and deletion pairs; the caller applies them under its lock.
pub(crate) async fn read_new(store: &Store, seen: &HashSet<String>) -> Result<Found> {
    let (listed, deleted) =
        futures::try_join!(store.list_all("index/"), store.list_all("deleted/"))?;
    let now: HashSet<&str> = listed.iter().map(String::as_str).collect();
    let vanished = seen
        .iter()
        .filter_map(|o| o.strip_prefix("index/"))
        .filter(|id| !now.contains(id))
        .map(str::to_string)
        .collect();
    let fresh = |names: Vec<String>, dir: &str| -> Vec<String> {
        names
            .into_iter()
            .map(|n| format!("{dir}{n}"))
            .filter(|n| !seen.contains(n))
            .collect()
    };
    store.local.prune("index", &now);
    let indexes = fresh(listed, "index/");
    store
        .local
        .prune("deleted", &deleted.iter().map(String::as_str).collect());
    let deletions = fresh(deleted, "deleted/");
    // Owned names and store handles: these futures run inside spawned tasks, which must not
    // borrow from an iterator.
    let reads = indexes.into_iter().map(|o| {
        let store = store.clone();
        async move {
            let pack = o.trim_start_matches("index/").to_string();
            if let Some(t) = store.local.read(&o) {
                if let Ok(table) = parse_table(&store, &o, &t) {
                    return Ok(Some((pack, table)));
                }
            }
            // Gone since the listing: a repack deleted its pack too.
            let Some(t) = store.get(&o).await? else {
                return Ok(None);
            };
            let table = parse_table(&store, &o, &t)?;
            store.local.write(&o, &t);
            Ok::<_, Error>(Some((pack, table)))
        }
    });
    let packs = crate::store::at_most(reads)
        .await?
        .into_iter()
        .flatten()
        .collect();
    let reads = deletions.into_iter().map(|o| {
        let store = store.clone();
        async move {
            let t = match store.local.read(&o).filter(|t| t.len() % 96 == 0) {
                Some(t) => t,
                None => {
                    let t = store.get(&o).await?.unwrap_or_default();
                    if t.len() % 96 == 0 && !t.is_empty() {
                        store.local.write(&o, &t);
                    }
                    t
                }
            };
            if t.len() % 96 != 0 {
                return Err(corrupt(&store, &o, "has a torn entry"));
            }
            let pairs = t
                .chunks_exact(96)
                .map(|e| {
                    let mut k = [0u8; 32];
                    k.copy_from_slice(&e[..32]);
                    (Key(k), String::from_utf8_lossy(&e[32..]).into_owned())
                })
                .collect();
            Ok((o, pairs))
        }
    });
    let dels = crate::store::at_most(reads).await?;
    Ok(Found {
        packs,
        dels,
        vanished,
    })
}

/// Applies what [`read_new`] found.
pub(crate) fn apply(index: &mut Index, found: Found) {
    for pack in found.vanished {
        index.forget_pack(&pack);
    }
    for (object, pairs) in found.dels {
        index.delete(&pairs);
        let packs = pairs.iter().map(|(_, p)| p.clone()).collect();
        index.records.insert(object.clone(), packs);
        index.mark_seen(object);
    }
    for (pack, entries) in found.packs {
        index.add(&pack, &entries);
        index.mark_seen(format!("index/{pack}"));
    }
}

/// The bytes of a deletion record for these pairs: key (32 bytes) then pack id (64 hex).
pub(crate) fn deletion_record(pairs: &[(Key, String)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(pairs.len() * 96);
    for (k, p) in pairs {
        out.extend_from_slice(&k.0);
        out.extend_from_slice(p.as_bytes());
    }
    out
}

/// Writes `index/<id>` again for every pack that lacks one (a writer died between the pack and
/// its index, or the index object was lost), from the table at the pack's end. Returns the
/// packs reindexed.
pub(crate) async fn reindex(store: &Store) -> Result<Vec<String>> {
    let indexed: HashSet<String> = store.list_all("index/").await?.into_iter().collect();
    let mut rebuilt = Vec::new();
    for id in store.list_all("packs/").await? {
        if indexed.contains(&id) {
            continue;
        }
        let path = format!("packs/{id}");
        let size = store
            .head(&path)
            .await?
            .ok_or_else(|| corrupt(store, &path, "vanished while being reindexed"))?;
        let too_short = || corrupt(store, &path, "is too short to end with a table");
        let tail_at = size.checked_sub(8).ok_or_else(too_short)?;
        let tail = store
            .get_range(&path, tail_at, 8)
            .await?
            .unwrap_or_default();
        let len = u64::from_le_bytes(tail.as_slice().try_into().map_err(|_| too_short())?);
        let table_at = tail_at.checked_sub(len).ok_or_else(too_short)?;
        let table = store
            .get_range(&path, table_at, len)
            .await?
            .unwrap_or_default();
        let entries = parse_table(store, &path, &table)?;
        if entries.iter().any(|e| e.1 + u64::from(e.2) > table_at) {
            return Err(corrupt(
                store,
                &path,
                "has a table pointing past its blocks",
            ));
        }
        store.put_new(&format!("index/{id}"), table).await?;
        rebuilt.push(id);
    }
    Ok(rebuilt)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_finished_pack_never_outgrows_the_buffer_it_reserved() {
        let mut b = Builder::default();
        let block = vec![7u8; 300_000];
        let mut n = 0u8;
        b.add(Key([n; 32]), &block);
        let reserved = b.data.capacity();
        while b.fits(block.len()) && !b.full() {
            n += 1;
            b.add(Key([n; 32]), &block);
        }
        b.finish();
        assert_eq!(
            b.data.capacity(),
            reserved,
            "the buffer grew (and was copied)"
        );
        assert!(b.data.len() <= PACK_BYTES + TABLE_MAX);
    }

    #[test]
    fn a_block_larger_than_a_pack_fills_an_empty_one_alone() {
        let b = Builder::default();
        assert!(b.fits(PACK_BYTES * 2), "an empty pack takes any block");
        let mut b = Builder::default();
        b.add(Key([1; 32]), &[0; 100]);
        assert!(
            !b.fits(PACK_BYTES),
            "a pack with blocks does not take a whole pack more"
        );
    }
}
