//! backend-cache: a proxy that remembers which blocks its inner backend holds.
//!
//! Every snapshot asks the archive, for each chunk, whether it is already stored. In front of
//! a distant archive those questions cost a round trip each batch; this proxy answers them
//! from a local sqlite file ([`db`]) for every key it has seen stored, and asks the inner
//! backend, in one batch, only about the rest. Everything else — puts, gets, tags, listings,
//! removals — passes through to the inner backend.
//!
//! The rule that makes it correct: a key is recorded only after the inner backend acknowledged
//! it (a put, or a yes to `exists`) *and* a flush completed after that, so the cache never
//! claims a block that a crash could still take away; removals passing through forget their
//! keys first. A cache is therefore only correct if every removal goes through it. Removals
//! that bypass it are caught in one common case: Ore's garbage collector changes the
//! archive's `ore:gc` tag whenever it removes blocks, and a cache that finds that tag changed
//! behind its back starts empty.

mod admin;
pub mod db;

use db::Db;
use ore_util::lock;
use protocol::backend::{CasOutcome, Stats};
use protocol::{AdminOutput, Backend, BackendInfo, Key, Result, Ticket};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex, MutexGuard};

/// The tag Ore's garbage collector changes whenever it removes blocks.
pub const GC_TAG: &str = protocol::tagrules::GC_TAG;

/// Acknowledged keys held in memory before they are written to the file together.
const NOTE_BATCH: usize = 4096;

/// The part of the cache that tickets finishing later need.
pub(crate) struct Shared {
    db: Mutex<Db>,
    /// Acknowledged keys not yet written to the file, with their flush generation (written in
    /// batches: a transaction per key would cost more than the question it saves).
    notes: Mutex<HashMap<Key, u64>>,
    /// The flush generation new acknowledgements wait for.
    gen: AtomicU64,
    /// Removals so far: an acknowledgement that started before a removal is not noted (it
    /// might be of a block that removal took away).
    removals: AtomicU64,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl Shared {
    fn db(&self) -> MutexGuard<'_, Db> {
        lock(&self.db)
    }

    pub(crate) fn notes(&self) -> MutexGuard<'_, HashMap<Key, u64>> {
        lock(&self.notes)
    }

    /// Notes acknowledged keys, unless a removal happened since `removals` was read.
    fn note(&self, keys: &[Key], removals: u64) {
        if keys.is_empty() || self.removals.load(SeqCst) != removals {
            return;
        }
        let gen = self.gen.load(SeqCst);
        let full = {
            let mut notes = self.notes();
            for k in keys {
                let g = notes.entry(*k).or_insert(gen);
                *g = (*g).max(gen);
            }
            notes.len() >= NOTE_BATCH
        };
        if full {
            self.write_notes();
        }
    }

    /// Writes the noted keys to the file. A failure is harmless (the keys are asked about
    /// again), so it is only logged.
    fn write_notes(&self) {
        let notes: Vec<(Key, u64)> = self.notes().drain().collect();
        if notes.is_empty() {
            return;
        }
        if let Err(e) = self.db().note(&notes) {
            protocol::log::warning(&format!("backend-cache: {e}"));
        }
    }

    /// Moves this session's hit and miss counts into the file.
    fn save_counters(&self) -> Result<()> {
        let hits = self.hits.swap(0, SeqCst);
        let misses = self.misses.swap(0, SeqCst);
        let r = self
            .db()
            .add_counters(&[("hits", hits), ("misses", misses)]);
        if r.is_err() {
            self.hits.fetch_add(hits, SeqCst);
            self.misses.fetch_add(misses, SeqCst);
        }
        r
    }
}

/// The proxy: a cache file in front of an inner backend.
pub struct CacheBackend {
    inner: Arc<dyn Backend>,
    inner_id: String,
    shared: Arc<Shared>,
    info: BackendInfo,
}

impl CacheBackend {
    /// Opens the cache at `path` in front of the archive identifier `inner_id`, starting it.
    pub fn open(path: &Path, inner_id: &str) -> Result<CacheBackend> {
        let inner = connect::open(inner_id)?;
        CacheBackend::with_inner(path, inner, inner_id)
    }

