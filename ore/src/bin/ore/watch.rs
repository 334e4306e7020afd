//! `ore watch TAG PATH...`: snapshots that follow changes as they happen.
//!
//! The paths are watched through the kernel (inotify, by the `notify` crate). After a first
//! snapshot, each burst of changes leads to one more, once no event has come for the settle
//! time (`--settle`, 2 s) or the longest wait (`--longest`, 60 s) since the burst's first
//! event has passed, whichever comes first: a file being written for minutes is still saved
//! every minute.
//!
//! Such a snapshot walks only where something changed. The events name every path created,
//! written, removed or moved; a directory with nothing changed at or below it, which the file
//! cache knows unchanged, is taken from the cache without being listed
//! ([`ore::commands::snapshot::Changed`]). When the kernel drops events (its queue overflowed,
//! or a watch failed) they are no longer complete, and that snapshot walks everything.
//! Changes inside the archive or the file cache (when they lie in a watched tree) are not
//! changes to save, and are passed over.
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
    let cache_dir = env
        .config
        .cache_dir
        .clone()
        .or_else(ore::core::filecache::default_dir);
    let local = local::local(&repo, &id, cache_dir.as_deref(), false);
    drop(repo);
    let (tx, rx) = channel();
    let mut watcher = notify::recommended_watcher(move |e| {
        let _ = tx.send(e);
    })
    .map_err(|e| anyhow!("cannot watch for changes: {e}"))?;
    for p in &paths {
        watcher
            .watch(p, RecursiveMode::Recursive)
            .map_err(|e| anyhow!("cannot watch {}: {e}", p.display()))?;
    }
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
        let Some(burst) = next_burst(&rx, &stop, settle, longest, &local.skip)? else {
            if !env.global.quiet {
                eprintln!("stopped watching {}", a.tag);
            }
            return Ok(Done::Clean);
        };
        if burst.changed.is_empty() && !burst.incomplete {
            continue;
        }
        let changed = match burst.incomplete || missed {
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
                let relevant = absorb(&mut burst, event, skip);
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
fn absorb(burst: &mut Burst, event: notify::Result<notify::Event>, skip: &[PathBuf]) -> bool {
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
                if !skip.iter().any(|s| p.starts_with(s)) {
                    burst.changed.insert(p);
                    relevant = true;
                }
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

fn parse_duration(option: &str, s: &str) -> Result<Duration> {
    humantime::parse_duration(s).map_err(|e| anyhow!("{option} {s:?}: {e} (e.g. 500ms, 2s, 1m)"))
}
