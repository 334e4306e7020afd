//! Opening a private sqlite file the way every Ore program does: its directory created, the
//! file created `0600`, a busy timeout so concurrent processes wait rather than fail, and WAL
//! with `synchronous = NORMAL` (a crash may lose the last commits, never corrupt the file).

use protocol::{Error, ErrorCode, Result};
use rusqlite::Connection;
use std::path::Path;
use std::time::Duration;

/// The error for a failed sqlite step on the file `path`, which is a `what` ("cache
/// database", "replication state").
pub fn error(what: &str, path: &Path, context: &str, e: rusqlite::Error) -> Error {
    Error::backend(
        ErrorCode::Io,
        format!("{what} {}: {context}: {e}", path.display()),
    )
}

/// Opens (or creates) the sqlite file `path`, a `what`, waiting up to `busy` for other
/// processes' locks.
pub fn open_private(what: &str, path: &Path, busy: Duration) -> Result<Connection> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| {
            Error::io(
                format!("creating the directory of the {what} {}", path.display()),
                e,
            )
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
            .map_err(|e| Error::io(format!("creating the {what} {}", path.display()), e))?;
    }
    let err = |c: &str, e| error(what, path, c, e);
    let conn = Connection::open(path).map_err(|e| err("opening it", e))?;
    conn.busy_timeout(busy)
        .map_err(|e| err("setting it up", e))?;
    conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;")
        .map_err(|e| err("setting it up", e))?;
    Ok(conn)
}
