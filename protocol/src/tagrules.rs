//! What an append-only connection may write into a tag, checked in the backend.
//!
//! An append-only key belongs to a machine that may be compromised. Refusing removals is not
//! enough: a tag is a pointer the owner's own routine commands trust, so a hostile value written
//! through the key could make those commands fail or destroy. Ore's frontend keeps its archive
//! state in reserved tags (`ore:` names, FORMAT.md §3, §9, §10), and each of them is an attack
//! surface: the format record holds the key slots (a changed one locks the owner out), `ore:gc`
//! announces sweeps (a `sweeping` one with a heartbeat in the future makes every run wait for
//! ever), a lease with a heartbeat in the future makes gc wait, and a tag that does not hold a
//! block key makes gc refuse to run. So the backend — not the frontend, which the attacker
//! controls — holds an append-only connection to these rules:
//!
//! - `ore:format` may be created (an archive's `init`) but never changed;
//! - `ore:gc` may only be changed the one way writers need: a sweep whose gc died (its
//!   heartbeat older than the ttl the sweep itself declares; only the owner announces sweeps,
//!   so that ttl can be trusted) is ended with the one idle value derived from it
//!   ([`abandoned_sweep_successor`]). Ending a *live* sweep would let other writers start while
//!   it removes blocks, and deduplicate against what it removes; and an idle value of the
//!   connection's choosing could roll the epoch back to one a file cache was written under,
//!   which would then trust entries whose blocks a gc removed since;
//! - `ore:lease:N` may be set to `free` or to a holder whose timestamps are not in the future
//!   (beyond [`CLOCK_SLACK`]) and whose ttl is at most [`MAX_TTL`] — and a *live* lease (its
//!   heartbeat within its ttl) that carries a `lock` may only be changed by its holder: the
//!   new value must carry the `proof` whose hash is that lock ([`lease_lock`]). The holder
//!   keeps the proof secret until it writes its next value (with a new lock), so nobody else
//!   can free a running snapshot's lease — which would let the owner's gc sweep without
//!   waiting for it, and remove blocks the snapshot is about to name;
//! - `ore:reflog` and every other tag may only be set to a block key (64 hex digits);
//! - no other `ore:` name may be written.
//!
//! Moving a tag to another key stays allowed — that is what a backup does — and loses nothing,
//! since every backend keeps each value a tag has had and gc keeps what they reach until the
//! owner expires that history (PROTOCOL.md, "Restricted access").

use crate::error::{Error, ErrorCode, Result};
use crate::key::Key;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How far in the future a lease's timestamps may be (clocks of the machines sharing an archive
/// must agree within the lease ttl anyway).
pub const CLOCK_SLACK: Duration = Duration::from_secs(300);

/// The longest ttl a lease or sweep may declare (`ORE_LEASE_TTL` is refused above it): a
/// lease that never expires would hold off every gc.
pub const MAX_TTL: Duration = Duration::from_secs(3600);

/// The ttl of a lease or sweep whose value names none (written by versions before the field).
pub const DEFAULT_TTL: Duration = Duration::from_secs(900);

