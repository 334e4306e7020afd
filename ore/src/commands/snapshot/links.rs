//! The inodes with several names that the walk has met, and where it first met each.
//!
//! A file with more than one name is saved once, under the first name the walk meets; its other
//! names are saved as hard links to that one. So the walk remembers, for each such inode, the
//! first name and how many names are still to come, and forgets the inode at its last name.
//! Most groups close within the tree, but an inode whose other names are outside the snapshot
//! never closes: snapshotting one of several `cp -al` copies of a tree keeps every file's
//! inode open to the end. Memory must not grow with that, so past [`IN_MEMORY`] open groups
//! the rest go to a private temporary sqlite database, which lives on disk (sqlite's temporary
//! directory) and is gone when the snapshot ends.

use crate::core::error::{Error, Result};
use rusqlite::{params, Connection, OptionalExtension};
use std::collections::HashMap;

/// Open groups kept in memory (about 150 bytes each) before the rest go to disk.
const IN_MEMORY: usize = 65_536;

/// An inode: device and inode number.
type Inode = (u64, u64);

/// Open groups of names of one inode (see the module documentation).
pub struct Links {
    /// The first name met and how many names are still to come, by inode.
    memory: HashMap<Inode, (Vec<u8>, u64)>,
    limit: usize,
    /// The groups that did not fit in memory; opened when the first one does not.
    disk: Option<Connection>,
}

/// What the walk is to do with a name of an inode with several names.
#[derive(Debug, PartialEq, Eq)]
pub enum Met {
    /// The first name met: save the file's contents.
    First,
    /// A later name: a hard link to the first one, `target`.
    Again { target: Vec<u8> },
}

impl Default for Links {
    fn default() -> Self {
        Links::with_limit(IN_MEMORY)
    }
}

impl Links {
    /// Links keeping at most `limit` open groups in memory.
    pub fn with_limit(limit: usize) -> Links {
        Links {
            memory: HashMap::new(),
            limit,
            disk: None,
        }
    }

    /// Records that `name` of `inode` (which has `nlink` names) was met, and says whether it is
    /// the first name or a later one.
    pub fn meet(&mut self, inode: Inode, name: &[u8], nlink: u64) -> Result<Met> {
        if let Some((target, unseen)) = self.memory.get_mut(&inode) {
            *unseen = unseen.saturating_sub(1);
            let target = if *unseen == 0 {
                self.memory
                    .remove(&inode)
                    .map(|(t, _)| t)
                    .unwrap_or_default()
            } else {
                target.clone()
            };
            return Ok(Met::Again { target });
        }
        if let Some(db) = &self.disk {
            if let Some(target) = met_on_disk(db, inode)? {
                return Ok(Met::Again { target });
            }
        }
        let unseen = nlink.saturating_sub(1);
        if self.memory.len() < self.limit {
            self.memory.insert(inode, (name.to_vec(), unseen));
        } else {
            let db = match &mut self.disk {
                Some(db) => db,
                None => self.disk.insert(open_disk()?),
            };
            db.prepare_cached("INSERT OR REPLACE INTO links VALUES (?1, ?2, ?3, ?4)")
                .and_then(|mut s| {
                    s.execute(params![inode.0 as i64, inode.1 as i64, name, unseen as i64])
                })
                .map_err(local)?;
        }
        Ok(Met::First)
    }

    /// How many groups are open (in memory and on disk).
    #[cfg(test)]
    fn open_groups(&self) -> usize {
        let on_disk: i64 = self.disk.as_ref().map_or(0, |db| {
            db.query_row("SELECT count(*) FROM links", [], |r| r.get(0))
                .unwrap_or(0)
        });
        self.memory.len() + on_disk as usize
    }
}

/// A later name of an inode kept on disk: its target, the group closed at its last name.
fn met_on_disk(db: &Connection, inode: Inode) -> Result<Option<Vec<u8>>> {
    let (dev, ino) = (inode.0 as i64, inode.1 as i64);
    let found: Option<(Vec<u8>, i64)> = db
        .prepare_cached("SELECT target, unseen FROM links WHERE dev = ?1 AND ino = ?2")
        .and_then(|mut s| {
            s.query_row(params![dev, ino], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
        })
        .map_err(local)?;
    let Some((target, unseen)) = found else {
        return Ok(None);
    };
    let sql = if unseen <= 1 {
        "DELETE FROM links WHERE dev = ?1 AND ino = ?2"
    } else {
        "UPDATE links SET unseen = unseen - 1 WHERE dev = ?1 AND ino = ?2"
    };
    db.prepare_cached(sql)
        .and_then(|mut s| s.execute(params![dev, ino]))
        .map_err(local)?;
    Ok(Some(target))
}

/// A private temporary database: sqlite keeps it in its temporary directory and deletes it
/// when the connection closes.
fn open_disk() -> Result<Connection> {
    let db = Connection::open("").map_err(local)?;
    db.execute_batch(
        "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;
         CREATE TABLE links (dev INTEGER, ino INTEGER, target BLOB NOT NULL,
                             unseen INTEGER NOT NULL, PRIMARY KEY (dev, ino)) WITHOUT ROWID;",
    )
    .map_err(local)?;
    Ok(db)
}

fn local(e: rusqlite::Error) -> Error {
    Error::Local(format!("the temporary list of hard links: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same answers whether a group is in memory or on disk.
    #[test]
    fn groups_close_at_their_last_name_in_memory_and_on_disk() {
        for limit in [IN_MEMORY, 2, 0] {
            let mut l = Links::with_limit(limit);
            let again = |t: &str| Met::Again {
                target: t.as_bytes().to_vec(),
            };
            // Three names of inode 1, two of inode 2, and inode 3 whose other name is elsewhere.
            assert_eq!(l.meet((9, 1), b"a/one", 3).unwrap(), Met::First);
            assert_eq!(l.meet((9, 2), b"a/two", 2).unwrap(), Met::First);
            assert_eq!(l.meet((9, 3), b"a/three", 2).unwrap(), Met::First);
            assert_eq!(l.open_groups(), 3, "limit {limit}");
            assert_eq!(l.meet((9, 1), b"b/one", 3).unwrap(), again("a/one"));
            assert_eq!(l.meet((9, 2), b"b/two", 2).unwrap(), again("a/two"));
            assert_eq!(l.open_groups(), 2, "limit {limit}");
            assert_eq!(l.meet((9, 1), b"c/one", 3).unwrap(), again("a/one"));
            // Closed groups are forgotten; only the one with a name outside stays open.
            assert_eq!(l.open_groups(), 1, "limit {limit}");
            // The same inode number on another device is another file.
            assert_eq!(l.meet((8, 1), b"d/one", 2).unwrap(), Met::First);
            assert_eq!(l.meet((8, 1), b"e/one", 2).unwrap(), again("d/one"));
            assert_eq!(l.disk.is_some(), limit < 3, "limit {limit}");
        }
    }

    #[test]
    fn memory_holds_at_most_the_limit() {
        let mut l = Links::with_limit(100);
        for ino in 0..1000 {
            let name = format!("dir/file-{ino}");
            assert_eq!(l.meet((1, ino), name.as_bytes(), 2).unwrap(), Met::First);
        }
        assert_eq!(l.memory.len(), 100);
        assert_eq!(l.open_groups(), 1000);
        for ino in (0..1000).rev() {
            let want = format!("dir/file-{ino}").into_bytes();
            assert_eq!(
                l.meet((1, ino), b"other", 2).unwrap(),
                Met::Again { target: want }
            );
        }
        assert_eq!(l.open_groups(), 0);
    }
}
