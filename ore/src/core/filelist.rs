//! Which files an archive object holds, by content and by name: the list behind the index's
//! `f` and `n` maps, which answer "is a copy of this file stored or catalogued anywhere?" and
//! "where is a file called …?" (docs/ARCHIVAL.md, "A catalogue of many disks").
//!
//! A file's *content id* is the key its whole bytes would have as one chunk: the archive's
//! keyed BLAKE3 over the chunk kind and the bytes. So a file stored as one chunk has its
//! chunk's key as its id and is not hashed again, ids mean nothing outside the archive (the
//! backend cannot confirm that someone holds a known file), and a file given to `ore search
//! --file` is hashed the same way.
//!
//! Each object keeps its own list, so that taking it out of the searches (a new version, a
//! forget) knows exactly which `f` and `n` entries to remove without scanning the index, and
//! a new version made by `ore props --set` shares its predecessor's list instead of
//! rewriting it. A list of up to [`INLINE`] files is kept in the object block; a longer one
//! is an index of its own (the same B+tree blocks as a tag's index, [`crate::core::index`]),
//! whose items are `l` ‖ path → postcard([`Id`]), so nothing in it reads as an `o` entry.

use crate::core::archival::MAX_INDEXED_VALUE;
use crate::core::block::Kind;
use crate::core::error::{Error, Result};
use crate::core::index::{self, Cursor, Nodes, Root};
use protocol::Key;
use serde::{Deserialize, Serialize};

/// Map bytes of a tag's index: content id → file, and folded name → file.
pub const CONTENTS: u8 = b'f';
pub const NAMES: u8 = b'n';
/// The map byte of an object's own list.
pub const LISTED: u8 = b'l';

/// Lists of at most this many files are kept in the object block.
pub const INLINE: usize = 64;

/// A regular file of an object: its path from the object's root, its size, its content id
/// (`None` when it could not be known: the file changed while it was imported, or has more
/// holes than are hashed; it is then found by name, not by contents).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRef {
    #[serde(with = "serde_bytes")]
    pub path: Vec<u8>,
    pub size: u64,
    pub id: Option<Key>,
}

/// What an entry of a long list holds besides its path.
#[derive(Serialize, Deserialize)]
struct Id {
    size: u64,
    id: Option<Key>,
}

/// An object's files.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Files {
    /// In the object block, by path.
    Inline(Vec<FileRef>),
    /// In an index of their own.
    Index(Root),
}

impl Default for Files {
    fn default() -> Files {
        Files::Inline(Vec::new())
    }
}

impl Files {
    /// `files` kept as a list: in the object when short, else as an index stored in `nodes`.
    pub fn make(nodes: &impl Nodes, mut files: Vec<FileRef>) -> Result<Files> {
        files.sort_by(|a, b| a.path.cmp(&b.path));
        files.dedup_by(|a, b| a.path == b.path);
        if files.len() <= INLINE {
            return Ok(Files::Inline(files));
        }
        let changes = files
            .into_iter()
            .filter(|f| f.path.len() < index::MAX_KEY)
            .map(|f| {
                let mut k = Vec::with_capacity(f.path.len() + 1);
                k.push(LISTED);
                k.extend_from_slice(&f.path);
                let v = crate::core::entry::encode(&Id {
                    size: f.size,
                    id: f.id,
                });
                (k, Some(v))
            })
            .collect();
        match index::apply(nodes, None, changes)? {
            Some(root) => Ok(Files::Index(root)),
            None => Ok(Files::default()),
        }
    }

    /// Every file listed, by path. A long list is read from `nodes`, and refused when one of
    /// its entries is not what a list holds.
    pub fn read(&self, nodes: &impl Nodes) -> Result<Vec<FileRef>> {
        self.read_first(nodes, usize::MAX)
    }