    /// Opens the cache at `path` in front of an inner backend already open, known by
    /// `inner_id`.
    ///
    /// The file remembers which archive it was made for and the value of its `ore:gc` tag; a
    /// cache used for another archive, or whose archive had blocks removed behind its back,
    /// starts empty (with a warning) rather than answering wrongly.
    pub fn with_inner(
        path: &Path,
        inner: Arc<dyn Backend>,
        inner_id: &str,
    ) -> Result<CacheBackend> {
        let db = Db::open(path)?;
        let gc = gc_epoch(inner.get_tag(GC_TAG)?.as_deref());
        let (known, _) = db.counts()?;
        let stale = |why: String| {
            if known > 0 {
                protocol::log::warning(&format!("cache {}: {why}: starting empty", path.display()));
            }
            db.clear()
        };
        match db.meta("inner")? {
            Some(was) if was != inner_id => stale(format!(
                "it was made for the archive {was:?}, not {inner_id:?}"
            ))?,
            Some(_) => match db.meta("gc")? {
                Some(was) if was != gc => stale(
                    "blocks were removed from the archive without passing through this cache \
                     (its ore:gc tag changed)"
                        .into(),
                )?,
                _ => {}
            },
            None => db.clear()?,
        }
        db.set_meta("inner", inner_id)?;
        db.set_meta("gc", &gc)?;
        let inner_info = inner.info();
        let mut admin_commands = protocol::admin::names(admin::TABLE);
        for c in &inner_info.admin_commands {
            if !admin_commands.contains(c) {
                admin_commands.push(c.clone());
            }
        }
        let info = BackendInfo {
            server: format!("backend-cache {}", env!("CARGO_PKG_VERSION")),
            description: format!(
                "cache {} in front of {}",
                path.display(),
                inner_info.description
            ),
            admin_commands,
            ..inner_info
        };
        Ok(CacheBackend {
            inner,
            inner_id: inner_id.to_string(),
            shared: Arc::new(Shared {
                db: Mutex::new(db),
                notes: Mutex::new(HashMap::new()),
                gen: AtomicU64::new(1),
                removals: AtomicU64::new(0),
                hits: AtomicU64::new(0),
                misses: AtomicU64::new(0),
            }),
            info,
        })
    }

    /// The cache file.
    pub fn path(&self) -> PathBuf {
        self.shared.db().path().to_path_buf()
    }

    /// After a tag change passed through: keep the remembered `ore:gc` epoch in step, so a
    /// collection that went through this cache does not empty it.
    fn tag_changed(&self, name: &str, value: Option<&[u8]>, outcome: &CasOutcome) -> Result<()> {
        if name == GC_TAG && *outcome == CasOutcome::Done {
            self.shared.db().set_meta("gc", &gc_epoch(value))?;
        }
        Ok(())
    }

    /// After `ore:gc` was read through this cache: if its epoch moved since the cache last
    /// saw it, a gc removed blocks behind the cache's back while this process ran, so
    /// everything remembered (on file and in memory) is dropped. A client reads the tag before
    /// it starts writing (Ore's lease), so it never relies on an answer from before the gc.
    fn gc_seen(&self, value: Option<&[u8]>) -> Result<()> {
        let epoch = gc_epoch(value);
        let db = self.shared.db();
        if db.meta("gc")?.as_deref() == Some(epoch.as_str()) {
            return Ok(());
        }
        self.shared.removals.fetch_add(1, SeqCst);
        self.shared.notes().clear();
        if db.counts()?.0 > 0 {
            protocol::log::warning(&format!(
                "cache {}: blocks were removed from the archive behind this cache's back \
                 (its ore:gc tag changed): starting empty",
                db.path().display()
            ));
        }
        db.clear()?;
        db.set_meta("gc", &epoch)
    }
}

impl Drop for CacheBackend {
    fn drop(&mut self) {
        let _ = self.shared.save_counters();
    }
}

/// What of `ore:gc` says whether blocks were removed: the `epoch` of Ore's JSON value (a gc
/// that is still sweeping, or removed nothing, keeps it), or the whole value in hex.
pub fn gc_epoch(value: Option<&[u8]>) -> String {
    let Some(v) = value else {
        return String::new();
    };
    match serde_json::from_slice::<serde_json::Value>(v) {
        Ok(j) => match j.get("epoch").and_then(|e| e.as_str()) {
            Some(e) => format!("epoch {e}"),
            None => hex::encode(v),
        },
        Err(_) => hex::encode(v),
    }
}

impl Backend for CacheBackend {
    fn info(&self) -> BackendInfo {
        self.info.clone()
    }

    fn pipelines(&self) -> bool {
        self.inner.pipelines()
    }

    /// A miss in the cache's table is asked of the inner backend.
    fn exists_waits(&self) -> bool {
        self.inner.exists_waits()
    }

    fn put(&self, key: Key, data: &[u8]) -> Result<()> {
        let removals = self.shared.removals.load(SeqCst);
        self.inner.put(key, data)?;
        self.shared.note(&[key], removals);
        Ok(())
    }

