//! Packs: many blocks per object (LAYOUT.md, "Packs").
//!
//! One object per block would cost a request (and on paid stores a fee) for every chunk, and
//! a million small files are a million chunks. So blocks are gathered into packs of about
//! 16 MiB, each written once under a name derived from its bytes. A pack ends with its own
//! table of contents, so the pack alone is enough to rebuild the index that says where its
//! blocks lie (`index`). Removals are records `index/r-<ns>-<pid>-<hash>` naming (key, pack)
//! pairs, so that they apply whatever order records are read in, and a block stored again
//! after its removal (in a newer pack) stays.

use protocol::{Error, ErrorCode, Key, Result};
use std::collections::BTreeMap;

/// A pack is written out once it holds this many bytes...
pub(crate) const PACK_BYTES: usize = 16 << 20;
/// ...or this many blocks.
pub(crate) const PACK_BLOCKS: usize = 16384;
const PACK_MAGIC: &[u8; 8] = b"oreS3pk1";
const INDEX_MAGIC: &[u8; 8] = b"oreS3ix1";
/// One table entry: key, offset (u64 LE), length (u32 LE).
const ENTRY: usize = 32 + 8 + 4;
/// The most a pack's table and the table's length take after its blocks.
const TABLE_MAX: usize = INDEX_MAGIC.len() + PACK_BLOCKS * ENTRY + 8;

/// Where a block's bytes are: pack id (64 hex digits), offset and length inside it. The id is
/// shared by every block of the pack and by the index's table of packs: a `String` per block
/// cost 88 bytes of each block's place in memory, and a clone on every read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Loc {
    pub pack: PackId,
    pub offset: u64,
    pub len: u32,
}

/// A pack's id, shared by everything in memory that names the pack.
pub(crate) type PackId = std::sync::Arc<str>;

/// The stored copies of one block: nearly always one, so it lives inline.
pub(crate) type Locs = smallvec::SmallVec<[Loc; 1]>;

/// Bytes of a pack being assembled: the blocks back to back after the magic.
#[derive(Default)]
pub(crate) struct Builder {
    pub data: Vec<u8>,
    /// The pack's bytes once sealed: shared by the upload and the reads answered meanwhile,
    /// so a pack on its way is held once, not twice; released ([`Builder::release`]) once it
    /// is stored and indexed, when reads find it in the store.
    pub sealed: std::sync::Mutex<Option<bytes::Bytes>>,
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
        let sealed = ore_util::sync::lock(&self.sealed);
        let data: &[u8] = sealed.as_deref().unwrap_or(&self.data);
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
        *ore_util::sync::lock(&self.sealed) = Some(b.clone());
        b
    }

    /// Lets go of the sealed bytes: the pack is stored and the index names its blocks, so
    /// reads find them there. Held until the next pack was sealed, a stored pack kept a third
    /// 16 MiB in memory at a snapshot's peak (heaptrack: 52 MB of packs, 35 MB after).
    pub fn release(&self) {
        ore_util::sync::lock(&self.sealed).take();
    }
}

pub(crate) fn table(entries: &[(Key, u64, u32)]) -> Vec<u8> {
    let mut t = Vec::with_capacity(8 + entries.len() * ENTRY);
    t.extend_from_slice(INDEX_MAGIC);
    for (k, off, len) in entries {
        t.extend_from_slice(&k.0);
        t.extend_from_slice(&off.to_le_bytes());
        t.extend_from_slice(&len.to_le_bytes());
    }
    t
}

pub(crate) fn corrupt(archive: &str, what: &str, why: &str) -> Error {
    Error::backend(ErrorCode::Corrupt, format!("{archive}: {what} {why}"))
}

/// The entries of a table (an index object, or a pack's footer).
pub(crate) fn parse_table(archive: &str, what: &str, t: &[u8]) -> Result<Entries> {
    let body = t
        .strip_prefix(INDEX_MAGIC)
        .ok_or_else(|| corrupt(archive, what, "does not start with the index magic"))?;
    if body.len() % ENTRY != 0 {
        return Err(corrupt(archive, what, "has a torn entry"));
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

/// Where removal records are named, by layout: `index/r-<ns>-<pid>-<hash>` beside the index
/// objects (layout 2: one listing finds both), or `deleted/<ns>-<pid>-<hash>` (layout 1).
pub(crate) fn removals_dir(layout: u8) -> &'static str {
    if layout == 1 {
        "deleted/"
    } else {
        REMOVALS_IN_INDEX
    }
}

/// How a removal record's name starts in a listing of `index/` (layout 2). `r` is no hex
/// digit, so no index object (`index/<64 hex digits>`) starts with it.
pub(crate) const REMOVAL_MARK: &str = "r-";
/// The same, as the start of its object's name.
const REMOVALS_IN_INDEX: &str = "index/r-";

/// The bytes of a deletion record for these pairs: key (32 bytes) then pack id (64 hex).
pub(crate) fn deletion_record(pairs: &[(Key, String)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(pairs.len() * 96);
    for (k, p) in pairs {
        out.extend_from_slice(&k.0);
        out.extend_from_slice(p.as_bytes());
    }
    out
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
