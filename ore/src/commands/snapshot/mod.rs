//! Making a snapshot.
//!
//! Four kinds of threads work as a pipeline, and a fifth may help the progress line:
//!
//! - the **walk** ([`walk`]) reads directories in name order, stats every entry, applies the
//!   exclude rules and the file cache, and hands each file that must be read to the pool;
//! - the **pool** (rayon, one thread per core) reads, chunks, hashes, compresses, encrypts and
//!   stores files ([`file`]); a large file's chunks are spread over the pool too;
//! - the **finisher** ([`finish`]) receives directories in post-order, waits for their files,
//!   builds and stores the directory trees, and records what was stored in the file cache;
//! - the **drain** waits for pipelined puts and remembers the first failure;
//! - on a terminal, for a first snapshot, the **estimate** ([`estimate`]) adds up the sizes of
//!   what will be read, for the progress line's ETA.
//!
//! Memory is bounded: the walk blocks when too many files or directories are waiting, and
//! nothing keeps a whole-tree map. Blocks are stored first, then flushed, then the snapshot
//! block, then the tag is moved with compare-and-swap — so a tag never names anything that is
//! not durably stored, and an interrupted run leaves the tag where it was.

mod bundle;
mod cache;
mod changed;
mod defer;
mod estimate;
mod file;
mod links;
pub mod local;
pub mod rules;
pub mod seen;
pub mod stream;
mod threads;
mod walk;
mod writer;

use crate::commands::snapshot::rules::{Rule, Rules};
use crate::core::block::Kind;
use crate::core::entry::{Entry, Snapshot, SnapshotStats, Warning, MAX_WARNINGS};
use crate::core::error::{Error, Result};
use crate::core::filecache::{CacheReader, CacheWriter};
use crate::core::progress::Progress;
use crate::core::reflog::{self, RefEntry};
use crate::core::repo::Repo;
use cache::{open_cache, TrustedCache};
use ore_util::sync::lock;
use protocol::{Key, Ticket};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use writer::Writer;

pub use crate::core::lease::GC_TAG;
use crate::core::lease::{Hint, Lease};
pub use changed::Changed;

/// Threads that wait for the archive's answers and store what it lacks (see [`defer`]).
const RESOLVERS: usize = 2;

/// What to snapshot and how.
#[derive(Debug, Default)]
pub struct SnapshotOptions {
    pub tag: String,
    pub paths: Vec<PathBuf>,
    pub comment: String,
    pub excludes: Vec<String>,
    pub rules: Vec<Rule>,
    pub one_file_system: bool,
    pub atime: bool,
    pub ctime: bool,
    pub dry_run: bool,
    /// The file cache (none: every file is read).
    pub cache: Option<PathBuf>,
    /// Directories never to descend into (the archive itself, the cache).
    pub skip: Vec<PathBuf>,
    pub progress: Option<Arc<Progress>>,
    /// Set from outside (SIGINT) to stop the run before its tag moves: the walk stops as on
    /// an error, and a run that has not begun to move its tag returns [`Error::Stopped`].
    pub interrupted: Option<Arc<AtomicBool>>,
    /// The host name kept in the snapshot (`None`: this machine's).
    pub host: Option<String>,
    /// Streams to keep as files instead of `paths` (standard input, commands' output), each
    /// under its own name at the snapshot's root; empty for a snapshot of paths.
    pub stream: Vec<stream::Stream>,
    /// Each path kept at its own absolute place below the root (`--files-from`), not side by
    /// side under its last component.
    pub in_place: bool,
    /// `key=value` labels kept with the snapshot.
    pub labels: Vec<crate::core::labels::Label>,
    /// The tree is an archive object's (`ore import`), filed on an archive tag: `tag` names an
    /// archive head, not a snapshot chain.
    pub archive_object: bool,
    /// Record each regular file by its content id instead of storing it
    /// (`ore import --catalogue-only`): its bytes are read and hashed, and nothing else.
    pub catalogue: bool,
    /// Every path that changed since the tag's last snapshot (`ore watch`, from the kernel's
    /// events, complete): a directory with no change at or below it, found unchanged in the
    /// file cache, is taken from there without being walked. `None`: walk everything.
    pub changed: Option<Arc<Changed>>,
    /// Keep each regular file's content id and type as the store reads it, for an object
    /// made of each file (`ore import --each`; [`Stored::seen`], `seen.rs`).
    pub see_files: bool,
}