    /// The first `n` files listed, by path ([`Files::read`] of a list cut short).
    pub fn read_first(&self, nodes: &impl Nodes, n: usize) -> Result<Vec<FileRef>> {
        let root = match self {
            Files::Inline(f) => return Ok(f.iter().take(n).cloned().collect()),
            Files::Index(root) => root,
        };
        let mut out = Vec::new();
        let c = Cursor::new(nodes, Some(root), &[])?;

        for item in c.take(n) {
            let item = item?;
            let bad = |why: &str| Error::Corrupt {
                key: root.node,
                kind: Kind::IndexLeaf.name(),
                why: format!("an object's file list holds {why}"),
            };
            let Some(path) = item.key.strip_prefix(&[LISTED]) else {
                return Err(bad("an entry that is not a file"));
            };
            let id: Id = postcard::from_bytes(&item.value).map_err(|_| bad("a damaged entry"))?;
            out.push(FileRef {
                path: path.to_vec(),
                size: id.size,
                id: id.id,
            });
        }
        Ok(out)
    }

    /// How many files are listed (as the list says: a long list's root counts its entries).
    pub fn count(&self) -> u64 {
        match self {
            Files::Inline(f) => f.len() as u64,
            Files::Index(root) => root.count,
        }
    }

    /// The root of a long list's index, for gc and check.
    pub fn index(&self) -> Option<&Root> {
        match self {
            Files::Index(r) => Some(r),
            Files::Inline(_) => None,
        }
    }
}

/// The most bytes of holes a file may have to be given a content id: hashing a hole's zeros
/// costs as much as hashing data (a 20 GiB sparse image with 3 bytes in it took 43 s to
/// import when every hole was hashed), so a file with more is found by name only.
pub const ID_HOLES: u64 = 1 << 30;
/// [`ID_HOLES`] as messages show it.
pub const ID_HOLES_SHOWN: &str = "1 GiB";

/// Whether `file` has more than [`ID_HOLES`] bytes of holes (fewer blocks on disk than its
/// size needs), and so gets no content id.
pub fn too_sparse(file: &std::fs::File) -> bool {
    use std::os::unix::fs::MetadataExt;
    file.metadata()
        .is_ok_and(|m| m.len().saturating_sub(m.blocks().saturating_mul(512)) > ID_HOLES)
}

/// The content id of everything `file` holds, read to its end a MiB at a time, and how many
/// bytes that was.
pub fn content_id(
    keys: &crate::core::crypto::Keys,
    file: &std::fs::File,
) -> std::io::Result<(Key, u64)> {
    use std::os::unix::fs::FileExt;
    thread_local! {
        // One buffer per thread: `--each` hashes tens of thousands of small files, and a
        // fresh MiB for each was a map and an unmap apiece.
        static BUF: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0u8; 1 << 20]);
    }
    BUF.with_borrow_mut(|buf| {
        let mut h = keys.hasher(Kind::Chunk as u8);
        let mut at = 0u64;
        loop {
            let n = match file.read_at(buf, at) {
                Ok(0) => return Ok((Key(*h.finalize().as_bytes()), at)),
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            h.update(&buf[..n]);
            at += n as u64;
        }
    })
}

/// The content id of a file as the archive holds it (`None` for anything but a regular file,
/// or a catalogued file recorded without one): a catalogued file's recorded id, a one-chunk
/// file's chunk key, and otherwise its bytes read from the archive (bundles through `chunks`)
/// and hashed, holes as zeros. What tells a stored copy from a catalogued one by content.
pub fn stored_id(
    repo: &crate::core::repo::Repo,
    chunks: &crate::core::plaincache::PlainCache,
    entry: &crate::core::entry::Entry,
) -> Result<Option<Key>> {
    use crate::core::entry::{Content, EntryKind};
    let EntryKind::File { size, content } = &entry.kind else {
        return Ok(None);
    };
    match content {
        Content::Catalogued { id } => return Ok(*id),
        Content::Chunk(k) => return Ok(Some(*k)),
        _ => {}
    }
    let mut h = repo.keys().hasher(Kind::Chunk as u8);
    let zeros = [0u8; 64 * 1024];
    for piece in crate::core::tree::file_pieces(repo, content, *size)? {
        match piece.chunk() {
            Some(key) => {
                let chunk = chunks.chunk(repo, key)?;
                h.update(piece.bytes_of(&chunk)?);
            }
            None => {
                let mut left = piece.len();
                while left > 0 {
                    let n = left.min(zeros.len() as u64) as usize;
                    h.update(&zeros[..n]);
                    left -= n as u64;
                }
            }
        }
    }
    Ok(Some(Key(*h.finalize().as_bytes())))
}

