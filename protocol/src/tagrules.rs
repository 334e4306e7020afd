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
//! - `ore:gc` may only be set to an idle state (the writers' way of ending a sweep whose gc
//!   died); announcing a sweep is the owner's;
//! - `ore:lease:N` may be set to `free` or to a holder whose timestamps are not in the future
//!   (beyond [`CLOCK_SLACK`]);
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

/// The reserved tags' names, as Ore's frontend uses them.
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
        GC_TAG => gc_state_is_idle(value)
            .then_some(())
            .ok_or_else(|| refused(name, "only the owner may announce a gc sweep")),
        n if n.starts_with(LEASE_PREFIX) => lease_is_honest(value).map_err(|why| refused(n, why)),
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

fn lease_is_honest(value: &[u8]) -> std::result::Result<(), &'static str> {
    if value == b"free" {
        return Ok(());
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
    Ok(())
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
        assert!(append_only_may_set(GC_TAG, None, br#"{"state":"idle","epoch":"ab"}"#).is_ok());
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
    }
}
