//! The replicated backend's state file: members, who holds which block, tags.
//!
//! Holdings carry a flush generation: `0` for a copy the member has made durable, `g > 0` for
//! one it acknowledged and that the flush of generation `g` will make durable. A copy only
//! becomes durable in the state after its member's flush succeeded; a member whose flush fails
//! loses its pending copies (in the state), and copies still pending when a process ends are
//! dropped at the next open. So the state may forget a copy that exists (harmless: reads fall
//! back to searching every member, and `scrub` finds it again) but never counts one that a crash
//! could have taken away.
//!
//! Tags live here and are copied to the members; a removed tag is kept as a tombstone (a
//! `NULL` value) so that a member that missed the removal can be brought up to date without
//! touching tags the state never knew.

use protocol::{Error, ErrorCode, Key, Result};
use rusqlite::{params, Connection, OptionalExtension, Transaction};
use std::path::{Path, PathBuf};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS members (
    id INTEGER PRIMARY KEY,
    archive TEXT NOT NULL UNIQUE,
    trust INTEGER NOT NULL,
    read_weight INTEGER NOT NULL,
    write_weight INTEGER NOT NULL,
    added INTEGER NOT NULL,
    broken_at INTEGER,
    last_error TEXT,
    last_error_at INTEGER
);
CREATE TABLE IF NOT EXISTS blocks (key BLOB PRIMARY KEY, size INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS holdings (
    key BLOB NOT NULL,
    member INTEGER NOT NULL,
    gen INTEGER NOT NULL,
    PRIMARY KEY (key, member)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS holdings_by_member ON holdings (member, gen);
CREATE TABLE IF NOT EXISTS short (key BLOB PRIMARY KEY, since INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS damaged (
    key BLOB NOT NULL,
    member INTEGER NOT NULL,
    seen INTEGER NOT NULL,
    what TEXT NOT NULL,
    PRIMARY KEY (key, member)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS tags (name TEXT PRIMARY KEY, value BLOB) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS tag_history (
    seq INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    value BLOB,
    time INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
";

const SCHEMA_VERSION: &str = "1";

/// A member as the state records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberRow {
    pub id: i64,
    pub archive: String,
    pub trust: u32,
    pub read_weight: u32,
    pub write_weight: u32,
    pub added: i64,
    pub broken_at: Option<i64>,
    pub last_error: Option<String>,
    pub last_error_at: Option<i64>,
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The open state file.
pub struct State {
    conn: Connection,
    path: PathBuf,
}

fn key_of(v: Vec<u8>) -> Option<Key> {
    <[u8; 32]>::try_from(v.as_slice()).ok().map(Key)
}

impl State {
    /// Opens or creates the state file (mode 0600).
    pub fn open(path: &Path) -> Result<State> {
        let conn = backend_splitlog::sqlite::open_private(
            "replication state",
            path,
            std::time::Duration::from_secs(60),
        )?;
        let s = State {
            conn,
            path: path.to_path_buf(),
        };
        s.conn.execute_batch(SCHEMA).map_err(|e| {
            s.err(
                "creating the tables (is it a replicated backend's state?)",
                e,
            )
        })?;
        match s.meta("schema")?.as_deref() {
            None => s.set_meta("schema", SCHEMA_VERSION)?,
            Some(SCHEMA_VERSION) => {}
            Some(other) => {
                return Err(Error::backend(
                    ErrorCode::Io,
                    format!(
                        "state {}: schema {other} is not one this version reads ({SCHEMA_VERSION})",
                        path.display()
                    ),
                ))
            }
        }
        // Copies still pending when the last process ended are of unknown durability.
        s.conn
            .execute("DELETE FROM holdings WHERE gen > 0", [])
            .map_err(|e| s.err("dropping pending copies", e))?;
        s.drop_orphans()?;
        Ok(s)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn err(&self, context: &str, e: rusqlite::Error) -> Error {
        db_err(&self.path, context, e)
    }

    pub fn meta(&self, name: &str) -> Result<Option<String>> {
        self.conn
            .query_row("SELECT value FROM meta WHERE name = ?1", [name], |r| {
                r.get(0)
            })
            .optional()
            .map_err(|e| self.err("reading a setting", e))
    }

    pub fn set_meta(&self, name: &str, value: &str) -> Result<()> {
        self.conn
            .execute(
                "INSERT INTO meta (name, value) VALUES (?1, ?2)
                 ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                params![name, value],
            )
            .map(drop)
            .map_err(|e| self.err("writing a setting", e))
    }

    /// Makes everything committed so far durable (the WAL is synced into the database).
    pub fn sync(&self) -> Result<()> {
        self.conn
            .query_row("PRAGMA wal_checkpoint(FULL)", [], |_| Ok(()))
            .map_err(|e| self.err("syncing it", e))
    }

    // ----- members -----

    pub fn members(&self) -> Result<Vec<MemberRow>> {
        let mut q = self
            .conn
            .prepare_cached(
                "SELECT id, archive, trust, read_weight, write_weight, added, broken_at, last_error,
                        last_error_at
                 FROM members ORDER BY id",
            )
            .map_err(|e| self.err("reading members", e))?;
        let rows = q
            .query_map([], |r| {
                Ok(MemberRow {
                    id: r.get(0)?,
                    archive: r.get(1)?,
                    trust: r.get(2)?,
                    read_weight: r.get(3)?,
                    write_weight: r.get(4)?,
                    added: r.get(5)?,
                    broken_at: r.get(6)?,
                    last_error: r.get(7)?,
                    last_error_at: r.get(8)?,
                })
            })
            .map_err(|e| self.err("reading members", e))?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| self.err("reading members", e))
    }

    pub fn add_member(&self, archive: &str, trust: u32, read: u32, write: u32) -> Result<i64> {
        self.conn
            .execute(
                "INSERT INTO members (archive, trust, read_weight, write_weight, added)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![archive, trust, read, write, now()],
            )
            .map_err(|e| self.err("adding a member", e))?;
        Ok(self.conn.last_insert_rowid())
    }

    pub fn set_member(&self, id: i64, trust: u32, read: u32, write: u32) -> Result<()> {
        self.conn
            .execute(
                "UPDATE members SET trust = ?2, read_weight = ?3, write_weight = ?4 WHERE id = ?1",
                params![id, trust, read, write],
            )
            .map(drop)
            .map_err(|e| self.err("changing a member", e))
    }

    /// Drops a member and every copy the state says it holds.
    pub fn remove_member(&mut self, id: i64) -> Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(|e| db_err(&self.path, "starting a transaction", e))?;
        for sql in [
            "DELETE FROM holdings WHERE member = ?1",
            "DELETE FROM damaged WHERE member = ?1",
            "DELETE FROM members WHERE id = ?1",
        ] {
            tx.execute(sql, [id])
                .map_err(|e| db_err(&self.path, "removing a member", e))?;
        }
        tx.commit()
            .map_err(|e| db_err(&self.path, "removing a member", e))?;
        self.drop_orphans()
    }

    /// Records a member's health: `None` when it works, or what went wrong.
    pub fn set_health(&self, id: i64, error: Option<&str>) -> Result<()> {
        let r = match error {
            None => self.conn.execute(
                "UPDATE members SET broken_at = NULL WHERE id = ?1 AND broken_at IS NOT NULL",
                [id],
            ),
            Some(e) => self.conn.execute(
                "UPDATE members SET broken_at = coalesce(broken_at, ?2), last_error = ?3,
                        last_error_at = ?2
                 WHERE id = ?1",
                params![id, now(), e],
            ),
        };
        r.map(drop)
            .map_err(|e| self.err("recording a member's health", e))
    }

    // ----- blocks and copies -----

    /// The members holding `key` (durably or pending).
    pub fn holders(&self, key: &Key) -> Result<Vec<i64>> {
        let mut q = self
            .conn
            .prepare_cached("SELECT member FROM holdings WHERE key = ?1")
            .map_err(|e| self.err("looking a block up", e))?;
        let rows = q
            .query_map([&key.0[..]], |r| r.get(0))
            .map_err(|e| self.err("looking a block up", e))?;
        rows.collect::<rusqlite::Result<Vec<i64>>>()
            .map_err(|e| self.err("looking a block up", e))
    }

    /// Records copies the members acknowledged; `gen` is the flush that makes them durable
    /// (`0`: already durable, e.g. found by a read or a listing).
    pub fn add_copies(&mut self, key: &Key, size: u64, members: &[i64], gen: u64) -> Result<()> {
        if members.is_empty() {
            return Ok(());
        }
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(|e| db_err(&self.path, "starting a transaction", e))?;
        add_copies_in(&tx, key, size, members, gen)
            .map_err(|e| db_err(&self.path, "recording copies", e))?;
        tx.commit()
            .map_err(|e| db_err(&self.path, "recording copies", e))
    }

    /// Records many copies in one transaction: `(key, size, member, gen)`.
    pub fn add_copies_many(&mut self, copies: &[(Key, u64, i64, u64)]) -> Result<()> {
        if copies.is_empty() {
            return Ok(());
        }
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(|e| db_err(&self.path, "starting a transaction", e))?;
        for (key, size, member, gen) in copies {
            add_copies_in(&tx, key, *size, &[*member], *gen)
                .map_err(|e| db_err(&self.path, "recording copies", e))?;
        }
        tx.commit()
            .map_err(|e| db_err(&self.path, "recording copies", e))
    }

    /// Forgets copies (a member that did not have what the state said, or lost it).
    pub fn drop_copies(&mut self, key: &Key, members: &[i64]) -> Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(|e| db_err(&self.path, "starting a transaction", e))?;
        for m in members {
            tx.execute(
                "DELETE FROM holdings WHERE key = ?1 AND member = ?2",
                params![&key.0[..], m],
            )
            .map_err(|e| db_err(&self.path, "dropping copies", e))?;
        }
        tx.execute(
            "DELETE FROM blocks WHERE key = ?1 AND NOT EXISTS (SELECT 1 FROM holdings WHERE key = ?1)",
            [&key.0[..]],
        )
        .map_err(|e| db_err(&self.path, "dropping copies", e))?;
        tx.commit()
            .map_err(|e| db_err(&self.path, "dropping copies", e))
    }

    /// After member `id` flushed generation `gen` and everything before it: its pending copies
    /// are durable.
    pub fn copies_flushed(&self, id: i64, gen: u64) -> Result<()> {
        self.conn
            .execute(
                "UPDATE holdings SET gen = 0 WHERE member = ?1 AND gen > 0 AND gen <= ?2",
                params![id, gen as i64],
            )
            .map(drop)
            .map_err(|e| self.err("recording a flush", e))
    }

    /// After member `id` failed to flush: its pending copies are lost. Returns their keys.
    pub fn copies_lost(&mut self, id: i64) -> Result<Vec<Key>> {
        let keys = {
            let mut q = self
                .conn
                .prepare_cached("SELECT key FROM holdings WHERE member = ?1 AND gen > 0")
                .map_err(|e| self.err("finding lost copies", e))?;
            let rows = q
                .query_map([id], |r| r.get::<_, Vec<u8>>(0))
                .map_err(|e| self.err("finding lost copies", e))?;
            rows.filter_map(|r| r.ok().and_then(key_of))
                .collect::<Vec<_>>()
        };
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(|e| db_err(&self.path, "starting a transaction", e))?;
        tx.execute("DELETE FROM holdings WHERE member = ?1 AND gen > 0", [id])
            .map_err(|e| db_err(&self.path, "dropping lost copies", e))?;
        tx.commit()
            .map_err(|e| db_err(&self.path, "dropping lost copies", e))?;
        self.drop_orphans()?;
        Ok(keys)
    }

    /// Forgets blocks no member holds any more.
    fn drop_orphans(&self) -> Result<()> {
        self.conn
            .execute(
                "DELETE FROM blocks WHERE NOT EXISTS
                     (SELECT 1 FROM holdings WHERE holdings.key = blocks.key)",
                [],
            )
            .map(drop)
            .map_err(|e| self.err("forgetting unheld blocks", e))
    }

    /// Forgets blocks entirely (after a removal).
    pub fn forget(&mut self, keys: &[Key]) -> Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(|e| db_err(&self.path, "starting a transaction", e))?;
        for k in keys {
            for sql in [
                "DELETE FROM holdings WHERE key = ?1",
                "DELETE FROM blocks WHERE key = ?1",
                "DELETE FROM short WHERE key = ?1",
                "DELETE FROM damaged WHERE key = ?1",
            ] {
                tx.execute(sql, [&k.0[..]])
                    .map_err(|e| db_err(&self.path, "forgetting blocks", e))?;
            }
        }
        tx.commit()
            .map_err(|e| db_err(&self.path, "forgetting blocks", e))
    }

    /// For each key, whether any member holds it.
    pub fn known(&self, keys: &[Key]) -> Result<Vec<bool>> {
        // One read transaction for the batch, not one per key.
        let tx = self
            .conn
            .unchecked_transaction()
            .map_err(|e| self.err("looking blocks up", e))?;
        let mut q = tx
            .prepare_cached("SELECT EXISTS (SELECT 1 FROM holdings WHERE key = ?1)")
            .map_err(|e| self.err("looking blocks up", e))?;
        let r = keys
            .iter()
            .map(|k| {
                q.query_row([&k.0[..]], |r| r.get::<_, bool>(0))
                    .map_err(|e| db_err(&self.path, "looking blocks up", e))
            })
            .collect();
        drop(q);
        tx.commit().map_err(|e| self.err("looking blocks up", e))?;
        r
    }

    /// Up to `limit` keys after `after`, ascending, and whether more follow.
    pub fn list(&self, after: Option<Key>, limit: u32) -> Result<(Vec<Key>, bool)> {
        let from = after.map(|k| k.0.to_vec()).unwrap_or_default();
        let mut q = self
            .conn
            .prepare_cached("SELECT key FROM blocks WHERE key > ?1 ORDER BY key LIMIT ?2")
            .map_err(|e| self.err("listing blocks", e))?;
        let rows = q
            .query_map(params![from, i64::from(limit) + 1], |r| {
                r.get::<_, Vec<u8>>(0)
            })
            .map_err(|e| self.err("listing blocks", e))?;
        let mut keys: Vec<Key> = rows.filter_map(|r| r.ok().and_then(key_of)).collect();
        let more = keys.len() > limit as usize;
        keys.truncate(limit as usize);
        Ok((keys, more))
    }

    /// The size of a block, if known.
    pub fn size(&self, key: &Key) -> Result<Option<u64>> {
        self.conn
            .query_row(
                "SELECT size FROM blocks WHERE key = ?1",
                [&key.0[..]],
                |r| r.get::<_, i64>(0),
            )
            .optional()
            .map(|s| s.map(|s| s as u64))
            .map_err(|e| self.err("looking a block up", e))
    }

    /// Blocks and their total size.
    pub fn totals(&self) -> Result<(u64, u64)> {
        self.conn
            .query_row(
                "SELECT count(*), coalesce(sum(size), 0) FROM blocks",
                [],
                |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)),
            )
            .map_err(|e| self.err("counting blocks", e))
    }

    /// Copies per member (durable ones, and pending ones).
    pub fn held_by_member(&self) -> Result<Vec<(i64, u64, u64)>> {
        let mut q = self
            .conn
            .prepare("SELECT member, sum(gen = 0), sum(gen > 0) FROM holdings GROUP BY member")
            .map_err(|e| self.err("counting copies", e))?;
        let rows = q
            .query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)? as u64,
                    r.get::<_, i64>(2)? as u64,
                ))
            })
            .map_err(|e| self.err("counting copies", e))?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| self.err("counting copies", e))
    }

    /// Keys after `after` in ascending order, up to `limit`, with their holders.
    pub fn page(&self, after: Option<Key>, limit: u32) -> Result<Vec<(Key, Vec<i64>)>> {
        let (keys, _) = self.list(after, limit)?;
        keys.into_iter()
            .map(|k| Ok((k, self.holders(&k)?)))
            .collect()
    }

    /// The keys member `id` holds durably, after `after`, ascending, up to `limit`.
    pub fn held_by(&self, id: i64, after: Option<Key>, limit: u32) -> Result<Vec<Key>> {
        let from = after.map(|k| k.0.to_vec()).unwrap_or_default();
        let mut q = self
            .conn
            .prepare_cached(
                "SELECT key FROM holdings WHERE member = ?1 AND key > ?2 ORDER BY key LIMIT ?3",
            )
            .map_err(|e| self.err("listing a member's copies", e))?;
        let rows = q
            .query_map(params![id, from, i64::from(limit)], |r| {
                r.get::<_, Vec<u8>>(0)
            })
            .map_err(|e| self.err("listing a member's copies", e))?;
        Ok(rows.filter_map(|r| r.ok().and_then(key_of)).collect())
    }

    // ----- shortfalls and damage -----

    pub fn mark_short(&self, key: &Key) -> Result<()> {
        self.conn
            .execute(
                "INSERT OR IGNORE INTO short (key, since) VALUES (?1, ?2)",
                params![&key.0[..], now()],
            )
            .map(drop)
            .map_err(|e| self.err("recording a shortfall", e))
    }

    pub fn clear_short(&self, key: &Key) -> Result<()> {
        self.conn
            .execute("DELETE FROM short WHERE key = ?1", [&key.0[..]])
            .map(drop)
            .map_err(|e| self.err("recording a repair", e))
    }

    pub fn short_count(&self) -> Result<u64> {
        self.conn
            .query_row("SELECT count(*) FROM short", [], |r| r.get::<_, i64>(0))
            .map(|n| n as u64)
            .map_err(|e| self.err("counting shortfalls", e))
    }

    pub fn mark_damaged(&self, key: &Key, member: i64, what: &str) -> Result<()> {
        self.conn
            .execute(
                "INSERT INTO damaged (key, member, seen, what) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (key, member) DO UPDATE SET seen = excluded.seen, what = excluded.what",
                params![&key.0[..], member, now(), what],
            )
            .map(drop)
            .map_err(|e| self.err("recording damage", e))
    }

    pub fn clear_damaged(&self, key: &Key, member: i64) -> Result<()> {
        self.conn
            .execute(
                "DELETE FROM damaged WHERE key = ?1 AND member = ?2",
                params![&key.0[..], member],
            )
            .map(drop)
            .map_err(|e| self.err("recording a repair", e))
    }

    /// Damaged copies: key, member, what was wrong.
    pub fn damaged(&self) -> Result<Vec<(Key, i64, String)>> {
        let mut q = self
            .conn
            .prepare("SELECT key, member, what FROM damaged ORDER BY seen")
            .map_err(|e| self.err("reading damage", e))?;
        let rows = q
            .query_map([], |r| {
                Ok((
                    r.get::<_, Vec<u8>>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })
            .map_err(|e| self.err("reading damage", e))?;
        Ok(rows
            .filter_map(|r| r.ok())
            .filter_map(|(k, m, w)| key_of(k).map(|k| (k, m, w)))
            .collect())
    }

    // ----- tags -----

    /// A tag's value (`None` when absent or removed).
    pub fn tag(&self, name: &str) -> Result<Option<Vec<u8>>> {
        self.conn
            .query_row("SELECT value FROM tags WHERE name = ?1", [name], |r| {
                r.get::<_, Option<Vec<u8>>>(0)
            })
            .optional()
            .map(Option::flatten)
            .map_err(|e| self.err("reading a tag", e))
    }

    /// Every tag the state knows, tombstones (`None`) included, sorted by name.
    pub fn all_tags(&self) -> Result<Vec<(String, Option<Vec<u8>>)>> {
        let mut q = self
            .conn
            .prepare_cached("SELECT name, value FROM tags ORDER BY name")
            .map_err(|e| self.err("reading tags", e))?;
        let rows = q
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(|e| self.err("reading tags", e))?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| self.err("reading tags", e))
    }

    /// Compare-and-swap on a tag (`value` `None` removes it); `Err(current)` on a mismatch.
    /// `expected` `None` on a removal means "whatever it holds".
    pub fn cas_tag(
        &mut self,
        name: &str,
        expected: Option<&[u8]>,
        value: Option<&[u8]>,
        any: bool,
    ) -> Result<std::result::Result<(), Option<Vec<u8>>>> {
        let path = self.path.clone();
        let e = move |e| db_err(&path, "changing a tag", e);
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(|e| db_err(&self.path, "starting a transaction", e))?;
        let current: Option<Vec<u8>> = tx
            .query_row("SELECT value FROM tags WHERE name = ?1", [name], |r| {
                r.get::<_, Option<Vec<u8>>>(0)
            })
            .optional()
            .map_err(&e)?
            .flatten();
        if !any && current.as_deref() != expected {
            return Ok(Err(current));
        }
        tx.execute(
            "INSERT INTO tags (name, value) VALUES (?1, ?2)
             ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            params![name, value],
        )
        .map_err(&e)?;
        tx.execute(
            "INSERT INTO tag_history (name, value, time) VALUES (?1, ?2, ?3)",
            params![name, value, now()],
        )
        .map_err(&e)?;
        tx.commit().map_err(&e)?;
        Ok(Ok(()))
    }

    /// Kept values of tag `name` (or all), each once, oldest first: (name, first seen, value).
    pub fn tag_history(&self, name: Option<&str>) -> Result<Vec<(String, i64, Vec<u8>)>> {
        let e = |e| self.err("reading tag history", e);
        let mut q = self
            .conn
            .prepare(
                "SELECT name, MIN(time), value FROM tag_history WHERE value IS NOT NULL \
                 AND (?1 IS NULL OR name = ?1) GROUP BY name, value ORDER BY MIN(seq)",
            )
            .map_err(e)?;
        let rows = q
            .query_map([name], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .map_err(e)?;
        rows.collect::<rusqlite::Result<Vec<_>>>().map_err(e)
    }

    /// Forgets kept values (of `name`, or all) first seen by `cutoff` that are not current.
    pub fn expire_tag_history(&self, cutoff: i64, name: Option<&str>) -> Result<u64> {
        self.conn
            .execute(
                "DELETE FROM tag_history WHERE (?2 IS NULL OR name = ?2) AND (name, value) IN \
                 (SELECT h.name, h.value FROM tag_history h GROUP BY h.name, h.value \
                 HAVING MIN(h.time) <= ?1) \
                 AND NOT EXISTS (SELECT 1 FROM tags t WHERE t.name = tag_history.name \
                 AND t.value IS tag_history.value)",
                rusqlite::params![cutoff, name],
            )
            .map(|n| n as u64)
            .map_err(|e| self.err("expiring tag history", e))
    }

    /// Adopts a tag found on a member that the state has never heard of.
    pub fn adopt_tag(&self, name: &str, value: &[u8]) -> Result<bool> {
        self.conn
            .execute(
                "INSERT OR IGNORE INTO tags (name, value) VALUES (?1, ?2)",
                params![name, value],
            )
            .map(|n| n > 0)
            .map_err(|e| self.err("adopting a tag", e))
    }
}

fn add_copies_in(
    tx: &Transaction<'_>,
    key: &Key,
    size: u64,
    members: &[i64],
    gen: u64,
) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT OR IGNORE INTO blocks (key, size) VALUES (?1, ?2)",
        params![&key.0[..], size as i64],
    )?;
    let mut q = tx.prepare_cached(
        "INSERT INTO holdings (key, member, gen) VALUES (?1, ?2, ?3)
         ON CONFLICT (key, member) DO UPDATE SET gen = min(gen, excluded.gen)",
    )?;
    for m in members {
        q.execute(params![&key.0[..], m, gen as i64])?;
    }
    Ok(())
}

fn db_err(path: &Path, context: &str, e: rusqlite::Error) -> Error {
    backend_splitlog::sqlite::error("replication state", path, context, e)
}
