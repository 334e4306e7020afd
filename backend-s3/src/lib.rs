//! backend-s3: an Ore archive in an S3-compatible object store.
//!
//! The layout, the probe and the guarantees are specified in `backend-s3/LAYOUT.md`; this crate
//! implements the protocol's one [`Backend`] trait over it, so `serve`, the conformance suite,
//! the cache and the replication proxies work with it unchanged.
//!
//! Blocks live in packs of about 16 MiB (`packs/<id>`, each ending with its own table of
//! contents), found through `index/<id>` objects that any process reads at need and can
//! rebuild from the packs; removals are records among them (`index/r-...`), and a repack (gc's `compact`,
//! see `repack`) rewrites packs whose removed or duplicate share passes a threshold. Tags are objects moved by
//! compare-and-swap with `If-None-Match`/`If-Match`. A start-up probe checks that the store
//! honours those conditions at all; `info` says what it found. An archive created where they
//! are not honoured (or with `--assume-unconditional`) keeps its tags as immutable records
//! instead (`tag_log`), and its format object says so.
//!
//! Why OpenDAL (`opendal`, with `services-s3`) rather than `object_store` or a home-made client:
//! its conditional writes are first-class (`write_with(..).if_not_exists(true)`,
//! `.if_match(etag)`, reported as capabilities), it retries passing failures with jittered
//! backoff in a layer, its lister takes `start_after` (which block listing needs), and it
//! reaches many stores besides S3 should Ore want them. `object_store` (Arrow's) has the same
//! conditional puts (`PutMode::Create`, `PutMode::Update`) and costs the same: measured, its
//! tree has 171 crates to OpenDAL's 173, the same hyper/reqwest/rustls stack (LAYOUT.md has the
//! figures: about 150 crates new to the workspace, 3 CPU-minutes to build, a 10 MB binary). So
//! cost does not decide; reach and the preference do. Both are async; so the backend
//! owns a tokio runtime and every trait method is a `block_on` of one future, while
//! `start_get`/`start_exists` spawn theirs and hand `serve` a [`Ticket`]: `serve` keeps
//! hundreds in flight and writes answers in request order, and a semaphore bounds how many.
//! Reads that miss fetch more than their block: read-ahead segments for readers that walk a
//! pack in order (`readahead`), and whole packs kept in local scratch files once a reader has
//! asked for a good share of one (`spill`), so a restore costs about one GET per pack.
//! Puts are answered from the open pack at once (packs are written by tasks of their own,
//! see `blocks`), so a read issued after a put always finds the block.

mod admin;
mod blocks;
pub mod cli;
pub mod config;
mod format;
mod index;
mod local;
mod lock;
mod packs;
pub mod probe;
mod readahead;
mod repack;
mod requests;
pub mod spill;
mod store;
mod tag_cache;
mod tag_history;
mod tag_log;
mod tags;

use probe::Conditional;
use protocol::backend::{check_block_size, Ticket};
use protocol::key::{check_tag_name, check_tag_value};
use protocol::{
    AdminOutput, Backend, BackendInfo, CasOutcome, Error, ErrorCode, Key, Result, Stats,
};
use std::future::Future;
use std::sync::Arc;
pub use store::Endpoint;
use store::Store;
use tokio::sync::Semaphore;

/// The default largest block: 16 MiB.
pub const DEFAULT_MAX_BLOCK: u32 = 16 << 20;
/// The format object's name, under the prefix.
pub const FORMAT_OBJECT: &str = "ore-s3.json";
/// The layout this crate creates archives in: removal records live beside the index objects
/// (`index/r-...`), so one listing finds both (LAYOUT.md, "Format object").
pub const FORMAT: &str = "ore-s3-2";
/// The first layout, still read and written as it is: removal records in `deleted/`.
pub const FORMAT_1: &str = "ore-s3-1";
/// Reads and exists batches in flight at most through the `start_*` methods.
const IN_FLIGHT: usize = 128;

/// How to open an archive.
#[derive(Clone, Debug, Default)]
pub struct S3Options {
    /// Set the largest block accepted (kept in the format object when creating).
    pub max_block_size: Option<u32>,
    /// Serve reads only: puts, removals and tag changes are refused, and nothing is probed.
    pub read_only: bool,
    /// Act as if the probe had found conditional writes ignored (to test that path on a store
    /// that honours them).
    pub assume_unconditional: bool,
    /// The least dead share at which a repack rewrites a pack, whatever a caller asks
    /// (`None`: [`DEFAULT_REPACK_THRESHOLD`]).
    pub repack_threshold: Option<f64>,
    /// Bytes of local scratch files for packs read whole (`None`: [`spill::DEFAULT_LIMIT`];
    /// 0: none).
    pub spill_limit: Option<u64>,
}

