//! backend-s3: an Ore archive in an S3-compatible object store.
//!
//! The layout, the probe and the guarantees are specified in `backend-s3/LAYOUT.md`; this crate
//! implements the protocol's one [`Backend`] trait over it, so `serve`, the conformance suite,
//! the cache and the replication proxies work with it unchanged.
//!
//! **This is the first step, one object per block** (`blocks/<key>`), before the packs that
//! LAYOUT.md describes: it pins the format object, the probe, tags by compare-and-swap and the
//! record-keeping (history, unvouched blocks) on a real store. Packs will replace the block
//! objects; the format object says which layout an archive has, so the step is visible.
//!
//! Why OpenDAL (`opendal`, with `services-s3`) rather than `object_store` or a home-made client:
//! its conditional writes are first-class (`write_with(..).if_not_exists(true)`,
//! `.if_match(etag)`, reported as capabilities), it retries passing failures with jittered
//! backoff in a layer, its lister takes `start_after` (which block listing needs), and it
//! reaches many stores besides S3 should Ore want them. `object_store` (Arrow's) has the same
//! conditional puts (`PutMode::Create`, `PutMode::Update`) and costs the same: measured, its
//! tree has 171 crates to OpenDAL's 173, the same hyper/reqwest/rustls stack (LAYOUT.md has the
//! figures: about 150 crates new to the workspace, 3 CPU-minutes to build, a 10 MB binary). So
//! cost does not decide; reach and the preference do. Both are async; so the backend owns a tokio runtime and every trait method is a `block_on` of one
//! future, while `start_put`/`start_get`/`start_exists` spawn theirs and hand `serve` a
//! [`Ticket`]: `serve` keeps hundreds in flight and writes answers in request order, and a
//! semaphore bounds what is in flight (and so the memory held by blocks on their way).

mod admin;
pub mod config;
mod format;
mod inflight;
pub mod probe;
mod store;
mod tags;

use inflight::InFlight;
use probe::Conditional;
use protocol::backend::{admin_names, check_block_size, Ticket};
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
/// The format this crate writes and reads.
pub const FORMAT: &str = "ore-s3-1";
/// What may be in flight through the `start_*` methods, in units of 64 KiB: 128 MiB. Each
/// request costs [`REQUEST_UNITS`] plus, for a put, the units of the bytes it holds; so at most
/// 128 small requests, or a handful of the largest puts, are on their way at once, and the
/// memory held by puts in flight stays bounded whatever the size of the tree.
const IN_FLIGHT_UNITS: u32 = 2048;
const UNIT: usize = 64 << 10;
const REQUEST_UNITS: u32 = 16;

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
}

/// An archive in a bucket, under a prefix.
pub struct S3Backend {
    store: Store,
    rt: tokio::runtime::Runtime,
    in_flight: Arc<Semaphore>,
    puts: InFlight,
    generation: std::sync::atomic::AtomicU64,
    max_block_size: u32,
    read_only: bool,
    conditional: Conditional,
    credentials_source: String,
    endpoint: String,
}

fn block_path(key: &Key) -> String {
    format!("blocks/{}", key.to_hex())
}

fn unvouched_path(key: &Key) -> String {
    format!("unvouched/{}", key.to_hex())
}

