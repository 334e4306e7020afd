//! What the archive says about files: directory entries, file contents, snapshots
//! (FORMAT.md §4–6). Everything here is serialised with postcard; field order is the format.

use protocol::Key;
use serde::{Deserialize, Serialize};

/// One name in a directory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The name's bytes (never containing `/` or NUL).
    #[serde(with = "serde_bytes")]
    pub name: Vec<u8>,
    pub kind: EntryKind,
    /// Permission bits, setuid/setgid/sticky included (`mode & 0o7777`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Owner's name when it could be looked up; restore prefers it to `uid`.
    pub user: Option<String>,
    pub group: Option<String>,
    /// Nanoseconds since the epoch.
    pub mtime: i64,
    pub atime: Option<i64>,
    pub ctime: Option<i64>,
    pub xattrs: Vec<Xattr>,
}

/// An extended attribute.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Xattr {
    #[serde(with = "serde_bytes")]
    pub name: Vec<u8>,
    #[serde(with = "serde_bytes")]
    pub value: Vec<u8>,
}

/// The type of an entry and what only that type has.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EntryKind {
    /// A regular file of `size` bytes.
    File {
        size: u64,
        content: Content,
    },
    /// A directory: the root of its directory tree.
    Dir {
        tree: Key,
    },
    Symlink {
        #[serde(with = "serde_bytes")]
        target: Vec<u8>,
    },
    /// Another name for a file stored earlier in the same snapshot; `target` is that file's
    /// path from the snapshot root.
    Hardlink {
        #[serde(with = "serde_bytes")]
        target: Vec<u8>,
    },
    Fifo,
    Socket,
    CharDevice {
        rdev: u64,
    },
    BlockDevice {
        rdev: u64,
    },
}

impl Entry {
    /// An entry Ore makes up rather than reads from a file system — the root that holds
    /// several saved paths, the file a stream is kept in — owned by this process's user and
    /// dated now.
    pub fn made_now(name: Vec<u8>, kind: EntryKind, mode: u32) -> Entry {
        // SAFETY: getuid/getgid cannot fail.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        Entry {
            name,
            kind,
            mode,
            uid,
            gid,
            user: crate::core::meta::user_name(uid),
            group: crate::core::meta::group_name(gid),
            mtime: crate::core::util::now_ns(),
            atime: None,
            ctime: None,
            xattrs: Vec::new(),
        }
    }
}

impl EntryKind {
    /// Its name in listings and JSON: `file`, `dir`, `symlink`, `hardlink`, `fifo`, `socket`,
    /// `char-device`, `block-device`.
    pub fn type_name(&self) -> &'static str {
        match self {
            EntryKind::File { .. } => "file",
            EntryKind::Dir { .. } => "dir",
            EntryKind::Symlink { .. } => "symlink",
            EntryKind::Hardlink { .. } => "hardlink",
            EntryKind::Fifo => "fifo",
            EntryKind::Socket => "socket",
            EntryKind::CharDevice { .. } => "char-device",
            EntryKind::BlockDevice { .. } => "block-device",
        }
    }

    /// One letter, as `ls -l` shows it.
    pub fn letter(&self) -> char {
        match self {
            EntryKind::File { .. } => '-',
            EntryKind::Dir { .. } => 'd',
            EntryKind::Symlink { .. } => 'l',
            EntryKind::Hardlink { .. } => 'h',
            EntryKind::Fifo => 'p',
            EntryKind::Socket => 's',
            EntryKind::CharDevice { .. } => 'c',
            EntryKind::BlockDevice { .. } => 'b',
        }
    }
}

