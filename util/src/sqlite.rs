//! Opening a private sqlite file the way every Ore program does: its directory created, the
//! file created `0600`, a busy timeout so concurrent processes wait rather than fail, and WAL
//! with `synchronous = NORMAL` (a crash may lose the last commits, never corrupt the file).
//!
//! Also the one `meta` table both proxies keep beside their own tables (name → text value: the
//! schema version, counters, remembered tags), and the batch lookup both answer `exists` with.
//!
//! Errors are this module's own [`Error`] (this crate sits below `protocol`); each says which
//! file, what it is and what was being done, exactly as the proxies always said it.

use rusqlite::{params, Connection, OptionalExtension};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A failed step on a private sqlite file.
///
/// The cause is part of the message and not also a `source`, so that an error chain printed
/// whole (`{:#}`) does not say it twice.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Creating the file or its directory failed.
    #[error("{context}: {cause}")]
    File {
        context: String,
        cause: std::io::Error,
    },
    /// sqlite refused a step.
    #[error("{what} {}: {context}: {cause}", path.display())]
    Sqlite {
        what: String,
        path: PathBuf,
        context: String,
        cause: Box<rusqlite::Error>,
    },
}

/// The error for a failed sqlite step on the file `path`, which is a `what` ("cache
/// database", "replication state").
pub fn error(what: &str, path: &Path, context: &str, e: rusqlite::Error) -> Error {
    Error::Sqlite {
        what: what.to_string(),
        path: path.to_path_buf(),
        context: context.to_string(),
        cause: Box::new(e),
    }
}

/// Opens (or creates) the sqlite file `path`, a `what`, waiting up to `busy` for other
/// processes' locks.
pub fn open_private(what: &str, path: &Path, busy: Duration) -> Result<Connection, Error> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::File {
            context: format!("creating the directory of the {what} {}", path.display()),
            cause: e,
        })?;
    }
    if !path.exists() {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(|e| Error::File {
                context: format!("creating the {what} {}", path.display()),
                cause: e,
            })?;
    }
    let err = |c: &str, e| error(what, path, c, e);
    let conn = Connection::open(path).map_err(|e| err("opening it", e))?;
    conn.busy_timeout(busy)
        .map_err(|e| err("setting it up", e))?;
    conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;")
        .map_err(|e| err("setting it up", e))?;
    Ok(conn)
}

/// The `meta` table, for a file's `CREATE TABLE` statements.
pub const META_TABLE: &str =
    "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;";

/// A value from the `meta` table.
pub fn meta(conn: &Connection, name: &str) -> rusqlite::Result<Option<String>> {
    conn.query_row("SELECT value FROM meta WHERE name = ?1", [name], |r| {
        r.get(0)
    })
    .optional()
}

/// Sets a value in the `meta` table.
pub fn set_meta(conn: &Connection, name: &str, value: &str) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO meta (name, value) VALUES (?1, ?2)
         ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        params![name, value],
    )
    .map(drop)
}

/// What a file's recorded schema version (`meta` row `schema`) says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Schema {
    /// None was recorded (a new file): `version` is recorded now.
    New,
    /// The file is of `version`.
    Same,
    /// The file was made by another version of its program, which recorded this one.
    Other(String),
}

/// Compares the file's schema version with `version`, recording it in a new file.
pub fn schema(conn: &Connection, version: &str) -> rusqlite::Result<Schema> {
    match meta(conn, "schema")? {
        None => {
            set_meta(conn, "schema", version)?;
            Ok(Schema::New)
        }
        Some(v) if v == version => Ok(Schema::Same),
        Some(other) => Ok(Schema::Other(other)),
    }
}

/// For each key, whether the query `sql` (one parameter, the key; one boolean column) says
/// yes; the whole batch in one read transaction rather than one per key.
pub fn each_in_one_read(
    conn: &Connection,
    sql: &str,
    keys: &[&[u8]],
) -> rusqlite::Result<Vec<bool>> {
    let tx = conn.unchecked_transaction()?;
    let answers = {
        let mut q = tx.prepare_cached(sql)?;
        keys.iter()
            .map(|k| q.query_row([k], |r| r.get::<_, bool>(0)))
            .collect::<rusqlite::Result<Vec<bool>>>()?
    };
    tx.commit()?;
    Ok(answers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_private_file_is_created_0600_in_a_new_directory_and_keeps_its_meta() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/state.db");
        let conn = open_private("test file", &path, Duration::from_secs(1)).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        conn.execute_batch(META_TABLE).unwrap();
        assert_eq!(schema(&conn, "1").unwrap(), Schema::New);
        assert_eq!(schema(&conn, "1").unwrap(), Schema::Same);
        assert_eq!(schema(&conn, "2").unwrap(), Schema::Other("1".into()));
        set_meta(&conn, "n", "5").unwrap();
        set_meta(&conn, "n", "6").unwrap();
        assert_eq!(meta(&conn, "n").unwrap().as_deref(), Some("6"));
        assert_eq!(meta(&conn, "absent").unwrap(), None);
    }

    #[test]
    fn an_error_names_the_file_what_it_is_and_the_step() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("not-a-dir"), b"").unwrap();
        let path = dir.path().join("not-a-dir/state.db");
        let e = open_private("cache database", &path, Duration::from_secs(1)).unwrap_err();
        let shown = e.to_string();
        assert!(
            shown.starts_with(&format!(
                "creating the directory of the cache database {}: ",
                path.display()
            )),
            "{shown}"
        );
        let path = dir.path().join("garbage.db");
        std::fs::write(&path, vec![7u8; 4096]).unwrap();
        let conn = open_private("cache database", &path, Duration::from_secs(1));
        let e = match conn {
            Err(e) => e,
            Ok(c) => c
                .execute_batch(META_TABLE)
                .map_err(|e| error("cache database", &path, "creating the tables", e))
                .unwrap_err(),
        };
        assert!(
            e.to_string()
                .starts_with(&format!("cache database {}: ", path.display())),
            "{e}"
        );
    }

    #[test]
    fn a_batch_lookup_answers_each_key_in_order() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (key BLOB PRIMARY KEY)")
            .unwrap();
        conn.execute("INSERT INTO t (key) VALUES (?1)", [&b"b"[..]])
            .unwrap();
        let sql = "SELECT EXISTS (SELECT 1 FROM t WHERE key = ?1)";
        let keys: [&[u8]; 3] = [b"a", b"b", b"c"];
        assert_eq!(
            each_in_one_read(&conn, sql, &keys).unwrap(),
            [false, true, false]
        );
    }
}
