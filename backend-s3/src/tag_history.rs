//! Tag history on an object store: every value a tag has had, with when it was first seen.
//!
//! Two kinds of object keep it:
//!
//! - `tag-history/<hex of name>/<blake3 of value, 32 hex digits>` holding `{"ns": first seen,
//!   nanoseconds since the epoch, "value": hex}`, created with `If-None-Match: *`, so a value
//!   already kept keeps its first-seen time. Layout 1 keeps every value so, and so does an
//!   archive whose tags are records (`tag_log`), which must keep a value before its move is
//!   written;
//! - in layout 2, with compare-and-swap tags, the values of the moves a process makes within
//!   [`GATHER`] of each other share one object, `tag-history/moves/<ns>-<pid>-<n>` holding
//!   `{"moves": [{"tag": hex, "value": hex, "ns": ...}, ...]}`: a snapshot moves its tag and
//!   `ore:reflog` a few milliseconds apart, and two records cost a PUT each on every run (an
//!   unchanged re-snapshot made 8 PUTs, 2 of them these). They are written once the window
//!   closes, before `tag-history` is read in this process, and when the backend is dropped;
//!   a process killed within the window loses those records only, as a crash between a move
//!   and its record always could. `moves` is no hex, so it names no tag's directory.
//!
//! A value kept in several objects counts as first seen at the earliest of their times.
//! Both tag schemes (compare-and-swap objects in `tags`, move records in `tag_log`) keep it,
//! so it lives apart from either. Also the compare-and-swap limit they share.

use crate::store::Store;
use ore_util::sync::lock;
use protocol::history::{keeps_history, Entry};
use protocol::{Error, ErrorCode, Result};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

/// How long the values of this process's moves wait to be written together.
pub(crate) const GATHER: std::time::Duration = std::time::Duration::from_millis(100);
/// Where moves' values are gathered, under `tag-history/`.
const MOVES: &str = "tag-history/moves/";

/// Most rounds of read-and-swap before giving up: each lost round means another process
/// moved the tag, and that process made progress.
pub(crate) const ROUNDS: usize = 1000;

pub(crate) fn contended(store: &Store, name: &str) -> Error {
    Error::backend(
        ErrorCode::Io,
        format!(
            "{}: tag {name:?} changed under every one of {ROUNDS} compare-and-swap rounds",
            store.archive
        ),
    )
}

#[derive(Serialize, Deserialize)]
struct Record {
    ns: u128,
    value: String,
}

fn history_dir(name: Option<&str>) -> String {
    match name {
        Some(n) => format!("tag-history/{}/", hex::encode(n.as_bytes())),
        None => "tag-history/".into(),
    }
}

fn now_ns() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

fn encoding(e: serde_json::Error) -> Error {
    Error::backend(
        ErrorCode::Internal,
        format!("encoding a history record: {e}"),
    )
}

/// Keeps `value` in the history of `name` unless it is kept already, at once.
pub(crate) async fn record(store: &Store, name: &str, value: &[u8]) -> Result<()> {
    if !keeps_history(name) {
        return Ok(());
    }
    let rec = serde_json::to_vec(&Record {
        ns: now_ns(),
        value: hex::encode(value),
    })
    .map_err(encoding)?;
    let id = &blake3::hash(value).to_hex()[..32];
    store
        .put_new(&format!("{}{id}", history_dir(Some(name))), rec)
        .await?;
    Ok(())
}

#[derive(Serialize, Deserialize)]
struct Move {
    tag: String,
    value: String,
    ns: u128,
}

#[derive(Serialize, Deserialize)]
struct Moves {
    moves: Vec<Move>,
}

/// This process's moves whose values wait to be written together.
#[derive(Default)]
pub(crate) struct Gathered {
    moves: Mutex<Vec<Move>>,
    /// A task writes them once [`GATHER`] has passed since the first.
    scheduled: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// Keeps `value` in the history of `name`: with the values of moves that follow within
/// [`GATHER`] in layout 2 (compare-and-swap tags), else at once ([`record`]).
pub(crate) async fn keep(store: &Store, name: &str, value: &[u8]) -> Result<()> {
    if store.layout == 1 || store.tag_log {
        return record(store, name, value).await;
    }
    if !keeps_history(name) {
        return Ok(());
    }
    let g = &store.gathered;
    lock(&g.moves).push(Move {
        tag: hex::encode(name.as_bytes()),
        value: hex::encode(value),
        ns: now_ns(),
    });
    let mut scheduled = lock(&g.scheduled);
    if scheduled.as_ref().is_none_or(|t| t.is_finished()) {
        let store = store.clone();
        *scheduled = Some(tokio::spawn(async move {
            tokio::time::sleep(GATHER).await;
            if let Err(e) = write_gathered(&store).await {
                protocol::log::warning(&format!("keeping tag history: {e}"));
            }
        }));
    }
    Ok(())
}

/// Writes the gathered values now, as one object (nothing when none wait).
pub(crate) async fn write_gathered(store: &Store) -> Result<()> {
    let moves = std::mem::take(&mut *lock(&store.gathered.moves));
    if moves.is_empty() {
        return Ok(());
    }
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = format!("{MOVES}{:024}-{}-{n}", now_ns(), std::process::id());
    let moves = Moves { moves };
    let body = serde_json::to_vec(&moves).map_err(encoding)?;
    if let Err(e) = store.put_new(&name, body).await {
        // Kept for the next try (the next window, a read of the history, the backend's end).
        lock(&store.gathered.moves).extend(moves.moves);
        return Err(e);
    }
    Ok(())
}

/// Where a kept value is written: an object of its own, or one it shares with other moves.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Holder {
    Own(String),
    Shared(String),
}

