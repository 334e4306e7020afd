//! `ore cache list|prune`: the caches this machine keeps for each archive (its file cache,
//! its catalogue cache and its search cache).
//!
//! A cache is named by its archive's random id and remembers the identifier it was last used
//! with (see `ore::core::filecache`). An archive is gone when that identifier now leads nowhere (a
//! directory that no longer exists) or to an archive with another id (it was replaced). An
//! archive that cannot be reached at all (a host that is down) is not taken for gone: its cache
//! is kept, and so is a cache from an older version that never noted its identifier.
//!
//! A module because deciding a cache's fate opens the archive it names and reads its format
//! record; the binary only finds the cache directory and prints.

use crate::core::error::Result;
use crate::core::filecache::{self, CacheFile};
use std::path::Path;

/// What becomes of a cache, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fate {
    /// Its archive no longer exists: pruning removes it.
    Gone(String),
    /// Its archive is there, or cannot be told to be gone.
    Kept(String),
}

impl std::fmt::Display for Fate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fate::Gone(why) => write!(f, "gone ({why})"),
            Fate::Kept(why) => write!(f, "kept ({why})"),
        }
    }
}

/// The caches in `dir` (none when it does not exist).
pub fn list(dir: &Path) -> Result<Vec<CacheFile>> {
    filecache::inventory(dir)
}

/// Decides `c`'s fate and, unless `dry_run`, removes it when its archive is gone.
pub fn prune(c: &CacheFile, dry_run: bool) -> Result<Fate> {
    let verdict = fate(c);
    if matches!(verdict, Fate::Gone(_)) && !dry_run {
        filecache::remove(&c.path)?;
        // The lease hint of the archive's file cache, which may be there without the cache
        // (an archive that was only catalogued or searched from here).
        let hint = c
            .path
            .with_file_name(format!("files-{}.lease", c.archive_id));
        match std::fs::remove_file(&hint) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(crate::core::error::Error::io(hint, e))
            }
            _ => {}
        }
    }
    Ok(verdict)
}

/// Whether `c`'s archive is still there, by the identifier the cache remembers.
pub fn fate(c: &CacheFile) -> Fate {
    let Some(id) = &c.identifier else {
        return Fate::Kept("it does not say which archive it was used with".into());
    };
    if let Some(dir) = crate::core::archive::local_dir(id) {
        if !dir.is_dir() {
            return Fate::Gone(format!("{} no longer exists", dir.display()));
        }
    }
    let record = crate::core::archive::open_existing_single(id)
        .map_err(crate::Error::from)
        .and_then(|b| crate::core::formatcopy::read_format(b.as_ref(), id));
    match record {
        Err(e) => Fate::Kept(format!("cannot read it: {e}")),
        Ok(None) => Fate::Gone(format!("{id} holds no archive now")),
        Ok(Some((_, f))) if f.archive_id == c.archive_id => {
            Fate::Kept("the archive is there".into())
        }
        Ok(Some(_)) => Fate::Gone(format!("{id} holds another archive now")),
    }
}
