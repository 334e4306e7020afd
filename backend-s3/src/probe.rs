//! The start-up probe: does this store honour conditional writes?
//!
//! Everything exact about backend-s3 rests on two headers of PutObject: `If-None-Match: *`
//! (create only if absent) and `If-Match: ETAG` (replace only what was read). AWS S3 and
//! SeaweedFS 4.48 honour both; some S3-compatible stores (Garage, for one) accept the headers
//! and ignore them, which would silently turn a compare-and-swap into a blind overwrite. A
//! capability table cannot tell the two apart, so a writable backend asks the store itself at
//! every start: it creates a scratch object twice and expects the second to be refused, then
//! replaces it with a stale ETag and expects a refusal, then with the right one and expects
//! success, and reads it back. The findings are reported by the admin command `info`. Six small
//! requests per start (four PUTs, a GET, a DELETE) is the price of never trusting a store on
//! its word.

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
        format!(
            "If-None-Match: * {}, If-Match: ETAG {}",
            yes(self.if_none_match),
            yes(self.if_match)
        )
    }
}

/// Runs the probe with a scratch object under `probe/`, deleted afterwards.
pub(crate) async fn probe(store: &Store) -> Result<Conditional> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let path = format!("probe/{}-{nanos}", std::process::id());
    // The create's answer carries the ETag; a store that gives none is asked for it.
    let created = store
        .put_conditional(&path, b"first".to_vec(), None)
        .await?;
    let refused_second = !store.put_new(&path, b"second".to_vec()).await?;
    let if_none_match = created.is_some() && refused_second;
    let etag = match created.flatten() {
        Some(e) => Some(e),
        None => store.get_tagged(&path).await?.map(|t| t.etag),
    };
    let if_match = match etag {
        Some(etag) => {
            let stale = format!("\"{}-stale\"", etag.trim_matches('"'));
            let refused_stale = !store.put_if_match(&path, b"stale".to_vec(), &stale).await?;
            let accepted = store.put_if_match(&path, b"third".to_vec(), &etag).await?;
            let back = store.get(&path).await?;
            refused_stale && accepted && back.as_deref() == Some(&b"third"[..])
        }
        None => false,
    };
    store.delete(&path).await?;
    Ok(Conditional {
        if_none_match,
        if_match,
        probed: true,
    })
}
