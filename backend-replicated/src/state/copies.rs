//! Blocks and the copies of them that members hold, durable or waiting for a flush (see the
//! state's module doc for the generations).

use super::{db_err, key_of, State};
use protocol::{Key, Result};
use rusqlite::{params, OptionalExtension, Transaction};

impl State {
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
    pub(super) fn drop_orphans(&self) -> Result<()> {
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
        let keys: Vec<&[u8]> = keys.iter().map(|k| &k.0[..]).collect();
        ore_util::sqlite::each_in_one_read(
            &self.conn,
            "SELECT EXISTS (SELECT 1 FROM holdings WHERE key = ?1)",
            &keys,
        )
        .map_err(|e| self.err("looking blocks up", e))
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
