//! The file cache: what this machine already stored, so unchanged files are not read again.
//!
//! One sqlite file per archive (named by the archive's random id) in the user's cache
//! directory. A row per path holds the file's device, inode, size, mtime and ctime, and the
//! directory entry that was stored for it. On the next snapshot a file whose five values are
//! all unchanged reuses that entry without being opened. Rows for a directory are read with one
//! query when the walk enters it.
//!
//! Rows are written in one transaction that is committed only after the backend flushed the
//! blocks they name, so the cache never remembers a block that might not be stored. It also
//! remembers the last snapshot it was written for; when the archive no longer has that
//! snapshot (the archive was rolled back, replaced, or pruned by `gc`), the cache is
//! distrusted: every key it offers is checked with the backend before use.

use crate::entry::Entry;
use crate::error::{Error, Result};
use rusqlite::{params, Connection, OptionalExtension};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The values that must all match for a cached entry to be reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime: i64,
    pub ctime: i64,
}

impl Stamp {
    /// The stamp of a file's metadata.
    pub fn of(st: &crate::fsys::Stat) -> Stamp {
        Stamp {
            dev: st.dev,
            ino: st.ino,
            size: st.size,
            mtime: st.mtime,
            ctime: st.ctime,
        }
    }
}

/// One cached row.
#[derive(Clone, Debug)]
pub struct Cached {
    pub stamp: Stamp,
    pub entry: Entry,
}

fn err(path: &Path) -> impl Fn(rusqlite::Error) -> Error + '_ {
    move |source| Error::Cache {
        path: path.to_path_buf(),
        source,
    }
}

fn connect(path: &Path) -> Result<Connection> {
    let c = Connection::open(path).map_err(err(path))?;
    c.busy_timeout(std::time::Duration::from_secs(60))
        .map_err(err(path))?;
    c.execute_batch(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;
         CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value BLOB);
         CREATE TABLE IF NOT EXISTS files (
            dir BLOB NOT NULL, name BLOB NOT NULL, dev INTEGER NOT NULL, ino INTEGER NOT NULL,
            size INTEGER NOT NULL, mtime INTEGER NOT NULL, ctime INTEGER NOT NULL, entry BLOB NOT NULL,
            PRIMARY KEY (dir, name)) WITHOUT ROWID;",
    )
    .map_err(err(path))?;
    Ok(c)
}

/// The cache file for an archive under `dir`.
pub fn cache_path(dir: &Path, archive_id: &str) -> PathBuf {
    dir.join(format!("files-{archive_id}.db"))
}

/// Where caches live by default: `$XDG_CACHE_HOME/ore` or `~/.cache/ore`.
pub fn default_dir() -> Option<PathBuf> {
    if let Some(x) = std::env::var_os("XDG_CACHE_HOME").filter(|x| !x.is_empty()) {
        return Some(PathBuf::from(x).join("ore"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache").join("ore"))
}

/// Reading side, used by the walk.
pub struct CacheReader {
    path: PathBuf,
    conn: Connection,
}

impl CacheReader {
    /// Opens (creating) the cache at `path`.
    pub fn open(path: &Path) -> Result<CacheReader> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        }
        Ok(CacheReader {
            conn: connect(path)?,
            path: path.to_path_buf(),
        })
    }

    /// A value from the meta table.
    pub fn meta(&self, name: &str) -> Result<Option<Vec<u8>>> {
        self.conn
            .query_row("SELECT value FROM meta WHERE name = ?", [name], |r| {
                r.get(0)
            })
            .optional()
            .map_err(err(&self.path))
    }

    /// Every row of directory `dir` (an absolute path's bytes). Rows that do not decode (an
    /// older or damaged cache) are left out, which only means those files are read again.
    pub fn dir(&self, dir: &[u8]) -> Result<HashMap<Vec<u8>, Cached>> {
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT name, dev, ino, size, mtime, ctime, entry FROM files WHERE dir = ?",
            )
            .map_err(err(&self.path))?;
        let mut rows = st.query([dir]).map_err(err(&self.path))?;
        let mut out = HashMap::new();
        while let Some(r) = rows.next().map_err(err(&self.path))? {
            let name: Vec<u8> = r.get(0).map_err(err(&self.path))?;
            let stamp = Stamp {
                dev: r.get::<_, i64>(1).map_err(err(&self.path))? as u64,
                ino: r.get::<_, i64>(2).map_err(err(&self.path))? as u64,
                size: r.get::<_, i64>(3).map_err(err(&self.path))? as u64,
                mtime: r.get(4).map_err(err(&self.path))?,
                ctime: r.get(5).map_err(err(&self.path))?,
            };
            let blob: Vec<u8> = r.get(6).map_err(err(&self.path))?;
            if let Ok(entry) = postcard::from_bytes::<Entry>(&blob) {
                out.insert(name, Cached { stamp, entry });
            }
        }
        Ok(out)
    }
}

