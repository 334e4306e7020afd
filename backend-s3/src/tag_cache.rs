//! The last value and ETag this process read or wrote for each tag object (`tags`).
//!
//! It sits apart from `tags` because the [`crate::store::Store`] every module is handed owns
//! it, and `tags` reads and writes through that store: kept in `tags`, the store and the tags
//! would each need the other. The cache only saves requests (a read of a tag this process knows
//! is one GET with `If-None-Match`, a move from the value it knows one conditional PUT); every
//! decision still rests on a condition the store checks.

use ore_util::sync::lock;
use std::collections::HashMap;
use std::sync::Mutex;

/// A tag's value (`None`: removed) as this process last saw it, and its object's ETag.
pub(crate) type Seen = (Option<Vec<u8>>, String);

/// The last value and ETag this process saw for each tag object.
#[derive(Default)]
pub(crate) struct Cache(Mutex<HashMap<String, Seen>>);

impl Cache {
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
