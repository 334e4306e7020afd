//! The start-up probe: does this store honour conditional writes?
//!
//! Everything exact about backend-s3 rests on two headers of PutObject: `If-None-Match: *`
//! (create only if absent) and `If-Match: ETAG` (replace only what was read). AWS S3 and
//! SeaweedFS 4.48 honour both; some S3-compatible stores (Garage, for one) accept the headers
//! and ignore them, which would silently turn a compare-and-swap into a blind overwrite. A
//! capability table cannot tell the two apart, so a writable backend asks the store itself at
//! every start: it creates a scratch object twice and expects the second to be refused, then
//! replaces it with a stale ETag and expects a refusal (and the same of an object that does not
//! exist), then with the right one and expects
//! success (a new ETag, or the bytes read back, shows it took effect). The findings are
//! reported by the admin command `info`. Six small requests in four round trips, run beside the
//! format object's read, is the price of never trusting a store on its word.
//!
//! A store that honoured both is probed again by this machine once a day, not at every start:
//! the finding is kept beside the local copies of index objects (`local`), and an unchanged
//! re-snapshot made 36 requests, five of them the probe's. A store found to ignore either is
//! probed at every start, so that a store fixed since is seen at once, and so is every
//! read-only start's lack of a probe. A store that starts ignoring conditions within the day
//! is the risk taken; `info` says when the finding it reports was made.

use crate::store::Store;
use protocol::Result;
use serde::Serialize;

/// What the probe found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Conditional {
    /// A second create of an existing object was refused.
    pub if_none_match: bool,
    /// A replace with a stale ETag was refused, and one with the current ETag succeeded.
    pub if_match: bool,
    /// Whether the probe ran (a read-only backend writes nothing, so it does not probe).
    pub probed: bool,
    /// When the probe whose finding this is ran (seconds since 1970), if it ran.
    pub at: Option<u64>,
    /// The finding was this machine's record of an earlier probe, less than a day old.
    pub recalled: bool,
    /// The store's ETags are the MD5 of an object's bytes (`tag_cache`).
    pub md5_etags: bool,
}

/// How long this machine trusts a probe that found both conditions honoured.
const TRUSTED_FOR: u64 = 24 * 3600;

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Conditional {
    /// Both kinds of conditional writes hold: tags can be moved exactly.
    pub fn exact(&self) -> bool {
        self.if_none_match && self.if_match
    }

    /// What `info` says about it.
    pub fn describe(&self) -> String {
        if !self.probed {
            return "not probed (read-only: the probe writes a scratch object)".into();
        }
        let yes = |b: bool| if b { "honoured" } else { "IGNORED" };
        let when = match (self.recalled, self.at) {
            (true, Some(at)) => format!(
                " (found by this machine {} s ago; probed again once a day)",
                now().saturating_sub(at)
            ),
            _ => " (probed at this start)".into(),
        };
        format!(
            "If-None-Match: * {}, If-Match: ETAG {}{when}",
            yes(self.if_none_match),
            yes(self.if_match)
        )
    }
}

/// This machine's finding when it is less than a day old and found both conditions
/// honoured; else the probe's, kept for next time when it found them so.
pub(crate) async fn probe_or_recall(store: &Store) -> Result<Conditional> {
    let kept = store
        .local
        .recall("probe.json")
        .and_then(|b| serde_json::from_slice::<Kept>(&b).ok());
    // A record dated ahead of this clock (by more than a little skew) is not trusted: it would
    // never grow old.
    let fresh = |k: &Kept| {
        k.exact
            && k.md5_etags.is_some()
            && k.at <= now() + 300
            && now().saturating_sub(k.at) < TRUSTED_FOR
    };
    if let Some(k) = kept.filter(fresh) {
        return Ok(Conditional {
            if_none_match: true,
            if_match: true,
            probed: true,
            at: Some(k.at),
            recalled: true,
            md5_etags: k.md5_etags == Some(true),
        });
    }
    let found = probe(store).await?;
    if found.exact() {
        let kept = Kept {
            exact: true,
            at: found.at.unwrap_or_else(now),
            md5_etags: Some(found.md5_etags),
        };
        if let Ok(b) = serde_json::to_vec(&kept) {
            store.local.keep("probe.json", &b);
        }
    }
    Ok(found)
}

/// What this machine keeps of a probe.
#[derive(serde::Serialize, serde::Deserialize)]
struct Kept {
    exact: bool,
    at: u64,
    /// Absent in records kept before it was probed: such a record is not trusted.
    md5_etags: Option<bool>,
}

/// Runs the probe with a scratch object under `probe/`, deleted afterwards.
pub(crate) async fn probe(store: &Store) -> Result<Conditional> {
    let at = now();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let path = format!("probe/{}-{nanos}", std::process::id());
    // The create's answer carries the ETag. A second create and a replace with a stale ETag
    // must both be refused; they go together (one round trip, not two).
    let created = store
        .put_conditional(&path, b"first".to_vec(), None)
        .await?;
    let stale = created
        .clone()
        .flatten()
        .map(|e| format!("\"{}-stale\"", e.trim_matches('"')))
        .unwrap_or_else(|| "\"ore-probe-stale\"".into());
    // A replace of an object that does not exist must be refused too: a tag move from a value
    // whose ETag is computed (`tag_cache`) may be sent for a tag never created.
    let absent = format!("{path}-absent");
    let (second, stale_write, absent_write) = futures::join!(
        store.put_new(&path, b"second".to_vec()),
        store.put_if_match(&path, b"stale".to_vec(), &stale),
        store.put_if_match(&absent, b"absent".to_vec(), &stale)
    );
    let (refused_second, refused_stale) = (!second?, !stale_write?);
    let refused_absent = !absent_write?;
    if !refused_absent {
        store.delete(&absent).await?;
    }
    let if_none_match = created.is_some() && refused_second;
    let md5_etags =
        created.clone().flatten().as_deref() == Some(crate::tag_cache::md5_etag(b"first").as_str());
    // Unless both were refused (or the store gave no ETag), the object is not the one created:
    // ask for its ETag.
    let etag = match created.flatten() {
        Some(e) if refused_second && refused_stale => Some(e),
        _ => store.get_tagged(&path).await?.map(|t| t.etag),
    };
    let if_match = match etag {
        Some(etag) => match store
            .put_conditional(&path, b"third".to_vec(), Some(&etag))
            .await?
        {
            // Accepted with a new ETag: the replace took effect. Without one, read it back.
            Some(Some(new)) if new != etag => refused_stale && refused_absent,
            Some(_) => {
                refused_stale
                    && refused_absent
                    && store.get(&path).await?.as_deref() == Some(&b"third"[..])
            }
            None => false,
        },
        None => false,
    };
    store.delete(&path).await?;
    Ok(Conditional {
        if_none_match,
        if_match,
        probed: true,
        at: Some(at),
        recalled: false,
        md5_etags,
    })
}