/// One kept value: its tag, raw value and first-seen time, and the objects holding it.
pub(crate) struct Kept {
    pub tag: String,
    pub value: Vec<u8>,
    pub ns: u128,
    pub holders: Vec<Holder>,
}

fn tag_of_hex(h: &str) -> Option<String> {
    hex::decode(h).ok().and_then(|b| String::from_utf8(b).ok())
}

/// The kept values of `name` (or of every tag), oldest first. This process's gathered
/// values are written first, so it reads its own moves.
pub(crate) async fn history(store: &Store, name: Option<&str>) -> Result<Vec<Kept>> {
    write_gathered(store).await?;
    // A shared object is replaced (written anew, then deleted) when some of its values
    // expire: one that vanished between the listing and its read is read again from a new
    // listing, which finds its replacement, so no value still kept is ever missed.
    for _ in 0..5 {
        if let Some(kept) = read_once(store, name).await? {
            return Ok(kept);
        }
    }
    Err(Error::backend(
        ErrorCode::Io,
        format!(
            "{}: the tag history kept changing while it was read",
            store.archive
        ),
    ))
}

/// One read of the history; `None` when a shared object vanished meanwhile.
async fn read_once(store: &Store, name: Option<&str>) -> Result<Option<Vec<Kept>>> {
    let dir = history_dir(name);
    let mut objects: Vec<String> = store
        .list_all(&dir)
        .await?
        .into_iter()
        .map(|o| format!("{dir}{o}"))
        .collect();
    if name.is_some() {
        let shared = store.list_all(MOVES).await?;
        objects.extend(shared.into_iter().map(|o| format!("{MOVES}{o}")));
    }
    let reads = objects.iter().map(|full| async move {
        let bad = |why: &str| {
            Error::backend(
                ErrorCode::Corrupt,
                format!("{}: history record {full} {why}", store.archive),
            )
        };
        let data = store.get(full).await?;
        if full.starts_with(MOVES) {
            let Some(data) = data else {
                return Ok(None); // replaced meanwhile: read again
            };
            let m: Moves = serde_json::from_slice(&data).map_err(|e| bad(&e.to_string()))?;
            let mut out = Vec::new();
            for mv in m.moves {
                let tag = tag_of_hex(&mv.tag).ok_or_else(|| bad("names a tag that is not hex"))?;
                let value =
                    hex::decode(&mv.value).map_err(|_| bad("holds a value that is not hex"))?;
                out.push((tag, value, mv.ns, Holder::Shared(full.clone())));
            }
            return Ok(Some(out));
        }
        let Some(data) = data else {
            return Ok(Some(Vec::new())); // expired meanwhile
        };
        let rec: Record = serde_json::from_slice(&data).map_err(|e| bad(&e.to_string()))?;
        let tag_hex = full
            .strip_prefix("tag-history/")
            .and_then(|r| r.split('/').next())
            .unwrap_or_default();
        let tag = tag_of_hex(tag_hex).ok_or_else(|| bad("is not under a hex-encoded tag name"))?;
        let value = hex::decode(&rec.value).map_err(|_| bad("holds a value that is not hex"))?;
        Ok::<_, Error>(Some(vec![(tag, value, rec.ns, Holder::Own(full.clone()))]))
    });
    let mut merged: BTreeMap<(String, Vec<u8>), Kept> = BTreeMap::new();
    for found in crate::store::at_most(reads).await? {
        let Some(found) = found else {
            return Ok(None);
        };
        for (tag, value, ns, holder) in found {
            if name.is_some_and(|n| n != tag) {
                continue;
            }
            let k = merged.entry((tag.clone(), value.clone())).or_insert(Kept {
                tag,
                value,
                ns,
                holders: Vec::new(),
            });
            k.ns = k.ns.min(ns);
            k.holders.push(holder);
        }
    }
    let mut out: Vec<Kept> = merged.into_values().collect();
    out.sort_by(|a, b| (a.ns, &a.tag, &a.value).cmp(&(b.ns, &b.tag, &b.value)));
    Ok(Some(out))
}

/// Forgets `gone` (kept values expiring): deletes the objects that hold them alone, and
/// writes each shared object holding some of them anew without them before deleting it.
pub(crate) async fn forget(store: &Store, gone: &[Kept]) -> Result<()> {
    let mut shared: HashMap<String, Vec<(String, String)>> = HashMap::new();
    for k in gone {
        for h in &k.holders {
            match h {
                Holder::Own(o) => store.delete(o).await?,
                Holder::Shared(o) => shared
                    .entry(o.clone())
                    .or_default()
                    .push((hex::encode(k.tag.as_bytes()), hex::encode(&k.value))),
            }
        }
    }
    for (object, values) in shared {
        let Some(data) = store.get(&object).await? else {
            continue;
        };
        let Ok(m) = serde_json::from_slice::<Moves>(&data) else {
            continue;
        };
        let left: Vec<Move> = m
            .moves
            .into_iter()
            .filter(|mv| !values.contains(&(mv.tag.clone(), mv.value.clone())))
            .collect();
        if !left.is_empty() {
            lock(&store.gathered.moves).extend(left);
            write_gathered(store).await?;
        }
        store.delete(&object).await?;
    }
    Ok(())
}

/// The `tag-history` entries for kept values.
pub(crate) fn entries(kept: &[Kept]) -> Vec<Entry> {
    kept.iter()
        .map(|k| {
            let secs = i64::try_from(k.ns / 1_000_000_000).unwrap_or(i64::MAX);
            Entry::new(k.tag.clone(), &k.value, secs)
        })
        .collect()
}
