//! The record of blocks restricted connections stored (`protocol::provenance`), kept by the
//! members: each member records what it was asked to mark, and this proxy answers for the
//! union.
//!
//! A put through a replicated archive served append-only stores the block on its members and
//! then marks it on every member it can reach (`mark-unvouched`, through the trait's default
//! `put_restricted`). `unvouched` merges the members' pages; `vouch` clears the record on every
//! member. A copy that `rereplicate` makes later is not marked on its new member, but the key
//! stays listed as long as one member keeps its record, and every copy of a block is the same
//! bytes, so reading it through this proxy checks what was planted.

use crate::ReplicatedBackend;
use protocol::provenance;
use protocol::{AdminOutput, Backend, Error, ErrorCode, Key, Result};
use std::collections::BTreeSet;

/// `unvouched`: the members' pages merged into one.
pub(crate) fn unvouched(b: &ReplicatedBackend, args: &[String]) -> Result<AdminOutput> {
    let (after, limit) = provenance::page_args(args)?;
    let mut all = BTreeSet::new();
    // The smallest last key of a member with more to list: past it, that member said
    // nothing yet, so the merged page ends there.
    let mut bound: Option<Key> = None;
    for m in b.inner().members() {
        let Some(backend) = m.any_backend() else {
            continue;
        };
        let out = backend.admin(provenance::UNVOUCHED, args)?;
        let (keys, m_more) = provenance::parse_page(&out.json)?;
        if let (true, Some(last)) = (m_more, keys.last()) {
            bound = Some(bound.map_or(*last, |b| b.min(*last)));
        }
        all.extend(keys);
    }
    let cut = all.len();
    all.retain(|k| bound.is_none_or(|b| *k <= b));
    let (keys, rest) = provenance::page_of(all.iter(), after, limit);
    let more = rest || bound.is_some() || all.len() < cut;
    Ok(provenance::page_output(&keys, more))
}

/// `vouch` and `mark-unvouched` (`command`): passed to every member that can be reached.
pub(crate) fn record(b: &ReplicatedBackend, command: &str, args: &[String]) -> Result<AdminOutput> {
    let keys: Vec<Key> = provenance::key_args(command, args)?;
    let mut reached = 0;
    for m in b.inner().members() {
        let Some(backend) = m.backend() else {
            continue;
        };
        backend.admin(command, args)?;
        reached += 1;
    }
    if reached == 0 {
        return Err(Error::backend(
            ErrorCode::Io,
            format!(
                "{command}: no member of {} can be reached",
                b.info().description
            ),
        ));
    }
    Ok(provenance::count_output(command, keys.len()))
}

/// Forgets the records of removed blocks on every member (a member that held no copy may
/// still hold the record: marks go to every member). Best effort: a record left behind names a
/// block that is not stored, which the owner's check passes over.
pub(crate) fn forget_removed(b: &ReplicatedBackend, keys: &[Key]) -> Result<()> {
    for m in b.inner().members() {
        let Some(backend) = m.backend() else {
            continue;
        };
        for batch in keys.chunks(provenance::MAX_KEYS) {
            let args: Vec<String> = batch.iter().map(Key::to_hex).collect();
            if backend.admin(provenance::VOUCH, &args).is_err() {
                break;
            }
        }
    }
    Ok(())
}
