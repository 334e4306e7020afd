//! Opening a private sqlite file the way every Ore program does: its directory created, the
//! file created `0600`, a busy timeout so concurrent processes wait rather than fail, and WAL
//! with `synchronous = NORMAL` (a crash may lose the last commits, never corrupt the file).
//! A file in a directory of Ore's own (the frontend's file caches, which hold every path, size
//! and owner saved) is opened with [`open_in_private_dir`]: the directory is kept `0700` and
//! the file and its WAL companions `0600` whatever the umask, set again on every open so that
//! files an older version made are mended.
//!
//! Also the one `meta` table kept beside a file's own tables (name → value: the schema
//! version, counters, remembered tags; text in the proxies, bytes in the file cache), and the
//! batch lookup both proxies answer `exists` with.
//!
//! Errors are this module's own [`Error`] (this crate sits below `protocol`); each says which
//! file, what it is and what was being done, exactly as the proxies always said it.

use rusqlite::types::{FromSql, ToSql};
use rusqlite::{params, Connection, OptionalExtension};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A failed step on a private sqlite file.
///
/// The cause is part of the message and not also a `source`, so that an error chain printed
/// whole (`{:#}`) does not say it twice.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Creating the file or its directory, or making one private, failed.
    #[error("{context}: {cause}")]
    File {
        context: String,
        /// The file or directory the step was on.
        path: PathBuf,
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
    if let Some(dir) = parent(path) {
        std::fs::create_dir_all(dir).map_err(|e| Error::File {
            context: format!("creating the directory of the {what} {}", path.display()),
            path: dir.to_path_buf(),
            cause: e,
        })?;
    }
    create_file(what, path)?;
    configure(what, path, busy)
}

/// Opens (or creates) the sqlite file `path`, a `what`, in a directory of its own program's:
/// the directory (and any it creates above) `0700`, the file and its companions `0600`, both
/// set again on every open. Waits up to `busy` for other processes' locks.
pub fn open_in_private_dir(what: &str, path: &Path, busy: Duration) -> Result<Connection, Error> {
    if let Some(dir) = parent(path) {
        let made = std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .and_then(|()| std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)));
        made.map_err(|e| Error::File {
            context: format!(
                "making the directory of the {what} {} private",
                path.display()
            ),
            path: dir.to_path_buf(),
            cause: e,
        })?;
    }
    create_file(what, path)?;
    for p in companions(path) {
        match std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(Error::File {
                    context: format!("making the {what} {} private", p.display()),
                    path: p,
                    cause: e,
                })
            }
            _ => {}
        }
    }
    configure(what, path, busy)
}

/// A sqlite file and its companions (the write-ahead log and its index), which sqlite
/// creates beside it with the file's permissions.
pub fn companions(path: &Path) -> [PathBuf; 3] {
    ["", "-wal", "-shm"].map(|suffix| {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        PathBuf::from(name)
    })
}

fn parent(path: &Path) -> Option<&Path> {
    path.parent().filter(|d| !d.as_os_str().is_empty())
}

/// Creates `path` `0600` if it does not exist (before sqlite would create it umask-wide).
fn create_file(what: &str, path: &Path) -> Result<(), Error> {
    if path.exists() {
        return Ok(());
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map(drop)
        .map_err(|e| Error::File {
            context: format!("creating the {what} {}", path.display()),
            path: path.to_path_buf(),
            cause: e,
        })
}

/// Opens `path` with the busy timeout `busy`, in WAL mode with `synchronous = NORMAL`.
fn configure(what: &str, path: &Path, busy: Duration) -> Result<Connection, Error> {
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

/// A value from the `meta` table (a `String` for a text value, a `Vec<u8>` for bytes).
pub fn meta<T: FromSql>(conn: &Connection, name: &str) -> rusqlite::Result<Option<T>> {
    conn.query_row("SELECT value FROM meta WHERE name = ?1", [name], |r| {
        r.get(0)
    })
    .optional()
}

/// Sets a value in the `meta` table (text for a `&str`, bytes for a `&[u8]`).
pub fn set_meta(conn: &Connection, name: &str, value: impl ToSql) -> rusqlite::Result<()> {
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
    match meta::<String>(conn, "schema")? {
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
        assert_eq!(meta::<String>(&conn, "n").unwrap().as_deref(), Some("6"));
        assert_eq!(meta::<String>(&conn, "absent").unwrap(), None);
    }

    #[test]
    fn a_file_in_a_private_directory_is_made_private_again_on_every_open() {
        let dir = tempfile::tempdir().unwrap();
        let own = dir.path().join("cache/ore");
        let path = own.join("files.db");
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let conn = open_in_private_dir("file cache", &path, Duration::from_secs(1)).unwrap();
        conn.execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1);")
            .unwrap();
        assert_eq!(mode(&own), 0o700);
        assert_eq!(mode(&dir.path().join("cache")), 0o700);
        let files: Vec<PathBuf> = companions(&path)
            .into_iter()
            .filter(|p| p.exists())
            .collect();
        assert_eq!(files.len(), 3, "the WAL companions exist while it is open");
        // What an older version (or a wide umask) left readable is mended by the next open.
        let wide = std::fs::Permissions::from_mode(0o755);
        std::fs::set_permissions(&own, wide.clone()).unwrap();
        for f in &files {
            std::fs::set_permissions(f, wide.clone()).unwrap();
        }
        let again = open_in_private_dir("file cache", &path, Duration::from_secs(1)).unwrap();
        assert_eq!(mode(&own), 0o700);
        for f in &files {
            assert_eq!(mode(f), 0o600, "{}", f.display());
        }
        drop((conn, again));
    }

    #[test]
    fn a_meta_value_may_be_bytes() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(META_TABLE).unwrap();
        set_meta(&conn, "id", &b"\xffid"[..]).unwrap();
        assert_eq!(
            meta::<Vec<u8>>(&conn, "id").unwrap().as_deref(),
            Some(&b"\xffid"[..])
        );
        set_meta(&conn, "name", "text").unwrap();
        assert_eq!(
            meta::<String>(&conn, "name").unwrap().as_deref(),
            Some("text")
        );
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
