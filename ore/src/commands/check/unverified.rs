//! `ore check --unverified`: read exactly the blocks that restricted (append-only) connections
//! stored and nobody has vouched for, so that garbage planted under a predicted key is found
//! without reading the whole archive.
//!
//! A client that holds the passphrase can compute any block's key; with an append-only key it
//! can store garbage under the key of data the owner will store later, and the owner's
//! snapshot then deduplicates against the garbage (put never overwrites). Every backend
//! records which blocks a restricted connection newly stored (`protocol::provenance`). This
//! module pages through that record, fetches each block, opens it and re-hashes it as
//! `--read-data` does, and — with full access — vouches for the sound ones, so the next run
//! reads only what was stored since. A block that fails is garbage under its key (nothing of
//! value: the real data never reached the archive under it); the owner may remove it
//! (`--remove-bad`), under a gc sweep so that every file cache rechecks its entries, and the
//! next snapshot that meets the data stores it for real.

use crate::core::block;
use crate::core::error::{Error, Result};
use crate::core::lease::Sweep;
use crate::core::progress::Progress;
use crate::core::repo::Repo;
use protocol::provenance::{parse_page, MAX_KEYS, MAX_PAGE, UNVOUCHED, VOUCH};
use protocol::Key;
use std::sync::Arc;

/// Blocks fetched at once.
const READ_BATCH: usize = 64;

/// What the run over the record found and did.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Unverified {
    /// Keys the backend listed.
    pub listed: u64,
    /// Blocks read (and their stored bytes).
    pub read: u64,
    pub bytes: u64,
    /// Listed but not stored (a put not yet published, or one that never completed): left
    /// listed.
    pub absent: u64,
    /// Keys vouched for (0 without full access).
    pub vouched: u64,
    /// Whether this connection may vouch (full access).
    pub can_vouch: bool,
    /// Blocks that are not what their key says, with why.
    #[serde(skip)]
    pub bad: Vec<(Key, String)>,
    /// Bad blocks removed (`--remove-bad`).
    pub removed: u64,
}

/// Reads and checks every block the backend lists as unvouched; vouches for the sound ones
/// when the connection has full access, and removes the bad ones when `remove_bad`.
pub fn verify(
    repo: &Repo,
    remove_bad: bool,
    progress: Option<Arc<Progress>>,
) -> Result<Unverified> {
    let info = repo.backend().info();
    if !info.admin_commands.iter().any(|c| c == UNVOUCHED) {
        return Err(Error::Archive(format!(
            "archive {} ({}) does not record which blocks append-only connections stored \
             (no `{UNVOUCHED}` admin command), so --unverified cannot tell which to read: \
             use --read-data",
            repo.id(),
            info.server
        )));
    }
    let mut out = Unverified {
        can_vouch: info.admin_commands.iter().any(|c| c == VOUCH),
        ..Unverified::default()
    };
    let mut after: Option<Key> = None;
    loop {
        let start = after.map_or_else(|| "-".to_string(), |k| k.to_hex());
        let page = repo
            .backend()
            .admin(UNVOUCHED, &[start, MAX_PAGE.to_string()])?;
        let (keys, more) = parse_page(&page.json)?;
        out.listed += keys.len() as u64;
        // The page is shared out over threads: each fetches (many in flight) and opens its
        // part, so decrypting and hashing use every core, as `--read-data` does.
        let threads = std::thread::available_parallelism().map_or(4, |n| n.get());
        let part = keys.len().div_ceil(threads).max(READ_BATCH);
        let results: Vec<Result<Part>> = std::thread::scope(|s| {
            let handles: Vec<_> = keys
                .chunks(part)
                .map(|mine| s.spawn(|| read_part(repo, mine, progress.as_deref())))
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(Error::Local("a reading thread panicked".into())))
                })
                .collect()
        });
        let mut sound = Vec::new();
        for r in results {
            let p = r?;
            out.read += p.read;
            out.bytes += p.bytes;
            out.absent += p.absent;
            out.bad.extend(p.bad);
            sound.extend(p.sound);
        }
        if out.can_vouch {
            for batch in sound.chunks(MAX_KEYS) {
                let args: Vec<String> = batch.iter().map(Key::to_hex).collect();
                repo.backend().admin(VOUCH, &args)?;
                out.vouched += batch.len() as u64;
            }
        }
        match (more, keys.last()) {
            (true, Some(k)) => after = Some(*k),
            _ => break,
        }
    }
    if remove_bad && !out.bad.is_empty() {
        out.removed = remove(repo, &out.bad)?;
    }
    Ok(out)
}