/// What a snapshot run produced.
#[derive(Debug)]
pub struct SnapshotOutcome {
    /// The new snapshot's key (`None` on a dry run).
    pub key: Option<Key>,
    pub snapshot: Snapshot,
    /// The snapshot it chained onto when another run had moved the tag meanwhile.
    pub raced: Option<Key>,
}

/// State shared by every thread of a run.
pub(crate) struct Ctx<'r> {
    pub repo: &'r Repo,
    pub opts: &'r SnapshotOptions,
    pub rules: Rules,
    pub writer: Writer<'r>,
    pub warnings: Mutex<Vec<Warning>>,
    pub warnings_total: AtomicU64,
    pub stats: Mutex<SnapshotStats>,
    /// What warnings' paths are relative to: the parent of each saved path, or the saved
    /// directory itself when it is the root.
    pub roots: Vec<PathBuf>,
    pub stop: AtomicBool,
    pub fatal: Mutex<Option<Error>>,
    pub progress: Arc<Progress>,
    /// The files seen whole, when the options ask for them.
    pub seen: Option<seen::Collector>,
}

impl Ctx<'_> {
    /// Records a warning about `path` (bytes, from the snapshot root).
    pub fn warn(&self, path: &[u8], message: impl Into<String>) {
        let message = message.into();
        protocol::log::warning(&format!("{}: {message}", crate::core::util::show(path)));
        self.warnings_total.fetch_add(1, Relaxed);
        let mut w = lock(&self.warnings);
        if w.len() < MAX_WARNINGS {
            w.push(Warning {
                path: path.to_vec(),
                message,
            });
        }
    }

    /// Stops the run because of `e`: the first real error is kept to be reported, and every
    /// part of the run still going gets [`Error::Stopped`].
    pub fn fail(&self, e: Error) -> Error {
        self.stop.store(true, Relaxed);
        if !matches!(e, Error::Stopped) {
            let mut f = lock(&self.fatal);
            if f.is_none() {
                *f = Some(e);
            }
        }
        Error::Stopped
    }

    /// Updates the run's counters.
    pub fn count(&self, f: impl FnOnce(&mut SnapshotStats)) {
        f(&mut lock(&self.stats))
    }

    pub fn stopped(&self) -> bool {
        self.stop.load(Relaxed) || interrupted(self.opts)
    }
}

/// Makes a snapshot of `opts.paths` and moves `opts.tag` to it.
pub fn snapshot(repo: &Repo, opts: &SnapshotOptions) -> Result<SnapshotOutcome> {
    let stored = store(repo, opts)?;
    let Some(mut lease) = stored.lease else {
        let mut snap = stored.snap;
        snap.stats.duration_ms = stored.done.started.elapsed().as_millis() as u64;
        return Ok(SnapshotOutcome {
            key: None,
            snapshot: snap,
            raced: None,
        });
    };
    lease.confirm(repo)?;
    commit(repo, opts, stored.snap, stored.parent, stored.done)
}

/// A tree stored under a lease, its tag not yet moved: the snapshot block it would be, the
/// tag's value when the run began, the lease (none on a dry run, which stores nothing), and
/// what the end of the run needs.
pub(crate) struct Stored {
    pub snap: Snapshot,
    pub parent: Option<Key>,
    pub lease: Option<Lease>,
    pub(crate) done: Done,
    /// What the store saw of each file it read whole, when the options asked for it.
    pub seen: seen::SeenFiles,
}

