//! This machine's copy of each archive's format record.
//!
//! The format record holds the key slots every other block is encrypted under, and an archive
//! stores it once. A lost log or a damaged block file that held it would leave every snapshot
//! undecryptable, though their own blocks are sound. So every run that reads or writes it keeps
//! a copy in the cache directory (`format/KEY`, mode 0600).
//!
//! The copy is read first: once it hashes to the key that the archive's `ore:format` tag
//! names, it is that record byte for byte (a copy can never stand in for another record), and
//! it saves every command a read from the store. The run then asks the backend whether the
//! archive still holds the record (`exists`, answered from memory by backends that index their
//! blocks), and where it does not, the copy is stored in the archive again, where the store
//! allows (a block in a lost splitlog log counts as absent, so the put lands; a damaged block
//! file is never overwritten, and `ore check` names it). Without a copy that matches, the
//! archive's record is read, and its loss is an error that says so.
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

/// Keeps `stored` (the record's block as the archive holds it) unless the copy holds it
/// already (a damaged copy is replaced). Best effort: a cache directory that cannot be written
/// costs only this safety net.
pub fn keep(key: &Key, stored: &[u8]) {
    let Some(path) = path(key) else { return };
    if std::fs::read(&path).is_ok_and(|copy| copy == stored) {
        return;
    }
    if let Err(e) = crate::core::util::write_private(&path, stored, true) {
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
