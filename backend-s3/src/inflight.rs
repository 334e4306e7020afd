//! Puts in flight, by key: the protocol's order kept while many requests run at once.
//!
//! `serve` starts a put and, without waiting, may start a get or an exists of the same key
//! (one client thread issued them in that order). On a store where each is its own request,
//! the get could overtake the put and answer "missing". So each put in flight registers here,
//! and a read collects what it must wait for when it is started — in request order, on the
//! serving thread — and awaits it before its own request.

use futures::future::{FutureExt, Shared};
use protocol::Key;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Resolves when a put in flight has finished (either way).
pub(crate) type Done = Shared<futures::channel::oneshot::Receiver<()>>;

/// Puts in flight by key, so that a later get or exists of the same key waits for them: the
/// protocol's order ("operations issued by one thread take effect in the order it issued
/// them") while many requests run at once.
#[derive(Clone, Default)]
pub(crate) struct InFlight(Arc<Mutex<HashMap<Key, (u64, Done)>>>);

impl InFlight {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<Key, (u64, Done)>> {
        // Every change is one insert or remove: a poisoned lock holds a whole map.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a put of `key`; the sender is fired when it finishes.
    pub(crate) fn start(&self, key: Key, generation: u64) -> futures::channel::oneshot::Sender<()> {
        let (tx, rx) = futures::channel::oneshot::channel();
        self.map().insert(key, (generation, rx.shared()));
        tx
    }

    pub(crate) fn finish(&self, key: &Key, generation: u64) {
        let mut m = self.map();
        if m.get(key).is_some_and(|(g, _)| *g == generation) {
            m.remove(key);
        }
    }

    /// What a read of `keys` must wait for.
    pub(crate) fn waits(&self, keys: &[Key]) -> Vec<Done> {
        let m = self.map();
        keys.iter()
            .filter_map(|k| m.get(k).map(|(_, d)| d.clone()))
            .collect()
    }
}