/// Stores the tree of `opts.paths` (or its streams) under a lease, as a snapshot does before
/// it moves its tag; `ore import` stores each object's tree so.
pub(crate) fn store(repo: &Repo, opts: &SnapshotOptions) -> Result<Stored> {
    crate::core::format::check_user_tag(&opts.tag)?;
    match (opts.stream.is_empty(), opts.paths.is_empty()) {
        (true, true) => {
            return Err(Error::Usage(
                "nothing to snapshot: give at least one PATH (or `-` for standard input)".into(),
            ))
        }
        (false, false) => {
            return Err(Error::Usage(
                "give PATHs or a stream (`-`, --stdin-name, --stdin-from-command), not both".into(),
            ))
        }
        (false, true) => stream::check(&opts.stream)?,
        (true, false) => {}
    }
    crate::core::labels::check(&opts.labels)?;
    if opts.see_files || opts.catalogue || opts.archive_object {
        // Imports name what they see with the keys from the start (`Repo::keys`).
        repo.unlocked()?;
    }
    let started = std::time::Instant::now();
    let time = crate::core::util::now_ns();
    // No gc removes blocks while this is held (see `lease`); a dry run stores nothing.
    // Read while the lease is taken, and the reflog's head for the end (each a round trip).
    let parent = repo.tag_ahead(&opts.tag);
    let reflog_head = (!opts.dry_run).then(|| crate::core::reflog::read_head_ahead(repo));
    // Taking the lease is two round trips (a tag move, a read of `ore:gc`): its time sizes
    // what may wait for the archive's answers (see `defer`).
    let asked = std::time::Instant::now();
    let lease = match opts.dry_run {
        true => None,
        false => {
            let hint = opts.cache.as_deref().map(Hint::beside);
            Some(Lease::acquire_hinted(repo, hint)?)
        }
    };
    let rtt = asked.elapsed() / 2;
    let parent = parent.wait()?;
    if let (Some(p), false) = (parent, opts.archive_object) {
        refuse_archive_tag(repo, opts, p)?;
    }
    let paths = absolute_paths(&opts.paths, opts.in_place)?;
    let progress = progress_for(opts, parent, &paths);

    // The file cache: trusted only when it was written for this archive and the archive still
    // has the snapshot it was last written for.
    let gc_value = match &lease {
        Some(l) => l.gc_value().to_vec(),
        None => repo.backend().get_tag(GC_TAG)?.unwrap_or_default(),
    };
    let (reader, writer) = match opts.stream.is_empty() {
        false => (None, None),
        true => open_cache(repo, opts, &gc_value)?,
    };

    let (ticket_tx, ticket_rx) = sync_channel::<Ticket<()>>(4096);
    let mut ctx = new_ctx(repo, opts, &paths, progress, (ticket_tx, rtt))?;
    let (root, writer) = walk_and_store(&ctx, &paths, (reader, writer), parent, ticket_rx)?;
    // Every block the walk stored waited for the keys; this is for a walk that stored none
    // (an empty stream): a wrong passphrase stops the run here at the latest, before its
    // snapshot is stored or a tag moves.
    repo.unlocked()?;
    let kept = match opts.stream.is_empty() {
        false => (opts.stream.iter())
            .map(|s| PathBuf::from(crate::core::util::bytes_path(&s.name)))
            .collect(),
        true => paths,
    };
    let snap = snapshot_of(&ctx, root, time, &kept);
    let seen = ctx
        .seen
        .take()
        .map(seen::Collector::take)
        .unwrap_or_default();
    Ok(Stored {
        snap,
        parent,
        lease,
        seen,
        done: Done {
            started,
            reflog_head,
            writer,
            gc_value,
        },
    })
}

/// The file cache's note of what this machine last moved `tag` to: a snapshot chain's node.
fn tag_note(tag: &str) -> String {
    format!("tag-node:{tag}")
}

/// Refuses to snapshot onto an archive tag (one whose value `parent` is an archive head),
/// before anything is walked. The block is read only when the file cache does not know
/// `parent` as the node this machine last moved the tag to, so that an unchanged
/// re-snapshot costs no request more.
fn refuse_archive_tag(repo: &Repo, opts: &SnapshotOptions, parent: Key) -> Result<()> {
    let noted = (opts.cache.as_deref())
        .and_then(|path| CacheReader::open(path).ok())
        .and_then(|r| r.meta(&tag_note(&opts.tag)).ok().flatten());
    if noted.as_deref() == Some(parent.to_hex().as_bytes()) {
        return Ok(());
    }
    // A block that cannot be read now is reported by whatever reads it next.
    match repo.get_block_any(parent) {
        Ok(p) if p.kind == Kind::Head => Err(Error::Usage(format!(
            "{} is an archive tag (its objects are added with `ore import`): snapshot under another tag",
            opts.tag
        ))),
        _ => Ok(()),
    }
}

/// Each path to save, absolute and with its symlinks resolved.
fn absolute_paths(paths: &[PathBuf], in_place: bool) -> Result<Vec<PathBuf>> {
    paths
        .iter()
        .map(|p| match in_place {
            true => in_place_path(p),
            false => std::fs::canonicalize(p).map_err(|e| Error::io(p, e)),
        })
        .collect()
}

/// A listed path (`--files-from`), absolute with its directory's symlinks resolved but not its
/// own last name: a listed symlink (`/etc/localtime`) is kept as the symlink it is, at its place.
fn in_place_path(p: &std::path::Path) -> Result<PathBuf> {
    let abs = std::path::absolute(p).map_err(|e| Error::io(p, e))?;
    match (abs.parent(), abs.file_name()) {
        (Some(dir), Some(name)) if name != ".." => {
            let dir = std::fs::canonicalize(dir).map_err(|e| Error::io(dir, e))?;
            Ok(dir.join(name))
        }
        _ => std::fs::canonicalize(&abs).map_err(|e| Error::io(p, e)),
    }
}

