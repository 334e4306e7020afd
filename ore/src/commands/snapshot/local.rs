//! What a snapshot needs from this machine besides the paths to save: its file cache for the
//! archive, and the directories it must never save — the archive itself when it is a local
//! directory, and the cache directory (saving either would grow the archive by itself on
//! every run). And, after a run, the note in the cache of which archive identifier used it,
//! which `ore cache list|prune` reads.

use crate::core::filecache;
use crate::core::repo::Repo;
use std::path::{Path, PathBuf};

/// This machine's side of a snapshot.
pub struct Local {
    /// The file cache for the archive (none: every file is read).
    pub cache: Option<PathBuf>,
    /// Directories never to descend into.
    pub skip: Vec<PathBuf>,
}

/// The cache for `repo` (opened as `id`) under `cache_dir` unless `no_cache`, and the
/// directories to skip.
pub fn local(repo: &Repo, id: &str, cache_dir: Option<&Path>, no_cache: bool) -> Local {
    let cache = match (no_cache, cache_dir) {
        (false, Some(d)) => Some(filecache::cache_path(d, &repo.format().archive_id)),
        _ => None,
    };
    let mut skip = Vec::new();
    if let Some(d) = crate::core::archive::local_dir(id) {
        skip.push(d.to_path_buf());
    }
    if let Some(d) = cache_dir {
        skip.push(d.to_path_buf());
    }
    Local { cache, skip }
}

/// Notes in the cache at `cache` (when the run made or used one) that archive `id` used it;
/// a failure is a warning, since the snapshot itself is done.
pub fn remember(cache: Option<&Path>, id: &str) {
    if let Some(path) = cache.filter(|p| p.exists()) {
        if let Err(e) = filecache::remember_use(path, id) {
            protocol::log::warning(&format!("the file cache: {e}"));
        }
    }
}