/// A file's bytes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Content {
    /// No bytes.
    Empty,
    /// Exactly one chunk, the whole file.
    Chunk(Key),
    /// The root of an index tree (see [`crate::core::tree`]); used for several chunks and for sparse
    /// files.
    Index(Key),
    /// Bytes `start..start + len` of chunk `key`: a small file kept in a *bundle*, one chunk
    /// holding the contents of several small files back to back (format 3, FORMAT.md §4).
    Slice { key: Key, start: u64, len: u64 },
    /// Bytes not in the archive: a file of a catalogue object (`ore import --catalogue-only`,
    /// FORMAT.md §13), known by its content id (the key its bytes would have as one chunk;
    /// `None` for a file with more holes than are hashed).
    Catalogued { id: Option<Key> },
}

impl Content {
    /// The block a reader fetches first for this content: a chunk or an index root.
    pub fn first_block(&self) -> Option<Key> {
        match self {
            Content::Empty | Content::Catalogued { .. } => None,
            Content::Chunk(k) | Content::Index(k) | Content::Slice { key: k, .. } => Some(*k),
        }
    }
}

/// One piece of a file, in a leaf of its index tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Piece {
    /// `len` bytes stored as a chunk.
    Data { key: Key, len: u64 },
    /// `len` bytes of zeros not stored (a hole of a sparse file).
    Hole { len: u64 },
    /// Bytes `start..start + len` of chunk `key`. Only a file whose content is
    /// [`Content::Slice`] has such a piece, and only as its one piece: a file index leaf that
    /// holds one is corrupt (FORMAT.md §5).
    Slice { key: Key, start: u64, len: u64 },
}

impl Piece {
    pub fn len(&self) -> u64 {
        match self {
            Piece::Data { len, .. } | Piece::Hole { len } | Piece::Slice { len, .. } => *len,
        }
    }

    /// The chunk this piece's bytes come from (none for a hole).
    pub fn chunk(&self) -> Option<Key> {
        match self {
            Piece::Data { key, .. } | Piece::Slice { key, .. } => Some(*key),
            Piece::Hole { .. } => None,
        }
    }

    /// This piece's bytes within the plaintext `chunk` of its chunk: all of it for a data
    /// piece, the range for a slice, refused (naming the chunk) when the range does not lie
    /// inside it (counted without overflow).
    pub fn bytes_of<'a>(&self, chunk: &'a [u8]) -> crate::Result<&'a [u8]> {
        match *self {
            Piece::Slice { key, start, len } => {
                slice_range(chunk.len(), start, len)
                    .map(|r| &chunk[r])
                    .ok_or_else(|| crate::Error::Corrupt {
                        key,
                        kind: crate::core::block::Kind::Chunk.name(),
                        why: format!(
                            "a file is said to lie at bytes {start}..+{len} of it, but it holds {} bytes",
                            chunk.len()
                        ),
                    })
            }
            _ => Ok(chunk),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The range `start..start + len` of a chunk of `chunk_len` bytes, if it lies inside it.
pub fn slice_range(chunk_len: usize, start: u64, len: u64) -> Option<std::ops::Range<usize>> {
    let end = start.checked_add(len)?;
    (end <= chunk_len as u64).then_some(start as usize..end as usize)
}

/// A problem met while making a snapshot, kept in the snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Warning {
    #[serde(with = "serde_bytes")]
    pub path: Vec<u8>,
    pub message: String,
}

/// Counts kept with a snapshot.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotStats {
    pub files: u64,
    pub dirs: u64,
    pub other: u64,
    /// Bytes of regular files.
    pub bytes: u64,
    /// Files whose contents were read (not found unchanged in the file cache).
    pub files_read: u64,
    /// Blocks stored by this run.
    pub new_blocks: u64,
    /// Plaintext bytes of those blocks.
    pub new_bytes: u64,
    /// Their stored (compressed, encrypted) size.
    pub stored_bytes: u64,
    pub duration_ms: u64,
}

