//! Asking for blocks before they are needed, so that reading over a slow link is not one round
//! trip per block.
//!
//! Restoring many small files wants one block per file; waiting for each before asking for the
//! next would cost a round trip per file. A [`Prefetch`] starts gets early — for the entries of
//! a directory before they are restored — and hands each answer to whoever reads that block
//! later ([`Fetch::fetch`]). At most [`MAX_BYTES`] (estimated) are asked for and not yet taken;
//! beyond that, blocks are simply read when needed. For a backend that answers at once
//! (in process) there is nothing to gain, and [`Prefetch::new`] returns `None`.

use ore_util::sync::lock;
use protocol::{Backend, Key, Ticket};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

/// Most bytes asked for ahead and not yet taken.
pub const MAX_BYTES: u64 = 64 << 20;

/// Reads a block's stored bytes.
pub trait Fetch: Sync {
    fn fetch(&self, key: Key) -> protocol::Result<Option<Vec<u8>>>;

    /// A hint that `key` (a tree node of about `size` bytes) will be fetched soon.
    fn ask(&self, key: Key, size: u64) {
        let _ = (key, size);
    }
}

impl Fetch for crate::core::repo::Repo {
    fn fetch(&self, key: Key) -> protocol::Result<Option<Vec<u8>>> {
        self.backend().get(key)
    }
}

type Pending = (Ticket<Option<Vec<u8>>>, u64);

/// Gets on their way, by key.
pub struct Prefetch<'r> {
    backend: &'r dyn Backend,
    pending: Mutex<(HashMap<Key, Pending>, u64)>,
    /// Blocks read that were asked for ahead, and blocks read that were not.
    hits: AtomicU64,
    misses: AtomicU64,
}

impl Drop for Prefetch<'_> {
    fn drop(&mut self) {
        protocol::log::debug(&format!(
            "prefetch: {} blocks read after asking ahead, {} read without",
            self.hits.load(Relaxed),
            self.misses.load(Relaxed)
        ));
    }
}

impl<'r> Prefetch<'r> {
    /// A prefetcher for `backend`, if it is one that gains from it.
    pub fn new(backend: &'r dyn Backend) -> Option<Prefetch<'r>> {
        backend.pipelines().then(|| Prefetch {
            backend,
            pending: Mutex::new((HashMap::new(), 0)),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        })
    }

    /// Starts reading `key` (about `size` bytes) unless it is on its way or the budget is spent.
    pub fn ask(&self, key: Key, size: u64) {
        let mut p = lock(&self.pending);
        if p.0.contains_key(&key) || p.1 + size > MAX_BYTES {
            return;
        }
        p.1 += size;
        let t = self.backend.start_get(key);
        p.0.insert(key, (t, size));
    }

    /// The answer for `key` if it was asked for (and no one took it yet).
    pub fn take(&self, key: Key) -> Option<Ticket<Option<Vec<u8>>>> {
        let mut p = lock(&self.pending);
        match p.0.remove(&key) {
            Some((t, size)) => {
                p.1 -= size;
                self.hits.fetch_add(1, Relaxed);
                Some(t)
            }
            None => {
                self.misses.fetch_add(1, Relaxed);
                None
            }
        }
    }

    /// A ticket for `key`: the prefetched one, or a get started now.
    pub fn start(&self, key: Key) -> Ticket<Option<Vec<u8>>> {
        self.take(key)
            .unwrap_or_else(|| self.backend.start_get(key))
    }
}

impl Fetch for Prefetch<'_> {
    fn ask(&self, key: Key, size: u64) {
        Prefetch::ask(self, key, size)
    }

    fn fetch(&self, key: Key) -> protocol::Result<Option<Vec<u8>>> {
        match self.take(key) {
            Some(t) => t.wait(),
            None => self.backend.get(key),
        }
    }
}
