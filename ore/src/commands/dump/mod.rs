//! `ore dump` and `ore load`: a snapshot as one self-contained, checksummed stream
//! (FORMAT.md §11).
//!
//! The stream holds what the snapshot means — names, metadata, bytes — and nothing of how an
//! archive stores it: no block keys, no chunk boundaries, no encryption. `load` therefore
//! stores it again under the destination's own keys, chunker and compression, which is how a
//! snapshot moves between archives that share nothing, or survives a change of format.
//!
//! ```text
//! stream  = "ORE-DUMP" version:u8 record*            version = 2, or 3 with labels
//!                                                    (load takes 1 too)
//! record  = kind:u8 len:u32le payload[len]           len <= 16 MiB
//!   1 header    postcard(Header) [postcard(labels)]   first; labels in version 3 only
//!   2 entry     postcard(DumpEntry)                   depth first, names sorted per directory
//!   3 data      file bytes (at most 1 MiB a record)   after a file entry
//!   4 hole      len:u64le zero bytes not stored       after a file entry
//!   5 file-end  BLAKE3 of the file's records (32)     ends a file entry ([`FileHash`])
//!   6 dir-end   (empty)                               ends a directory entry's children
//!   7 trailer   BLAKE3 of every byte before it (32)   last
//! ```
//!
//! `load` checks each file's hash as it ends (an error names the file) and the trailer before
//! it moves any tag, so a damaged or truncated stream stores blocks but never a snapshot.

use crate::core::block::Kind;
use crate::core::entry::{
    encode, Entry, EntryKind, Piece, Snapshot, SnapshotStats, Warning, Xattr,
};
use crate::core::error::{Error, Result};
use crate::core::plaincache::{PlainCache, BUNDLE_BYTES};
use crate::core::repo::Repo;
use crate::core::tree::{Builder, DirTree, Pieces, Reader, Store};
use crate::core::util::show;
use protocol::Key;
use serde::{Deserialize, Serialize};
use std::io::{Read, Write};

pub mod archive;
mod load;
pub use load::{load, Loaded};

const MAGIC: &[u8; 8] = b"ORE-DUMP";
/// The newest stream version this code writes and reads: 3, whose header record ends with the
/// snapshot's labels. It is written only for a labelled snapshot; others are written as
/// [`UNLABELLED`], which an ore from before labels loads too.
pub const VERSION: u8 = 3;
/// The version of a stream of a snapshot without labels.
const UNLABELLED: u8 = 2;
/// The oldest stream version `load` reads.
const OLDEST: u8 = 1;
/// The most bytes of holes one file of a version-1 stream may declare. Version 1 hashed a
/// hole's zeros, so a 210-byte stream could declare exabytes of them and keep `load` hashing
/// for years; 1 TiB of zeros hashes in minutes. (Version 2 hashes a hole's length.)
const V1_HOLES: u64 = 1 << 40;
const MAX_RECORD: u32 = 16 << 20;
const DATA_RECORD: usize = 1 << 20;
/// Most directories nested in a stream: paths longer than a file system could take are
/// refused rather than held level by level.
const MAX_DEPTH: usize = crate::core::depth::MAX_DEPTH;
/// Chunks asked for ahead while dumping from an archive over a link.
const READ_AHEAD: usize = 32;

const HEADER: u8 = 1;
const ENTRY: u8 = 2;
const DATA: u8 = 3;
const HOLE: u8 = 4;
const FILE_END: u8 = 5;
const DIR_END: u8 = 6;
const TRAILER: u8 = 7;
/// An archive tag's stream (version 4, [`archive`]): an object, then its tree.
const OBJECT: u8 = 8;
/// In an archive tag's stream, a catalogued file's content id, where its data would be.
const CATALOGUED: u8 = 9;

/// The snapshot's own properties.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Header {
    pub time: i64,
    pub host: String,
    pub user: String,
    pub tag: String,
    pub paths: Vec<serde_bytes::ByteBuf>,
    pub comment: String,
    pub stats: SnapshotStats,
    pub warnings: Vec<Warning>,
    pub warnings_total: u64,
}

/// What an entry is, without any block key.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum DumpKind {
    File { size: u64 },
    Dir,
    Symlink(#[serde(with = "serde_bytes")] Vec<u8>),
    Hardlink(#[serde(with = "serde_bytes")] Vec<u8>),
    Fifo,
    Socket,
    CharDevice(u64),
    BlockDevice(u64),
}

/// A directory entry in the stream.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DumpEntry {
    #[serde(with = "serde_bytes")]
    pub name: Vec<u8>,
    pub kind: DumpKind,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub user: Option<String>,
    pub group: Option<String>,
    pub mtime: i64,
    pub atime: Option<i64>,
    pub ctime: Option<i64>,
    pub xattrs: Vec<Xattr>,
}

/// Counts of a dump or load.
#[derive(Clone, Debug, Default, Serialize)]
pub struct DumpStats {
    pub entries: u64,
    pub bytes: u64,
    pub stream_bytes: u64,
}