/// A file name as the `n` map keeps it: lower-cased when it is UTF-8, as it is otherwise.
pub fn fold_name(name: &[u8]) -> Vec<u8> {
    match std::str::from_utf8(name) {
        Ok(s) => s.to_lowercase().into_bytes(),
        Err(_) => name.to_vec(),
    }
}

/// The last component of a path.
fn base_name(path: &[u8]) -> &[u8] {
    path.rsplit(|&b| b == b'/').next().unwrap_or(path)
}

/// The prefix of `f` entries of content id `id` (a path, 0x00 and an object key follow).
pub fn content_prefix(id: &Key) -> Vec<u8> {
    [&[CONTENTS][..], &id.0].concat()
}

/// The prefix of `n` entries of the folded file name `name`, or of every name starting with
/// it when `whole` is false.
pub fn name_prefix(name: &[u8], whole: bool) -> Vec<u8> {
    let mut k = vec![NAMES];
    k.extend_from_slice(&fold_name(name));
    if whole {
        k.push(0);
    }
    k
}

/// The `f` and `n` entries that find object `key`'s `files` (values are empty):
/// `f` ‖ id ‖ path ‖ 0x00 ‖ object and `n` ‖ folded name ‖ 0x00 ‖ path ‖ 0x00 ‖ object.
/// Paths never hold 0x00, so each part's end is known and the object key is an entry's
/// last 32 bytes, as in every map. A path too long to index is left out (the object's
/// list keeps it whole).
pub fn file_entries(key: &Key, files: &[FileRef]) -> Vec<Vec<u8>> {
    let mut out = Vec::with_capacity(2 * files.len());
    for f in files.iter().filter(|f| f.path.len() <= MAX_INDEXED_VALUE) {
        if let Some(id) = &f.id {
            let mut e = content_prefix(id);
            e.extend_from_slice(&f.path);
            e.push(0);
            e.extend_from_slice(&key.0);
            out.push(e);
        }
        let mut n = name_prefix(base_name(&f.path), true);
        n.extend_from_slice(&f.path);
        n.push(0);
        n.extend_from_slice(&key.0);
        out.push(n);
    }
    out
}

/// The path inside its object that an `f` or `n` entry names.
pub fn entry_path(entry: &[u8]) -> Option<&[u8]> {
    let body = entry.get(..entry.len().checked_sub(33)?)?;
    match *entry.first()? {
        CONTENTS => body.get(33..),
        NAMES => {
            let name_end = body.iter().position(|&b| b == 0)?;
            body.get(name_end + 1..)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::index::tests::Memory;

    fn file(path: &str, n: u8) -> FileRef {
        FileRef {
            path: path.as_bytes().to_vec(),
            size: n as u64,
            id: Some(Key([n; 32])),
        }
    }

    #[test]
    fn a_long_list_is_an_index_of_its_own_and_reads_back_in_path_order() {
        let nodes = Memory::default();
        let files: Vec<FileRef> = (0..500u32)
            .rev()
            .map(|i| file(&format!("d/{i:04}"), (i % 251) as u8))
            .collect();
        let kept = Files::make(&nodes, files.clone()).unwrap();
        assert!(kept.index().is_some());
        let mut sorted = files;
        sorted.sort_by(|a, b| a.path.cmp(&b.path));
        assert_eq!(kept.read(&nodes).unwrap(), sorted);
        let short = Files::make(&nodes, sorted[..3].to_vec()).unwrap();
        assert_eq!(short, Files::Inline(sorted[..3].to_vec()));
    }

    #[test]
    fn entries_name_their_object_last_and_their_path_inside_it() {
        let key = Key([7; 32]);
        let entries = file_entries(&key, &[file("Music/Bach.FLAC", 3)]);
        assert_eq!(entries.len(), 2);
        for e in &entries {
            assert_eq!(crate::core::archival::entry_object(e), Some(key));
            assert_eq!(entry_path(e), Some(&b"Music/Bach.FLAC"[..]));
        }
        assert!(entries[1].starts_with(&name_prefix(b"bach.flac", true)));
        assert!(entries[0].starts_with(&content_prefix(&Key([3; 32]))));
    }
}
