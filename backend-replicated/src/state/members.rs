//! The members the state records: their identifiers, trust and weights, and health.

use super::{db_err, now, MemberRow, State};
use protocol::Result;
use rusqlite::params;

impl State {
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
}
