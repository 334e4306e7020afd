//! Reading a mounted file: the chunks a read touches, through a cache of opened chunks shared
//! by the threads that answer reads, and the next ones fetched ahead in the background.

use super::{AHEAD_RANDOM, AHEAD_SEQUENTIAL};
use crate::core::entry::Piece;
use crate::core::error::Result;
use crate::core::plaincache::PlainCache;
use crate::core::repo::Repo;
use protocol::Key;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

/// Opened chunks, shared by the threads that answer reads.
pub(super) struct Chunks {
    pub(super) repo: Arc<Repo>,
    pub(super) cache: PlainCache,
}

impl Chunks {
    /// A chunk's plaintext, from the cache or the archive.
    pub(super) fn get(&self, key: Key) -> Result<Arc<Vec<u8>>> {
        self.cache.chunk(&self.repo, key)
    }

    /// Starts fetching `key` in the background unless it is held or on its way.
    pub(super) fn prefetch(self: &Arc<Self>, key: Key) {
        if self.cache.has(&key) {
            return;
        }
        let me = self.clone();
        rayon::spawn(move || {
            let _ = me.get(key);
        });
    }
}

/// An open file: where each piece starts.
pub(super) struct Open {
    pub(super) pieces: Vec<(u64, Piece)>,
    pub(super) size: u64,
    /// Where the last read ended (to tell sequential reading).
    pub(super) next: AtomicU64,
}

/// The bytes `[offset, offset + len)` of an open file, fetching ahead as it goes.
pub(super) fn read_range(
    chunks: &Arc<Chunks>,
    open: &Open,
    offset: u64,
    len: u64,
) -> Result<Vec<u8>> {
    let end = (offset + len).min(open.size);
    if offset >= end {
        return Ok(Vec::new());
    }
    let sequential = open.next.swap(end, Relaxed) == offset;
    let first = open
        .pieces
        .partition_point(|(start, p)| start + p.len() <= offset);
    let mut out = Vec::with_capacity((end - offset) as usize);
    let mut i = first;
    while i < open.pieces.len() && open.pieces[i].0 < end {
        let (start, p) = &open.pieces[i];
        let from = offset.max(*start) - start;
        let to = end.min(start + p.len()) - start;
        match p.chunk() {
            Some(key) => {
                let chunk = chunks.get(key)?;
                let data = p.bytes_of(&chunk)?;
                let (from, to) = (from as usize, (to as usize).min(data.len()));
                out.extend_from_slice(&data[from.min(to)..to]);
            }
            None => out.resize(out.len() + (to - from) as usize, 0),
        }
        i += 1;
    }
    let ahead = if sequential {
        AHEAD_SEQUENTIAL
    } else {
        AHEAD_RANDOM
    };
    for (_, p) in open.pieces.iter().skip(i).take(ahead) {
        if let Some(key) = p.chunk() {
            chunks.prefetch(key);
        }
    }
    Ok(out)
}
