//! Tags on stores that ignore conditional writes: every move is an immutable record with a
//! name of its own, and the tag's value is found by replaying them (LAYOUT.md, "Tags without
//! conditional writes").
//!
//! A store that ignores `If-None-Match`/`If-Match` (Garage, for one) turns a compare-and-swap
//! on one object into a blind overwrite: two processes moving a tag at once would both be told
//! "done", and one move would vanish. Records that are never overwritten cannot vanish. A move
//! writes `tag-log/<hex::encode(name)>/<ns>-<pid>-<n>` holding the value it expected and the value it
//! sets; the tag's value is the replay of every record in the order the store dated them
//! (LastModified, then name): a record counts when what it expected is the value so far, and
//! is passed over otherwise — the loser of a race. After writing, the mover replays again and
//! answers `Done` only if its record counted, `Conflict` (with the winner's value) if not,
//! which is what the frontend already handles for a race on an exact store.
//!
//! A record is final once the store's clock has left the second after the one it was dated in:
//! every record dated no later was sent at least a second before and has landed by then
//! (a store may date an upload as it begins; stores list what has landed), and records
//! sent afterwards are dated later and replay after it. So the mover waits for that (1.5 s on
//! average, 2 s at most) before its replay that decides; a move answered `Done` stays done. This rests on the store dating objects by one
//! clock that does not go back; a store that does not (dates from several gateways' clocks
//! apart by more than a second) could reorder records that raced, which is why the history:
//!
//! Before its record, a move keeps the value in the tag history (`tag-history/`), so a value
//! that lost a race, or a record that lands late and so loses after all, is never a lost
//! snapshot: gc keeps what the history keeps, and the reflog shows it.

use crate::store::Store;
use crate::tag_history::{contended, record, ROUNDS};
use protocol::{CasOutcome, Error, ErrorCode, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Serialize, Deserialize)]
struct Move {
    /// The value this move expected (hex), `None`: the tag unset.
    expected: Option<String>,
    /// The value set (hex), `None`: the tag removed.
    value: Option<String>,
}

fn dir(name: &str) -> String {
    format!("tag-log/{}/", hex::encode(name.as_bytes()))
}

fn bad(store: &Store, object: &str, why: &str) -> Error {
    Error::backend(
        ErrorCode::Corrupt,
        format!("{}: tag record {object} {why}", store.archive),
    )
}

/// The tag's value by replay, and whether `mine` (a record's name) counted.
async fn replay(store: &Store, name: &str, mine: Option<&str>) -> Result<(Option<Vec<u8>>, bool)> {
    let d = dir(name);
    let mut records = store.list_timed(&d).await?;
    records.sort_by(|a, b| (second(a.1), &a.0).cmp(&(second(b.1), &b.0)));
    let d = &d;
    let reads = records.iter().map(|(r, _)| async move {
        let object = format!("{d}{r}");
        let data = store
            .get(&object)
            .await?
            .ok_or_else(|| bad(store, &object, "vanished"))?;
        let m: Move =
            serde_json::from_slice(&data).map_err(|e| bad(store, &object, &e.to_string()))?;
        let value = |v: Option<String>| match v {
            None => Ok(None),
            Some(h) => hex::decode(&h)
                .ok()
                .map(Some)
                .ok_or_else(|| bad(store, &object, "holds a value that is not hex")),
        };
        Ok::<_, Error>((r.as_str(), value(m.expected)?, value(m.value)?))
    });
    let mut current = None;
    let mut counted = false;
    for (r, expected, value) in crate::store::at_most(reads).await? {
        if expected == current {
            current = value;
            counted |= Some(r) == mine;
        }
    }
    Ok((current, counted))
}

pub(crate) async fn get(store: &Store, name: &str) -> Result<Option<Vec<u8>>> {
    Ok(replay(store, name, None).await?.0)
}

/// Moves (or with `value` `None`, removes) the tag if it holds `expected`; `remove_any`: a
/// removal whatever it holds.
pub(crate) async fn change(
    store: &Store,
    name: &str,
    expected: Option<&[u8]>,
    value: Option<&[u8]>,
    remove_any: bool,
) -> Result<CasOutcome> {
    static MOVES: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    for _ in 0..ROUNDS {
        let (current, _) = replay(store, name, None).await?;
        if value.is_none() && current.is_none() {
            return Ok(match expected {
                Some(_) => CasOutcome::Conflict { current },
                None => CasOutcome::Done,
            });
        }
        if !remove_any && current.as_deref() != expected {
            return Ok(CasOutcome::Conflict { current });
        }
        if let Some(v) = value {
            record(store, name, v).await?;
        }
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let n = MOVES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mine = format!("{nanos:024}-{}-{n}", std::process::id());
        let body = serde_json::to_vec(&Move {
            expected: current.as_deref().map(hex::encode),
            value: value.map(hex::encode),
        })
        .map_err(|e| Error::backend(ErrorCode::Internal, e.to_string()))?;
        let object = format!("{}{mine}", dir(name));
        store.put(&object, body).await?;
        settle(store, &object).await?;
        let (now, counted) = replay(store, name, Some(&mine)).await?;
        if counted {
            return Ok(CasOutcome::Done);
        }
        if !remove_any {
            return Ok(CasOutcome::Conflict { current: now });
        }
    }
    Err(contended(store, name))
}

/// Seconds since the epoch of a store date (dates are compared at the coarsest resolution
/// stores give: HTTP dates carry whole seconds).
fn second(t: std::time::SystemTime) -> u64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Waits until the store's clock has left the second after the one it dated `object` in:
/// every record it dates at or before `object` has landed by then (it was sent at least a
/// second before), so a replay afterwards is final for it (a
/// record landing later is dated later and replays after it). The store's clock is read by
/// dating a scratch object of this process.
async fn settle(store: &Store, object: &str) -> Result<()> {
    let Some(at) = store.modified(object).await? else {
        return Err(bad(store, object, "vanished after it was written"));
    };
    let clock = format!(
        "tag-clock/{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    );
    for _ in 0..100 {
        store.put(&clock, Vec::new()).await?;
        let now = store.modified(&clock).await?;
        // One whole second more: a store may date an object as its upload begins (S3's
        // Last-Modified is documented so), so a record dated in the mover's second may still
        // be landing when that second ends.
        if now.is_some_and(|t| second(t) > second(at) + 1) {
            return store.delete(&clock).await;
        }
        // The store dates in whole seconds: ask again within the next one.
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    store.delete(&clock).await?;
    Err(Error::backend(
        ErrorCode::Io,
        format!(
            "{}: the store's clock did not pass the date of {object} in 25 s",
            store.archive
        ),
    ))
}

/// Every set tag and its value, sorted by name.
pub(crate) async fn list(store: &Store) -> Result<Vec<(String, Vec<u8>)>> {
    let mut names = BTreeMap::new();
    for r in store.list_all("tag-log/").await? {
        if let Some((h, _)) = r.split_once('/') {
            let name = hex::decode(h)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| bad(store, &r, "is not under a hex-encoded tag name"))?;
            names.insert(name, ());
        }
    }
    let reads = names
        .keys()
        .map(|n| async move { Ok::<_, Error>(get(store, n).await?.map(|v| (n.clone(), v))) });
    Ok(crate::store::at_most(reads)
        .await?
        .into_iter()
        .flatten()
        .collect())
}
