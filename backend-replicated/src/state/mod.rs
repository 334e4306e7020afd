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

mod copies;
mod damage;
mod members;
mod tags;

use ore_util::sqlite::{self, Schema};
use protocol::{Error, ErrorCode, Key, Result};
use rusqlite::Connection;
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
        let conn = sqlite::open_private(
            "replication state",
            path,
            std::time::Duration::from_secs(60),
        )
        .map_err(io_err)?;
        let s = State {
            conn,
            path: path.to_path_buf(),
        };
        let schema = format!("{SCHEMA}{}", sqlite::META_TABLE);
        s.conn.execute_batch(&schema).map_err(|e| {
            s.err(
                "creating the tables (is it a replicated backend's state?)",
                e,
            )
        })?;
        let schema = sqlite::schema(&s.conn, SCHEMA_VERSION);
        match schema.map_err(|e| s.err("reading a setting", e))? {
            Schema::New | Schema::Same => {}
            Schema::Other(other) => {
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
        sqlite::meta(&self.conn, name).map_err(|e| self.err("reading a setting", e))
    }

    pub fn set_meta(&self, name: &str, value: &str) -> Result<()> {
        sqlite::set_meta(&self.conn, name, value).map_err(|e| self.err("writing a setting", e))
    }

    /// Makes everything committed so far durable (the WAL is synced into the database).
    pub fn sync(&self) -> Result<()> {
        self.conn
            .query_row("PRAGMA wal_checkpoint(FULL)", [], |_| Ok(()))
            .map_err(|e| self.err("syncing it", e))
    }
}

fn db_err(path: &Path, context: &str, e: rusqlite::Error) -> Error {
    io_err(sqlite::error("replication state", path, context, e))
}

fn io_err(e: sqlite::Error) -> Error {
    Error::backend(ErrorCode::Io, e.to_string())
}
