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

/// Where a pack's bytes are while it is assembled and on its way.
#[derive(Default)]
enum Held {
    /// None yet, or let go once the pack was stored ([`Builder::release`]).
    #[default]
    None,
    /// In memory: a pack gc's repack assembles, or one whose scratch file could not be had.
    Memory(Vec<u8>),
    /// In an unnamed scratch file, until the pack's upload may begin (see [`Builder::scratch`]).
    File(std::fs::File),
    /// Frozen for the upload: shared by the upload and the reads answered meanwhile, so a pack
    /// on its way is held once, not twice.
    Sealed(bytes::Bytes),
}

/// A pack being assembled: the blocks back to back after the magic, then the table.
#[derive(Default)]
pub(crate) struct Builder {
    held: std::sync::Mutex<Held>,
    /// Bytes so far.
    len: usize,
    /// The pack's id: the hash of its bytes, taken as they come.
    hasher: blake3::Hasher,
    /// Whether the bytes go to a scratch file until the upload.
    scratch: bool,
    pub entries: Vec<(Key, u64, u32)>,
    pub keys: BTreeMap<Key, usize>,
}

impl Builder {
    /// A pack whose bytes wait in an unnamed scratch file (created already unlinked, in the
    /// temporary directory) until its upload may begin, and are read into memory only then.
    /// A snapshot fills the next pack while one is on its way; in memory the two took 35 MB at
    /// a snapshot's peak. Where no file can be had, or writing to it fails, the pack goes on in
    /// memory.
    pub fn scratch() -> Builder {
        Builder {
            scratch: true,
            ..Builder::default()
        }
    }

    pub fn add(&mut self, key: Key, block: &[u8]) -> std::io::Result<()> {
        if self.len == 0 {
            // The magic, then what makes this pack's bytes (and so its id) unique: a pack
            // written again with the same blocks after they were removed must not take the
            // old pack's name, whose removal records would hide its blocks.
            static PACKS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            let n = PACKS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let mut head = PACK_MAGIC.to_vec();
            head.extend_from_slice(&nanos.to_le_bytes());
            head.extend_from_slice(&std::process::id().to_le_bytes());
            head.extend_from_slice(&n.to_le_bytes());
            self.append(&head, block.len())?;
        }
        let offset = self.len as u64;
        self.append(block, block.len())?;
        self.keys.insert(key, self.entries.len());
        self.entries.push((key, offset, block.len() as u32));
        Ok(())
    }

    /// Appends `bytes`; `first` (the first block's length) sizes a buffer in memory.
    fn append(&mut self, bytes: &[u8], first: usize) -> std::io::Result<()> {
        use std::os::unix::fs::FileExt;
        let held = self.held.get_mut().unwrap_or_else(|e| e.into_inner());
        if let Held::None = held {
            *held = match self.scratch.then(scratch_file) {
                Some(Ok(f)) => Held::File(f),
                // Room for the whole pack and its table at once: a buffer grown by doubling
                // would hold twice the pack.
                _ => Held::Memory(Vec::with_capacity(PACK_BYTES.max(first + 64) + TABLE_MAX)),
            };
        }
        if let Held::File(f) = held {
            if f.write_all_at(bytes, self.len as u64).is_err() {
                // A full or failing temporary directory: go on in memory.
                let mut data = Vec::with_capacity(PACK_BYTES.max(self.len + first) + TABLE_MAX);
                data.resize(self.len, 0);
                f.read_exact_at(&mut data, 0)?;
                *held = Held::Memory(data);
            }
        }
        match held {
            Held::Memory(data) => data.extend_from_slice(bytes),
            Held::File(_) => {}
            Held::None | Held::Sealed(_) => {
                return Err(std::io::Error::other("a sealed pack was added to"));
            }
        }
        self.hasher.update(bytes);
        self.len += bytes.len();
        Ok(())
    }

    pub fn get(&self, key: &Key) -> Option<Vec<u8>> {
        use std::os::unix::fs::FileExt;
        let &(_, offset, len) = self.entries.get(*self.keys.get(key)?)?;
        let start = usize::try_from(offset).ok()?;
        match &*ore_util::sync::lock(&self.held) {
            Held::None => None,
            Held::Memory(data) => data.get(start..start + len as usize).map(<[u8]>::to_vec),
            Held::Sealed(data) => data.get(start..start + len as usize).map(<[u8]>::to_vec),
            Held::File(f) => {
                let mut out = vec![0; len as usize];
                f.read_exact_at(&mut out, offset).ok()?;
                Some(out)
            }
        }
    }

    /// Bytes so far.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether `len` more bytes of block keep the pack within [`PACK_BYTES`] (an empty pack
    /// takes any block, however large).
    pub fn fits(&self, len: usize) -> bool {
        self.len == 0 || self.len + len <= PACK_BYTES
    }

    pub fn full(&self) -> bool {
        self.len >= PACK_BYTES || self.entries.len() >= PACK_BLOCKS
    }

    /// Ends the pack (its table, then the table's length, after the blocks): its id and the
    /// index object's bytes. The blocks stay readable where they were.
    pub fn finish(&mut self) -> std::io::Result<(String, Vec<u8>)> {
        let table = table(&self.entries);
        self.append(&table, 0)?;
        self.append(&(table.len() as u64).to_le_bytes(), 0)?;
        let id = self.hasher.finalize().to_hex().to_string();
        Ok((id, table))
    }

