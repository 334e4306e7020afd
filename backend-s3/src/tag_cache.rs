//! The last value and ETag this process read or wrote for each tag object (`tags`).
//!
//! It sits apart from `tags` because the [`crate::store::Store`] every module is handed owns
//! it, and `tags` reads and writes through that store: kept in `tags`, the store and the tags
//! would each need the other. The cache only saves requests (a read of a tag this process knows
//! is one GET with `If-None-Match`, a move from the value it knows one conditional PUT); every
//! decision still rests on a condition the store checks.
//!
//! On a store whose ETags are the MD5 of an object's bytes (AWS S3 without KMS keys, SeaweedFS;
//! the start-up probe checks it), the ETag of a tag holding a given value is known without
//! asking: a move from the value the frontend expects is then one PUT with `If-Match` of that
//! ETag, which the store accepts exactly when the tag holds that value, and a plain GET's bytes
//! give their own ETag. Without this, each first move of a tag in a process cost a HEAD and a
//! GET before its PUT (six requests of an unchanged re-snapshot).

use md5::{Digest, Md5};
use ore_util::sync::lock;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// A tag's value (`None`: removed) as this process last saw it, and its object's ETag.
pub(crate) type Seen = (Option<Vec<u8>>, String);

/// The last value and ETag this process saw for each tag object.
#[derive(Default)]
pub(crate) struct Cache(Mutex<HashMap<String, Seen>>, AtomicBool);

/// The ETag a store that names objects by the MD5 of their bytes gives `body`.
pub(crate) fn md5_etag(body: &[u8]) -> String {
    format!("\"{}\"", hex::encode(Md5::digest(body)))
}

impl Cache {
    /// Whether the store's ETags are the MD5 of the bytes (as the probe found).
    pub(crate) fn md5_etags(&self) -> bool {
        self.1.load(Ordering::Relaxed)
    }

    /// Records what the probe found of the store's ETags.
    pub(crate) fn set_md5_etags(&self, yes: bool) {
        self.1.store(yes, Ordering::Relaxed);
    }

    /// What was last seen of tag `name`, if anything.
    pub(crate) fn get(&self, name: &str) -> Option<Seen> {
        lock(&self.0).get(name).cloned()
    }

    /// Remembers `value` with `etag` for tag `name`; without an ETag, forgets the tag.
    pub(crate) fn note(&self, name: &str, value: Option<Vec<u8>>, etag: Option<String>) {
        let mut m = lock(&self.0);
        match etag {
            Some(e) => m.insert(name.to_string(), (value, e)),
            None => m.remove(name),
        };
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_md5_etag_is_the_quoted_hex_digest() {
        // The ETag SeaweedFS and S3 give an object holding "first".
        assert_eq!(
            super::md5_etag(b"first"),
            "\"8b04d5e3775d298e78455efc5ca404d5\""
        );
    }
}
