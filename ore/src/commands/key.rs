//! `ore key list|add|remove|passwd`: the passphrases that open an encrypted archive, each a key
//! slot in the format record wrapping the one master key (FORMAT.md).
//!
//! A module of its own because every change is a new format record written by compare-and-swap
//! under a lease ([`Repo::update_format`]), and because the rules that keep an archive openable
//! — never remove the last slot, change only the slot that opened it — belong with the archive,
//! not with a prompt. Reading the new passphrase is the binary's job; it hands it in.

use crate::core::crypto::{KdfParams, KeySlot};
use crate::core::error::{Error, Result};
use crate::core::repo::Repo;

/// Fails unless the archive is encrypted (an unencrypted archive has no passphrases).
pub fn check_encrypted(repo: &Repo) -> Result<()> {
    if !repo.format().encrypted() {
        return Err(Error::Usage(format!(
            "archive {} is not encrypted: it has no passphrases",
            repo.id()
        )));
    }
    Ok(())
}

/// One key slot, and whether its passphrase is the one that opened the archive.
#[derive(Debug, Clone)]
pub struct Slot {
    pub slot: KeySlot,
    pub current: bool,
}

/// The archive's key slots, in the order the format record keeps them.
pub fn list(repo: &Repo) -> Result<Vec<Slot>> {
    check_encrypted(repo)?;
    Ok(repo
        .format()
        .key_slots
        .iter()
        .map(|s| Slot {
            current: repo.slot() == Some(s.id.as_str()),
            slot: s.clone(),
        })
        .collect())
}

/// The id of the slot whose passphrase opened the archive.
pub fn current(repo: &Repo) -> Result<String> {
    check_encrypted(repo)?;
    repo.slot()
        .map(str::to_string)
        .ok_or_else(|| Error::Usage("no key slot opened this archive".into()))
}

/// Adds a slot opened by `passphrase`; returns its id.
pub fn add(repo: &mut Repo, passphrase: &[u8]) -> Result<String> {
    check_encrypted(repo)?;
    let slot = repo.new_slot(passphrase, KdfParams::new_default())?;
    let id = slot.id.clone();
    let mut f = repo.format().clone();
    f.key_slots.push(slot);
    repo.update_format(f)?;
    Ok(id)
}

/// Removes slot `id`, unless it is missing or the last one (which would lock everyone out).
pub fn remove(repo: &mut Repo, id: &str) -> Result<()> {
    check_encrypted(repo)?;
    let mut f = repo.format().clone();
    let before = f.key_slots.len();
    f.key_slots.retain(|s| s.id != id);
    if f.key_slots.len() == before {
        return Err(Error::Usage(format!(
            "no key slot `{id}` (see `ore key list`)"
        )));
    }
    if f.key_slots.is_empty() {
        return Err(Error::Usage(format!(
            "key slot `{id}` is the last one; removing it would lock everyone out"
        )));
    }
    repo.update_format(f)
}

/// Wraps the master key of slot `current` (the one that opened the archive, [`current`])
/// under `passphrase` instead, in one format record; the slot keeps its id, which is returned.
pub fn passwd(repo: &mut Repo, current: &str, passphrase: &[u8]) -> Result<String> {
    check_encrypted(repo)?;
    // The slot keeps its id and its place: scripts and notes that name it stay right.
    let slot = repo.renewed_slot(current, passphrase, KdfParams::new_default())?;
    let id = slot.id.clone();
    let mut f = repo.format().clone();
    match f.key_slots.iter_mut().find(|s| s.id == current) {
        Some(s) => *s = slot,
        None => f.key_slots.push(slot),
    }
    repo.update_format(f)?;
    Ok(id)
}
