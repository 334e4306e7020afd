//! What the file cache's layout added over time, and how a cache made before is brought up
//! to it: marks (schema 3; the module above says what they are) and a `dirs` table with
//! rowids.

use rusqlite::{Connection, OptionalExtension};

/// Which run of trust a directory's rows were checked in (`meta` value `generation`; the
/// module above says how it is used).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Generation(pub [u8; 16]);

impl Generation {
    /// A new generation, which no mark yet has.
    #[allow(clippy::new_without_default)]
    pub fn new() -> Generation {
        Generation(crate::core::crypto::random())
    }

    /// The generation a `meta` value holds, if it is one.
    pub fn from_meta(v: Option<Vec<u8>>) -> Option<Generation> {
        Some(Generation(v?.try_into().ok()?))
    }
}

/// A directory's tree as last stored: the digest of the entries it was built from
/// (`snapshot/walk/same.rs`) and its key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mark {
    pub digest: [u8; 32],
    pub tree: protocol::Key,
}

impl Mark {
    pub(super) fn to_bytes(self) -> [u8; 64] {
        let mut b = [0u8; 64];
        b[..32].copy_from_slice(&self.digest);
        b[32..].copy_from_slice(&self.tree.0);
        b
    }

    /// A mark read back; anything but 64 bytes (a damaged row) is no mark.
    pub(super) fn from_bytes(b: Option<Vec<u8>>) -> Option<Mark> {
        let b: [u8; 64] = b?.try_into().ok()?;
        let (digest, tree) = b.split_at(32);
        Some(Mark {
            digest: digest.try_into().ok()?,
            tree: protocol::Key(tree.try_into().ok()?),
        })
    }
}

/// Moves the rows of a `dirs` table made `WITHOUT ROWID` (before schema 3) into one with
/// rowids, keeping them. In a table without rowids every cell of the B-tree holds a whole row,
/// and sqlite compares a path against a cell whose row overflows its page by reading the whole
/// row: an unchanged re-snapshot of /usr/share read 27,000 pages of a 2,300-page cache, most
/// of them hundreds of times, where with rowids (the paths in an index of their own) it reads
/// 2,300. The columns are the same, so an older `ore` still reads and writes the table.
pub(super) fn with_rowids(conn: &Connection) -> rusqlite::Result<()> {
    let sql: Option<String> = conn
        .query_row(
            "SELECT sql FROM sqlite_master WHERE name = 'dirs'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    if sql.is_some_and(|s| s.to_ascii_uppercase().contains("WITHOUT ROWID")) {
        conn.execute_batch(
            "CREATE TABLE dirs_rowid (path BLOB PRIMARY KEY, entries BLOB NOT NULL);
             INSERT INTO dirs_rowid SELECT path, entries FROM dirs;
             DROP TABLE dirs;
             ALTER TABLE dirs_rowid RENAME TO dirs;",
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mark_reads_back_as_written_and_a_damaged_one_is_no_mark() {
        let m = Mark {
            digest: [7; 32],
            tree: protocol::Key([9; 32]),
        };
        assert_eq!(Mark::from_bytes(Some(m.to_bytes().to_vec())), Some(m));
        assert_eq!(Mark::from_bytes(Some(m.to_bytes()[..63].to_vec())), None);
        assert_eq!(Mark::from_bytes(None), None);
    }

    #[test]
    fn a_table_without_rowids_keeps_its_rows_when_given_rowids() {
        let c = Connection::open_in_memory().expect("sqlite");
        c.execute_batch(
            "CREATE TABLE dirs (path BLOB PRIMARY KEY, entries BLOB NOT NULL) WITHOUT ROWID;
             INSERT INTO dirs VALUES (x'2f61', x'01'), (x'2f62', x'0203');",
        )
        .expect("old table");
        with_rowids(&c).expect("moved");
        with_rowids(&c).expect("a second time does nothing");
        let sql: String = c
            .query_row(
                "SELECT sql FROM sqlite_master WHERE name = 'dirs'",
                [],
                |r| r.get(0),
            )
            .expect("table");
        assert!(!sql.to_ascii_uppercase().contains("WITHOUT ROWID"), "{sql}");
        let rows: Vec<(Vec<u8>, Vec<u8>)> = c
            .prepare("SELECT path, entries FROM dirs ORDER BY path")
            .and_then(|mut st| {
                st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<rusqlite::Result<_>>()
            })
            .expect("rows");
        assert_eq!(
            rows,
            vec![(b"/a".to_vec(), vec![1]), (b"/b".to_vec(), vec![2, 3])]
        );
    }

    #[test]
    fn a_mark_is_trusted_only_in_its_generation_and_not_after_an_older_ore_used_the_cache() {
        use crate::core::filecache::{CacheReader, CacheWriter};
        let d = tempfile::tempdir().expect("tmp");
        let path = d.path().join("files-x.db");
        let mark = Mark {
            digest: [1; 32],
            tree: protocol::Key([2; 32]),
        };
        let g = Generation::new();
        let w = CacheWriter::open(&path, "x").expect("writer");
        let w = w.begin_generation(g).expect("generation");
        w.put_dir(b"/d", &[]).expect("row");
        w.put_mark(b"/d", mark).expect("mark");
        w.commit().expect("commit");
        let read = |trusted: Option<&Generation>| {
            let r = CacheReader::open(&path).expect("reader");
            r.dir(b"/d", trusted).expect("dir").1
        };
        assert_eq!(read(Some(&g)), Some(mark));
        assert_eq!(read(Some(&Generation::new())), None, "another generation");
        assert_eq!(read(None), None, "no generation trusted");
        // An older `ore` sets the schema it knows (and may change the rows meanwhile).
        let c = Connection::open(&path).expect("sqlite");
        c.execute("UPDATE meta SET value = x'32' WHERE name = 'schema'", [])
            .expect("schema 2");
        drop(c);
        assert_eq!(read(Some(&g)), None);
        CacheWriter::open(&path, "x")
            .expect("writer")
            .commit()
            .expect("commit");
        assert_eq!(read(Some(&g)), None);
    }
}
