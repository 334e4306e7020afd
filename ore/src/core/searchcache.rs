//! The search cache: a local copy of archive tags' indexes, which `ore search` reads instead
//! of the archive.
//!
//! Why: a search of a large index is bound by block reads. On a million objects, one
//! equality term that finds a thousand of them reads a thousand leaves, nearly one per hit,
//! for their summaries, and each read is a backend request, a decryption and a decompression.
//! The same entries in a local B-tree are a thousand row look-ups.
//!
//! What: one sqlite file per archive, `search-ID.db` beside the file cache, holding for each
//! archive tag that was searched the entries of its index (`entries`: tag, key, value, in key
//! order, as the index holds them) and the root they are a copy of (`tags`). A search reads
//! the copy through [`crate::core::index::Entries`], the same way it reads the index, so one
//! evaluation serves both and the copy can only give the index's own answers.
//!
//! Never trusted over the archive: before each search the copy is brought to the tag's
//! current root. From the root it holds, that is [`crate::core::index::diff`], which reads
//! only the nodes the two roots do not share (a few dozen after one import, whatever the
//! index's size); without one, or when the old root's nodes are gone from the archive (a `gc`
//! after the tag moved on), the copy is made again from every entry. Either way the count of
//! entries it then holds must be the count the root states, or it is made again from nothing,
//! and an index that still disagrees is reported as damaged. The root and the entries change
//! in one transaction, so a run stopped midway leaves the copy it had. A search reads its
//! copy inside one read transaction, so another process bringing the copy to another root at
//! the same time cannot change what it sees. What forgets objects (`ore forget` on an archive
//! tag) never reads the copy: it decides from the archive's index alone.
//!
//! The copy holds every property of every object, so it is kept as private as the file cache
//! (`ore_util::sqlite::open_in_private_dir`). `ore cache list` and `ore cache prune` list and
//! remove it with the file caches.

use crate::core::error::{Error, Result};
use crate::core::index::{diff, Delta, Entries, Root};
use crate::core::repo::Repo;
use ore_util::sqlite;
use protocol::Key;
use rusqlite::{params, Connection, OptionalExtension};
use std::path::{Path, PathBuf};

/// The layout of the file; a file of another version is emptied.
pub const SCHEMA: &[u8] = b"1";

/// The search cache file for an archive under `dir`.
pub fn cache_path(dir: &Path, archive_id: &str) -> PathBuf {
    dir.join(format!("search-{archive_id}.db"))
}

fn err(path: &Path) -> impl Fn(rusqlite::Error) -> Error + '_ {
    move |cause| Error::Cache {
        path: path.to_path_buf(),
        cause,
    }
}

/// An open search cache.
pub struct SearchCache {
    path: PathBuf,
    conn: Connection,
}

/// How a copy was brought to its root.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Refreshed {
    /// The copy already had that root.
    pub current: bool,
    /// It was made again from every entry (none was, or the old root could not be compared).
    pub remade: bool,
    /// Index nodes read, and entries added, changed and removed.
    pub nodes: u64,
    pub added: u64,
    pub changed: u64,
    pub removed: u64,
}

impl std::fmt::Display for Refreshed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.current {
            return write!(f, "current");
        }
        let how = if self.remade {
            "made again"
        } else {
            "brought up to date"
        };
        write!(
            f,
            "{how}: {} index nodes read, {} entries added, {} changed, {} removed",
            self.nodes, self.added, self.changed, self.removed
        )
    }
}