    /// The finished pack's bytes, frozen for its upload: read from the scratch file now (which
    /// then goes), so that a pack waiting for its turn takes no memory.
    pub fn seal(&self) -> std::io::Result<bytes::Bytes> {
        use std::os::unix::fs::FileExt;
        let mut held = ore_util::sync::lock(&self.held);
        let bytes = match std::mem::take(&mut *held) {
            Held::Sealed(b) => b,
            Held::Memory(data) => bytes::Bytes::from(data),
            Held::File(f) => {
                let mut data = vec![0; self.len];
                if let Err(e) = f.read_exact_at(&mut data, 0) {
                    *held = Held::File(f);
                    return Err(e);
                }
                bytes::Bytes::from(data)
            }
            Held::None => bytes::Bytes::new(),
        };
        *held = Held::Sealed(bytes.clone());
        Ok(bytes)
    }

    /// Lets go of the pack's bytes: the pack is stored and the index names its blocks, so
    /// reads find them there. Held until the next pack was sealed, a stored pack kept a third
    /// 16 MiB in memory at a snapshot's peak (heaptrack: 52 MB of packs, 35 MB after).
    pub fn release(&self) {
        *ore_util::sync::lock(&self.held) = Held::None;
    }
}

/// A new scratch file, unnamed in the temporary directory (a test may refuse one, to see
/// memory take over).
fn scratch_file() -> std::io::Result<std::fs::File> {
    #[cfg(test)]
    if tests::NO_SCRATCH.with(|n| n.get()) {
        return Err(std::io::Error::other("no scratch file in this test"));
    }
    tempfile::tempfile()
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

/// A pack's bytes could not be kept (a scratch file failed where memory could not take over).
pub(crate) fn scratch_failed(archive: &str, e: std::io::Error) -> Error {
    Error::backend(
        ErrorCode::Io,
        format!("{archive}: a pack's scratch file failed: {e}"),
    )
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

    thread_local! {
        /// Set: this thread gets no scratch files.
        pub(super) static NO_SCRATCH: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }

    #[test]
    fn a_finished_pack_never_outgrows_the_buffer_it_reserved() {
        let mut b = Builder::default();
        let block = vec![7u8; 300_000];
        let mut n = 0u8;
        b.add(Key([n; 32]), &block).expect("add");
        let capacity = |b: &Builder| match &*b.held.lock().expect("lock") {
            Held::Memory(d) => d.capacity(),
            _ => panic!("a default pack is in memory"),
        };
        let reserved = capacity(&b);
        while b.fits(block.len()) && !b.full() {
            n += 1;
            b.add(Key([n; 32]), &block).expect("add");
        }
        b.finish().expect("finish");
        assert_eq!(capacity(&b), reserved, "the buffer grew (and was copied)");
        assert!(b.len() <= PACK_BYTES + TABLE_MAX);
    }

    #[test]
    fn a_block_larger_than_a_pack_fills_an_empty_one_alone() {
        let b = Builder::default();
        assert!(b.fits(PACK_BYTES * 2), "an empty pack takes any block");
        let mut b = Builder::default();
        b.add(Key([1; 32]), &[0; 100]).expect("add");
        assert!(
            !b.fits(PACK_BYTES),
            "a pack with blocks does not take a whole pack more"
        );
    }

    /// Blocks of 1..=200 KB, each of its own byte.
    fn blocks() -> Vec<(Key, Vec<u8>)> {
        (1..=40u8)
            .map(|n| (Key([n; 32]), vec![n; n as usize * 5_000]))
            .collect()
    }

    #[test]
    fn a_pack_waiting_in_its_scratch_file_reads_back_and_uploads_the_bytes_its_id_names() {
        let mut b = Builder::scratch();
        for (k, d) in blocks() {
            b.add(k, &d).expect("add");
        }
        assert!(
            matches!(&*b.held.lock().expect("lock"), Held::File(_)),
            "the open pack is in its file, not in memory"
        );
        let (id, table) = b.finish().expect("finish");
        for (k, d) in blocks() {
            assert_eq!(b.get(&k).as_deref(), Some(&d[..]), "read from the file");
        }
        let bytes = b.seal().expect("seal");
        assert!(matches!(&*b.held.lock().expect("lock"), Held::Sealed(_)));
        assert_eq!(bytes.len(), b.len());
        assert_eq!(
            blake3::hash(&bytes).to_hex().as_str(),
            id,
            "the id names these bytes"
        );
        let n = bytes.len();
        let table_len = u64::from_le_bytes(bytes[n - 8..].try_into().expect("8 bytes")) as usize;
        assert_eq!(
            &bytes[n - 8 - table_len..n - 8],
            &table[..],
            "the table ends the pack"
        );
        for ((k, d), (tk, off, len)) in blocks()
            .iter()
            .zip(parse_table("a", "t", &table).expect("table"))
        {
            assert_eq!((k, d.len() as u32), (&tk, len));
            assert_eq!(&bytes[off as usize..off as usize + len as usize], &d[..]);
            assert_eq!(
                b.get(k).as_deref(),
                Some(&d[..]),
                "read from the sealed bytes"
            );
        }
        b.release();
        assert_eq!(b.get(&blocks()[0].0), None, "released: the store answers");
    }

    #[test]
    fn a_pack_whose_scratch_file_cannot_be_made_is_assembled_in_memory() {
        NO_SCRATCH.with(|n| n.set(true));
        let mut b = Builder::scratch();
        let added = blocks().into_iter().try_for_each(|(k, d)| b.add(k, &d));
        NO_SCRATCH.with(|n| n.set(false));
        added.expect("add in memory");
        assert!(matches!(&*b.held.lock().expect("lock"), Held::Memory(_)));
        let (id, _) = b.finish().expect("finish");
        let bytes = b.seal().expect("seal");
        assert_eq!(blake3::hash(&bytes).to_hex().as_str(), id);
    }
}
