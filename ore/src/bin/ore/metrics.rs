//! `--metrics-file FILE`: what a run did, in the Prometheus text format, for node_exporter's
//! textfile collector (or anything that reads it).
//!
//! One file can serve every scheduled run of a machine: each run replaces only its own
//! samples — those labelled with its command and tag — and keeps the rest, so the snapshots
//! of `home` and of `etc` and the weekly `forget` all show. A run that fails keeps the time of
//! its last success, which is what an alert on staleness watches
//! (`time() - ore_last_success_timestamp_seconds > 86400 * 2`). The file is written whole to
//! a temporary name beside it and renamed over it, so a collector never reads half of one.
//!
//! Run-level samples are written for every command; the counters of a snapshot only for a
//! snapshot that completed.

use anyhow::{Context, Result};
use ore::core::entry::SnapshotStats;
use std::path::Path;
use std::sync::Mutex;

/// What the command noted about its run, and where to write it.
#[derive(Default)]
struct Facts {
    file: Option<(std::path::PathBuf, String, std::time::Instant)>,
    tag: String,
    stats: Option<(SnapshotStats, u64)>,
}

static FACTS: Mutex<Option<Facts>> = Mutex::new(None);

fn facts() -> std::sync::MutexGuard<'static, Option<Facts>> {
    FACTS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Starts a run whose samples go to `file`, for `command`.
pub fn start(file: std::path::PathBuf, command: String) {
    facts().get_or_insert_with(Facts::default).file =
        Some((file, command, std::time::Instant::now()));
}

/// Ends the run started with [`start`] (if one was) with exit status `exit`: writes its
/// samples. A failure to write is a warning; the run's status stands.
pub fn finish(exit: i32) {
    let Some((file, command, started)) = facts().as_mut().and_then(|f| f.file.take()) else {
        return;
    };
    if let Err(e) = write(&file, &command, exit, started.elapsed().as_secs_f64()) {
        eprintln!("ore: warning: {e:#}");
    }
}

/// Notes the tag a run works on (the `tag` label).
pub fn note_tag(tag: &str) {
    facts().get_or_insert_with(Facts::default).tag = tag.to_string();
}

/// Notes what a snapshot stored, and how many warnings it had.
pub fn note_snapshot(stats: &SnapshotStats, warnings: u64) {
    facts().get_or_insert_with(Facts::default).stats = Some((stats.clone(), warnings));
}

/// The name a command goes by in the `command` label: `snapshot`, `tag-history`.
pub fn command_name(c: &crate::cli::Command) -> String {
    let debug = format!("{c:?}");
    let word: String = debug.chars().take_while(|c| c.is_alphanumeric()).collect();
    let mut out = String::new();
    for (i, ch) in word.chars().enumerate() {
        if ch.is_uppercase() && i > 0 {
            out.push('-');
        }
        out.extend(ch.to_lowercase());
    }
    out
}

/// Writes the run's samples to `path`, keeping the other runs' samples found there.
fn write(path: &Path, command: &str, exit: i32, seconds: f64) -> Result<()> {
    let f = facts().take().unwrap_or_default();
    let labels = format!(
        "command=\"{}\",tag=\"{}\"",
        ore::core::util::label_value(command),
        ore::core::util::label_value(&f.tag)
    );
    let now = jiff::Timestamp::now().as_second();
    // Runs that end together (timers after a boot) take turns: none loses another's samples.
    let lock = path.with_extension("prom.lock");
    let _held = ore::core::util::lock_file(&lock)
        .with_context(|| format!("--metrics-file: locking {}", lock.display()))?;
    let old = std::fs::read_to_string(path).unwrap_or_default();
    let mine = |line: &str| line.contains(&format!("{{{labels}}}"));
    let last_success = if exit == 0 || exit == 3 {
        Some(now)
    } else {
        old.lines()
            .filter(|l| mine(l) && l.starts_with("ore_last_success_timestamp_seconds{"))
            .find_map(|l| l.rsplit(' ').next()?.parse::<i64>().ok())
    };
    let mut samples: Vec<(&str, String)> = vec![
        ("ore_exit_status", exit.to_string()),
        ("ore_duration_seconds", format!("{seconds:.3}")),
        ("ore_last_run_timestamp_seconds", now.to_string()),
    ];
    if let Some(t) = last_success {
        samples.push(("ore_last_success_timestamp_seconds", t.to_string()));
    }
    if let Some((s, warnings)) = &f.stats {
        samples.extend([
            ("ore_snapshot_files", s.files.to_string()),
            ("ore_snapshot_dirs", s.dirs.to_string()),
            ("ore_snapshot_bytes", s.bytes.to_string()),
            ("ore_snapshot_files_read", s.files_read.to_string()),
            ("ore_snapshot_new_blocks", s.new_blocks.to_string()),
            ("ore_snapshot_new_bytes", s.new_bytes.to_string()),
            ("ore_snapshot_stored_bytes", s.stored_bytes.to_string()),
            ("ore_snapshot_warnings", warnings.to_string()),
        ]);
    }
    // Every sample line, by metric name: the others' kept, this run's replaced.
    let mut by_name: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for l in old
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        if let Some((name, _)) = l.split_once('{') {
            if !mine(l) && HELP.iter().any(|(n, _)| *n == name) {
                by_name
                    .entry(name.to_string())
                    .or_default()
                    .push(l.to_string());
            }
        }
    }
    for (name, value) in samples {
        by_name
            .entry(name.to_string())
            .or_default()
            .push(format!("{name}{{{labels}}} {value}"));
    }
    let mut text = String::new();
    for (name, help) in HELP {
        let Some(lines) = by_name.get(*name) else {
            continue;
        };
        text.push_str(&format!("# HELP {name} {help}\n# TYPE {name} gauge\n"));
        for l in lines {
            text.push_str(l);
            text.push('\n');
        }
    }
    ore::core::util::replace_whole(path, text.as_bytes())
        .with_context(|| format!("--metrics-file: writing {}", path.display()))
}

/// Every metric this writes, and what it means.
const HELP: &[(&str, &str)] = &[
    (
        "ore_exit_status",
        "Exit status of the last run (0 ok, 1 error, 3 completed with warnings, 130 interrupted).",
    ),
    ("ore_duration_seconds", "How long the last run took."),
    (
        "ore_last_run_timestamp_seconds",
        "When the last run ended (seconds since the epoch).",
    ),
    (
        "ore_last_success_timestamp_seconds",
        "When the last run that succeeded (exit status 0 or 3) ended.",
    ),
    ("ore_snapshot_files", "Regular files in the last snapshot."),
    ("ore_snapshot_dirs", "Directories in the last snapshot."),
    (
        "ore_snapshot_bytes",
        "Bytes of regular files in the last snapshot.",
    ),
    (
        "ore_snapshot_files_read",
        "Files the last snapshot read (not found unchanged in the file cache).",
    ),
    (
        "ore_snapshot_new_blocks",
        "Blocks the last snapshot stored.",
    ),
    (
        "ore_snapshot_new_bytes",
        "Bytes (before compression) of the blocks the last snapshot stored.",
    ),
    (
        "ore_snapshot_stored_bytes",
        "Bytes the last snapshot added to the archive (compressed, encrypted).",
    ),
    (
        "ore_snapshot_warnings",
        "Warnings of the last snapshot (files vanished, unreadable...).",
    ),
];
