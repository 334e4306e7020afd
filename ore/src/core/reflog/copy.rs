//! This machine's copy of the reflog block it stored last.
//!
//! Every snapshot adds its move to the newest reflog block, so it must read that block first:
//! one read from the store per run (a request on an object store, a round trip over ssh). The
//! newest block is nearly always the one this machine's previous run stored, so that run keeps
//! it (plain, with its key) beside the file cache, in `reflog/FORMAT-KEY` (one file per
//! archive, mode 0600). The next run uses it only when `ore:reflog` names exactly that key, and
//! only after checking that the bytes hash to it under the archive's keyed hash, which nobody
//! without the archive's keys can forge: so the copy is that block, or it is not used.
//!
//! The copy holds what the archive's block holds (tag names, keys, hosts, users and times of
//! moves), in the clear, in the user's private cache directory, as the file cache beside it
//! holds file names.

use crate::core::block::Kind;
use crate::core::repo::Repo;
use protocol::Key;
use std::path::PathBuf;

/// Where this machine keeps its copy for the archive `repo` opened.
pub fn path(repo: &Repo) -> Option<PathBuf> {
    Some(
        crate::core::filecache::default_dir()?
            .join("reflog")
            .join(repo.format_key().to_hex()),
    )
}

/// Keeps block `key` (its plain bytes) as the newest this machine stored. Best effort: a copy
/// that cannot be written costs the next run one read.
pub fn keep(repo: &Repo, key: Key, plain: &[u8]) {
    let Some(path) = path(repo) else { return };
    let bytes = [&key.0[..], plain].concat();
    if let Err(e) = crate::core::util::write_private(&path, &bytes, false) {
        protocol::log::debug(&format!(
            "keeping a copy of the reflog head in {}: {e}",
            path.display()
        ));
    }
}

/// The plain bytes of block `key` from the copy at `path`, if that is the block it holds. Not
/// yet checked against the key: see [`checked`].
pub fn load(path: &std::path::Path, key: Key) -> Option<Vec<u8>> {
    let bytes = std::fs::read(path).ok()?;
    let (k, plain) = bytes.split_at_checked(32)?;
    (k == key.0).then(|| plain.to_vec())
}

/// `plain` when it hashes to `key` as a reflog block of this archive.
pub fn checked(repo: &Repo, key: Key, plain: Vec<u8>) -> Option<Vec<u8>> {
    (repo.keys().key_of(Kind::Reflog as u8, &plain) == key).then_some(plain)
}