/// The run's progress counters, with the total to expect when it can be known: the previous
/// snapshot's size, or for a first snapshot shown on a terminal, a walk of its own.
fn progress_for(opts: &SnapshotOptions, parent: Option<Key>, paths: &[PathBuf]) -> Arc<Progress> {
    let progress = opts.progress.clone().unwrap_or_default();
    // A first snapshot shown on a terminal finds its total by a walk of its own; a later one
    // takes its parent's size, read beside the walk (`walk_and_store`).
    if opts.progress.is_some() && parent.is_none() && !paths.is_empty() {
        if let Ok(rules) = Rules::new(&opts.excludes, &opts.rules) {
            estimate::start(
                paths.to_vec(),
                rules,
                opts.one_file_system,
                progress.clone(),
            );
        }
    }
    progress
}

/// The state every thread of the run shares, its puts confirmed through `tickets`, and the
/// backend's round trip `rtt`.
fn new_ctx<'r>(
    repo: &'r Repo,
    opts: &'r SnapshotOptions,
    paths: &[PathBuf],
    progress: Arc<Progress>,
    (tickets, rtt): (SyncSender<Ticket<()>>, std::time::Duration),
) -> Result<Ctx<'r>> {
    Ok(Ctx {
        repo,
        opts,
        rules: Rules::new(&opts.excludes, &opts.rules)?,
        writer: Writer::new(repo, opts.dry_run, tickets, rtt),
        warnings: Mutex::new(Vec::new()),
        warnings_total: AtomicU64::new(0),
        stats: Mutex::new(SnapshotStats::default()),
        roots: match paths {
            _ if opts.in_place => vec![PathBuf::from("/")],
            [p] if p.is_dir() => vec![p.clone()],
            _ => paths
                .iter()
                .map(|p| p.parent().map(PathBuf::from).unwrap_or_default())
                .collect(),
        },
        stop: AtomicBool::new(false),
        fatal: Mutex::new(None),
        progress,
        seen: opts.see_files.then(seen::Collector::default),
    })
}

/// Walks `paths` and stores what they hold: the walk, the resolvers of deferred questions and
/// the drain that confirms puts, each on threads of its own, all ended before this returns.
/// The first failure of the backend, or of the run, is the error.
fn walk_and_store(
    ctx: &Ctx,
    paths: &[PathBuf],
    (reader, writer): (Option<TrustedCache>, Option<CacheWriter>),
    parent: Option<Key>,
    ticket_rx: Receiver<Ticket<()>>,
) -> Result<(Entry, Option<CacheWriter>)> {
    let root = std::thread::scope(|s| {
        // The parent's size is only the progress line's ETA: read it (which needs the keys,
        // still being derived) on a thread of its own, so the walk does not wait for it.
        if let (Some(p), Some(_)) = (parent, &ctx.opts.progress) {
            let read = move || {
                if let Ok(prev) = ctx.repo.snapshot(p) {
                    ctx.progress.total_bytes.store(prev.stats.bytes, Relaxed);
                }
            };
            // Not started (no thread to be had): no ETA, as when the read fails.
            let _ = std::thread::Builder::new()
                .name("ore previous size".into())
                .spawn_scoped(s, read);
        }
        let drain = s.spawn(move || {
            for t in ticket_rx {
                if let Err(e) = t.wait() {
                    *lock(&ctx.writer.failed) = Some(e);
                    ctx.stop.store(true, Relaxed);
                    // Dropping the receiver makes every later put fail at once.
                    return;
                }
            }
        });
        let resolvers: Vec<_> = match &ctx.writer.deferred {
            Some(d) => (0..RESOLVERS)
                .map(|_| {
                    s.spawn(move || {
                        d.resolve(&ctx.writer, &|e| {
                            ctx.fail(e);
                        })
                    })
                })
                .collect(),
            None => Vec::new(),
        };
        let root = match ctx.opts.stream.is_empty() {
            false => stream::store(ctx, &ctx.opts.stream)
                .map(|e| (e, writer))
                .map_err(|e| ctx.fail(e)),
            true => walk::run(ctx, paths, reader, writer),
        };
        // Every question answered and its blocks sent, then the puts confirmed.
        if let Some(d) = &ctx.writer.deferred {
            d.close();
        }
        for r in resolvers {
            let _ = r.join();
        }
        // Close the ticket channel so the drain ends, then wait for it.
        lock(&ctx.writer.tickets).take();
        let _ = drain.join();
        root
    });
    if let Some(e) = lock(&ctx.writer.failed).take() {
        return Err(Error::Backend(e));
    }
    if let Some(e) = lock(&ctx.fatal).take() {
        return Err(e);
    }
    root
}