/// The least dead share of a pack that a repack rewrites, by default: every live byte of a
/// repacked pack is read and written again (a GET and a PUT of it), so a pack with little
/// dead space is left alone.
pub const DEFAULT_REPACK_THRESHOLD: f64 = 0.25;

/// An archive in a bucket, under a prefix.
pub struct S3Backend {
    store: Store,
    rt: tokio::runtime::Runtime,
    in_flight: Arc<Semaphore>,
    blocks: Arc<blocks::Blocks>,
    max_block_size: u32,
    read_only: bool,
    probe: Probe,
    repack_threshold: f64,
    credentials_source: String,
    endpoint: String,
}

/// The start-up probe, running in the background until its answer is needed.
struct Probe {
    running: std::sync::Mutex<Option<tokio::task::JoinHandle<Result<Conditional>>>>,
    /// Its answer, or why it failed.
    found: std::sync::OnceLock<std::result::Result<Conditional, (ErrorCode, String)>>,
    assume_unconditional: bool,
}

impl Probe {
    fn start(rt: &tokio::runtime::Runtime, store: &Store, opts: &S3Options) -> Probe {
        let found = std::sync::OnceLock::new();
        let mut running = None;
        if opts.read_only {
            let _ = found.set(Ok(Conditional {
                if_none_match: false,
                if_match: false,
                probed: false,
                at: None,
                recalled: false,
                md5_etags: false,
            }));
        } else {
            let store = store.clone();
            running = Some(rt.spawn(async move { probe::probe_or_recall(&store).await }));
        }
        Probe {
            running: std::sync::Mutex::new(running),
            found,
            assume_unconditional: opts.assume_unconditional,
        }
    }

    /// The probe's answer, waiting for it the first time.
    fn wait(&self, rt: &tokio::runtime::Runtime) -> Result<Conditional> {
        let mut running = ore_util::sync::lock(&self.running);
        if let Some(task) = running.take() {
            let r = match rt.block_on(task) {
                Ok(Ok(mut c)) => {
                    if self.assume_unconditional {
                        c.if_none_match = false;
                        c.if_match = false;
                    }
                    Ok(c)
                }
                Ok(Err(e)) => Err((e.code(), e.to_string())),
                Err(e) => Err((ErrorCode::Internal, format!("the probe failed: {e}"))),
            };
            let _ = self.found.set(r);
        }
        drop(running);
        match self.found.get() {
            Some(Ok(c)) => Ok(*c),
            Some(Err((code, message))) => Err(Error::backend(*code, message.clone())),
            None => Err(Error::backend(ErrorCode::Internal, "the probe never ran")),
        }
    }
}

fn unvouched_path(key: &Key) -> String {
    format!("unvouched/{}", key.to_hex())
}