impl S3Backend {
    /// Opens the archive, creating it (its format object) when the prefix is empty, and
    /// probes conditional writes unless read-only.
    pub fn open(endpoint: Endpoint, opts: S3Options) -> Result<S3Backend> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("backend-s3")
            .enable_all()
            .build()
            .map_err(|e| Error::io("starting the async runtime of backend-s3", e))?;
        let store = Store::new(&endpoint)?;
        let max_block_size = rt.block_on(format::format_object(&store, &opts))?;
        let mut conditional = Conditional {
            if_none_match: false,
            if_match: false,
            probed: false,
        };
        if !opts.read_only {
            conditional = rt.block_on(probe::probe(&store))?;
            if opts.assume_unconditional {
                conditional.if_none_match = false;
                conditional.if_match = false;
            }
        }
        Ok(S3Backend {
            store,
            rt,
            in_flight: Arc::new(Semaphore::new(IN_FLIGHT_UNITS as usize)),
            puts: InFlight::default(),
            generation: std::sync::atomic::AtomicU64::new(0),
            max_block_size,
            read_only: opts.read_only,
            conditional,
            credentials_source: endpoint.credentials.source.clone(),
            endpoint: endpoint
                .endpoint
                .clone()
                .unwrap_or_else(|| format!("AWS S3 in {}", endpoint.region)),
        })
    }

    /// What the start-up probe found.
    pub fn conditional(&self) -> Conditional {
        self.conditional
    }

    fn run<T>(&self, f: impl Future<Output = Result<T>>) -> Result<T> {
        self.rt.block_on(f)
    }

    /// Runs `f` on the runtime and returns a ticket for its answer, after waiting until the
    /// request and the `bytes` it holds fit in [`IN_FLIGHT_UNITS`].
    fn spawn<T: Send + 'static>(
        &self,
        bytes: usize,
        f: impl Future<Output = Result<T>> + Send + 'static,
    ) -> Ticket<T> {
        let units = u32::try_from(bytes.div_ceil(UNIT))
            .unwrap_or(u32::MAX)
            .saturating_add(REQUEST_UNITS)
            .min(IN_FLIGHT_UNITS);
        let permit = match self
            .rt
            .block_on(self.in_flight.clone().acquire_many_owned(units))
        {
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
        if self.conditional.exact() {
            return Ok(());
        }
        Err(Error::backend(
            ErrorCode::NotSupported,
            format!(
                "{}: refusing to change tag {name:?}: this store does not honour conditional writes ({}), so a tag move could silently overwrite a concurrent one",
                self.store.archive,
                self.conditional.describe()
            ),
        ))
    }

    /// The future of a put: `If-None-Match: *`, so an existing block is success and never
    /// overwritten; where the store ignores the condition, a HEAD first (blocks are named by
    /// their content, so the remaining race can only write the same bytes again).
    fn put_future(
        &self,
        key: Key,
        data: Vec<u8>,
        restricted: bool,
    ) -> impl Future<Output = Result<()>> + Send + 'static {
        let store = self.store.clone();
        let exact = self.conditional.if_none_match;
        let checks = check_block_size(&key, data.len(), self.max_block_size)
            .and_then(|()| self.check_writable("storing a block"));
        async move {
            checks?;
            let path = block_path(&key);
            if restricted || !exact {
                if store.head(&path).await?.is_some() {
                    return Ok(());
                }
                if restricted {
                    store.put(&unvouched_path(&key), Vec::new()).await?;
                }
            }
            if exact {
                store.put_new(&path, data).await?;
            } else {
                store.put(&path, data).await?;
            }
            Ok(())
        }
    }

    fn get_future(
        &self,
        key: Key,
    ) -> impl Future<Output = Result<Option<Vec<u8>>>> + Send + 'static {
        let store = self.store.clone();
        let waits = self.puts.waits(&[key]);
        async move {
            futures::future::join_all(waits).await;
            store.get(&block_path(&key)).await
        }
    }

    /// A put in flight, registered so that later reads of its key wait for it.
    fn spawn_put(&self, key: Key, data: Vec<u8>, restricted: bool) -> Ticket<()> {
        let generation = self
            .generation
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let done = self.puts.start(key, generation);
        let puts = self.puts.clone();
        let bytes = data.len();
        let put = self.put_future(key, data, restricted);
        self.spawn(bytes, async move {
            let r = put.await;
            let _ = done.send(());
            puts.finish(&key, generation);
            r
        })
    }

    fn exists_future(
        &self,
        keys: Vec<Key>,
    ) -> impl Future<Output = Result<Vec<bool>>> + Send + 'static {
        let store = self.store.clone();
        let waits = self.puts.waits(&keys);
        async move {
            futures::future::join_all(waits).await;
            use futures::StreamExt;
            let heads = futures::stream::iter(keys.into_iter().map(|k| {
                let store = store.clone();
                async move { Ok::<_, Error>(store.head(&block_path(&k)).await?.is_some()) }
            }))
            .buffered(64);
            futures::TryStreamExt::try_collect(heads).await
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
            admin_commands: admin_names(admin::COMMANDS),
        }
    }

    fn put(&self, key: Key, data: &[u8]) -> Result<()> {
        self.run(self.put_future(key, data.to_vec(), false))
    }

    fn put_restricted(&self, key: Key, data: &[u8]) -> Result<()> {
        self.run(self.put_future(key, data.to_vec(), true))
    }

    fn get(&self, key: Key) -> Result<Option<Vec<u8>>> {
        self.run(self.get_future(key))
    }

    fn exists(&self, keys: &[Key]) -> Result<Vec<bool>> {
        self.run(self.exists_future(keys.to_vec()))
    }

    fn remove(&self, keys: &[Key]) -> Result<()> {
        self.check_writable("removing blocks")?;
        self.run(async {
            for k in keys {
                self.store.delete(&block_path(k)).await?;
                self.store.delete(&unvouched_path(k)).await?;
            }
            Ok(())
        })
    }

    fn list(&self, after: Option<Key>, limit: u32) -> Result<(Vec<Key>, bool)> {
        let after = after.map(|k| k.to_hex());
        let (names, more) =
            self.run(
                self.store
                    .list("blocks/", after.as_deref(), limit as usize, false),
            )?;
        let keys = names
            .iter()
            .map(|n| {
                n.parse::<Key>().map_err(|_| {
                    Error::backend(
                        ErrorCode::Corrupt,
                        format!(
                            "{}: stray object blocks/{n} is not named by a block key",
                            self.store.archive
                        ),
                    )
                })
            })
            .collect::<Result<Vec<Key>>>()?;
        Ok((keys, more))
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

    /// Every acknowledged write already is a completed PUT, which S3 makes durable before it
    /// answers; `serve` waits for the answers of all earlier requests before a flush.
    fn flush(&self) -> Result<()> {
        Ok(())
    }

    fn stats(&self) -> Result<Stats> {
        let blocks = self.run(self.store.list_all("blocks/"))?;
        let tags = self.list_tags()?;
        Ok(Stats {
            blocks: Some(blocks.len() as u64),
            bytes: None,
            tags: Some(tags.len() as u64),
        })
    }

    fn admin(&self, command: &str, args: &[String]) -> Result<AdminOutput> {
        admin::run(self, command, args)
    }

    fn pipelines(&self) -> bool {
        true
    }

    fn start_put(&self, key: Key, data: Vec<u8>) -> Ticket<()> {
        self.spawn_put(key, data, false)
    }

    fn start_put_restricted(&self, key: Key, data: Vec<u8>) -> Ticket<()> {
        self.spawn_put(key, data, true)
    }

    fn start_get(&self, key: Key) -> Ticket<Option<Vec<u8>>> {
        self.spawn(0, self.get_future(key))
    }

    fn start_exists(&self, keys: Vec<Key>) -> Ticket<Vec<bool>> {
        self.spawn(0, self.exists_future(keys))
    }
}
