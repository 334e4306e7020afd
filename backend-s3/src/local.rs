//! Copies of the archive's immutable small objects on this machine, so that a start does not
//! read every index object again.
//!
//! A process learns where blocks are by reading every index object and removal record; with one
//! index object per pack, each run of `ore` against a 19-pack archive began with 25 to 50
//! GETs before its first block, and the count grows with the archive. Both kinds of object
//! are immutable under their names (an index object is named by its pack's hash and only
//! ever rewritten with the same bytes; a removal record's name is unique), so a copy kept
//! here never goes stale: a start lists the two directories (as before) and reads only the
//! objects it has no copy of. Copies of objects no longer listed, and older than an hour, are
//! deleted at that listing.
//!
//! Where: `$XDG_CACHE_HOME/ore/backend-s3/<id>/` (else `~/.cache/...`), `<id>` a hash of the
//! endpoint, bucket and prefix. A copy that cannot be written is only a GET more next time,
//! so failures here are never errors; a copy that fails to parse is read from the store
//! again. A damaged copy can at worst send a read to the wrong place, which the frontend's
//! check of every block's hash reports, as it would a damaged store.

use std::collections::HashSet;
use std::path::PathBuf;

/// How old an unlisted copy must be before it is pruned.
const PRUNE_AFTER: std::time::Duration = std::time::Duration::from_secs(3600);

/// The local copies of one archive's immutable objects (none when no cache directory).
pub(crate) struct LocalCopies {
    dir: Option<PathBuf>,
}

impl LocalCopies {
    /// The copies of the archive `s3://bucket/prefix` reached at `endpoint`.
    pub fn new(endpoint: &str, archive: &str) -> LocalCopies {
        let base = std::env::var_os("XDG_CACHE_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| {
                std::env::var_os("HOME")
                    .filter(|v| !v.is_empty())
                    .map(|h| PathBuf::from(h).join(".cache"))
            });
        let id = blake3::hash(format!("{endpoint}\n{archive}").as_bytes()).to_hex();
        LocalCopies {
            dir: base.map(|b| b.join("ore/backend-s3").join(&id.as_str()[..32])),
        }
    }

    fn file(&self, name: &str) -> Option<PathBuf> {
        // Names are `index/<hex>`, `index/r-<digits>-<digits>-<hex>` or (layout 1)
        // `deleted/<digits>-<digits>-<hex>`: no `..`, no other '/'.
        let (dir, base) = name.split_once('/')?;
        if !matches!(dir, "index" | "deleted")
            || base.is_empty()
            || base.contains('/')
            || base.starts_with('.')
        {
            return None;
        }
        Some(self.dir.as_ref()?.join(dir).join(base))
    }

    /// The copy of `name`, if kept.
    pub fn read(&self, name: &str) -> Option<Vec<u8>> {
        std::fs::read(self.file(name)?).ok()
    }

    /// Keeps a copy of `name` (written whole, then renamed into place).
    pub fn write(&self, name: &str, data: &[u8]) {
        if let Some(path) = self.file(name) {
            write_whole(&path, data);
        }
    }

    /// A small record this process keeps for the archive (`name`: one file name, no '/').
    pub fn recall(&self, name: &str) -> Option<Vec<u8>> {
        std::fs::read(self.record(name)?).ok()
    }

    /// Keeps a small record for the archive (written whole, then renamed into place).
    pub fn keep(&self, name: &str, data: &[u8]) {
        if let Some(path) = self.record(name) {
            write_whole(&path, data);
        }
    }

    fn record(&self, name: &str) -> Option<PathBuf> {
        let plain = !name.is_empty() && !name.contains('/') && !name.starts_with('.');
        plain.then(|| self.dir.as_ref().map(|d| d.join(name)))?
    }

    /// Deletes the copies in `dir` (`index` or `deleted`) whose object is not in `listed`.
    pub fn prune(&self, dir: &str, listed: &HashSet<&str>) {
        let Some(d) = self.dir.as_ref().map(|d| d.join(dir)) else {
            return;
        };
        let Ok(entries) = std::fs::read_dir(&d) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name();
            if name.to_str().is_some_and(|n| listed.contains(n)) {
                continue;
            }
            // A copy this process (or another) just wrote may not be listed yet: a store's
            // listing can lag its writes (seen on SeaweedFS, where such pruning deleted every
            // copy a snapshot had written). Only copies older than that lag are pruned.
            let old = e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > PRUNE_AFTER);
            if old {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

/// Writes `data` to `path` whole (a temporary file renamed into place), making its directory;
/// a failure only costs a request later.
fn write_whole(path: &std::path::Path, data: &[u8]) {
    let Some(dir) = path.parent() else {
        return;
    };
    if std::fs::create_dir_all(dir).is_err() {
        return;
    }
    if let Ok(mut tmp) = tempfile::NamedTempFile::new_in(dir) {
        if std::io::Write::write_all(&mut tmp, data).is_ok() {
            let _ = tmp.persist(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(dir: &std::path::Path) -> LocalCopies {
        LocalCopies {
            dir: Some(dir.to_path_buf()),
        }
    }

    #[test]
    fn a_copy_is_read_back_and_pruned_once_its_object_is_no_longer_listed() {
        let d = tempfile::tempdir().expect("tempdir");
        let c = at(d.path());
        c.write("index/aa", b"one");
        c.write("index/bb", b"two");
        assert_eq!(c.read("index/aa").as_deref(), Some(&b"one"[..]));
        c.prune("index", &["bb"].into_iter().collect());
        assert!(
            c.read("index/aa").is_some(),
            "a fresh copy is kept: listings lag"
        );
        let two_hours_ago = std::time::SystemTime::now() - 2 * PRUNE_AFTER;
        std::fs::File::options()
            .write(true)
            .open(d.path().join("index/aa"))
            .and_then(|f| f.set_modified(two_hours_ago))
            .expect("age the copy");
        c.prune("index", &["bb"].into_iter().collect());
        assert_eq!(c.read("index/aa"), None);
        assert_eq!(c.read("index/bb").as_deref(), Some(&b"two"[..]));
    }

    #[test]
    fn names_that_would_leave_the_cache_directory_are_never_files() {
        let d = tempfile::tempdir().expect("tempdir");
        let c = at(&d.path().join("cache"));
        for bad in ["index/../../x", "../x", "index/", "index/.hidden", "x"] {
            c.write(bad, b"no");
            assert_eq!(c.read(bad), None, "{bad}");
        }
        assert!(!d.path().join("x").exists());
    }
}