    fn put_restricted(&self, key: Key, data: &[u8]) -> Result<()> {
        let removals = self.shared.removals.load(SeqCst);
        self.inner.put_restricted(key, data)?;
        self.shared.note(&[key], removals);
        Ok(())
    }

    fn start_put(&self, key: Key, data: Vec<u8>) -> Ticket<()> {
        let removals = self.shared.removals.load(SeqCst);
        let shared = self.shared.clone();
        self.inner
            .start_put(key, data)
            .map(move |()| shared.note(&[key], removals))
    }

    fn get(&self, key: Key) -> Result<Option<Vec<u8>>> {
        self.inner.get(key)
    }

    fn start_get(&self, key: Key) -> Ticket<Option<Vec<u8>>> {
        self.inner.start_get(key)
    }

    fn exists(&self, keys: &[Key]) -> Result<Vec<bool>> {
        self.start_exists(keys.to_vec()).wait()
    }

    fn start_exists(&self, keys: Vec<Key>) -> Ticket<Vec<bool>> {
        let removals = self.shared.removals.load(SeqCst);
        let mut answer = match self.shared.db().known(&keys) {
            Ok(a) => a,
            Err(e) => return Ticket::ready(Err(e)),
        };
        {
            let notes = self.shared.notes();
            for (k, slot) in keys.iter().zip(answer.iter_mut()) {
                *slot |= notes.contains_key(k);
            }
        }
        let ask: Vec<Key> = keys
            .iter()
            .zip(&answer)
            .filter(|(_, &known)| !known)
            .map(|(k, _)| *k)
            .collect();
        self.shared
            .hits
            .fetch_add((keys.len() - ask.len()) as u64, SeqCst);
        if ask.is_empty() {
            return Ticket::ready(Ok(answer));
        }
        self.shared.misses.fetch_add(ask.len() as u64, SeqCst);
        let shared = self.shared.clone();
        let n = ask.len();
        self.inner.start_exists(ask.clone()).map(move |present| {
            if present.len() != n {
                // A broken answer from the inner backend: learn nothing from it.
                return answer;
            }
            let stored: Vec<Key> = ask
                .iter()
                .zip(&present)
                .filter(|(_, &p)| p)
                .map(|(k, _)| *k)
                .collect();
            shared.note(&stored, removals);
            let mut it = present.into_iter();
            for slot in answer.iter_mut().filter(|s| !**s) {
                *slot = it.next().unwrap_or(false);
            }
            answer
        })
    }

    fn remove(&self, keys: &[Key]) -> Result<()> {
        // Forget first: if the removal then fails, the cache merely asks again.
        self.shared.removals.fetch_add(1, SeqCst);
        {
            let mut notes = self.shared.notes();
            for k in keys {
                notes.remove(k);
            }
        }
        self.shared.db().forget(keys)?;
        self.inner.remove(keys)
    }

    fn list(&self, after: Option<Key>, limit: u32) -> Result<(Vec<Key>, bool)> {
        self.inner.list(after, limit)
    }

    fn get_tag(&self, name: &str) -> Result<Option<Vec<u8>>> {
        let v = self.inner.get_tag(name)?;
        if name == GC_TAG {
            self.gc_seen(v.as_deref())?;
        }
        Ok(v)
    }

    fn set_tag(&self, name: &str, expected: Option<&[u8]>, value: &[u8]) -> Result<CasOutcome> {
        let outcome = self.inner.set_tag(name, expected, value)?;
        self.tag_changed(name, Some(value), &outcome)?;
        Ok(outcome)
    }

    fn remove_tag(&self, name: &str, expected: Option<&[u8]>) -> Result<CasOutcome> {
        let outcome = self.inner.remove_tag(name, expected)?;
        self.tag_changed(name, None, &outcome)?;
        Ok(outcome)
    }

    fn list_tags(&self) -> Result<Vec<(String, Vec<u8>)>> {
        self.inner.list_tags()
    }

    /// Flushes the inner backend, then records every key acknowledged before the flush began.
    fn flush(&self) -> Result<()> {
        let gen = self.shared.gen.fetch_add(1, SeqCst);
        self.inner.flush()?;
        self.shared.write_notes();
        self.shared.db().record_flushed(gen)?;
        self.shared.save_counters()
    }

    fn stats(&self) -> Result<Stats> {
        self.inner.stats()
    }

    fn admin(&self, command: &str, args: &[String]) -> Result<AdminOutput> {
        admin::run(self, command, args)
    }
}
