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
//! blocks, and asked while the passphrase's key is derived), and where it does not, the copy is stored in the archive again, where the store
//! allows (a block in a lost splitlog log counts as absent, so the put lands; a damaged block
//! file is never overwritten, and `ore check` names it). Without a copy that matches, the
//! archive's record is read, and its loss is an error that says so.
//!
//! The copy holds nothing the archive does not: the key slots stay sealed by their passphrases
//! (argon2id). It does let whoever can read this user's cache directory guess passphrases
//! offline without reaching the archive; the directory is the user's own (0700), as the file
//! cache beside it is.

use crate::core::block::{self, Kind};
use crate::core::crypto::Keys;
use crate::core::error::{Error, Result};
use crate::core::format::{parse_tag_value, FormatRecord, FORMAT_TAG};
use protocol::{Backend, Key};
use std::path::{Path, PathBuf};

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

/// Reads the format record, or `None` when the archive has none.
pub fn read_format(backend: &dyn Backend, id: &str) -> Result<Option<(Key, FormatRecord)>> {
    Ok(read_format_begun(backend, id)?.map(|(key, record, check)| {
        if let Some(c) = check {
            c.finish(backend, id);
        }
        (key, record)
    }))
}

/// The check, begun by [`read_format_begun`], that the archive still holds the format record
/// this machine's copy stood in for. [`crate::core::repo::Repo::open`] finishes it after the passphrase's key
/// derivation, which it overlaps: on backend-s3 the first `exists` reads the index (a LIST
/// and the index objects), and done first it delayed every command by that.
pub struct CopyCheck {
    present: protocol::Ticket<Vec<bool>>,
    key: Key,
    copy: Vec<u8>,
    path: std::path::PathBuf,
}

impl CopyCheck {
    /// Waits for the answer, and stores the copy again if the archive lost the record.
    pub fn finish(self, backend: &dyn Backend, id: &str) {
        if let Ok(false) = self.present.wait().map(|v| v.first() == Some(&true)) {
            put_back(
                backend,
                id,
                self.key,
                &self.copy,
                &self.path,
                "it is missing from the archive",
            );
        }
    }
}

/// [`read_format`], leaving the check of this machine's copy (when one was used) to the caller.
pub fn read_format_begun(
    backend: &dyn Backend,
    id: &str,
) -> Result<Option<(Key, FormatRecord, Option<CopyCheck>)>> {
    let Some(v) = backend.get_tag(FORMAT_TAG)? else {
        return Ok(None);
    };
    let key = parse_tag_value(&v).ok_or_else(|| {
        Error::Archive(format!(
            "archive {id}: tag {FORMAT_TAG} does not hold a block key"
        ))
    })?;
    // The format record holds the key slots: without it nothing in the archive decrypts, so
    // its loss is named as what it is, with the way back.
    let lost = |why: String| {
        Error::Archive(format!(
            "archive {id}: its format record (block {key}, named by tag {FORMAT_TAG}: the key \
             slots every other block is encrypted under) cannot be read: {why}; nothing in \
             the archive can be decrypted without it: restore the file or log that held it \
             from a copy of the archive"
        ))
    };
    let keys = Keys::from_master(&[0; 32], false);
    // This machine's copy, when it hashes to the key the tag names, is that record byte for
    // byte: reading it saves a read from the store (a request on an object store, a round
    // trip over ssh) on every command. The archive must still hold the record; `exists`
    // answers that from the backend's index where it has one, and a record found missing is
    // stored again as below.
    let copy = load(&key);
    if let Some((bytes, path)) = &copy {
        if let Ok(plain) = block::open(&keys, &key, Some(Kind::Format), bytes.clone()) {
            let check = CopyCheck {
                present: backend.start_exists(vec![key]),
                key,
                copy: bytes.clone(),
                path: path.clone(),
            };
            return Ok(Some((key, FormatRecord::parse(plain.data())?, Some(check))));
        }
    }
    let from_archive = match backend.get(key) {
        Ok(Some(stored)) => block::open(&keys, &key, Some(Kind::Format), stored.clone())
            .map(|plain| (plain, stored)),
        Ok(None) => Err(Error::Missing {
            key,
            kind: Kind::Format.name(),
        }),
        Err(e @ protocol::Error::Backend { .. }) => Err(lost(e.to_string())),
        Err(e) => return Err(e.into()),
    };
    let plain = match from_archive {
        Ok((plain, stored)) => {
            keep(&key, &stored);
            plain
        }
        // Nothing here can stand in: a copy that matched the key was used above.
        Err(e @ (Error::Corrupt { .. } | Error::Missing { .. } | Error::Archive(_))) => {
            return Err(match (&copy, e) {
                (Some((_, path)), e) => lost(format!(
                    "{e} (and this machine's copy in {} does not match it)",
                    path.display()
                )),
                (None, e @ Error::Archive(_)) => e,
                (None, other) => lost(other.to_string()),
            })
        }
        Err(e) => return Err(e),
    };
    Ok(Some((key, FormatRecord::parse(plain.data())?, None)))
}

/// Stores this machine's copy of the format record `key` in the archive again, which lost it
/// (`why`), and says so.
fn put_back(backend: &dyn Backend, id: &str, key: Key, copy: &[u8], path: &Path, why: &str) {
    let stored_again = backend.put(key, copy).and_then(|()| backend.flush());
    protocol::log::warning(&format!(
        "archive {id}: its format record (block {key}) cannot be read ({why}); using this \
         machine's copy ({}), which matches its key{}",
        path.display(),
        match stored_again {
            Ok(()) => String::from("; it was stored in the archive again"),
            Err(e) => format!("; storing it in the archive again failed: {e}"),
        }
    ));
}
