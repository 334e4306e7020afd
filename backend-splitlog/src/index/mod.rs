//! The sqlite index: where each block lives, the tags, the settings, and how far into the logs
//! the index reaches.
//!
//! The index is a cache of the logs, never the only copy of anything: every change it records
//! was first appended to a log as a record. It is written inside one long transaction that is
//! committed every N writes and on flush, together with the log position it reflects, so after
//! a crash the records past that position are replayed and nothing else is needed.

mod provenance;
mod tags;

use crate::record::{parse_named, Header, RecordType, HEADER_LEN};
use protocol::{Error, ErrorCode, Key, Result};
use rusqlite::{params, Connection, OptionalExtension};
use std::path::Path;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS blocks (
    key BLOB PRIMARY KEY,
    log INTEGER NOT NULL,
    offset INTEGER NOT NULL,
    len INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS tags (name TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS tag_history (
    name TEXT NOT NULL,
    value BLOB NOT NULL,
    seq INTEGER NOT NULL,
    time INTEGER NOT NULL,
    PRIMARY KEY (name, value)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS settings (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS logs (
    log INTEGER PRIMARY KEY,
    live INTEGER NOT NULL DEFAULT 0,
    dead INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS position (id INTEGER PRIMARY KEY CHECK (id = 0), log INTEGER NOT NULL, offset INTEGER NOT NULL);
";

/// Where a block's record is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Location {
    pub log: u32,
    pub offset: u64,
    pub len: u32,
}

impl Location {
    /// Bytes of the whole record.
    pub fn record_len(&self) -> u64 {
        HEADER_LEN as u64 + u64::from(self.len)
    }
}

/// The error for a failed index step. A damaged database file (sqlite's "malformed" and "not
/// a database") is `Corrupt` and says how to repair it, so that a caller can tell it from a
/// full disk and the user learns the one command that helps.
pub(crate) fn db_err(context: &str, e: rusqlite::Error) -> Error {
    if is_damage(&e) {
        return Error::backend(
            ErrorCode::Corrupt,
            format!("index database: {context}: {e}; {DAMAGED_INDEX}"),
        );
    }
    Error::backend(ErrorCode::Io, format!("index database: {context}: {e}"))
}

/// What an error of a damaged index says to do (`ARCHIVE` is replaced by the archive's
/// directory where it is known).
pub const DAMAGED_INDEX: &str = "the index file is damaged: `ore-admin ARCHIVE reindex` \
     rebuilds it from the logs and keeps the damaged file beside it";

/// Whether sqlite says the database file itself is damaged.
fn is_damage(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase)
    )
}

/// The index, always inside an open transaction.
pub struct Index {
    conn: Connection,
    /// Live and dead byte changes per log not yet written to the `logs` table (written at each
    /// commit, and before the table is read), so a put costs no extra statement.
    space: std::collections::BTreeMap<u32, (i64, i64)>,
    /// The highest sequence number in `tag_history`, once read (so a replay of many tag
    /// records does not look it up each time).
    history_seq: Option<i64>,
    /// Whether the `unvouched` table exists: it is made at the first restricted put, so an
    /// archive only its owner writes has none (each table costs the index a page).
    unvouched_table: bool,
}

const UNVOUCHED_TABLE: &str =
    "CREATE TABLE IF NOT EXISTS unvouched (key BLOB PRIMARY KEY) WITHOUT ROWID";

impl Index {
    /// Opens (or creates) the index database and starts a transaction.
    pub fn open(path: &Path) -> Result<Index> {
        let conn = Connection::open(path)
            .map_err(|e| db_err(&format!("opening {}", path.display()), e))?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA cache_size = -65536;",
        )
        .map_err(|e| db_err("setting it up", e))?;
        conn.execute_batch(SCHEMA)
            .map_err(|e| db_err("creating the tables", e))?;
        conn.execute_batch("BEGIN")
            .map_err(|e| db_err("starting a transaction", e))?;
        let mut index = Index {
            conn,
            space: Default::default(),
            history_seq: None,
            unvouched_table: false,
        };
        index.find_unvouched_table()?;
        Ok(index)
    }

    /// An empty index in memory: what an archive whose index file is damaged holds until a
    /// reindex replaces it (every request but `reindex` is refused meanwhile, see
    /// `State::broken`).
    pub fn placeholder() -> Result<Index> {
        Index::open(Path::new(":memory:"))
    }

    /// Commits and closes the database (so that its file is complete on its own: the
    /// write-ahead log is folded in and removed).
    pub fn close(mut self) -> Result<()> {
        self.write_space()?;
        self.conn
            .execute_batch("COMMIT")
            .map_err(|e| db_err("committing", e))?;
        self.conn
            .close()
            .map_err(|(_, e)| db_err("closing the database", e))
    }

    /// sqlite's own check of the database file: `None` when sound, else what is wrong.
    pub fn damage(&self) -> Option<String> {
        let rows = self.conn.prepare("PRAGMA quick_check").and_then(|mut st| {
            st.query_map([], |r| r.get::<_, String>(0))?
                .collect::<rusqlite::Result<Vec<String>>>()
        });
        match rows {
            Ok(rows) if rows == ["ok"] => None,
            Ok(rows) => Some(rows.join("; ")),
            Err(e) => Some(e.to_string()),
        }
    }

    /// The highest log number the index names (0: none).
    pub fn highest_log(&self) -> Result<u32> {
        self.conn
            .query_row(
                "SELECT max(IFNULL((SELECT max(log) FROM logs WHERE live > 0), 0), \
                 IFNULL((SELECT log FROM position WHERE id = 0), 0))",
                [],
                |r| r.get(0),
            )
            .map_err(|e| db_err("reading the log numbers", e))
    }

    /// The logs the index counts live bytes in, with those bytes.
    pub fn live_logs(&mut self) -> Result<Vec<(u32, u64)>> {
        Ok(self
            .log_space()?
            .into_iter()
            .filter(|&(_, live, _)| live > 0)
            .map(|(n, live, _)| (n, live))
            .collect())
    }

    /// How many blocks, and how many bytes of them, the index places in log `n`.
    pub fn blocks_in_log(&self, n: u32) -> Result<(u64, u64)> {
        self.conn
            .query_row(
                "SELECT count(*), coalesce(sum(len), 0) FROM blocks WHERE log = ?1",
                params![n],
                |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)),
            )
            .map_err(|e| db_err("counting a log's blocks", e))
    }

    /// Learns whether the `unvouched` table exists (at open, and after a rollback, which may
    /// have taken back its creation).
    fn find_unvouched_table(&mut self) -> Result<()> {
        self.unvouched_table = self
            .conn
            .prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'unvouched'")
            .and_then(|mut st| st.exists([]))
            .map_err(|e| db_err("opening", e))?;
        Ok(())
    }

    /// Commits everything so far, recording that the index reflects the logs up to `pos`.
    pub fn commit(&mut self, pos: (u32, u64)) -> Result<()> {
        self.write_space()?;
        self.conn
            .execute(
                "INSERT OR REPLACE INTO position (id, log, offset) VALUES (0, ?1, ?2)",
                params![pos.0, pos.1 as i64],
            )
            .map_err(|e| db_err("recording the log position", e))?;
        self.conn
            .execute_batch("COMMIT; BEGIN")
            .map_err(|e| db_err("committing", e))
    }

    /// Drops everything since the last commit and starts a new transaction. (A failed COMMIT
    /// may have rolled back already; then only the new transaction is started.)
    pub fn roll_back(&mut self) -> Result<()> {
        self.space.clear();
        if !self.conn.is_autocommit() {
            self.conn
                .execute_batch("ROLLBACK")
                .map_err(|e| db_err("rolling back", e))?;
        }
        self.conn
            .execute_batch("BEGIN")
            .map_err(|e| db_err("starting a transaction", e))?;
        self.find_unvouched_table()
    }

    /// The log position the committed index reflects.
    pub fn position(&self) -> Result<Option<(u32, u64)>> {
        self.conn
            .query_row("SELECT log, offset FROM position WHERE id = 0", [], |r| {
                Ok((r.get::<_, u32>(0)?, r.get::<_, i64>(1)? as u64))
            })
            .optional()
            .map_err(|e| db_err("reading the log position", e))
    }

    pub fn locate(&self, key: &Key) -> Result<Option<Location>> {
        let mut st = self
            .conn
            .prepare_cached("SELECT log, offset, len FROM blocks WHERE key = ?1")
            .map_err(|e| db_err("looking up a block", e))?;
        st.query_row(params![&key.0[..]], |r| {
            Ok(Location {
                log: r.get(0)?,
                offset: r.get::<_, i64>(1)? as u64,
                len: r.get(2)?,
            })
        })
        .optional()
        .map_err(|e| db_err("looking up a block", e))
    }

    /// Whether a block is indexed: a search of the key's index alone (the row itself, with the
    /// block's location, is not read).
    pub fn contains(&self, key: &Key) -> Result<bool> {
        let mut st = self
            .conn
            .prepare_cached("SELECT 1 FROM blocks WHERE key = ?1")
            .map_err(|e| db_err("looking up a block", e))?;
        st.exists(params![&key.0[..]])
            .map_err(|e| db_err("looking up a block", e))
    }

    /// Records a block; returns false when the key was already indexed (nothing changes).
    pub fn insert_block(&mut self, key: &Key, loc: Location) -> Result<bool> {
        let n = self
            .conn
            .prepare_cached(
                "INSERT OR IGNORE INTO blocks (key, log, offset, len) VALUES (?1, ?2, ?3, ?4)",
            )
            .and_then(|mut st| st.execute(params![&key.0[..], loc.log, loc.offset as i64, loc.len]))
            .map_err(|e| db_err("recording a block", e))?;
        if n > 0 {
            self.account(loc.log, loc.record_len() as i64, 0)?;
        }
        Ok(n > 0)
    }

    /// Moves a block to a new location (compaction); the old space becomes dead.
    pub fn relocate(&mut self, key: &Key, old: Location, new: Location) -> Result<()> {
        self.conn
            .prepare_cached("UPDATE blocks SET log = ?2, offset = ?3 WHERE key = ?1")
            .and_then(|mut st| st.execute(params![&key.0[..], new.log, new.offset as i64]))
            .map_err(|e| db_err("moving a block", e))?;
        self.account(old.log, -(old.record_len() as i64), old.record_len() as i64)?;
        self.account(new.log, new.record_len() as i64, 0)
    }

    /// Takes back [`Index::insert_block`] for a record that was never written (its append
    /// failed): the row goes, and so does the space it was counted for.
    pub fn unrecord_block(&mut self, key: &Key, loc: Location) -> Result<()> {
        self.conn
            .prepare_cached("DELETE FROM blocks WHERE key = ?1")
            .and_then(|mut st| st.execute(params![&key.0[..]]))
            .map_err(|e| db_err("taking back a block", e))?;
        self.account(loc.log, -(loc.record_len() as i64), 0)
    }

    /// Forgets a block; its record's space becomes dead. Returns where it was.
    pub fn remove_block(&mut self, key: &Key) -> Result<Option<Location>> {
        let Some(loc) = self.locate(key)? else {
            return Ok(None);
        };
        self.conn
            .prepare_cached("DELETE FROM blocks WHERE key = ?1")
            .and_then(|mut st| st.execute(params![&key.0[..]]))
            .map_err(|e| db_err("removing a block", e))?;
        let n = loc.record_len() as i64;
        self.account(loc.log, -n, n)?;
        self.set_unvouched(key, false)?;
        Ok(Some(loc))
    }

    /// Adds to a log's live and dead byte counts.
    pub fn account(&mut self, log: u32, live: i64, dead: i64) -> Result<()> {
        let e = self.space.entry(log).or_default();
        e.0 += live;
        e.1 += dead;
        Ok(())
    }

    fn write_space(&mut self) -> Result<()> {
        let mut st = self
            .conn
            .prepare_cached(
                "INSERT INTO logs (log, live, dead) VALUES (?1, ?2, ?3)
                 ON CONFLICT (log) DO UPDATE SET live = live + ?2, dead = dead + ?3",
            )
            .map_err(|e| db_err("counting log space", e))?;
        for (log, (live, dead)) in std::mem::take(&mut self.space) {
            st.execute(params![log, live, dead])
                .map_err(|e| db_err("counting log space", e))?;
        }
        Ok(())
    }

    /// Live and dead bytes per log.
    pub fn log_space(&mut self) -> Result<Vec<(u32, u64, u64)>> {
        self.write_space()?;
        let mut st = self
            .conn
            .prepare("SELECT log, live, dead FROM logs ORDER BY log")
            .map_err(|e| db_err("reading log space", e))?;
        let rows = st
            .query_map([], |r| {
                Ok((
                    r.get(0)?,
                    r.get::<_, i64>(1)?.max(0) as u64,
                    r.get::<_, i64>(2)?.max(0) as u64,
                ))
            })
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(|e| db_err("reading log space", e))?;
        Ok(rows)
    }

    pub fn forget_log(&mut self, log: u32) -> Result<()> {
        self.write_space()?;
        self.conn
            .execute("DELETE FROM logs WHERE log = ?1", params![log])
            .map_err(|e| db_err("forgetting a log", e))?;
        Ok(())
    }

    pub fn list(&self, after: Option<Key>, limit: u32) -> Result<Vec<Key>> {
        let after = after.map(|k| k.0.to_vec()).unwrap_or_default();
        let mut st = self
            .conn
            .prepare_cached("SELECT key FROM blocks WHERE key > ?1 ORDER BY key LIMIT ?2")
            .map_err(|e| db_err("listing blocks", e))?;
        let rows = st
            .query_map(params![after, i64::from(limit)], |r| r.get::<_, Vec<u8>>(0))
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(|e| db_err("listing blocks", e))?;
        Ok(rows.iter().filter_map(|k| Key::from_slice(k)).collect())
    }

    pub fn block_count(&self) -> Result<(u64, u64)> {
        self.conn
            .query_row(
                "SELECT count(*), coalesce(sum(len), 0) FROM blocks",
                [],
                |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)),
            )
            .map_err(|e| db_err("counting blocks", e))
    }

    /// Applies one sound record found in a log (replay after a crash, and reindex).
    pub fn apply(&mut self, log: u32, offset: u64, header: &Header, payload: &[u8]) -> Result<()> {
        let key = Key(header.key);
        match header.kind {
            RecordType::Block => {
                let loc = Location {
                    log,
                    offset,
                    len: header.len,
                };
                if !self.insert_block(&key, loc)? {
                    // A second copy of a stored block (a put replayed after a crash): dead space.
                    self.account(log, 0, loc.record_len() as i64)?;
                }
            }
            RecordType::BlockRemoved => {
                self.remove_block(&key)?;
                self.account(log, header.record_len() as i64, 0)?;
            }
            RecordType::Unvouched | RecordType::Vouched => {
                self.set_unvouched(&key, header.kind == RecordType::Unvouched)?;
                self.account(log, header.record_len() as i64, 0)?;
            }
            RecordType::TagSet
            | RecordType::TagRemoved
            | RecordType::TagKept
            | RecordType::Setting => {
                let (name, value) = parse_named(payload).ok_or_else(|| {
                    Error::backend(
                        ErrorCode::Corrupt,
                        format!(
                            "log {log} offset {offset}: malformed name in a {:?} record",
                            header.kind
                        ),
                    )
                })?;
                match header.kind {
                    RecordType::TagSet => self.set_tag(&name, Some(&value))?,
                    RecordType::TagRemoved => self.set_tag(&name, None)?,
                    RecordType::TagKept => self.keep_tag_value(&name, &value)?,
                    _ => self.set_setting(&name, &String::from_utf8_lossy(&value))?,
                }
                self.account(log, header.record_len() as i64, 0)?;
            }
        }
        Ok(())
    }
}