/// Writing side, used when directories are finished; committed after the flush.
pub struct CacheWriter {
    path: PathBuf,
    conn: Connection,
}

impl CacheWriter {
    /// Opens the cache for writing and starts the run's transaction. A cache made for another
    /// archive id is emptied first.
    pub fn open(path: &Path, archive_id: &str) -> Result<CacheWriter> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        }
        let conn = connect(path)?;
        let e = err(path);
        conn.execute_batch("BEGIN IMMEDIATE").map_err(&e)?;
        let stored: Option<Vec<u8>> = conn
            .query_row("SELECT value FROM meta WHERE name = 'archive'", [], |r| {
                r.get(0)
            })
            .optional()
            .map_err(&e)?;
        if stored.as_deref() != Some(archive_id.as_bytes()) {
            conn.execute_batch("DELETE FROM files; DELETE FROM meta;")
                .map_err(&e)?;
            conn.execute(
                "INSERT INTO meta VALUES ('archive', ?)",
                [archive_id.as_bytes()],
            )
            .map_err(&e)?;
        }
        Ok(CacheWriter {
            path: path.to_path_buf(),
            conn,
        })
    }

    /// Records the entry stored for `dir/name`.
    pub fn put(&self, dir: &[u8], name: &[u8], stamp: Stamp, entry: &Entry) -> Result<()> {
        let mut st = self
            .conn
            .prepare_cached("INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
            .map_err(err(&self.path))?;
        st.execute(params![
            dir,
            name,
            stamp.dev as i64,
            stamp.ino as i64,
            stamp.size as i64,
            stamp.mtime,
            stamp.ctime,
            crate::entry::encode(entry)
        ])
        .map_err(err(&self.path))?;
        Ok(())
    }

    /// Forgets `dir/name` and, if it was a directory, everything under it.
    pub fn forget(&self, dir: &[u8], name: &[u8]) -> Result<()> {
        let e = err(&self.path);
        self.conn
            .prepare_cached("DELETE FROM files WHERE dir = ? AND name = ?")
            .map_err(&e)?
            .execute(params![dir, name])
            .map_err(&e)?;
        let mut sub = dir.to_vec();
        if sub.last() != Some(&b'/') {
            sub.push(b'/');
        }
        sub.extend_from_slice(name);
        let mut lo = sub.clone();
        lo.push(b'/');
        let mut hi = sub.clone();
        hi.push(b'/' + 1);
        self.conn
            .prepare_cached("DELETE FROM files WHERE dir = ? OR (dir >= ? AND dir < ?)")
            .map_err(&e)?
            .execute(params![sub, lo, hi])
            .map_err(&e)?;
        Ok(())
    }

    /// Sets a meta value.
    pub fn set_meta(&self, name: &str, value: &[u8]) -> Result<()> {
        self.conn
            .execute(
                "INSERT OR REPLACE INTO meta VALUES (?, ?)",
                params![name, value],
            )
            .map_err(err(&self.path))?;
        Ok(())
    }

    /// Commits the run: call only after the backend flushed.
    pub fn commit(self) -> Result<()> {
        self.conn.execute_batch("COMMIT").map_err(err(&self.path))
    }
}