/// A snapshot block (its encoding, with the optional trailing labels, is in
/// [`crate::core::labels`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// The snapshot(s) before this one on its tag's chain (empty for the first).
    pub previous: Vec<Key>,
    /// The top directory: its metadata, and its tree.
    pub root: Entry,
    /// When the snapshot started, ns since the epoch.
    pub time: i64,
    pub host: String,
    pub user: String,
    /// The tag it was made for.
    pub tag: String,
    /// The absolute paths that were saved.
    pub paths: Vec<serde_bytes::ByteBuf>,
    pub comment: String,
    pub stats: SnapshotStats,
    /// Warnings of the run (at most [`MAX_WARNINGS`]; `warnings_total` counts all).
    pub warnings: Vec<Warning>,
    pub warnings_total: u64,
    /// `key=value` labels the user gave (`--label`); none in snapshots made before labels.
    pub labels: Vec<crate::core::labels::Label>,
}

/// How many warnings a snapshot keeps.
pub const MAX_WARNINGS: usize = 10_000;

/// The contents of a directory-tree leaf block.
pub type DirLeaf = Vec<Entry>;

/// One child of an inner tree node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Child<S> {
    pub key: Key,
    pub summary: S,
}

/// An inner node of an index tree: `level` 1 points at leaves, higher levels at inner nodes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inner<S> {
    pub level: u8,
    pub children: Vec<Child<S>>,
}

/// What an inner directory node knows of each child: its first name and entry count.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirSummary {
    #[serde(with = "serde_bytes")]
    pub first: Vec<u8>,
    pub count: u64,
}

/// Encodes a value with postcard.
pub fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    // Serialising plain data into a Vec cannot fail.
    postcard::to_stdvec(v).expect("postcard serialisation into memory")
}

/// Whether `T` is [`Snapshot`] (by its type's name: `T` need not be `'static`).
fn is_snapshot<T>() -> bool {
    std::any::type_name::<T>() == std::any::type_name::<Snapshot>()
}

pub use crate::core::names::{check_link_target, check_name, quoted, BadName};

/// Checks an entry read from a directory: its name and, for a hard link, its target.
pub fn check_entry(e: &Entry) -> Result<(), String> {
    check_name(&e.name).map_err(|why| format!("an entry's name {} {why}", quoted(&e.name)))?;
    check_details(&e.name, &e.kind, &e.xattrs)
}

/// Checks what an entry holds besides its name: a slice's length (the file's size), a hard
/// link's target (a path within the snapshot), a symlink's target (not empty, no NUL: a symlink that cannot exist) and the
/// names of extended attributes (not empty, no NUL). Shared with `ore load`, whose entries
/// carry the same fields.
pub fn check_details(name: &[u8], kind: &EntryKind, xattrs: &[Xattr]) -> Result<(), String> {
    match kind {
        EntryKind::Hardlink { target } => check_link_target(target).map_err(|why| {
            format!(
                "hard link {}: its target {} {why}",
                quoted(name),
                quoted(target)
            )
        })?,
        &EntryKind::File {
            size,
            content: Content::Slice { key, len, .. },
        } if len != size => {
            return Err(format!(
                "file {}: its content is a slice of {len} bytes of chunk {key}, but the file has {size}",
                quoted(name)
            ))
        }
        EntryKind::Symlink { target } if target.is_empty() || target.contains(&0) => {
            return Err(format!(
                "symlink {}: its target {} is empty or contains a NUL byte",
                quoted(name),
                quoted(target)
            ))
        }
        _ => {}
    }
    if let Some(x) = xattrs
        .iter()
        .find(|x| x.name.is_empty() || x.name.contains(&0))
    {
        return Err(format!(
            "{}: an extended attribute's name {} is empty or contains a NUL byte",
            quoted(name),
            quoted(&x.name)
        ));
    }
    Ok(())
}

/// Checks a snapshot's root entry: a directory, whose name is empty (a made-up root, or `/`)
/// or passes [`check_name`].
pub fn check_root(e: &Entry) -> Result<(), String> {
    if !matches!(e.kind, EntryKind::Dir { .. }) {
        return Err(format!(
            "its root is a {}, not a directory",
            e.kind.type_name()
        ));
    }
    if !e.name.is_empty() {
        check_name(&e.name).map_err(|why| format!("its root's name {} {why}", quoted(&e.name)))?;
    }
    check_details(&e.name, &e.kind, &e.xattrs)
}

