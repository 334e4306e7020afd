//! A set of block keys whose memory stays bounded however large the archive.
//!
//! Walking an archive (check, gc, sync) must visit each block once even when thousands of
//! snapshots share it, so it remembers every key it has seen. Held in memory that costs about
//! 48 bytes a key: fine for a hundred thousand blocks, too much for a hundred million. A
//! [`KeySet`] keeps keys in a hash set until it holds [`memory_limit`] of them, then moves them
//! to a private sqlite file in the temporary directory (deleted when the set is dropped) and
//! goes on there, with sqlite's page cache capped at 16 MiB. Lookups then cost a B-tree probe
//! instead of a hash, which is still hundreds of thousands a second.

use crate::core::error::{Error, Result};
use ore_util::sync::lock;
use protocol::Key;
use rusqlite::{params, Connection, OptionalExtension};
use std::collections::HashSet;
use std::sync::Mutex;

/// Keys held in memory before the set moves to disk: `ORE_KEYSET_MEMORY` or 2^19 (about 25 MiB).
pub fn memory_limit() -> usize {
    std::env::var("ORE_KEYSET_MEMORY")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1 << 19)
}

/// Inserts between commits once on disk.
const BATCH: u32 = 20_000;

enum Store {
    Memory(HashSet<Key>),
    Disk {
        db: Connection,
        _dir: tempfile::TempDir,
        pending: u32,
        len: u64,
    },
}

/// A set of keys, in memory while small and on disk beyond that. Safe to share between threads.
pub struct KeySet {
    store: Mutex<Store>,
    limit: usize,
    /// Marks beside the keys, not counted by [`KeySet::len`]: the roles a walk met snapshot
    /// blocks in (`reach`). One or two a snapshot, so they stay in memory.
    marks: Mutex<HashSet<Key>>,
}

impl Default for KeySet {
    fn default() -> Self {
        KeySet::new()
    }
}

fn db_error(e: rusqlite::Error) -> Error {
    Error::Local(format!("the temporary key set: {e}"))
}

impl KeySet {
    /// An empty set that moves to disk beyond [`memory_limit`] keys.
    pub fn new() -> KeySet {
        KeySet::with_limit(memory_limit())
    }

    /// An empty set that moves to disk beyond `limit` keys.
    pub fn with_limit(limit: usize) -> KeySet {
        KeySet {
            store: Mutex::new(Store::Memory(HashSet::new())),
            limit,
            marks: Mutex::new(HashSet::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Store> {
        lock(&self.store)
    }

    /// Adds `key`; true when it was not there before.
    pub fn insert(&self, key: Key) -> Result<bool> {
        let mut store = self.lock();
        if let Store::Memory(set) = &mut *store {
            if set.len() < self.limit || set.contains(&key) {
                return Ok(set.insert(key));
            }
            let moved = spill(set)?;
            *store = moved;
        }
        let Store::Disk {
            db, pending, len, ..
        } = &mut *store
        else {
            unreachable!("the set was just moved to disk")
        };
        let n = db
            .prepare_cached("INSERT OR IGNORE INTO k(key) VALUES (?1)")
            .and_then(|mut s| s.execute(params![&key.0[..]]))
            .map_err(db_error)?;
        *pending += 1;
        if *pending >= BATCH {
            db.execute_batch("COMMIT; BEGIN").map_err(db_error)?;
            *pending = 0;
        }
        *len += n as u64;
        Ok(n == 1)
    }

    /// Adds the mark `mark`; true when it was not there before.
    pub fn mark(&self, mark: Key) -> bool {
        lock(&self.marks).insert(mark)
    }

    /// Whether `key` is in the set.
    pub fn contains(&self, key: &Key) -> Result<bool> {
        match &*self.lock() {
            Store::Memory(set) => Ok(set.contains(key)),
            Store::Disk { db, .. } => db
                .prepare_cached("SELECT 1 FROM k WHERE key = ?1")
                .and_then(|mut s| s.query_row(params![&key.0[..]], |_| Ok(())).optional())
                .map(|r| r.is_some())
                .map_err(db_error),
        }
    }

    /// How many keys it holds.
    pub fn len(&self) -> u64 {
        match &*self.lock() {
            Store::Memory(set) => set.len() as u64,
            Store::Disk { len, .. } => *len,
        }
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether it has moved to disk.
    pub fn on_disk(&self) -> bool {
        matches!(&*self.lock(), Store::Disk { .. })
    }
}

/// Moves the keys of `set` into a new sqlite file.
fn spill(set: &mut HashSet<Key>) -> Result<Store> {
    let dir = tempfile::Builder::new()
        .prefix("ore-keys-")
        .tempdir()
        .map_err(|e| {
            Error::Local(format!(
                "creating a temporary directory for the key set: {e}"
            ))
        })?;
    let db = Connection::open(dir.path().join("keys.db")).map_err(db_error)?;
    db.execute_batch(
        "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; PRAGMA cache_size = -16384;
         CREATE TABLE k(key BLOB PRIMARY KEY) WITHOUT ROWID; BEGIN",
    )
    .map_err(db_error)?;
    let len = set.len() as u64;
    {
        let mut ins = db
            .prepare("INSERT INTO k(key) VALUES (?1)")
            .map_err(db_error)?;
        let mut keys: Vec<Key> = set.drain().collect();
        keys.sort_unstable_by_key(|k| k.0);
        for k in keys {
            ins.execute(params![&k.0[..]]).map_err(db_error)?;
        }
    }
    db.execute_batch("COMMIT; BEGIN").map_err(db_error)?;
    protocol::log::debug(&format!("key set: {len} keys moved to disk"));
    Ok(Store::Disk {
        db,
        _dir: dir,
        pending: 0,
        len,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: u32) -> Key {
        Key(*blake3::hash(&i.to_le_bytes()).as_bytes())
    }

    #[test]
    fn moves_to_disk_and_keeps_answering() {
        let set = KeySet::with_limit(100);
        for i in 0..1000 {
            assert!(set.insert(key(i)).unwrap(), "{i} is new");
        }
        assert!(set.on_disk());
        assert_eq!(set.len(), 1000);
        for i in 0..1000 {
            assert!(!set.insert(key(i)).unwrap(), "{i} was there");
            assert!(set.contains(&key(i)).unwrap());
        }
        assert!(!set.contains(&key(5000)).unwrap());
        assert_eq!(set.len(), 1000);
    }

    #[test]
    fn small_sets_stay_in_memory() {
        let set = KeySet::with_limit(100);
        for i in 0..100 {
            set.insert(key(i)).unwrap();
        }
        assert!(!set.insert(key(3)).unwrap());
        assert!(!set.on_disk());
    }
}