impl S3Backend {
    /// Opens the archive, creating it (its format object) when the prefix is empty, and
    /// probes conditional writes unless read-only (in the background: see [`Probe`]).
    pub fn open(endpoint: Endpoint, opts: S3Options) -> Result<S3Backend> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("backend-s3")
            .enable_all()
            .build()
            .map_err(|e| Error::io("starting the async runtime of backend-s3", e))?;
        let mut store = Store::new(&endpoint)?;
        // The probe runs in the background from here: only a tag change (and `info`) needs its
        // answer, so a run's first requests do not wait for its four round trips.
        let probe = Probe::start(&rt, &store, &opts);
        let format = rt.block_on(format::format_object(&store, &opts))?;
        let max_block_size = format.max_block_size;
        store.tag_log = format.tag_log;
        store.layout = format.layout;
        if format.created && !probe.wait(&rt)?.exact() && !store.tag_log {
            // A new archive on a store found to ignore conditions keeps its tags as records.
            rt.block_on(store.put(FORMAT_OBJECT, format::body(max_block_size, true)))?;
            store.tag_log = true;
        }
        let one_per_pack = store.tag_log;
        Ok(S3Backend {
            store,
            rt,
            in_flight: Arc::new(Semaphore::new(IN_FLIGHT)),
            // An archive that keeps tags as records lives on a store without conditional
            // writes, where repacks run without a lock: an index object per pack.
            blocks: Arc::new(blocks::Blocks::new(
                opts.spill_limit.unwrap_or(spill::DEFAULT_LIMIT),
                one_per_pack,
            )),
            max_block_size,
            read_only: opts.read_only,
            probe,
            repack_threshold: opts.repack_threshold.unwrap_or(DEFAULT_REPACK_THRESHOLD),
            credentials_source: endpoint.credentials.source.clone(),
            endpoint: endpoint
                .endpoint
                .clone()
                .unwrap_or_else(|| format!("AWS S3 in {}", endpoint.region)),
        })
    }

    /// What the start-up probe found (waiting for it if it is still running).
    pub fn conditional(&self) -> Result<Conditional> {
        let found = self.probe.wait(&self.rt)?;
        self.store.tag_cache.set_md5_etags(found.md5_etags);
        Ok(found)
    }

    fn run<T>(&self, f: impl Future<Output = Result<T>>) -> Result<T> {
        self.rt.block_on(f)
    }

    /// Runs `f` on the runtime and returns a ticket for its answer, after waiting for one of
    /// the [`IN_FLIGHT`] slots.
    fn spawn<T: Send + 'static>(
        &self,
        f: impl Future<Output = Result<T>> + Send + 'static,
    ) -> Ticket<T> {
        let permit = match self.rt.block_on(self.in_flight.clone().acquire_owned()) {
            Ok(p) => p,
            Err(e) => {
                return Ticket::ready(Err(Error::backend(ErrorCode::Internal, e.to_string())))
            }
        };
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.rt.spawn(async move {
            let r = f.await;
            drop(permit);
            let _ = tx.send(r);
        });
        Ticket::pending(move || {
            rx.blocking_recv().unwrap_or_else(|_| {
                Err(Error::backend(
                    ErrorCode::Internal,
                    "a backend-s3 request was dropped",
                ))
            })
        })
    }

    fn check_writable(&self, what: &str) -> Result<()> {
        if self.read_only {
            return Err(Error::backend(
                ErrorCode::ReadOnly,
                format!(
                    "{} is served read-only: {what} is refused",
                    self.store.archive
                ),
            ));
        }
        Ok(())
    }

    fn check_exact_tags(&self, name: &str) -> Result<()> {
        if self.store.tag_log {
            return Ok(());
        }
        let conditional = self.conditional()?;
        if conditional.exact() {
            return Ok(());
        }
        Err(Error::backend(
            ErrorCode::NotSupported,
            format!(
                "{}: refusing to change tag {name:?}: this store does not honour conditional writes ({}), so a tag move could silently overwrite a concurrent one; this archive keeps tags as objects moved by compare-and-swap (an archive created on such a store keeps them as records in tag-log/ instead, LAYOUT.md)",
                self.store.archive,
                conditional.describe()
            ),
        ))
    }

    /// A put: the block joins the open pack (after its `unvouched/` record, for a restricted
    /// connection, when this archive does not know the block yet).
    fn put_block(&self, key: Key, data: &[u8], restricted: bool) -> Result<()> {
        check_block_size(&key, data.len(), self.max_block_size)?;
        self.check_writable("storing a block")?;
        // Whether the archive has the block, as far as this process knows (the frontend asks
        // `exists` before it puts, which reads what other processes stored). A block another
        // process stored since gets a record it did not need: the owner's check reads it once
        // more, and nothing is lost.
        if restricted && !self.blocks.known(&key) {
            self.run(self.store.put(&unvouched_path(&key), Vec::new()))?;
        }
        self.blocks.add(&self.rt, &self.store, key, data)
    }

    fn get_future(
        &self,
        key: Key,
    ) -> impl Future<Output = Result<Option<Vec<u8>>>> + Send + 'static {
        let (store, blocks) = (self.store.clone(), self.blocks.clone());
        async move { blocks.get(&store, key).await }
    }

    fn exists_future(
        &self,
        keys: Vec<Key>,
    ) -> impl Future<Output = Result<Vec<bool>>> + Send + 'static {
        let (store, blocks) = (self.store.clone(), self.blocks.clone());
        async move { blocks.exists(&store, &keys).await }
    }

    /// Writes out the open pack, then reads what other processes stored: before listing.
    fn settle(&self) -> Result<()> {
        self.blocks.flush(&self.rt, &self.store)?;
        self.run(self.blocks.refresh(&self.store))
    }
}

