//! The index's record of blocks that restricted connections stored (`protocol::provenance`):
//! the `unvouched` table, made at the first restricted put so that an archive only its owner
//! writes has none.

use super::{db_err, Index, UNVOUCHED_TABLE};
use protocol::{Error, ErrorCode, Key, Result};
use rusqlite::params;

impl Index {
    /// Records (or forgets) that a restricted connection stored a block
    /// (`protocol::provenance`).
    pub fn set_unvouched(&mut self, key: &Key, on: bool) -> Result<()> {
        if !self.unvouched_table {
            if !on {
                return Ok(());
            }
            self.conn
                .execute_batch(UNVOUCHED_TABLE)
                .map_err(|e| db_err("recording who stored a block", e))?;
            self.unvouched_table = true;
        }
        let sql = if on {
            "INSERT OR IGNORE INTO unvouched (key) VALUES (?1)"
        } else {
            "DELETE FROM unvouched WHERE key = ?1"
        };
        self.conn
            .prepare_cached(sql)
            .and_then(|mut st| st.execute(params![&key.0[..]]))
            .map_err(|e| db_err("recording who stored a block", e))?;
        Ok(())
    }

    /// Whether a block is recorded as stored by a restricted connection.
    pub fn is_unvouched(&self, key: &Key) -> Result<bool> {
        if !self.unvouched_table {
            return Ok(false);
        }
        self.conn
            .prepare_cached("SELECT 1 FROM unvouched WHERE key = ?1")
            .and_then(|mut st| st.exists(params![&key.0[..]]))
            .map_err(|e| db_err("looking up who stored a block", e))
    }

    /// Up to `limit` recorded keys after `after`, ascending, and whether more follow.
    pub fn unvouched(&self, after: Option<Key>, limit: usize) -> Result<(Vec<Key>, bool)> {
        if !self.unvouched_table {
            return Ok((Vec::new(), false));
        }
        let mut st = self
            .conn
            .prepare_cached("SELECT key FROM unvouched WHERE key > ?1 ORDER BY key LIMIT ?2")
            .map_err(|e| db_err("listing unvouched blocks", e))?;
        let from = after.map_or_else(Vec::new, |k| k.0.to_vec());
        let rows = st
            .query_map(params![from, (limit + 1) as i64], |r| {
                r.get::<_, Vec<u8>>(0)
            })
            .map_err(|e| db_err("listing unvouched blocks", e))?;
        let mut keys = Vec::new();
        for r in rows {
            let raw = r.map_err(|e| db_err("listing unvouched blocks", e))?;
            let key: [u8; 32] = raw.try_into().map_err(|_| {
                Error::backend(ErrorCode::Corrupt, "a key in the index is not 32 bytes")
            })?;
            keys.push(Key(key));
        }
        let more = keys.len() > limit;
        keys.truncate(limit);
        Ok((keys, more))
    }
}
