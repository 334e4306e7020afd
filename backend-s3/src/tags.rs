//! Tags as objects moved by compare-and-swap, and their history.
//!
//! A tag is the object `tags/<hex of name>`: one byte `s` followed by the value while the tag
//! is set, or the single byte `r` once it was removed (a tombstone). Every change is a
//! conditional PUT — `If-None-Match: *` where no object exists yet, `If-Match: ETAG` of the
//! object just read otherwise — so a change that raced with another is refused by the store
//! and retried from a fresh read, and no move is lost whichever process or host made it.
//! Removal writes the tombstone instead of deleting the object, because S3 has no conditional
//! DELETE that every store honours: an unconditional delete after the read could erase a move
//! made in between. Tombstones stay (a few bytes each; a name can be set again over one).
//!
//! Names are hex-encoded in object names so that any tag name is a valid, unambiguous object
//! name and listing order is byte order. History records are
//! `tag-history/<hex of name>/<blake3 of value, 32 hex digits>` holding
//! `{"ns": first seen, nanoseconds since the epoch, "value": hex}`, created with
//! `If-None-Match: *` after the tag moved: a value already kept keeps its first-seen time.

use crate::store::Store;
use crate::tag_history::{contended, history, record, ROUNDS};
use protocol::{CasOutcome, Error, ErrorCode, Result};

const SET: u8 = b's';
const REMOVED: u8 = b'r';

fn path(name: &str) -> String {
    format!("tags/{}", hex::encode(name.as_bytes()))
}

/// The tag's value (`None`: never set or removed) and the ETag of its object, if any.
async fn read(store: &Store, name: &str) -> Result<(Option<Vec<u8>>, Option<String>)> {
    let p = path(name);
    let Some(t) = store.get_tagged(&p).await? else {
        return Ok((None, None));
    };
    match t.data.split_first() {
        Some((&SET, v)) => Ok((Some(v.to_vec()), Some(t.etag))),
        Some((&REMOVED, [])) => Ok((None, Some(t.etag))),
        _ => Err(Error::backend(
            ErrorCode::Corrupt,
            format!(
                "{}: tag object {p} (tag {name:?}) is not a tag: it starts with neither 's' nor is it 'r'",
                store.archive
            ),
        )),
    }
}

pub(crate) async fn get(store: &Store, name: &str) -> Result<Option<Vec<u8>>> {
    if store.tag_log {
        return crate::tag_log::get(store, name).await;
    }
    Ok(read(store, name).await?.0)
}

/// Writes `body` over what was read (`etag`), conditionally; `false` when someone was first.
async fn swap(store: &Store, name: &str, etag: Option<String>, body: Vec<u8>) -> Result<bool> {
    match etag {
        None => store.put_new(&path(name), body).await,
        Some(e) => store.put_if_match(&path(name), body, &e).await,
    }
}

pub(crate) async fn set(
    store: &Store,
    name: &str,
    expected: Option<&[u8]>,
    value: &[u8],
) -> Result<CasOutcome> {
    if store.tag_log {
        return crate::tag_log::change(store, name, expected, Some(value), false).await;
    }
    for _ in 0..ROUNDS {
        let (current, etag) = read(store, name).await?;
        if current.as_deref() != expected {
            return Ok(CasOutcome::Conflict { current });
        }
        let mut body = vec![SET];
        body.extend_from_slice(value);
        if swap(store, name, etag, body).await? {
            record(store, name, value).await?;
            return Ok(CasOutcome::Done);
        }
    }
    Err(contended(store, name))
}

pub(crate) async fn remove(
    store: &Store,
    name: &str,
    expected: Option<&[u8]>,
) -> Result<CasOutcome> {
    if store.tag_log {
        return crate::tag_log::change(store, name, expected, None, expected.is_none()).await;
    }
    for _ in 0..ROUNDS {
        let (current, etag) = read(store, name).await?;
        let Some(v) = current else {
            return Ok(match expected {
                None => CasOutcome::Done,
                Some(_) => CasOutcome::Conflict { current: None },
            });
        };
        if expected.is_some_and(|e| e != v.as_slice()) {
            return Ok(CasOutcome::Conflict { current: Some(v) });
        }
        if swap(store, name, etag, vec![REMOVED]).await? {
            return Ok(CasOutcome::Done);
        }
    }
    Err(contended(store, name))
}

/// Every set tag and its value, sorted by name.
pub(crate) async fn list(store: &Store) -> Result<Vec<(String, Vec<u8>)>> {
    if store.tag_log {
        return crate::tag_log::list(store).await;
    }
    let names = store.list_all("tags/").await?;
    let reads = names.iter().map(|h| async move {
        let name = hex::decode(h)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| {
                Error::backend(
                    ErrorCode::Corrupt,
                    format!("{}: tags/{h} is not a hex-encoded tag name", store.archive),
                )
            })?;
        let v = get(store, &name).await?;
        Ok::<_, Error>(v.map(|v| (name, v)))
    });
    let mut out: Vec<(String, Vec<u8>)> = crate::store::at_most(reads)
        .await?
        .into_iter()
        .flatten()
        .collect();
    out.sort();
    Ok(out)
}

/// Forgets kept values first seen at or before `cutoff` (seconds) that their tag no longer
/// holds; the number forgotten.
pub(crate) async fn expire(store: &Store, cutoff: i64, name: Option<&str>) -> Result<u64> {
    let mut n = 0;
    for k in history(store, name).await? {
        let secs = i64::try_from(k.ns / 1_000_000_000).unwrap_or(i64::MAX);
        if secs > cutoff {
            continue;
        }
        if get(store, &k.tag).await?.as_deref() == Some(k.value.as_slice()) {
            continue;
        }
        store.delete(&k.object).await?;
        n += 1;
    }
    Ok(n)
}