/// A writer that hashes and counts what passes.
struct Hashed<W> {
    inner: W,
    hash: blake3::Hasher,
    n: u64,
    /// The stream's version: only an archive tag's stream may hold catalogued files.
    version: u8,
}

impl<W: Write> Hashed<W> {
    fn record(&mut self, kind: u8, payload: &[u8]) -> Result<()> {
        let mut head = [0u8; 5];
        head[0] = kind;
        head[1..].copy_from_slice(&(payload.len() as u32).to_le_bytes());
        self.raw(&head)?;
        self.raw(payload)
    }

    /// Ends the stream with its trailer and flushes it: the stream's length.
    fn finish(mut self) -> Result<u64> {
        let sum = *self.hash.finalize().as_bytes();
        self.record(TRAILER, &sum)?;
        self.inner
            .flush()
            .map_err(|e| Error::Local(format!("writing the dump: {e}")))?;
        Ok(self.n)
    }

    fn raw(&mut self, b: &[u8]) -> Result<()> {
        self.hash.update(b);
        self.n += b.len() as u64;
        self.inner
            .write_all(b)
            .map_err(|e| Error::Local(format!("writing the dump: {e}")))
    }
}

/// Writes snapshot `snap` to `out` as a dump stream.
pub fn dump(repo: &Repo, snap: &Snapshot, out: &mut dyn Write) -> Result<DumpStats> {
    let version = if snap.labels.is_empty() {
        UNLABELLED
    } else {
        VERSION
    };
    let mut w = Hashed {
        inner: std::io::BufWriter::with_capacity(1 << 20, out),
        hash: blake3::Hasher::new(),
        n: 0,
        version,
    };
    let mut stats = DumpStats::default();
    w.raw(MAGIC)?;
    w.raw(&[version])?;
    let header = Header {
        time: snap.time,
        host: snap.host.clone(),
        user: snap.user.clone(),
        tag: snap.tag.clone(),
        paths: snap.paths.clone(),
        comment: snap.comment.clone(),
        stats: snap.stats.clone(),
        warnings: snap.warnings.clone(),
        warnings_total: snap.warnings_total,
    };
    let mut record = encode(&header);
    if version >= 3 {
        record.extend(encode(&snap.labels));
    }
    w.record(HEADER, &record)?;
    dump_tree(repo, &snap.root, &mut w, &mut stats)?;
    stats.stream_bytes = w.finish()?;
    Ok(stats)
}

/// Writes `root` and everything below it, depth first. The walk keeps its open directories
/// on a stack of its own rather than recursing, so a crafted archive nested deeper than any
/// file system could hold ends in an error, not in a stack overflow.
fn dump_tree<'r, W: Write>(
    repo: &'r Repo,
    root: &Entry,
    w: &mut Hashed<W>,
    stats: &mut DumpStats,
) -> Result<()> {
    let mut open: Vec<Reader<'r, DirTree>> = Vec::new();
    let bundles = PlainCache::new(BUNDLE_BYTES);
    let cx = (repo, &bundles);
    open.extend(dump_entry(cx, root, w, stats)?.map(|(_, r)| r));
    while let Some(dir) = open.last_mut() {
        match dir.next_item()? {
            Some(c) => {
                if let Some((tree, below)) = dump_entry(cx, &c, w, stats)? {
                    // `load` refuses deeper streams: say so now, not after writing one.
                    if open.len() >= MAX_DEPTH {
                        return Err(Error::Corrupt {
                            key: tree,
                            kind: Kind::Dir.name(),
                            why: format!("it is nested more than {MAX_DEPTH} directories deep"),
                        });
                    }
                    open.push(below);
                }
            }
            None => {
                open.pop();
                w.record(DIR_END, &[])?;
            }
        }
    }
    Ok(())
}

/// Writes one entry; a file's data comes along, a directory's entries are left to the caller
/// (its tree's key and a reader of it are returned).
fn dump_entry<'r, W: Write>(
    (repo, bundles): (&'r Repo, &PlainCache),
    e: &Entry,
    w: &mut Hashed<W>,
    stats: &mut DumpStats,
) -> Result<Option<(Key, Reader<'r, DirTree>)>> {
    stats.entries += 1;
    let kind = match &e.kind {
        EntryKind::File { size, .. } => DumpKind::File { size: *size },
        EntryKind::Dir { .. } => DumpKind::Dir,
        EntryKind::Symlink { target } => DumpKind::Symlink(target.clone()),
        EntryKind::Hardlink { target } => DumpKind::Hardlink(target.clone()),
        EntryKind::Fifo => DumpKind::Fifo,
        EntryKind::Socket => DumpKind::Socket,
        EntryKind::CharDevice { rdev } => DumpKind::CharDevice(*rdev),
        EntryKind::BlockDevice { rdev } => DumpKind::BlockDevice(*rdev),
    };
    let de = DumpEntry {
        name: e.name.clone(),
        kind,
        mode: e.mode,
        uid: e.uid,
        gid: e.gid,
        user: e.user.clone(),
        group: e.group.clone(),
        mtime: e.mtime,
        atime: e.atime,
        ctime: e.ctime,
        xattrs: e.xattrs.clone(),
    };
    w.record(ENTRY, &encode(&de))?;
    match &e.kind {
        EntryKind::File { size, content } => dump_file((repo, bundles), content, *size, w, stats)?,
        EntryKind::Dir { tree } => return Ok(Some((*tree, Reader::new(repo, *tree)))),
        _ => {}
    }
    Ok(None)
}

