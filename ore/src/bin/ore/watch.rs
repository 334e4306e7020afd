//! `ore watch TAG PATH...`: snapshots that follow changes as they happen.
//!
//! The paths are watched through the kernel (inotify, by the `notify` crate). After a first
//! snapshot, each burst of changes leads to one more, once no event has come for the settle
//! time (`--settle`, 2 s) or the longest wait (`--longest`, 60 s) since the burst's first
//! event has passed, whichever comes first: a file being written for minutes is still saved
//! every minute.
//!
//! Each snapshot walks the whole tree, with the file cache, so that what it saves is what is
//! there whatever the events said: they are not complete enough to skip a directory. Attacks on
//! an earlier version that did skip showed why — a file written through a hard link elsewhere
//! (inotify reports it only in that other directory), a directory moved away and back within a
//! burst (same inode and times), a file system mounted inside the tree (no events at all), a
//! change to an `.oreignore` above a quiet directory, and file-cache trees written by another
//! run with other rules. `--trust-events` skips, for trees where none of that happens: a
//! directory with no event at, above or below it, which the watch's own file cache knows
//! unchanged, is taken from there without being listed
//! ([`ore::commands::snapshot::Changed`]). When the kernel drops events (its queue overflowed,
//! or a watch failed), the paths are watched again from scratch and that snapshot walks
//! everything. Changes inside the archive or the file cache (compared by their real paths)
//! are not changes to save, and are passed over; symlinks in the tree are not followed.
//!
//! The archive is open only while a snapshot runs, so other commands can use it meanwhile. A
//! snapshot that fails (the archive busy or out of reach) is reported, and the next burst's
//! snapshot walks everything, so that nothing the failed one missed is lost.
//!
//! SIGINT or SIGTERM ends the watch: between snapshots at once (status 0; changes not yet
//! saved are said to be so); during one, that snapshot stops before its tag moves, as
//! `ore snapshot` does (status 130).

use crate::cli::WatchArgs;
use crate::{Done, Env};
use anyhow::{anyhow, bail, Context, Result};
use notify::{RecursiveMode, Watcher};
use ore::commands::snapshot::{local, Changed, SnapshotOptions};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What the events since the last snapshot say.
#[derive(Default)]
struct Burst {
    changed: BTreeSet<PathBuf>,
    /// Events were lost: walk everything.
    incomplete: bool,
}