/// Decodes a block's plaintext, naming the block when it does not parse. A snapshot's root
/// entry is checked here too ([`check_root`]), so that no reader of any snapshot meets a root
/// it could be led astray by; directory entries are checked where directory blocks are
/// decoded ([`crate::core::tree::decode_node`]).
pub fn decode<'a, T: Deserialize<'a>>(
    data: &'a [u8],
    key: &Key,
    kind: crate::core::block::Kind,
) -> crate::Result<T> {
    let corrupt = |why: String| crate::Error::Corrupt {
        key: *key,
        kind: kind.name(),
        why,
    };
    let value = postcard::from_bytes(data).map_err(|e| corrupt(format!("does not decode: {e}")))?;
    if kind == crate::core::block::Kind::Snapshot && is_snapshot::<T>() {
        // `T` is generic: decode the block once more as what it is to check its root (a
        // snapshot block is small, and read rarely). Other types decoded under this kind's
        // name (tests decode dump entries so) are not snapshots and are left alone.
        let snap: Snapshot =
            postcard::from_bytes(data).map_err(|e| corrupt(format!("does not decode: {e}")))?;
        check_root(&snap.root).map_err(corrupt)?;
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir_named(name: &[u8]) -> Entry {
        Entry {
            name: name.to_vec(),
            kind: EntryKind::Dir { tree: Key([0; 32]) },
            mode: 0o755,
            uid: 0,
            gid: 0,
            user: None,
            group: None,
            mtime: 0,
            atime: None,
            ctime: None,
            xattrs: Vec::new(),
        }
    }

    #[test]
    fn a_snapshot_whose_root_is_named_like_a_path_does_not_decode() {
        let mut snap = Snapshot {
            previous: Vec::new(),
            root: dir_named(b"/tmp/x/pwned"),
            time: 0,
            host: String::new(),
            user: String::new(),
            tag: "t".into(),
            paths: Vec::new(),
            comment: String::new(),
            stats: SnapshotStats::default(),
            warnings: Vec::new(),
            warnings_total: 0,
            labels: Vec::new(),
        };
        let key = Key([7; 32]);
        let err = decode::<Snapshot>(&encode(&snap), &key, crate::core::block::Kind::Snapshot)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("/tmp/x/pwned") && err.contains(&key.to_string()),
            "{err}"
        );
        snap.root.name = Vec::new();
        assert!(
            decode::<Snapshot>(&encode(&snap), &key, crate::core::block::Kind::Snapshot).is_ok()
        );
        snap.root.name = b"home".to_vec();
        assert!(
            decode::<Snapshot>(&encode(&snap), &key, crate::core::block::Kind::Snapshot).is_ok()
        );
        // Only snapshots are checked so: another type decoded under the kind's name is not.
        let e = dir_named(b"/tmp/x/pwned");
        assert_eq!(
            decode::<Entry>(&encode(&e), &key, crate::core::block::Kind::Snapshot).unwrap(),
            e
        );
    }

    #[test]
    fn symlinks_and_attributes_that_cannot_exist_are_refused() {
        let mut e = Entry {
            name: b"s".to_vec(),
            kind: EntryKind::Symlink { target: Vec::new() },
            mode: 0o777,
            uid: 0,
            gid: 0,
            user: None,
            group: None,
            mtime: 0,
            atime: None,
            ctime: None,
            xattrs: Vec::new(),
        };
        assert!(check_entry(&e).is_err());
        e.kind = EntryKind::Symlink {
            target: b"../anywhere".to_vec(),
        };
        assert_eq!(check_entry(&e), Ok(()), "a symlink may point anywhere");
        e.xattrs.push(Xattr {
            name: b"user.a\0b".to_vec(),
            value: Vec::new(),
        });
        assert!(check_entry(&e).unwrap_err().contains("extended attribute"));
    }
}