/// Writes a file's data records and the record that ends it with the file's hash, reading its
/// chunks ahead over a link (a small file's bundle is read once for all its files, through
/// `bundles`).
fn dump_file<W: Write>(
    (repo, bundles): (&Repo, &PlainCache),
    content: &crate::core::entry::Content,
    size: u64,
    w: &mut Hashed<W>,
    stats: &mut DumpStats,
) -> Result<()> {
    let mut h = FileHash::new(VERSION);
    if let (&crate::core::entry::Content::Catalogued { id }, archive::ARCHIVE) =
        (content, w.version)
    {
        h.catalogued(id.as_ref());
        w.record(CATALOGUED, id.as_ref().map_or(&[][..], |k| &k.0[..]))?;
        return w.record(FILE_END, h.finalize().as_bytes());
    }
    let pieces = crate::core::tree::file_pieces(repo, content, size)?;
    // Over a link, ask for the next chunks before they are needed.
    let ahead = if repo.backend().pipelines() {
        READ_AHEAD
    } else {
        0
    };
    let mut asked: std::collections::VecDeque<protocol::Ticket<Option<Vec<u8>>>> =
        std::collections::VecDeque::new();
    let mut data_keys = pieces.iter().filter_map(|p| match p {
        Piece::Data { key, .. } => Some(*key),
        Piece::Hole { .. } | Piece::Slice { .. } => None,
    });
    for k in data_keys.by_ref().take(ahead) {
        asked.push_back(repo.backend().start_get(k));
    }
    // A file's bytes, as data records of at most DATA_RECORD bytes.
    fn data<W: Write>(
        bytes: &[u8],
        (h, w, stats): (&mut FileHash, &mut Hashed<W>, &mut DumpStats),
    ) -> Result<()> {
        stats.bytes += bytes.len() as u64;
        for part in bytes.chunks(DATA_RECORD) {
            h.data(part);
            w.record(DATA, part)?;
        }
        Ok(())
    }
    for p in pieces.iter().cloned() {
        match p {
            Piece::Data { key, .. } => {
                let b = match asked.pop_front() {
                    Some(t) => {
                        if let Some(k) = data_keys.next() {
                            asked.push_back(repo.backend().start_get(k));
                        }
                        let stored = crate::core::repo::fetched(t.wait(), key, Kind::Chunk)?;
                        crate::core::block::open(repo.keys(), &key, Some(Kind::Chunk), stored)?
                    }
                    None => repo.get_block(key, Kind::Chunk)?,
                };
                data(b.data(), (&mut h, w, stats))?;
            }
            Piece::Slice { key, .. } => {
                data(p.bytes_of(&bundles.chunk(repo, key)?)?, (&mut h, w, stats))?
            }
            Piece::Hole { len } => {
                h.hole(len);
                stats.bytes += len;
                w.record(HOLE, &len.to_le_bytes())?;
            }
        }
    }
    w.record(FILE_END, h.finalize().as_bytes())?;

    Ok(())
}

/// The hash of a file's records in a stream (its `file-end` record). Version 2 hashes each
/// data record's kind, length and bytes and each hole record's kind and length, so a hole costs
/// the same however large it is; version 1 hashed the file's bytes, a hole's as zeros.
struct FileHash {
    version: u8,
    hash: blake3::Hasher,
}

impl FileHash {
    fn new(version: u8) -> FileHash {
        FileHash {
            version,
            hash: blake3::Hasher::new(),
        }
    }

    fn data(&mut self, bytes: &[u8]) {
        if self.version >= 2 {
            self.hash.update(&[DATA]);
            self.hash.update(&(bytes.len() as u64).to_le_bytes());
        }
        self.hash.update(bytes);
    }

    fn hole(&mut self, mut len: u64) {
        if self.version >= 2 {
            self.hash.update(&[HOLE]);
            self.hash.update(&len.to_le_bytes());
            return;
        }
        let zeros = [0u8; 64 << 10];
        while len > 0 {
            let n = len.min(zeros.len() as u64) as usize;
            self.hash.update(&zeros[..n]);
            len -= n as u64;
        }
    }

    /// A catalogued file's id (none: not known), which stands for its data records.
    fn catalogued(&mut self, id: Option<&Key>) {
        self.hash.update(&[CATALOGUED]);
        if let Some(id) = id {
            self.hash.update(&id.0);
        }
    }

    fn finalize(&self) -> blake3::Hash {
        self.hash.finalize()
    }
}