/// The snapshot block of a finished walk: its root, the run's counters and warnings.
fn snapshot_of(ctx: &Ctx, root: Entry, time: i64, paths: &[PathBuf]) -> Snapshot {
    let mut stats = lock(&ctx.stats).clone();
    stats.new_blocks = ctx.writer.new_blocks.load(Relaxed);
    stats.new_bytes = ctx.writer.new_bytes.load(Relaxed);
    stats.stored_bytes = ctx.writer.stored_bytes.load(Relaxed);
    Snapshot {
        // The chain is [`commit`]'s to make.
        previous: Vec::new(),
        root,
        time,
        host: ctx
            .opts
            .host
            .clone()
            .unwrap_or_else(crate::core::util::hostname),
        user: crate::core::meta::username(),
        tag: ctx.opts.tag.clone(),
        paths: paths
            .iter()
            .map(|p| serde_bytes::ByteBuf::from(crate::core::util::path_bytes(p).to_vec()))
            .collect(),
        comment: ctx.opts.comment.clone(),
        stats,
        warnings: std::mem::take(&mut *lock(&ctx.warnings)),
        warnings_total: ctx.warnings_total.load(Relaxed),
        labels: ctx.opts.labels.clone(),
    }
}

/// What the end of a run needs besides the snapshot: when it started, the reflog's head read
/// ahead, and the file cache to commit with the archive's gc value once the tag has moved.
pub(crate) struct Done {
    pub started: std::time::Instant,
    pub reflog_head: Option<crate::core::reflog::HeadAhead>,
    pub writer: Option<CacheWriter>,
    pub gc_value: Vec<u8>,
}

/// Whether the run was told to stop from outside (see [`SnapshotOptions::interrupted`]).
fn interrupted(opts: &SnapshotOptions) -> bool {
    opts.interrupted.as_ref().is_some_and(|i| i.load(Relaxed))
}

/// Stores the snapshot block (and its link) and moves the tag to it; when another run moved the
/// tag meanwhile, chains onto that run's snapshot instead of losing it, and says so in
/// `raced`. The snapshot's key stays what it was on the first try (only its link changes),
/// except in an archive of format 1, where the snapshot block names the one before it.
fn commit(
    repo: &Repo,
    opts: &SnapshotOptions,
    mut snap: Snapshot,
    parent: Option<Key>,
    mut done: Done,
) -> Result<SnapshotOutcome> {
    let mut expected = parent;
    let mut raced = None;
    // The move's reflog block is stored with the snapshot block, under one flush.
    let head = done.reflog_head.take().and_then(|h| h.decoded(repo));
    snap.stats.duration_ms = done.started.elapsed().as_millis() as u64;
    loop {
        if interrupted(opts) {
            return Err(Error::Stopped);
        }
        let chained = repo.chained(&snap, expected.into_iter().collect());
        let (node, key) = (chained.node, chained.key);
        let entry = RefEntry::now(&opts.tag, expected, Some(node), "snapshot");
        let staged = head.as_ref().map(|h| reflog::stage(repo, h, &[entry]));
        // Blocks are durable before anything names them: the snapshot block goes out with a
        // flush, which covers every block sent before it.
        let reflog: Vec<(Kind, &[u8])> = staged
            .iter()
            .map(|s| (Kind::Reflog, s.plain.as_slice()))
            .collect();
        repo.put_chained_durably(&chained, &reflog)?;
        if repo.move_tag_staged(&opts.tag, expected, node, "snapshot", staged)? {
            if let Some(w) = done.writer {
                w.set_meta("last_snapshot", key.to_hex().as_bytes())?;
                w.set_meta(&tag_note(&opts.tag), node.to_hex().as_bytes())?;
                w.set_meta("gc", &done.gc_value)?;
                w.commit()?;
            }
            return Ok(SnapshotOutcome {
                key: Some(key),
                snapshot: snap,
                raced,
            });
        }
        // Another snapshot moved the tag meanwhile: chain onto it rather than lose it.
        let now = repo.tag(&opts.tag)?;
        raced = match now {
            Some(n) => Some(repo.snapshot_key(n)?),
            None => None,
        };
        expected = now;
    }
}
