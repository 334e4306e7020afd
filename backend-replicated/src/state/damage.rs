//! Blocks short of full trust, and copies found damaged: what `rereplicate` and `scrub` have
//! left to repair, counted by `stats`.

use super::{key_of, now, State};
use protocol::{Key, Result};
use rusqlite::params;

impl State {
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
}
