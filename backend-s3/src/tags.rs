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
//! Requests: a read is a HEAD (for the ETag) and a GET that must match it, because OpenDAL
//! does not hand back a GET's headers. So each process keeps the last value and ETag it read or
//! wrote for each tag (`tag_cache`): a read of a tag it knows is one GET with `If-None-Match`,
//! answered 304 while nothing changed, and a move from the value it knows is one conditional
//! PUT with that ETag, which the store refuses if anyone moved the tag since (then it reads
//! afresh and compares as before). The cache only saves requests; every decision still rests
//! on a condition the store checks.
//!
//! Names are hex-encoded in object names so that any tag name is a valid, unambiguous object
//! name and listing order is byte order. History records are
//! `tag-history/<hex of name>/<blake3 of value, 32 hex digits>` holding
//! `{"ns": first seen, nanoseconds since the epoch, "value": hex}`, created with
//! `If-None-Match: *` after the tag moved: a value already kept keeps its first-seen time.

use crate::store::Store;
use crate::tag_history::{contended, forget, history, keep, ROUNDS};
use protocol::{CasOutcome, Error, ErrorCode, Result};

const SET: u8 = b's';
const REMOVED: u8 = b'r';

fn path(name: &str) -> String {
    format!("tags/{}", hex::encode(name.as_bytes()))
}

/// The tag's value (`None`: never set or removed) and the ETag of its object, if any: one GET
/// when the cached ETag is still current, else a HEAD and a GET.
async fn read(store: &Store, name: &str) -> Result<(Option<Vec<u8>>, Option<String>)> {
    let p = path(name);
    if let Some((value, etag)) = store.tag_cache.get(name) {
        match store.unchanged(&p, &etag).await? {
            Some(true) => return Ok((value, Some(etag))),
            Some(false) => {}
            None => {
                store.tag_cache.note(name, None, None);
                return Ok((None, None));
            }
        }
    }
    let Some(t) = store.get_tagged(&p).await? else {
        store.tag_cache.note(name, None, None);
        return Ok((None, None));
    };
    let (value, etag) = parse(store, name, &p, t.data, t.etag)?;
    store
        .tag_cache
        .note(name, value.clone(), Some(etag.clone()));
    Ok((value, Some(etag)))
}

fn parse(
    store: &Store,
    name: &str,
    p: &str,
    data: Vec<u8>,
    etag: String,
) -> Result<(Option<Vec<u8>>, String)> {
    match data.split_first() {
        Some((&SET, v)) => Ok((Some(v.to_vec()), etag)),
        Some((&REMOVED, [])) => Ok((None, etag)),
        _ => Err(Error::backend(
            ErrorCode::Corrupt,
            format!(
                "{}: tag object {p} (tag {name:?}) is not a tag: it starts with neither 's' nor is it 'r'",
                store.archive
            ),
        )),
    }
}

/// The tag's value: one GET either way (with `If-None-Match` for a tag this process knows; a
/// plain one otherwise, since a read that moves nothing needs no ETag).
pub(crate) async fn get(store: &Store, name: &str) -> Result<Option<Vec<u8>>> {
    if store.tag_log {
        return crate::tag_log::get(store, name).await;
    }
    if store.tag_cache.get(name).is_some() {
        return Ok(read(store, name).await?.0);
    }
    let p = path(name);
    match store.get(&p).await? {
        Some(data) => {
            // Where ETags are the bytes' MD5, the read tells the ETag too: remember both.
            let md5 = store.tag_cache.md5_etags();
            let etag = if md5 {
                crate::tag_cache::md5_etag(&data)
            } else {
                String::new()
            };
            let (value, etag) = parse(store, name, &p, data, etag)?;
            if md5 {
                store.tag_cache.note(name, value.clone(), Some(etag));
            }
            Ok(value)
        }
        None => Ok(None),
    }
}

/// Writes `value` (`None`: the tombstone) over what was read (`etag`), conditionally;
/// `false` when someone was first.
async fn swap(
    store: &Store,
    name: &str,
    etag: Option<String>,
    value: Option<&[u8]>,
) -> Result<bool> {
    let body = match value {
        Some(v) => [&[SET], v].concat(),
        None => vec![REMOVED],
    };
    match store
        .put_conditional(&path(name), body, etag.as_deref())
        .await?
    {
        Some(new_etag) => {
            store
                .tag_cache
                .note(name, value.map(<[u8]>::to_vec), new_etag);
            Ok(true)
        }
        None => {
            store.tag_cache.note(name, None, None);
            Ok(false)
        }
    }
}

/// What the tag holds as far as this process knows without asking (the cached value and
/// ETag: a swap from it fails safely when it is stale, and `true`), else as read (`false`).
/// Where ETags are MD5s, a tag not in the cache is taken to hold `expected`, whose ETag is
/// known: the swap from it is refused unless it does.
async fn known(
    store: &Store,
    name: &str,
    expected: Option<&[u8]>,
) -> Result<(Option<Vec<u8>>, Option<String>, bool)> {
    if let Some((value, etag)) = store.tag_cache.get(name) {
        return Ok((value, Some(etag), true));
    }
    if store.tag_cache.md5_etags() {
        let etag = expected.map(|v| crate::tag_cache::md5_etag(&[&[SET], v].concat()));
        return Ok((expected.map(<[u8]>::to_vec), etag, true));
    }
    let (value, etag) = read(store, name).await?;
    Ok((value, etag, false))
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
    for round in 0..ROUNDS {
        let (current, etag, cached) = match round {
            0 => known(store, name, expected).await?,
            _ => {
                let (v, e) = read(store, name).await?;
                (v, e, false)
            }
        };
        if current.as_deref() != expected {
            if cached {
                // The cached value may be stale: only a fresh read may answer a conflict.
                store.tag_cache.note(name, None, None);
                continue;
            }
            return Ok(CasOutcome::Conflict { current });
        }
        if swap(store, name, etag, Some(value)).await? {
            keep(store, name, value).await?;
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
        if swap(store, name, etag, None).await? {
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
    let mut gone = Vec::new();
    for k in history(store, name).await? {
        let secs = i64::try_from(k.ns / 1_000_000_000).unwrap_or(i64::MAX);
        if secs > cutoff {
            continue;
        }
        if get(store, &k.tag).await?.as_deref() == Some(k.value.as_slice()) {
            continue;
        }
        gone.push(k);
    }
    forget(store, &gone).await?;
    Ok(gone.len() as u64)
}
