//! Tag history on an object store: every value a tag has had, kept as
//! `tag-history/<hex of name>/<blake3 of value, 32 hex digits>` holding
//! `{"ns": first seen, nanoseconds since the epoch, "value": hex}`, created with
//! `If-None-Match: *` after the tag moved: a value already kept keeps its first-seen time.
//! Both tag schemes (compare-and-swap objects in `tags`, move records in `tag_log`) write it,
//! so it lives apart from either. Also the compare-and-swap limit they share.

use crate::store::Store;
use protocol::history::{keeps_history, Entry};
use protocol::{Error, ErrorCode, Result};
use serde::{Deserialize, Serialize};

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

/// Keeps `value` in the history of `name` unless it is kept already.
pub(crate) async fn record(store: &Store, name: &str, value: &[u8]) -> Result<()> {
    if !keeps_history(name) {
        return Ok(());
    }
    let ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let rec = serde_json::to_vec(&Record {
        ns,
        value: hex::encode(value),
    })
    .map_err(|e| {
        Error::backend(
            ErrorCode::Internal,
            format!("encoding a history record: {e}"),
        )
    })?;
    let id = &blake3::hash(value).to_hex()[..32];
    store
        .put_new(&format!("{}{id}", history_dir(Some(name))), rec)
        .await?;
    Ok(())
}

/// One kept value: the object holding it, its tag, raw value and first-seen time.
pub(crate) struct Kept {
    pub object: String,
    pub tag: String,
    pub value: Vec<u8>,
    pub ns: u128,
}

/// The kept values of `name` (or of every tag), oldest first.
pub(crate) async fn history(store: &Store, name: Option<&str>) -> Result<Vec<Kept>> {
    let dir = history_dir(name);
    let objects = store.list_all(&dir).await?;
    let dir = &dir;
    let reads = objects.iter().map(|o| async move {
        let full = format!("{dir}{o}");
        let bad = |why: &str| {
            Error::backend(
                ErrorCode::Corrupt,
                format!("{}: history record {full} {why}", store.archive),
            )
        };
        let Some(data) = store.get(&full).await? else {
            return Ok(None); // expired meanwhile
        };
        let rec: Record = serde_json::from_slice(&data).map_err(|e| bad(&e.to_string()))?;
        let tag_hex = full
            .strip_prefix("tag-history/")
            .and_then(|r| r.split('/').next())
            .unwrap_or_default();
        let tag = hex::decode(tag_hex)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| bad("is not under a hex-encoded tag name"))?;
        let value = hex::decode(&rec.value)
            .ok()
            .ok_or_else(|| bad("holds a value that is not hex"))?;
        Ok::<_, Error>(Some(Kept {
            object: full,
            tag,
            value,
            ns: rec.ns,
        }))
    });
    let mut out: Vec<Kept> = crate::store::at_most(reads)
        .await?
        .into_iter()
        .flatten()
        .collect();
    out.sort_by(|a, b| (a.ns, &a.object).cmp(&(b.ns, &b.object)));
    Ok(out)
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
