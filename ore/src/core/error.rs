//! Errors of the frontend library.
//!
//! Policy: every error names the thing that was wrong — the block (key and kind), the file
//! (path), the argument, or the archive — because a backup tool's errors are read by someone
//! deciding whether their data is safe. Problems with one file during a snapshot or restore are
//! not errors of this type at all: they become warnings and the run goes on.

use protocol::Key;
use std::path::PathBuf;

/// A frontend error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The backend failed or could not be reached.
    #[error(transparent)]
    Backend(#[from] protocol::Error),
    /// No key slot opened with the passphrase given.
    #[error("wrong passphrase: it opens none of the archive's {slots} key slot(s)")]
    WrongPassphrase { slots: usize },
    /// A block failed its checks after it was read.
    #[error("block {key} ({kind}) is corrupt: {why}")]
    Corrupt {
        key: Key,
        kind: &'static str,
        why: String,
    },
    /// A block read as a snapshot or chain link is an archive tag's head (format 4): its tag
    /// is an archive tag, which snapshot commands do not take.
    #[error("{key} is the head of an archive tag, not a snapshot: use `ore search` or `ore import` with its tag")]
    ArchiveHead { key: Key },
    /// The bytes of a file of a catalogue object were never stored: the catalogue records
    /// them by content id only (`ore import --catalogue-only`).
    #[error("its data is not in the archive: it was catalogued, not stored{}; ore search --file finds stored copies", id.map(|k| format!(" (content id {k})")).unwrap_or_default())]
    NotStored { id: Option<Key> },
    /// A dump stream's catalogued file whose content id was made with another archive's keys,
    /// which this archive can neither check nor use (`ore sync` reports its tag as skipped).
    #[error("{0}")]
    ForeignIds(String),
    /// A block that something refers to is not in the archive.
    #[error("block {key} ({kind}) is missing from the archive")]
    Missing { key: Key, kind: &'static str },
    /// The archive is not an Ore archive, is not initialised, or is of an unknown format.
    #[error("{0}")]
    Archive(String),
    /// A file or directory on this machine. (Causes are part of the message and not also a
    /// `source` here and below, so an error chain printed whole does not say them twice.)
    #[error("{}: {cause}", path.display())]
    Io {
        path: PathBuf,
        cause: std::io::Error,
    },
    /// Bad input from the command line or the config file.
    #[error("{0}")]
    Usage(String),
    /// A compare-and-swap lost: another run changed a tag (or the reflog) this one meant to
    /// change, and nothing was changed. Running the command again decides afresh.
    #[error("{0}")]
    Conflict(String),
    /// Work stopped because another part of the same run failed (that error is reported).
    #[error("stopped because of an earlier error")]
    Stopped,
    /// Something on this machine other than a named file: temporary storage, a local database.
    #[error("{0}")]
    Local(String),
    /// The local file cache.
    #[error("file cache {}: {cause}", path.display())]
    Cache {
        path: PathBuf,
        cause: rusqlite::Error,
    },
}

/// An error met while walking a snapshot's directories, with what was being read when it was
/// met ("reading directory `a/b`", and for a walk of many snapshots which one), so that a
/// damaged or crafted directory is named by its path as well as its block. `None` when the
/// error names its place itself (a directory too deep to enter names its path).
#[derive(Debug)]
pub struct WalkError {
    pub reading: Option<String>,
    pub error: Error,
}

impl std::fmt::Display for WalkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.reading {
            Some(r) => write!(f, "{r}: {}", self.error),
            None => write!(f, "{}", self.error),
        }
    }
}

impl std::error::Error for WalkError {}

impl From<Error> for WalkError {
    fn from(error: Error) -> WalkError {
        WalkError {
            reading: None,
            error,
        }
    }
}

/// Result with the frontend's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An I/O error about `path`.
    pub fn io(path: impl Into<PathBuf>, cause: std::io::Error) -> Error {
        Error::Io {
            path: path.into(),
            cause,
        }
    }
}
