//! Tags, their tombstones and their history, kept here and copied to the members.

use super::{db_err, now, State};
use protocol::Result;
use rusqlite::{params, OptionalExtension};

impl State {
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