impl SearchCache {
    /// Opens (creating) the search cache at `path` for the archive `archive_id`; a file made
    /// for another archive or another layout is emptied.
    pub fn open(path: &Path, archive_id: &str) -> Result<SearchCache> {
        let conn =
            sqlite::open_in_private_dir("search cache", path, std::time::Duration::from_secs(60))
                .map_err(crate::core::filecache::opening)?;
        let e = err(path);
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value BLOB);
             CREATE TABLE IF NOT EXISTS tags (name TEXT PRIMARY KEY, id INTEGER NOT NULL UNIQUE,
                 node BLOB, level INTEGER NOT NULL, count INTEGER NOT NULL);
             CREATE TABLE IF NOT EXISTS entries (tag INTEGER NOT NULL, k BLOB NOT NULL,
                 v BLOB NOT NULL, PRIMARY KEY (tag, k)) WITHOUT ROWID;
             BEGIN IMMEDIATE;",
        )
        .map_err(&e)?;
        let stored: Option<Vec<u8>> = sqlite::meta(&conn, "archive").map_err(&e)?;
        let schema: Option<Vec<u8>> = sqlite::meta(&conn, "schema").map_err(&e)?;
        if stored.as_deref() != Some(archive_id.as_bytes()) || schema.as_deref() != Some(SCHEMA) {
            conn.execute_batch("DELETE FROM entries; DELETE FROM tags; DELETE FROM meta;")
                .map_err(&e)?;
            sqlite::set_meta(&conn, "archive", archive_id.as_bytes()).map_err(&e)?;
            sqlite::set_meta(&conn, "schema", SCHEMA).map_err(&e)?;
        }
        conn.execute_batch("COMMIT").map_err(&e)?;
        Ok(SearchCache {
            path: path.to_path_buf(),
            conn,
        })
    }

    /// Brings the copy of tag `tag` to the index at `root` (`None`: empty), and gives it for
    /// reading, with how it was brought there.
    pub fn refresh(self, repo: &Repo, tag: &str, root: Option<&Root>) -> Result<(Copy, Refreshed)> {
        let path = self.path.clone();
        let e = err(&path);
        // Another process may bring the copy to another root between this one's commit and
        // its read (a search of an older head, say): then it is brought here again.
        for _ in 0..3 {
            self.conn.execute_batch("BEGIN IMMEDIATE").map_err(&e)?;
            let done = self.bring(repo, tag, root).and_then(|d| {
                self.conn.execute_batch("COMMIT").map_err(&e)?;
                Ok(d)
            });
            let (id, how) = match done {
                Ok(d) => d,
                Err(x) => {
                    let _ = self.conn.execute_batch("ROLLBACK");
                    return Err(x);
                }
            };
            // Read inside one transaction, and only the root asked for.
            self.conn.execute_batch("BEGIN").map_err(&e)?;
            if self.root_of(tag)?.map(|(_, r)| r) == Some(Some(root.cloned())) {
                let copy = Copy {
                    path: self.path,
                    conn: self.conn,
                    tag: id,
                };
                return Ok((copy, how));
            }
            self.conn.execute_batch("ROLLBACK").map_err(&e)?;
        }
        Err(Error::Usage(format!(
            "the search cache {} was changed by other processes while it was read, three times: search again, or with --no-cache",
            path.display()
        )))
    }

    /// The id of `tag`'s copy and the root it holds (`None` inside: a root that does not
    /// read, so the copy is made again), if there is a copy.
    fn root_of(&self, tag: &str) -> Result<Option<(i64, Option<Option<Root>>)>> {
        let e = err(&self.path);
        let row: Option<(i64, Option<Vec<u8>>, u8, u64)> = self
            .conn
            .query_row(
                "SELECT id, node, level, count FROM tags WHERE name = ?1",
                [tag],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()
            .map_err(&e)?;
        let Some((id, node, level, count)) = row else {
            return Ok(None);
        };
        let root = match node {
            None => Some(None),
            Some(n) => <[u8; 32]>::try_from(n).ok().map(|n| {
                Some(Root {
                    node: Key(n),
                    level,
                    count,
                })
            }),
        };
        Ok(Some((id, root)))
    }

    fn damaged(&self, why: &str) -> Error {
        Error::Archive(format!(
            "the search cache {} is damaged ({why}): remove it, and the next search makes it again",
            self.path.display()
        ))
    }

    /// Inside a write transaction: brings `tag`'s copy to `root`; its id.
    fn bring(&self, repo: &Repo, tag: &str, root: Option<&Root>) -> Result<(i64, Refreshed)> {
        let e = err(&self.path);
        let (id, old) = match self.root_of(tag)? {
            Some((id, Some(old))) if old.as_ref() == root => {
                let current = Refreshed {
                    current: true,
                    ..Refreshed::default()
                };
                return Ok((id, current));
            }
            Some((id, old)) => (id, old.flatten()),
            None => {
                let id: i64 = self
                    .conn
                    .query_row("SELECT coalesce(max(id), 0) + 1 FROM tags", [], |r| {
                        r.get(0)
                    })
                    .map_err(&e)?;
                self.conn
                    .execute(
                        "INSERT INTO tags (name, id, node, level, count) VALUES (?1, ?2, NULL, 0, 0)",
                        params![tag, id],
                    )
                    .map_err(&e)?;
                (id, None)
            }
        };
        let want = root.map_or(0, |r| r.count);
        let mut how = None;
        if let Some(had) = &old {
            // From the root the copy holds; undone whole if it cannot be finished (the old
            // root's nodes are gone, or the copy does not hold what that root does).
            self.conn.execute_batch("SAVEPOINT step").map_err(&e)?;
            match self.apply(repo, id, old.as_ref(), root) {
                Ok(h)
                    if (had.count.checked_add(h.added)).and_then(|n| n.checked_sub(h.removed))
                        == Some(want) =>
                {
                    self.conn.execute_batch("RELEASE step").map_err(&e)?;
                    how = Some(h);
                }
                _ => self
                    .conn
                    .execute_batch("ROLLBACK TO step; RELEASE step")
                    .map_err(&e)?,
            }
        }
        let how = match how {
            Some(h) => h,
            None => {
                self.conn
                    .execute("DELETE FROM entries WHERE tag = ?1", [id])
                    .map_err(&e)?;
                let h = self.apply(repo, id, None, root)?;
                if h.added != want {
                    return Err(Error::Archive(format!(
                        "the index of archive tag {tag} says it holds {want} entries, but {} were read from it: run `ore check`",
                        h.added
                    )));
                }
                Refreshed { remade: true, ..h }
            }
        };
        let node = root.map(|r| r.node.0.to_vec());
        self.conn
            .execute(
                "UPDATE tags SET node = ?1, level = ?2, count = ?3 WHERE id = ?4",
                params![node, root.map_or(0, |r| r.level), want, id],
            )
            .map_err(&e)?;
        Ok((id, how))
    }

    /// Applies to copy `id` what differs from the index at `old` to the one at `new`. Each
    /// row must be as the old index has it: a key added must be new to the copy, and one
    /// changed or removed must be in it, or the copy is not a copy of `old`.
    fn apply(
        &self,
        repo: &Repo,
        id: i64,
        old: Option<&Root>,
        new: Option<&Root>,
    ) -> Result<Refreshed> {
        let e = err(&self.path);
        let mut add = self
            .conn
            .prepare_cached("INSERT INTO entries (tag, k, v) VALUES (?1, ?2, ?3)")
            .map_err(&e)?;
        let mut change = self
            .conn
            .prepare_cached("UPDATE entries SET v = ?3 WHERE tag = ?1 AND k = ?2")
            .map_err(&e)?;
        let mut remove = self
            .conn
            .prepare_cached("DELETE FROM entries WHERE tag = ?1 AND k = ?2")
            .map_err(&e)?;
        let mut how = Refreshed::default();
        let stats = diff(repo, old, new, &mut |d| {
            let rows = match d {
                Delta::Added(k, v) => {
                    how.added += 1;
                    add.execute(params![id, k, v])
                }
                Delta::Changed(k, v) => {
                    how.changed += 1;
                    change.execute(params![id, k, v])
                }
                Delta::Removed(k) => {
                    how.removed += 1;
                    remove.execute(params![id, k])
                }
            };
            match rows {
                Ok(1) => Ok(()),
                Ok(_) => Err(self.damaged("a row it should hold is missing")),
                Err(x) => Err(e(x)),
            }
        })?;
        how.nodes = stats.old_nodes + stats.new_nodes;
        Ok(how)
    }
}

