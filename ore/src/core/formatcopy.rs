//! This machine's copy of each archive's format record.
//!
//! The format record holds the key slots every other block is encrypted under, and an archive
//! stores it once. A lost log or a damaged block file that held it would leave every snapshot
//! undecryptable, though their own blocks are sound. So every run that reads it keeps a copy
//! in the cache directory (`format/KEY`, mode 0600), and when the archive's copy cannot be
//! read the local one stands in — only after it is checked to hash to the key that the
//! archive's `ore:format` tag names, so a copy can never stand in for another record. The run
//! then stores it in the archive again, where the store allows (a block in a lost splitlog log
//! counts as absent, so the put lands; a damaged block file is never overwritten).
//!
//! The copy holds nothing the archive does not: the key slots stay sealed by their passphrases
//! (argon2id). It does let whoever can read this user's cache directory guess passphrases
//! offline without reaching the archive; the directory is the user's own (0700), as the file
//! cache beside it is.

use protocol::Key;
use std::path::PathBuf;

fn path(key: &Key) -> Option<PathBuf> {
    Some(
        crate::core::filecache::default_dir()?
            .join("format")
            .join(key.to_hex()),
    )
}

/// Keeps `stored` (the record's block as the archive holds it) unless a copy exists. Best
/// effort: a cache directory that cannot be written costs only this safety net.
pub fn keep(key: &Key, stored: &[u8]) {
    let Some(path) = path(key) else { return };
    if path.exists() {
        return;
    }
    let write = || -> std::io::Result<()> {
        use std::io::Write;
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        let dir = path.parent().unwrap_or(&path);
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        let tmp = dir.join(format!(".{}.tmp-{}", key.to_hex(), std::process::id()));
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(stored)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)
    };
    if let Err(e) = write() {
        protocol::log::debug(&format!(
            "keeping a copy of the format record in {}: {e}",
            path.display()
        ));
    }
}

/// This machine's copy of the format record `key`, if it has one: (bytes, where it was).
/// The caller checks it against the key before using it.
pub fn load(key: &Key) -> Option<(Vec<u8>, PathBuf)> {
    let path = path(key)?;
    let bytes = std::fs::read(&path).ok()?;
    Some((bytes, path))
}
