//! What a snapshot's own read of each file tells about its bytes, kept for `ore import --each`
//! ([`super::SnapshotOptions::see_files`]): the file's content id and its type.
//!
//! An object made of each file lists the file by its content id (`core::filelist`) and has its
//! type as a property (`core::extract`). Both come from bytes the store has in memory anyway:
//! the type from the first `extract::HEAD` bytes, the id from every byte — free for a file stored as
//! one chunk, whose chunk key is its id; a small file's id is the key its bundle tells copies
//! apart by (`bundle.rs`); a larger file is hashed window by window as it is read. Taken from
//! there, they describe exactly the bytes stored, and the import does not open each file again
//! after the store. Opening, reading the head and hashing again was a third of what `--each`
//! cost beyond a snapshot of /usr/share (docs/BENCHMARKS.md).
//!
//! A file read in pieces around holes, read short, or not read at all (the file cache knew it,
//! or it is a hard link to a file kept under another name) has no entry: the import opens it
//! again, as before.

use crate::core::block::Kind;
use crate::core::crypto::Keys;
use crate::core::extract::sniff;
use protocol::Key;
use std::sync::Mutex;

/// A file's content id and type, as read by the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seen {
    pub id: Key,
    pub mime: Option<&'static str>,
}

impl Seen {
    /// A file read whole into `bytes`, whose content id is `id`.
    pub fn of(id: Key, bytes: &[u8]) -> Seen {
        Seen {
            id,
            mime: sniff(bytes),
        }
    }
}

/// Each file seen, by its path from the saved directory (`/`-separated bytes). Hashed with
/// `rustc-hash`, not SipHash: nothing here comes from anyone but the local file system, and
/// the import looks up every file of the tree.
pub type SeenFiles = rustc_hash::FxHashMap<Vec<u8>, Seen>;

/// The files a run has seen so far, filled by every thread.
#[derive(Default)]
pub(crate) struct Collector(Mutex<SeenFiles>);

impl Collector {
    pub fn add(&self, rel: Vec<u8>, seen: Seen) {
        super::lock(&self.0).insert(rel, seen);
    }

    pub fn take(self) -> SeenFiles {
        self.0.into_inner().unwrap_or_else(|p| p.into_inner())
    }
}

/// A file being read from its first byte, window by window: its type from the first window,
/// its id from every byte (or, when the whole file is one chunk, that chunk's key).
pub(crate) struct Seeing {
    hasher: blake3::Hasher,
    mime: Option<Option<&'static str>>,
    whole: Option<Key>,
}

impl Seeing {
    pub fn new(keys: &Keys) -> Seeing {
        Seeing {
            hasher: keys.hasher(Kind::Chunk as u8),
            mime: None,
            whole: None,
        }
    }

    /// The first bytes read of the file (all of them, or more than `extract::HEAD`).
    pub fn head(&mut self, bytes: &[u8]) {
        self.mime = Some(sniff(bytes));
    }

    /// The next `bytes` of the file, from where the last ended. `chunk`: they are the whole
    /// file, stored as this one chunk, whose key is then its id (not hashed again).
    pub fn read(&mut self, bytes: &[u8], chunk: Option<Key>) {
        match chunk {
            Some(k) => self.whole = Some(k),
            None => {
                self.hasher.update(bytes);
            }
        }
    }

    /// What was seen of a file read whole; `None` when nothing was.
    pub fn finish(self) -> Option<Seen> {
        let mime = self.mime?;
        let id = self
            .whole
            .unwrap_or_else(|| Key(*self.hasher.finalize().as_bytes()));
        Some(Seen { id, mime })
    }
}