/// A tag's copy, brought to the root asked for, read inside one transaction.
pub struct Copy {
    path: PathBuf,
    conn: Connection,
    tag: i64,
}

impl Entries for Copy {
    fn scan(&self, from: &[u8], each: &mut dyn FnMut(&[u8], &[u8]) -> bool) -> Result<()> {
        let e = err(&self.path);
        let mut st = self
            .conn
            .prepare_cached("SELECT k, v FROM entries WHERE tag = ?1 AND k >= ?2 ORDER BY k")
            .map_err(&e)?;
        let mut rows = st.query(params![self.tag, from]).map_err(&e)?;
        while let Some(row) = rows.next().map_err(&e)? {
            let k = row.get_ref(0).and_then(|v| Ok(v.as_blob()?)).map_err(&e)?;
            let v = row.get_ref(1).and_then(|v| Ok(v.as_blob()?)).map_err(&e)?;
            if !each(k, v) {
                break;
            }
        }
        Ok(())
    }

    fn get_many(&self, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>> {
        let e = err(&self.path);
        let mut st = self
            .conn
            .prepare_cached("SELECT v FROM entries WHERE tag = ?1 AND k = ?2")
            .map_err(&e)?;
        keys.iter()
            .map(|k| {
                st.query_row(params![self.tag, k], |r| r.get(0))
                    .optional()
                    .map_err(&e)
            })
            .collect()
    }
}