/// What one thread found in its part of a page.
#[derive(Default)]
struct Part {
    read: u64,
    bytes: u64,
    absent: u64,
    /// Read and sound: vouched for.
    sound: Vec<Key>,
    bad: Vec<(Key, String)>,
}

/// Fetches and opens `keys`, [`READ_BATCH`] in flight.
fn read_part(repo: &Repo, keys: &[Key], progress: Option<&Progress>) -> Result<Part> {
    let mut out = Part::default();
    for batch in keys.chunks(READ_BATCH) {
        let tickets: Vec<_> = batch.iter().map(|k| repo.backend().start_get(*k)).collect();
        for (k, t) in batch.iter().zip(tickets) {
            match t.wait() {
                // Not vouched for: the block may still be on its way (backend-fs publishes a
                // batch at the writer's flush), and a record cleared now would let it arrive
                // unrecorded. A record of a block never stored only costs a lookup per run.
                Ok(None) => out.absent += 1,
                Ok(Some(stored)) => {
                    out.read += 1;
                    out.bytes += stored.len() as u64;
                    if let Some(p) = progress {
                        p.add_file();
                        p.add_bytes(stored.len() as u64);
                    }
                    match open_any(repo, k, stored) {
                        Ok(()) => out.sound.push(*k),
                        Err(Error::Corrupt { why, .. }) => out.bad.push((*k, why)),
                        Err(e) => return Err(e),
                    }
                }
                Err(e) if e.code() == protocol::ErrorCode::Corrupt => {
                    out.read += 1;
                    out.bad.push((*k, format!("the backend reports: {e}")));
                }
                Err(e) => return Err(Error::Backend(e)),
            }
        }
    }
    Ok(out)
}

/// Opens a block of any kind and checks it hashes to its key. A format record is named by a
/// plain hash (it is read before the keys are known), so one that does not open as an
/// ordinary block is tried as that: an `ore init` through an append-only key stores one.
fn open_any(repo: &Repo, key: &Key, stored: Vec<u8>) -> Result<()> {
    match block::open(repo.keys(), key, None, stored.clone()) {
        Ok(_) => Ok(()),
        Err(e @ Error::Corrupt { .. }) => {
            match block::open(repo.keys(), key, Some(block::Kind::Format), stored) {
                Ok(_) => Ok(()),
                Err(_) => Err(e),
            }
        }
        Err(e) => Err(e),
    }
}

/// Removes the bad blocks under a gc sweep: `ore:gc` gets a new epoch, so every file cache
/// checks its entries against the archive before trusting them again.
fn remove(repo: &Repo, bad: &[(Key, String)]) -> Result<u64> {
    let info = repo.backend().info();
    if !info.can_remove {
        return Err(Error::Archive(format!(
            "archive {} ({}) cannot remove blocks here: --remove-bad needs full access",
            repo.id(),
            info.server
        )));
    }
    let sweep = Sweep::begin(repo)?;
    sweep.wait_for_leases(crate::core::lease::ttl())?;
    sweep.still_mine()?;
    sweep.removed_some();
    let keys: Vec<Key> = bad.iter().map(|(k, _)| *k).collect();
    repo.backend().remove(&keys)?;
    repo.backend().flush()?;
    sweep.finish()?;
    Ok(keys.len() as u64)
}