/// Whether a heartbeat at `heartbeat` (ns since the epoch) is live at `now` for a holder that
/// declared `ttl` (ns): renewed at most `ttl` ago, and at most `ttl` in the future (a value
/// further ahead, which no clock agreeing with ours wrote, counts as dead). The one rule for
/// leases and sweeps, used by the frontend and by the backend alike.
pub fn heartbeat_is_live(heartbeat: i64, ttl: i64, now: i64) -> bool {
    let age = now as i128 - heartbeat as i128;
    (-(ttl as i128)..=ttl as i128).contains(&age)
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

/// The reserved tags' names: the one home of each, which the frontend and the proxies use too.
pub const FORMAT_TAG: &str = "ore:format";
pub const GC_TAG: &str = "ore:gc";
pub const REFLOG_TAG: &str = "ore:reflog";
pub const LEASE_PREFIX: &str = "ore:lease:";

/// Whether `value` is a block key as tags hold them (hex, surrounding whitespace allowed).
pub fn holds_key(value: &[u8]) -> bool {
    std::str::from_utf8(value)
        .ok()
        .is_some_and(|s| s.trim().parse::<Key>().is_ok())
}

fn refused(name: &str, why: &str) -> Error {
    Error::backend(
        ErrorCode::ReadOnly,
        format!("setting tag {name:?} refused to an append-only connection: {why}"),
    )
}

/// Checks a tag change an append-only connection asks for.
pub fn append_only_may_set(name: &str, expected: Option<&[u8]>, value: &[u8]) -> Result<()> {
    match name {
        FORMAT_TAG if expected.is_some() => Err(refused(
            name,
            "the format record (and its key slots) may only be changed with full access",
        )),
        GC_TAG if !gc_state_is_idle(value) => {
            Err(refused(name, "only the owner may announce a gc sweep"))
        }
        GC_TAG => match expected {
            Some(e) if is_live_sweep(e) => Err(refused(
                name,
                "a gc sweep is under way (its heartbeat is within its ttl); only that gc or the \
                 owner may end it",
            )),
            Some(e) if is_sweep(e) && value == abandoned_sweep_successor(e).as_slice() => Ok(()),
            Some(e) if is_sweep(e) => Err(refused(
                name,
                "a sweep whose gc died is ended with the value derived from it, and no other",
            )),
            _ => Err(refused(
                name,
                "only a sweep whose gc died may be ended; any other change is the owner's",
            )),
        },
        n if n.starts_with(LEASE_PREFIX) => lease_change_allowed(expected, value)
            .and_then(|()| lease_is_honest(value))
            .map_err(|why| refused(n, why)),
        n if n.starts_with("ore:") && n != FORMAT_TAG && n != REFLOG_TAG => Err(refused(
            n,
            "this reserved name is written with full access only",
        )),
        n if !holds_key(value) => Err(refused(
            n,
            "the value must be a block key (64 hex digits), as every tag of an Ore archive holds",
        )),
        _ => Ok(()),
    }
}

fn gc_state_is_idle(value: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(value)
        .ok()
        .is_some_and(|v| v.get("state").and_then(|s| s.as_str()) == Some("idle"))
}

/// The idle value that ends the abandoned sweep `sweep` (the bytes of `ore:gc`): a new epoch
/// and a new unclean marker, both derived from the sweep's value. Every writer that finds the
/// sweep abandoned writes the same, and no value `ore:gc` had before can be written this way
/// (each sweep's value is unique: it names its holder's random id and its heartbeat).
pub fn abandoned_sweep_successor(sweep: &[u8]) -> Vec<u8> {
    let mut h = blake3::Hasher::new();
    h.update(b"ore:gc abandoned sweep\0");
    h.update(sweep);
    let hex = Key(*h.finalize().as_bytes()).to_hex();
    format!(
        r#"{{"state":"idle","epoch":"{}","unclean":"{}"}}"#,
        &hex[..16],
        &hex[16..32]
    )
    .into_bytes()
}

fn is_sweep(value: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(value)
        .ok()
        .is_some_and(|v| v.get("state").and_then(|s| s.as_str()) == Some("sweeping"))
}

/// Whether `value` of `ore:gc` announces a sweep whose gc still renews it. A value that is not
/// a well-formed sweep counts as idle, as the frontend reads it.
fn is_live_sweep(value: &[u8]) -> bool {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(value) else {
        return false;
    };
    if v.get("state").and_then(|s| s.as_str()) != Some("sweeping") {
        return false;
    }
    let Some(heartbeat) = v.get("heartbeat").and_then(|t| t.as_i64()) else {
        return false;
    };
    let ttl = v
        .get("ttl")
        .and_then(|t| t.as_i64())
        .unwrap_or(DEFAULT_TTL.as_nanos() as i64);
    heartbeat_is_live(heartbeat, ttl, now_ns())
}

/// The lock a lease holder puts in its value for the secret `proof`: the hex of its BLAKE3
/// hash. Only who knows `proof` can change a live lease that carries this lock.
pub fn lease_lock(proof: &[u8; 32]) -> String {
    Key(*blake3::hash(proof).as_bytes()).to_hex()
}

/// The value of a free lease slot that proves, with `proof`, that its holder freed it.
pub fn free_with_proof(proof: &[u8; 32]) -> Vec<u8> {
    format!("free {}", Key(*proof).to_hex()).into_bytes()
}

/// Whether a lease slot's value means free: `free`, or `free PROOF` (see [`free_with_proof`]).
pub fn lease_is_free(value: &[u8]) -> bool {
    value == b"free" || value.starts_with(b"free ")
}

/// The lock of a lease holder's value, when the lease is live (a free, expired or unlocked
/// lease — one written by a version before locks — has none).
fn live_lock(value: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(value).ok()?;
    let lock = v.get("lock")?.as_str()?;
    let heartbeat = v.get("heartbeat")?.as_i64()?;
    let ttl = v
        .get("ttl")
        .and_then(|t| t.as_i64())
        .unwrap_or(DEFAULT_TTL.as_nanos() as i64);
    heartbeat_is_live(heartbeat, ttl, now_ns()).then(|| lock.to_string())
}

/// The proof a new lease value presents: `free PROOF`, or a holder's `proof` field.
fn presented_proof(value: &[u8]) -> Option<Key> {
    let text = match value.strip_prefix(b"free ") {
        Some(rest) => std::str::from_utf8(rest).ok()?.to_string(),
        None => serde_json::from_slice::<serde_json::Value>(value)
            .ok()?
            .get("proof")?
            .as_str()?
            .to_string(),
    };
    text.trim().parse().ok()
}

/// A live, locked lease changes only with the proof its lock was made from.
fn lease_change_allowed(
    expected: Option<&[u8]>,
    value: &[u8],
) -> std::result::Result<(), &'static str> {
    let Some(lock) = expected.and_then(live_lock) else {
        return Ok(());
    };
    match presented_proof(value) {
        Some(proof) if lease_lock(&proof.0) == lock => Ok(()),
        Some(_) => Err("the proof does not open this lease's lock"),
        None => Err(
            "this lease is held by a running snapshot (its heartbeat is within its ttl); only its \
             holder, or a connection with full access, may change it",
        ),
    }
}