pub fn watch(env: &Env, a: WatchArgs) -> Result<Done> {
    let settle = parse_duration("--settle", &a.settle)?;
    let longest = parse_duration("--longest", &a.longest)?;
    let stop = crate::save::stop_on_signals()?;
    let id = env.archive_id()?;
    // The archive is opened for each snapshot and closed after, so that other commands
    // (`ore log`, a restore) can use it between them; the passphrase is asked for once.
    let passphrase = std::sync::OnceLock::new();
    let open = || -> Result<ore::core::repo::Repo> {
        let backend = ore::core::archive::open_existing(&id)?;
        let pass = |prompt: &str| -> ore::Result<Vec<u8>> {
            if let Some(p) = passphrase.get() {
                return Ok(Vec::clone(p));
            }
            let p = env
                .pass
                .get(prompt)
                .map_err(|e| ore::Error::Usage(format!("{e:#}")))?;
            let _ = passphrase.set(p.clone());
            Ok(p)
        };
        Ok(ore::core::repo::Repo::open(backend, &id, &pass)?)
    };
    let repo = open()?;
    let paths = a
        .paths
        .iter()
        .map(|p| std::fs::canonicalize(p).with_context(|| format!("{}", p.display())))
        .collect::<Result<Vec<_>>>()?;
    let roots: Vec<Root> = paths.iter().map(|p| Root::of(p)).collect::<Result<_>>()?;
    let cache_dir = env.cache_dir();
    let mut local = local::local(&repo, &id, cache_dir.as_deref(), false);
    drop(repo);
    // The watch keeps a file cache of its own: the trees `--trust-events` takes from it must
    // have been written under this watch's rules, not another snapshot's.
    local.cache = local
        .cache
        .map(|c| c.with_extension(format!("watch-{}.db", hex::encode(a.tag.as_bytes()))));
    // What is not a change to save: the archive and the cache, by their real paths.
    let mut skip: Vec<PathBuf> = local.skip.clone();
    skip.extend(
        crate::save::archive_words(&id)
            .into_iter()
            .map(PathBuf::from),
    );
    let skip: Vec<PathBuf> = skip
        .iter()
        .filter_map(|p| std::fs::canonicalize(p).ok())
        .filter(|p| p.is_dir())
        .collect();
    let (tx, rx) = channel();
    let config = notify::Config::default().with_follow_symlinks(false);
    let mut watcher = notify::RecommendedWatcher::new(
        move |e| {
            let _ = tx.send(e);
        },
        config,
    )
    .map_err(|e| anyhow!("cannot watch for changes: {e}"))?;
    watch_all(&mut watcher, &roots)?;
    if !env.global.quiet {
        eprintln!(
            "watching {} path(s): a snapshot of {} follows each burst of changes once {} pass \
             without one (at most {} after its first)",
            paths.len(),
            a.tag,
            humantime::format_duration(settle),
            humantime::format_duration(longest)
        );
    }
    let snap = |changed: Option<Arc<Changed>>| -> Result<()> {
        let opts = SnapshotOptions {
            tag: a.tag.clone(),
            paths: paths.clone(),
            excludes: a.exclude.clone(),
            rules: env.config.exclude.clone(),
            cache: local.cache.clone(),
            skip: local.skip.clone(),
            interrupted: Some(stop.clone()),
            changed,
            ..SnapshotOptions::default()
        };
        let repo = open()?;
        let r = ore::commands::snapshot::snapshot(&repo, &opts);
        if stop.load(Relaxed) {
            crate::save::say_interrupted(&repo, &a.tag, r.as_ref().ok());
        }
        crate::save::report_snapshot(env, &r?, false)
    };
    snap(None)?;
    // A snapshot that failed (the archive busy or unreachable) leaves its changes to the
    // next one, which then walks everything.
    let mut missed = false;
    loop {
        let Some(mut burst) = next_burst(&rx, &stop, settle, longest, &skip, &roots)? else {
            if !env.global.quiet {
                eprintln!("stopped watching {}", a.tag);
            }
            return Ok(Done::Clean);
        };
        // A root replaced or gone: watched again, or the end.
        for r in &roots {
            match Root::of(&r.path) {
                Ok(now) if now.id == r.id => {}
                Ok(_) => burst.incomplete = true,
                Err(_) => bail!(
                    "{} is gone: stopped watching (changes since the last snapshot are not saved)",
                    r.path.display()
                ),
            }
        }
        if burst.incomplete {
            // Lost events may have been new directories: every path is watched again.
            for r in &roots {
                let _ = watcher.unwatch(&r.watched());
            }
            watch_all(&mut watcher, &roots)?;
        }
        if burst.changed.is_empty() && !burst.incomplete {
            continue;
        }
        let changed = match burst.incomplete || missed || !a.trust_events {
            true => {
                if burst.incomplete {
                    protocol::log::warning(
                        "events were lost (the kernel's queue overflowed, or a watch failed): \
                         this snapshot walks everything",
                    );
                }
                None
            }
            false => Some(Arc::new(Changed::new(burst.changed))),
        };
        missed = match snap(changed) {
            Ok(()) => false,
            Err(e) => {
                eprintln!("ore: error: {e:#}; the next change brings a snapshot of everything");
                true
            }
        };
    }
}

