//! The index's tags, their kept history, and the archive's settings: each a copy of the last
//! record the logs hold for it.

use super::{db_err, Index};
use protocol::Result;
use rusqlite::{params, OptionalExtension};

impl Index {
    pub fn tag(&self, name: &str) -> Result<Option<Vec<u8>>> {
        self.conn
            .prepare_cached("SELECT value FROM tags WHERE name = ?1")
            .and_then(|mut st| st.query_row(params![name], |r| r.get(0)).optional())
            .map_err(|e| db_err("reading a tag", e))
    }

    /// Records `value` in tag `name`'s history (its first sighting only; see
    /// `protocol::history`).
    pub fn keep_tag_value(&mut self, name: &str, value: &[u8]) -> Result<()> {
        if !protocol::history::keeps_history(name) {
            return Ok(());
        }
        let seq = match self.history_seq {
            Some(n) => n,
            None => self
                .conn
                .query_row("SELECT IFNULL(MAX(seq), 0) FROM tag_history", [], |r| {
                    r.get(0)
                })
                .map_err(|e| db_err("reading tag history", e))?,
        } + 1;
        let added = self
            .conn
            .prepare_cached(
                "INSERT OR IGNORE INTO tag_history (name, value, seq, time) VALUES (?1, ?2, ?3, ?4)",
            )
            .and_then(|mut st| st.execute(params![name, value, seq, protocol::history::now()]))
            .map_err(|e| db_err("recording a tag's history", e))?;
        self.history_seq = Some(if added > 0 { seq } else { seq - 1 });
        Ok(())
    }

    /// Sets or removes a tag, and records a value set in the tag's history.
    pub fn set_tag(&mut self, name: &str, value: Option<&[u8]>) -> Result<()> {
        if let Some(v) = value {
            self.keep_tag_value(name, v)?;
        }
        let r = match value {
            Some(v) => self.conn.execute(
                "INSERT OR REPLACE INTO tags (name, value) VALUES (?1, ?2)",
                params![name, v],
            ),
            None => self
                .conn
                .execute("DELETE FROM tags WHERE name = ?1", params![name]),
        };
        r.map(|_| ()).map_err(|e| db_err("changing a tag", e))
    }

    pub fn tags(&self) -> Result<Vec<(String, Vec<u8>)>> {
        let mut st = self
            .conn
            .prepare("SELECT name, value FROM tags ORDER BY name")
            .map_err(|e| db_err("listing tags", e))?;
        let rows = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(|e| db_err("listing tags", e))?;
        Ok(rows)
    }

    /// The kept values of tag `name` (or of every tag), oldest first: (name, value, time).
    pub fn tag_history(&self, name: Option<&str>) -> Result<Vec<(String, Vec<u8>, i64)>> {
        let mut st = self
            .conn
            .prepare(
                "SELECT name, value, time FROM tag_history WHERE ?1 IS NULL OR name = ?1 ORDER BY seq",
            )
            .map_err(|e| db_err("reading tag history", e))?;
        let rows = st
            .query_map(params![name], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(|e| db_err("reading tag history", e))?;
        Ok(rows)
    }

    /// Whether `value` of tag `name` is still kept in its history.
    pub fn in_history(&self, name: &str, value: &[u8]) -> Result<bool> {
        self.conn
            .prepare_cached("SELECT 1 FROM tag_history WHERE name = ?1 AND value = ?2")
            .and_then(|mut st| st.exists(params![name, value]))
            .map_err(|e| db_err("reading tag history", e))
    }

    /// Forgets kept values (of tag `name`, or all) first seen at or before `cutoff` that
    /// their tag no longer holds.
    pub fn expire_tag_history(&mut self, cutoff: i64, name: Option<&str>) -> Result<u64> {
        self.conn
            .execute(
                "DELETE FROM tag_history WHERE time <= ?1 AND (?2 IS NULL OR name = ?2) AND NOT EXISTS \
                 (SELECT 1 FROM tags WHERE tags.name = tag_history.name AND tags.value = tag_history.value)",
                params![cutoff, name],
            )
            .map(|n| n as u64)
            .map_err(|e| db_err("expiring tag history", e))
    }

    pub fn setting(&self, name: &str) -> Result<Option<String>> {
        self.conn
            .query_row(
                "SELECT value FROM settings WHERE name = ?1",
                params![name],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| db_err("reading a setting", e))
    }

    pub fn settings(&self) -> Result<Vec<(String, String)>> {
        let mut st = self
            .conn
            .prepare("SELECT name, value FROM settings ORDER BY name")
            .map_err(|e| db_err("listing settings", e))?;
        let rows = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(|e| db_err("listing settings", e))?;
        Ok(rows)
    }

    pub fn set_setting(&mut self, name: &str, value: &str) -> Result<()> {
        self.conn
            .execute(
                "INSERT OR REPLACE INTO settings (name, value) VALUES (?1, ?2)",
                params![name, value],
            )
            .map(|_| ())
            .map_err(|e| db_err("changing a setting", e))
    }
}
