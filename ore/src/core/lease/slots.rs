//! Lease slots: finding one that is free and taking it, and freeing it again.
//!
//! A slot is a system tag `ore:lease:N`. Taking one is a compare-and-swap from the value a
//! listing found (or, first, from the value the hint says this machine's last run left, see
//! `hint.rs`); freeing one writes `free` with the proof of the holder's lock (see
//! `renewal.rs`), which an append-only backend requires before it lets a locked lease go.

use super::renewal::{locked_holder, Secret};
use super::{default_ttl_ns, Hint, Holder, FREE, LEASE_PREFIX};
use crate::core::error::Result;
use protocol::tagrules::{free_with_proof, lease_is_free};
use protocol::{Backend, CasOutcome};

/// A lease slot: its tag, its value, and who holds it (`None`: free).
pub type Slot = (String, Vec<u8>, Option<Holder>);

/// The lease slots.
pub fn leases(backend: &dyn Backend) -> Result<Vec<Slot>> {
    let mut out = Vec::new();
    for (name, v) in backend.list_tags()? {
        if let Some(n) = name.strip_prefix(LEASE_PREFIX) {
            if n.parse::<u32>().is_ok() {
                let h = if lease_is_free(&v) {
                    None
                } else {
                    // A value that is not a lease is treated as held, never as free.
                    Some(serde_json::from_slice(&v).unwrap_or(Holder {
                        by: format!("unknown ({})", String::from_utf8_lossy(&v)),
                        since: 0,
                        heartbeat: i64::MAX / 2,
                        id: String::new(),
                        ttl: default_ttl_ns(),
                        lock: None,
                        proof: None,
                        host: None,
                        pid: None,
                        start: None,
                    }))
                };
                out.push((name, v, h));
            }
        }
    }
    Ok(out)
}

/// Takes a free (or expired) lease slot, or a new one; returns it, its value and the secret
/// of the value's lock.
pub(super) fn take_slot(
    backend: &dyn Backend,
    hint: Option<&Hint>,
) -> Result<(String, Vec<u8>, Secret)> {
    // The slot this machine's last run left free, if it still is: one move, no listing.
    if let Some((name, left)) = hint.and_then(Hint::take) {
        let (mine, secret) = locked_holder();
        if backend.set_tag(&name, left.as_deref(), &mine)? == CasOutcome::Done {
            return Ok((name, mine, secret));
        }
    }
    // A slot whose holder is gone is taken only with full access: an append-only backend
    // judges a locked lease by its ttl alone, and would refuse.
    let writable = backend.info().writable;
    loop {
        let slots = leases(backend)?;
        let (mine, secret) = locked_holder();
        for (name, v, h) in &slots {
            if h.as_ref()
                .is_none_or(|h| h.expired() || (writable && h.gone()))
                && backend.set_tag(name, Some(v), &mine)? == CasOutcome::Done
            {
                return Ok((name.clone(), mine, secret));
            }
        }
        let next = slots
            .iter()
            .filter_map(|(n, _, _)| n[LEASE_PREFIX.len()..].parse::<u32>().ok())
            .max()
            .map_or(0, |n| n + 1);
        let name = format!("{LEASE_PREFIX}{next}");
        if backend.set_tag(&name, None, &mine)? == CasOutcome::Done {
            return Ok((name, mine, secret));
        }
    }
}

/// Frees a lease slot this run holds (value `last`, locked with `secret`): `free` with the
/// proof, or — should the backend refuse that (an append-only backend program of an earlier
/// version knows only plain `free`) — plain `free`.
/// The value left in the slot, when it was freed.
pub(super) fn free_slot(
    backend: &dyn Backend,
    name: &str,
    last: &[u8],
    secret: &Secret,
) -> Option<Vec<u8>> {
    let proof = free_with_proof(secret);
    let freed = match backend.set_tag(name, Some(last), &proof) {
        Ok(out) => Ok((out, proof)),
        Err(_) => backend
            .set_tag(name, Some(last), FREE)
            .map(|out| (out, FREE.to_vec())),
    };
    match freed {
        Ok((CasOutcome::Done, left)) => Some(left),
        Ok(_) => None,
        Err(e) => {
            protocol::log::debug(&format!("freeing lease {name}: {e}"));
            None
        }
    }
}