/// The next burst of changes: from its first event until `settle` passes without one or
/// `longest` since the first; `None` once a signal asked to stop (what came meanwhile is
/// said to be unsaved).
fn next_burst(
    rx: &Receiver<notify::Result<notify::Event>>,
    stop: &AtomicBool,
    settle: Duration,
    longest: Duration,
    skip: &[PathBuf],
    roots: &[Root],
) -> Result<Option<Burst>> {
    let tick = Duration::from_millis(100);
    let mut burst = Burst::default();
    let mut first: Option<Instant> = None;
    let mut last = Instant::now();
    loop {
        if stop.load(Relaxed) {
            if first.is_some() && !burst.changed.is_empty() {
                eprintln!(
                    "ore: {} changed path(s) since the last snapshot were not saved",
                    burst.changed.len()
                );
            }
            return Ok(None);
        }
        if let Some(f) = first {
            if last.elapsed() >= settle || f.elapsed() >= longest {
                return Ok(Some(burst));
            }
        }
        match rx.recv_timeout(tick) {
            Ok(event) => {
                let relevant = absorb(&mut burst, event, skip, roots);
                if relevant {
                    first.get_or_insert_with(Instant::now);
                    last = Instant::now();
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => bail!("the watch of the paths ended"),
        }
    }
}

/// Adds one event to the burst; whether it concerned anything to save.
fn absorb(
    burst: &mut Burst,
    event: notify::Result<notify::Event>,
    skip: &[PathBuf],
    roots: &[Root],
) -> bool {
    match event {
        Ok(e) => {
            if e.need_rescan() {
                burst.incomplete = true;
                return true;
            }
            if matches!(e.kind, notify::EventKind::Access(_)) {
                return false;
            }
            let mut relevant = false;
            for p in e.paths {
                if skip.iter().any(|s| p.starts_with(s)) || !roots.iter().any(|r| r.holds(&p)) {
                    continue;
                }
                // A changed ignore file changes what is saved in its whole directory.
                if p.file_name().is_some_and(|n| n == ".oreignore") {
                    if let Some(dir) = p.parent() {
                        burst.changed.insert(dir.to_path_buf());
                    }
                }
                burst.changed.insert(p);
                relevant = true;
            }
            relevant
        }
        Err(err) => {
            protocol::log::warning(&format!("watching: {err}"));
            burst.incomplete = true;
            true
        }
    }
}

/// A path being watched: a directory (watched with all below it), or a file (watched through
/// its directory, so that an editor's save, which replaces the file, is seen), and its
/// device and inode numbers, to notice it replaced.
struct Root {
    path: PathBuf,
    dir: bool,
    id: (u64, u64),
}

impl Root {
    fn of(path: &std::path::Path) -> Result<Root> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(path).with_context(|| format!("{}", path.display()))?;
        Ok(Root {
            path: path.to_path_buf(),
            dir: m.is_dir(),
            id: (m.dev(), m.ino()),
        })
    }

    /// What the kernel watches for it.
    fn watched(&self) -> PathBuf {
        match (self.dir, self.path.parent()) {
            (false, Some(parent)) => parent.to_path_buf(),
            _ => self.path.clone(),
        }
    }

    /// Whether an event at `p` concerns it.
    fn holds(&self, p: &std::path::Path) -> bool {
        match self.dir {
            true => p.starts_with(&self.path),
            false => p == self.path,
        }
    }
}

/// Watches every root (again).
fn watch_all(watcher: &mut notify::RecommendedWatcher, roots: &[Root]) -> Result<()> {
    for r in roots {
        let mode = match r.dir {
            true => RecursiveMode::Recursive,
            false => RecursiveMode::NonRecursive,
        };
        watcher
            .watch(&r.watched(), mode)
            .map_err(|e| anyhow!("cannot watch {}: {e}", r.path.display()))?;
    }
    Ok(())
}

fn parse_duration(option: &str, s: &str) -> Result<Duration> {
    humantime::parse_duration(s).map_err(|e| anyhow!("{option} {s:?}: {e} (e.g. 500ms, 2s, 1m)"))
}
