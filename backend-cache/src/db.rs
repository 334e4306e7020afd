//! The cache's sqlite file: which keys the inner backend is known to hold durably.
//!
//! `blocks` holds keys the inner backend acknowledged and then made durable with a flush; only
//! those answer `exists` for good. `unflushed` holds keys acknowledged since the last flush,
//! tagged with the flush generation they wait for; they answer `exists` too (the inner backend
//! would say yes) but move to `blocks` only when a flush of their generation succeeded, and are
//! dropped when the cache is opened again. Losing rows is always safe (the cache asks again);
//! a row for a key the inner backend lacks is the one thing that must never happen, so rows are
//! deleted before a removal is passed on.

use ore_util::sqlite::{self, Schema};
use protocol::{Error, ErrorCode, Key, Result};
use rusqlite::{params, Connection};
use std::path::Path;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS blocks (key BLOB PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS unflushed (key BLOB PRIMARY KEY, gen INTEGER NOT NULL) WITHOUT ROWID;
";

/// Version of the tables above; a cache file of another version is started afresh.
pub const SCHEMA_VERSION: &str = "1";

pub(crate) fn db_err(path: &Path, context: &str, e: rusqlite::Error) -> Error {
    io_err(sqlite::error("cache database", path, context, e))
}

fn io_err(e: sqlite::Error) -> Error {
    Error::backend(ErrorCode::Io, e.to_string())
}

/// The open cache file.
pub struct Db {
    conn: Connection,
    path: std::path::PathBuf,
}

impl Db {
    /// Opens or creates the cache file (mode 0600, its directory created if missing).
    pub fn open(path: &Path) -> Result<Db> {
        let err = |c: &str, e| db_err(path, c, e);
        // A crash may lose the last commits (harmless: the cache only forgets) but never
        // invents rows.
        let conn = sqlite::open_private("cache database", path, std::time::Duration::from_secs(30))
            .map_err(io_err)?;
        conn.execute_batch(&format!("{SCHEMA}{}", sqlite::META_TABLE))
            .map_err(|e| err("creating the tables (is it an Ore cache file?)", e))?;
        let db = Db {
            conn,
            path: path.to_path_buf(),
        };
        let schema = sqlite::schema(&db.conn, SCHEMA_VERSION);
        match schema.map_err(|e| db.err("reading its settings", e))? {
            Schema::Same | Schema::New => {}
            Schema::Other(other) => {
                protocol::log::warning(&format!(
                    "cache {}: made by another version (schema {other}): starting empty",
                    path.display()
                ));
                db.clear()?;
                db.set_meta("schema", SCHEMA_VERSION)?;
            }
        }
        // What was acknowledged before an earlier process ended is of unknown durability.
        db.conn
            .execute("DELETE FROM unflushed", [])
            .map_err(|e| err("dropping unflushed keys", e))?;
        Ok(db)
    }

    fn err(&self, context: &str, e: rusqlite::Error) -> Error {
        db_err(&self.path, context, e)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A value from the meta table.
    pub fn meta(&self, name: &str) -> Result<Option<String>> {
        sqlite::meta(&self.conn, name).map_err(|e| self.err("reading its settings", e))
    }

    pub fn set_meta(&self, name: &str, value: &str) -> Result<()> {
        sqlite::set_meta(&self.conn, name, value).map_err(|e| self.err("writing its settings", e))
    }

    /// A counter from the meta table (0 when absent).
    pub fn counter(&self, name: &str) -> Result<u64> {
        Ok(self.meta(name)?.and_then(|v| v.parse().ok()).unwrap_or(0))
    }

    /// Adds to counters in the meta table, in one transaction.
    pub fn add_counters(&mut self, adds: &[(&str, u64)]) -> Result<()> {
        if adds.iter().all(|(_, n)| *n == 0) {
            return Ok(());
        }
        let tx = self
            .conn
            .transaction()
            .map_err(|e| db_err(&self.path, "starting a transaction", e))?;
        for (name, n) in adds {
            tx.execute(
                "INSERT INTO meta (name, value) VALUES (?1, ?2)
                 ON CONFLICT (name) DO UPDATE SET value = CAST(value AS INTEGER) + ?2",
                params![name, *n as i64],
            )
            .map_err(|e| db_err(&self.path, "counting", e))?;
        }
        tx.commit()
            .map_err(|e| db_err(&self.path, "committing counters", e))
    }

    /// For each key, whether the cache knows the inner backend holds it.
    pub fn known(&self, keys: &[Key]) -> Result<Vec<bool>> {
        let keys: Vec<&[u8]> = keys.iter().map(|k| &k.0[..]).collect();
        sqlite::each_in_one_read(
            &self.conn,
            "SELECT EXISTS (SELECT 1 FROM blocks WHERE key = ?1)
                 OR EXISTS (SELECT 1 FROM unflushed WHERE key = ?1)",
            &keys,
        )
        .map_err(|e| self.err("looking keys up", e))
    }

    /// Notes keys the inner backend acknowledged, each to be recorded by the flush of its
    /// generation.
    pub fn note(&mut self, keys: &[(Key, u64)]) -> Result<()> {
        let tx = self
            .conn
            .transaction()
            .map_err(|e| db_err(&self.path, "starting a transaction", e))?;
        {
            let mut q = tx
                .prepare_cached(
                    "INSERT INTO unflushed (key, gen) VALUES (?1, ?2)
                     ON CONFLICT (key) DO UPDATE SET gen = max(gen, excluded.gen)",
                )
                .map_err(|e| db_err(&self.path, "noting keys", e))?;
            for (k, gen) in keys {
                q.execute(params![&k.0[..], *gen as i64])
                    .map_err(|e| db_err(&self.path, "noting keys", e))?;
            }
        }
        tx.commit()
            .map_err(|e| db_err(&self.path, "committing noted keys", e))
    }

    /// After a flush of generation `gen` succeeded: its keys are known for good.
    pub fn record_flushed(&mut self, gen: u64) -> Result<u64> {
        let tx = self
            .conn
            .transaction()
            .map_err(|e| db_err(&self.path, "starting a transaction", e))?;
        let n = tx
            .execute(
                "INSERT OR IGNORE INTO blocks (key) SELECT key FROM unflushed WHERE gen <= ?1",
                [gen as i64],
            )
            .map_err(|e| db_err(&self.path, "recording flushed keys", e))?;
        tx.execute("DELETE FROM unflushed WHERE gen <= ?1", [gen as i64])
            .map_err(|e| db_err(&self.path, "recording flushed keys", e))?;
        tx.commit()
            .map_err(|e| db_err(&self.path, "committing flushed keys", e))?;
        Ok(n as u64)
    }

    /// Forgets keys (before their removal is passed on).
    pub fn forget(&mut self, keys: &[Key]) -> Result<()> {
        let tx = self
            .conn
            .transaction()
            .map_err(|e| db_err(&self.path, "starting a transaction", e))?;
        for k in keys {
            for table in ["blocks", "unflushed"] {
                tx.execute(&format!("DELETE FROM {table} WHERE key = ?1"), [&k.0[..]])
                    .map_err(|e| db_err(&self.path, "forgetting keys", e))?;
            }
        }
        tx.commit()
            .map_err(|e| db_err(&self.path, "committing forgotten keys", e))
    }

    /// Forgets every key and resets the counters.
    pub fn clear(&self) -> Result<()> {
        self.conn
            .execute_batch(
                "BEGIN; DELETE FROM blocks; DELETE FROM unflushed;
                 DELETE FROM meta WHERE name IN ('hits', 'misses'); COMMIT;",
            )
            .map_err(|e| self.err("clearing it", e))
    }

    /// Replaces the known keys with `keys` (from a listing of the inner backend).
    pub fn replace(&mut self, keys: impl Iterator<Item = Result<Vec<Key>>>) -> Result<u64> {
        let tx = self
            .conn
            .transaction()
            .map_err(|e| db_err(&self.path, "starting a transaction", e))?;
        tx.execute_batch("DELETE FROM blocks; DELETE FROM unflushed;")
            .map_err(|e| db_err(&self.path, "clearing it", e))?;
        let mut n = 0;
        {
            let mut q = tx
                .prepare_cached("INSERT OR IGNORE INTO blocks (key) VALUES (?1)")
                .map_err(|e| db_err(&self.path, "recording keys", e))?;
            for page in keys {
                for k in page? {
                    n += q
                        .execute([&k.0[..]])
                        .map_err(|e| db_err(&self.path, "recording keys", e))?
                        as u64;
                }
            }
        }
        tx.commit()
            .map_err(|e| db_err(&self.path, "committing the rebuilt cache", e))?;
        Ok(n)
    }

    /// Up to `limit` keys known for good, in ascending order, all greater than `after`.
    pub fn page(&self, after: Option<Key>, limit: u32) -> Result<Vec<Key>> {
        let from = after.map_or(Vec::new(), |k| k.0.to_vec());
        let mut q = self
            .conn
            .prepare_cached("SELECT key FROM blocks WHERE key > ?1 ORDER BY key LIMIT ?2")
            .map_err(|e| self.err("listing keys", e))?;
        let rows = q
            .query_map(params![from, limit], |r| r.get::<_, Vec<u8>>(0))
            .map_err(|e| self.err("listing keys", e))?;
        let mut keys = Vec::new();
        for row in rows {
            let bytes = row.map_err(|e| self.err("listing keys", e))?;
            // A row that is not a key names no block: nothing to check.
            if let Ok(k) = <[u8; 32]>::try_from(bytes.as_slice()) {
                keys.push(Key(k));
            }
        }
        Ok(keys)
    }

    /// Keys known for good, and keys waiting for a flush.
    pub fn counts(&self) -> Result<(u64, u64)> {
        let count = |table: &str| -> Result<u64> {
            self.conn
                .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| {
                    r.get::<_, i64>(0)
                })
                .map(|n| n as u64)
                .map_err(|e| self.err("counting keys", e))
        };
        Ok((count("blocks")?, count("unflushed")?))
    }
}