/// With `ORE_S3_REQUESTS=FILE`, a process appends its request counts to FILE as it ends (see
/// `requests`); a file that cannot be written is reported on stderr, never fatal.
impl Drop for S3Backend {
    fn drop(&mut self) {
        // A probe still running would leave its scratch object behind.
        let _ = self.probe.wait(&self.rt);
        // Values of tag moves still gathering would be lost.
        if let Err(e) = self.rt.block_on(tag_history::write_gathered(&self.store)) {
            eprintln!("backend-s3: keeping tag history: {e}");
        }
        let Some(file) = std::env::var_os("ORE_S3_REQUESTS") else {
            return;
        };
        let line = serde_json::json!({
            "archive": self.store.archive,
            "requests": self.store.requests.json(),
        });
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&file)
            .and_then(|mut f| std::io::Write::write_all(&mut f, format!("{line}\n").as_bytes()));
        if let Err(e) = written {
            eprintln!(
                "backend-s3: writing request counts to {}: {e}",
                std::path::Path::new(&file).display()
            );
        }
    }
}

impl Backend for S3Backend {
    fn info(&self) -> BackendInfo {
        BackendInfo {
            server: format!("backend-s3 {}", env!("CARGO_PKG_VERSION")),
            description: format!("object store archive {}", self.store.archive),
            max_block_size: self.max_block_size,
            writable: !self.read_only,
            can_remove: !self.read_only,
            can_list: true,
            admin_commands: protocol::admin::names(admin::TABLE),
        }
    }

    fn put(&self, key: Key, data: &[u8]) -> Result<()> {
        self.put_block(key, data, false)
    }

    fn put_restricted(&self, key: Key, data: &[u8]) -> Result<()> {
        self.put_block(key, data, true)
    }

    fn get(&self, key: Key) -> Result<Option<Vec<u8>>> {
        self.run(self.blocks.get(&self.store, key))
    }

    fn exists(&self, keys: &[Key]) -> Result<Vec<bool>> {
        self.run(self.blocks.exists(&self.store, keys))
    }

    fn remove(&self, keys: &[Key]) -> Result<()> {
        self.check_writable("removing blocks")?;
        self.blocks.remove(&self.rt, &self.store, keys)?;
        self.run(async {
            for k in keys {
                self.store.delete(&unvouched_path(k)).await?;
            }
            Ok(())
        })
    }

    fn list(&self, after: Option<Key>, limit: u32) -> Result<(Vec<Key>, bool)> {
        self.settle()?;
        Ok(self.blocks.list(after, limit as usize))
    }

    fn get_tag(&self, name: &str) -> Result<Option<Vec<u8>>> {
        check_tag_name(name)?;
        self.run(tags::get(&self.store, name))
    }

    fn set_tag(&self, name: &str, expected: Option<&[u8]>, value: &[u8]) -> Result<CasOutcome> {
        check_tag_name(name)?;
        check_tag_value(value)?;
        self.check_writable("changing a tag")?;
        self.check_exact_tags(name)?;
        self.run(tags::set(&self.store, name, expected, value))
    }

    fn remove_tag(&self, name: &str, expected: Option<&[u8]>) -> Result<CasOutcome> {
        check_tag_name(name)?;
        self.check_writable("removing a tag")?;
        self.check_exact_tags(name)?;
        self.run(tags::remove(&self.store, name, expected))
    }

    fn list_tags(&self) -> Result<Vec<(String, Vec<u8>)>> {
        self.run(tags::list(&self.store))
    }

    /// Writes out the open pack and waits for every pack on its way; a stored pack is
    /// durable (S3 answers a PUT once it is).
    fn flush(&self) -> Result<()> {
        self.blocks.flush(&self.rt, &self.store)
    }

    fn stats(&self) -> Result<Stats> {
        self.settle()?;
        let (blocks, bytes) = self.blocks.counts();
        let tags = self.list_tags()?;
        Ok(Stats {
            blocks: Some(blocks),
            bytes: Some(bytes),
            tags: Some(tags.len() as u64),
        })
    }

    fn admin(&self, command: &str, args: &[String]) -> Result<AdminOutput> {
        protocol::admin::dispatch(admin::TABLE, self, command, args)
    }

    fn pipelines(&self) -> bool {
        true
    }

    /// `exists` is answered from the index in memory; only now and then does a miss read the
    /// index objects that are new (see `blocks`), which costs one LIST, not a wait per batch.
    fn exists_waits(&self) -> bool {
        false
    }

    fn start_get(&self, key: Key) -> Ticket<Option<Vec<u8>>> {
        // A block this process accepted, or one in a pack held in a scratch file, is
        // answered at once (and in order).
        if let Some(d) = self.blocks.at_hand(&self.store, &key) {
            return Ticket::ready(d.map(Some));
        }
        self.spawn(self.get_future(key))
    }

    fn start_exists(&self, keys: Vec<Key>) -> Ticket<Vec<bool>> {
        self.spawn(self.exists_future(keys))
    }
}