fn lease_is_honest(value: &[u8]) -> std::result::Result<(), &'static str> {
    if value == b"free" {
        return Ok(());
    }
    if value.starts_with(b"free ") {
        return presented_proof(value)
            .map(|_| ())
            .ok_or("a freed lease is `free` or `free` and a proof (64 hex digits)");
    }
    let v: serde_json::Value =
        serde_json::from_slice(value).map_err(|_| "a lease is `free` or a holder (JSON)")?;
    let latest = SystemTime::now()
        .checked_add(CLOCK_SLACK)
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(i64::MAX, |d| d.as_nanos() as i64);
    for field in ["since", "heartbeat"] {
        match v.get(field).and_then(|t| t.as_i64()) {
            Some(t) if t <= latest => {}
            Some(_) => return Err("a lease's timestamps may not be in the future"),
            None => return Err("a lease holder names when it started and its heartbeat"),
        }
    }
    match v.get("ttl") {
        None => Ok(()),
        Some(t) if t.as_i64().is_some_and(|t| t <= MAX_TTL.as_nanos() as i64) => Ok(()),
        Some(_) => Err("a lease's ttl is a number of nanoseconds, at most an hour"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"0000000000000000000000000000000000000000000000000000000000000001";

    #[test]
    fn a_backup_may_create_the_format_record_and_move_tags_to_keys() {
        assert!(append_only_may_set(FORMAT_TAG, None, KEY).is_ok());
        assert!(append_only_may_set("home", Some(KEY), KEY).is_ok());
        assert!(append_only_may_set(REFLOG_TAG, None, KEY).is_ok());
        assert!(append_only_may_set("ore:lease:3", Some(b"free"), b"free").is_ok());
    }

    #[test]
    fn an_append_only_connection_cannot_plant_what_stops_the_owner() {
        assert!(append_only_may_set(FORMAT_TAG, Some(KEY), &[0; 32]).is_err());
        assert!(append_only_may_set("home", None, b"garbage").is_err());
        assert!(append_only_may_set(REFLOG_TAG, None, b"garbage").is_err());
        assert!(append_only_may_set("ore:anything", None, KEY).is_err());
        let sweeping = br#"{"state":"sweeping","epoch":"","by":"x","since":0,"heartbeat":9223372036854775807,"id":"x"}"#;
        assert!(append_only_may_set(GC_TAG, None, sweeping).is_err());
        let future = br#"{"by":"x","since":0,"heartbeat":9223372036854775807,"id":"x"}"#;
        assert!(append_only_may_set("ore:lease:0", None, future).is_err());
        let forever = br#"{"by":"x","since":0,"heartbeat":0,"id":"x","ttl":9223372036854775807}"#;
        assert!(append_only_may_set("ore:lease:0", None, forever).is_err());
    }

    fn sweep(heartbeat: i64, ttl: Option<i64>) -> Vec<u8> {
        let ttl = ttl.map_or(String::new(), |t| format!(r#","ttl":{t}"#));
        format!(
            r#"{{"state":"sweeping","epoch":"e","by":"x","since":0,"heartbeat":{heartbeat},"id":"x"{ttl}}}"#
        )
        .into_bytes()
    }

    #[test]
    fn an_append_only_connection_may_end_only_a_sweep_whose_gc_died() {
        let idle = br#"{"state":"idle","epoch":"ab"}"#;
        let now = now_ns();
        let s = 1_000_000_000i64;
        let ends = |sweep: &[u8]| {
            append_only_may_set(GC_TAG, Some(sweep), &abandoned_sweep_successor(sweep)).is_ok()
        };
        // Live: renewed just now (with its own ttl, or the default for older values).
        assert!(!ends(&sweep(now, Some(60 * s))));
        assert!(!ends(&sweep(now - 800 * s, None)));
        // Dead: older than its own ttl, whatever the default.
        assert!(ends(&sweep(now - 61 * s, Some(60 * s))));
        assert!(ends(&sweep(now - 901 * s, None)));
        // Dated further in the future than its ttl: no clock agreeing with ours wrote it.
        assert!(ends(&sweep(i64::MAX, None)));
        // A dead sweep ends only with the value derived from it (not, say, an earlier epoch).
        let dead = sweep(now - 901 * s, None);
        assert!(append_only_may_set(GC_TAG, Some(&dead), idle).is_err());
        // Idle or absent values are the owner's to change: an append-only connection could
        // otherwise roll the epoch back to one that file caches trust.
        assert!(append_only_may_set(GC_TAG, Some(idle), idle).is_err());
        assert!(append_only_may_set(GC_TAG, Some(b"not json"), idle).is_err());
        assert!(append_only_may_set(GC_TAG, None, idle).is_err());
        assert_ne!(
            abandoned_sweep_successor(&dead),
            abandoned_sweep_successor(&sweep(now - 902 * s, None))
        );
    }

    #[test]
    fn only_the_holder_of_a_live_locked_lease_may_change_it() {
        let (secret, next) = ([7u8; 32], [8u8; 32]);
        let now = now_ns();
        let holder = |heartbeat: i64, lock: &str, proof: Option<&[u8; 32]>| {
            let proof = proof.map_or(String::new(), |p| {
                format!(r#","proof":"{}""#, Key(*p).to_hex())
            });
            format!(
                r#"{{"by":"x","since":0,"heartbeat":{heartbeat},"id":"x","lock":"{lock}"{proof}}}"#
            )
            .into_bytes()
        };
        let held = holder(now, &lease_lock(&secret), None);
        let name = "ore:lease:0";
        // Someone else: neither freeing it nor replacing it, with no proof or a wrong one.
        assert!(append_only_may_set(name, Some(&held), b"free").is_err());
        assert!(append_only_may_set(name, Some(&held), &free_with_proof(&next)).is_err());
        let theirs = holder(now, &lease_lock(&next), None);
        assert!(append_only_may_set(name, Some(&held), &theirs).is_err());
        // The holder: renewing (revealing the proof, with a new lock) and freeing.
        let renewed = holder(now, &lease_lock(&next), Some(&secret));
        assert!(append_only_may_set(name, Some(&held), &renewed).is_ok());
        assert!(append_only_may_set(name, Some(&renewed), &free_with_proof(&next)).is_ok());
        // The revealed proof opens nothing any more.
        assert!(append_only_may_set(name, Some(&renewed), &free_with_proof(&secret)).is_err());
        // An expired lease, or one without a lock (older versions), is anyone's.
        let dead = holder(now - 901_000_000_000, &lease_lock(&secret), None);
        assert!(append_only_may_set(name, Some(&dead), b"free").is_ok());
        let unlocked = br#"{"by":"x","since":0,"heartbeat":0,"id":"x"}"#;
        assert!(append_only_may_set(name, Some(unlocked), b"free").is_ok());
        assert!(lease_is_free(b"free") && lease_is_free(&free_with_proof(&secret)));
        assert!(append_only_may_set(name, Some(b"free"), b"free nonsense").is_err());
    }

    #[test]
    fn heartbeats_are_live_within_their_ttl_either_side_and_never_overflow() {
        assert!(heartbeat_is_live(100, 10, 105));
        assert!(heartbeat_is_live(100, 10, 95));
        assert!(!heartbeat_is_live(100, 10, 111));
        assert!(!heartbeat_is_live(100, 10, 89));
        assert!(!heartbeat_is_live(i64::MAX, i64::MAX, i64::MIN));
        assert!(heartbeat_is_live(i64::MIN, i64::MAX, -1));
    }
}
