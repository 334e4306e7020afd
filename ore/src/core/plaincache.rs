//! Opened chunks kept for the next reader: a cache of plaintexts bounded in bytes, in which a
//! chunk being fetched is fetched once however many threads want it.
//!
//! Two readers need it. `ore mount` reads a file a few KiB at a time, and each read would
//! otherwise fetch, decrypt and decompress the whole chunk again. And since format 3 a chunk
//! may be a *bundle* holding many small files (FORMAT.md §4): restore, dump and
//! `check --compare` meet its files one after another, often on different threads, and
//! without the cache would open the bundle once per file — a hundred times for a directory of
//! small files. The first thread to ask fetches; the others wait for its answer rather than
//! asking the archive too. A failed fetch is not kept: the next reader tries again, and its
//! error is its own.
//!
//! Eviction takes the least recently used chunk. It scans the held chunks to find it, which is
//! cheap at the sizes used (tens to a few hundred chunks).

use crate::core::error::Result;
use ore_util::sync::{lock, wait};
use protocol::Key;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Condvar, Mutex};

/// A bounded cache of opened chunks.
pub struct PlainCache {
    map: Mutex<Held>,
    ready: Condvar,
    /// Most bytes held (one chunk is held whatever its size).
    limit: u64,
}

#[derive(Default)]
struct Held {
    held: HashMap<Key, (Arc<Vec<u8>>, u64)>,
    fetching: HashSet<Key>,
    bytes: u64,
    tick: u64,
}

impl PlainCache {
    /// A cache holding at most `limit` bytes of plaintext.
    pub fn new(limit: u64) -> PlainCache {
        PlainCache {
            map: Mutex::new(Held::default()),
            ready: Condvar::new(),
            limit,
        }
    }

    /// Whether `key` is held or on its way.
    pub fn has(&self, key: &Key) -> bool {
        let m = lock(&self.map);
        m.held.contains_key(key) || m.fetching.contains(key)
    }

    /// The plaintext of chunk `key`: held, or opened by `open` (called on this thread, only
    /// when no other thread is opening it already; then this one waits for that answer).
    pub fn get(&self, key: Key, open: impl FnOnce() -> Result<Vec<u8>>) -> Result<Arc<Vec<u8>>> {
        {
            let mut m = lock(&self.map);
            loop {
                m.tick += 1;
                let t = m.tick;
                if let Some((data, used)) = m.held.get_mut(&key) {
                    *used = t;
                    return Ok(data.clone());
                }
                if m.fetching.insert(key) {
                    break;
                }
                m = wait(&self.ready, m);
            }
        }
        // Whatever `open` does (returns, fails, unwinds), the key stops being fetched and the
        // waiters wake.
        struct Done<'a>(&'a PlainCache, Key);
        impl Drop for Done<'_> {
            fn drop(&mut self) {
                lock(&self.0.map).fetching.remove(&self.1);
                self.0.ready.notify_all();
            }
        }
        let done = Done(self, key);
        let r = open().map(Arc::new);
        if let Ok(data) = &r {
            let mut m = lock(&self.map);
            m.tick += 1;
            let t = m.tick;
            m.bytes += data.len() as u64;
            if let Some((old, _)) = m.held.insert(key, (data.clone(), t)) {
                m.bytes -= old.len() as u64;
            }
            while m.bytes > self.limit && m.held.len() > 1 {
                let Some((&old, _)) = m.held.iter().min_by_key(|(_, (_, used))| *used) else {
                    break;
                };
                if let Some((d, _)) = m.held.remove(&old) {
                    m.bytes -= d.len() as u64;
                }
            }
        }
        drop(done);
        r
    }

    /// The plaintext of chunk `key` of `repo`, held or read from the archive.
    pub fn chunk(&self, repo: &crate::core::repo::Repo, key: Key) -> Result<Arc<Vec<u8>>> {
        self.get(key, || {
            repo.get_block(key, crate::core::block::Kind::Chunk)
                .map(|p| p.into_vec())
        })
    }
}

/// Bytes of bundles a reader that meets files in order keeps: a few bundles, so that threads
/// working on neighbouring files of one directory share them.
pub const BUNDLE_BYTES: u64 = 8 << 20;

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

    #[test]
    fn a_chunk_wanted_by_many_threads_at_once_is_opened_once() {
        let cache = PlainCache::new(1 << 20);
        let opened = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    let got = cache
                        .get(Key([1; 32]), || {
                            opened.fetch_add(1, Relaxed);
                            std::thread::sleep(std::time::Duration::from_millis(50));
                            Ok(vec![7; 100])
                        })
                        .unwrap();
                    assert_eq!(*got, vec![7; 100]);
                });
            }
        });
        assert_eq!(opened.load(Relaxed), 1);
    }

    #[test]
    fn the_least_recently_used_chunk_goes_when_the_bytes_pass_the_limit_and_failures_are_not_kept()
    {
        let cache = PlainCache::new(250);
        let k = |b| Key([b; 32]);
        for b in 1..=2 {
            cache.get(k(b), || Ok(vec![b; 100])).unwrap();
        }
        cache.get(k(1), || panic!("held")).unwrap();
        cache.get(k(3), || Ok(vec![3; 100])).unwrap();
        assert!(cache.has(&k(1)) && cache.has(&k(3)) && !cache.has(&k(2)));
        let err = cache.get(k(4), || Err(crate::Error::Usage("gone".into())));
        assert!(err.is_err() && !cache.has(&k(4)));
        assert_eq!(*cache.get(k(4), || Ok(vec![4])).unwrap(), vec![4]);
    }
}
