//! `ore init`, `ore snapshot`, `ore restore`.

use crate::cli::{InitArgs, OverwriteArg, RestoreArgs, SnapshotArgs};
use crate::{out, with_progress, Done, Env};
use anyhow::{anyhow, bail, Result};
use ore::commands::restore::{Overwrite, RestoreOptions, RestoreOutcome};
use ore::commands::snapshot::stream::{Source, Stream};
use ore::commands::snapshot::{local, SnapshotOptions, SnapshotOutcome};
use ore::core::repo::{InitOptions, Repo};
use ore::core::util::{human_bytes, parse_size};
use serde_json::json;

fn size_arg(name: &str, v: &Option<String>, default: u32) -> Result<u32> {
    match v {
        None => Ok(default),
        Some(s) => parse_size(s)
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| anyhow!("--{name} `{s}` is not a size (like 64K or 1M)")),
    }
}

pub fn init(env: &Env, a: InitArgs) -> Result<Done> {
    let id = env.archive_id()?;
    if let Some(from) = &a.from {
        let source = env.open_other(from, &env.pass)?;
        // One connection: init stores a few small blocks, and where there is no archive yet
        // each further connection would be a store of its own racing to create it.
        let backend = ore::core::archive::open_single(&id)?;
        let pass = |_: &str| {
            env.pass
                .get_new()
                .map_err(|e| ore::Error::Usage(format!("{e:#}")))
        };
        let repo = Repo::init_from(
            backend,
            &id,
            &source,
            ore::core::crypto::KdfParams::new_default(),
            a.format_version
                .unwrap_or(ore::core::format::FORMAT_VERSION),
            &pass,
        )?;
        leave_lease_hint(env, &repo);
        if env.global.json {
            env.json(
                &json!({"archive": id, "archive_id": repo.format().archive_id, "from": from}),
            )?;
        } else if !env.global.quiet {
            eprintln!("created archive {id} with the keys, chunker and compression of {from}");
        }
        return Ok(Done::Clean);
    }
    let d = ore::core::format::ChunkerParams::default();
    let opts = InitOptions {
        encrypt: !a.no_encryption,
        chunker: ore::core::format::ChunkerParams {
            min: size_arg("chunk-min", &a.chunk_min, d.min)?,
            avg: size_arg("chunk-avg", &a.chunk_avg, d.avg)?,
            max: size_arg("chunk-max", &a.chunk_max, d.max)?,
            normalization: d.normalization,
        },
        compression: a
            .compression
            .or_else(|| env.config.compression.clone())
            .unwrap_or_else(|| "zstd:3".into()),
        format: a
            .format_version
            .unwrap_or(ore::core::format::FORMAT_VERSION),
        ..InitOptions::default()
    };
    opts.chunker.check()?;
    ore::core::format::parse_compression(&opts.compression)?;
    // One connection (see above).
    let backend = ore::core::archive::open_single(&id)?;
    let pass = |_: &str| {
        env.pass
            .get_new()
            .map_err(|e| ore::Error::Usage(format!("{e:#}")))
    };
    let repo = Repo::init(backend, &id, &opts, &pass)?;
    leave_lease_hint(env, &repo);
    if env.global.json {
        env.json(&json!({
            "archive": id,
            "archive_id": repo.format().archive_id,
            "encryption": repo.format().encryption,
            "compression": repo.format().compression,
            "chunker": repo.format().chunker,
        }))?;
    } else if !env.global.quiet {
        eprintln!(
            "created archive {id} ({}, {}, chunks {}/{}/{})",
            if opts.encrypt {
                "encrypted with AES-256-GCM"
            } else {
                "not encrypted"
            },
            repo.format().compression,
            human_bytes(opts.chunker.min.into()),
            human_bytes(opts.chunker.avg.into()),
            human_bytes(opts.chunker.max.into())
        );
    }
    Ok(Done::Clean)
}

/// Tells this machine's first snapshot of the new archive that no lease slot exists yet, so
/// that it takes slot 0 without listing the tags (`Hint`).
fn leave_lease_hint(env: &Env, repo: &Repo) {
    let dir = env.cache_dir();
    if let Some(d) = dir {
        let cache = ore::core::filecache::cache_path(&d, &repo.format().archive_id);
        ore::core::lease::Hint::beside(&cache).leave_none();
    }
}

pub fn snapshot(env: &Env, a: SnapshotArgs) -> Result<Done> {
    // First: a signal while the archive is being opened stops the run as well.
    let interrupted = stop_on_signals()?;
    if a.stats {
        ore::core::cpustat::enable();
    }
    // The keys are derived while the snapshot takes its lease and walks (`core::unlock`).
    let repo = env.open_unlocking()?;
    let id = env.archive_id()?;
    let cache_dir = env.cache_dir();
    let local = local::local(&repo, &id, cache_dir.as_deref(), a.no_cache);
    let dry_run = a.dry_run;
    let in_place = !a.files_from.is_empty();
    let mut listed = a.paths;
    for list in &a.files_from {
        listed.extend(paths_in(list, a.null)?);
    }
    let (paths, stream) = stream_of(listed, a.stdin_name, a.stdin_from_command)?;
    let opts = SnapshotOptions {
        in_place,
        archive_object: false,
        catalogue: false,
        changed: None,
        see_files: false,
        labels: a.label,
        tag: a.tag,
        paths,
        stream,
        comment: a.comment,
        excludes: a.exclude,
        rules: env.config.exclude.clone(),
        one_file_system: a.one_file_system,
        atime: a.atime,
        ctime: a.ctime,
        dry_run,
        cache: local.cache.clone(),
        skip: local.skip,
        progress: None,
        interrupted: Some(interrupted),
        host: a.host,
    };
    let tag = opts.tag.clone();
    crate::metrics::note_tag(&tag);
    let interrupted = opts.interrupted.clone();
    let r = with_progress(env, |p| {
        ore::commands::snapshot::snapshot(
            &repo,
            &SnapshotOptions {
                progress: p,
                ..opts
            },
        )
    });
    if interrupted.is_some_and(|i| i.load(std::sync::atomic::Ordering::Relaxed)) {
        say_interrupted(&repo, &tag, r.as_ref().ok());
    }
    let r = r?;
    crate::metrics::note_snapshot(&r.snapshot.stats, r.snapshot.warnings_total);
    // Note whose cache it is, for `ore cache list` and `ore cache prune`.
    local::remember(local.cache.as_deref(), &id);
    report_snapshot(env, &r, dry_run)?;
    Ok(if r.snapshot.warnings_total > 0 {
        Done::Warnings
    } else {
        Done::Clean
    })
}

/// A flag that SIGINT and SIGTERM set, so that a snapshot stops cleanly before its tag moves
/// (a second signal ends the process at once, with status 130).
pub fn stop_on_signals() -> Result<std::sync::Arc<std::sync::atomic::AtomicBool>> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    for sig in [SIGINT, SIGTERM] {
        // In this order: the first signal finds the flag unset and only sets it.
        signal_hook::flag::register_conditional_shutdown(sig, 130, flag.clone())?;
        signal_hook::flag::register(sig, flag.clone())?;
    }
    Ok(flag)
}

/// Ends an interrupted snapshot with status 130, saying where its tag stands.
pub fn say_interrupted(repo: &Repo, tag: &str, finished: Option<&SnapshotOutcome>) -> ! {
    match finished.and_then(|r| r.key) {
        Some(key) => {
            eprintln!("ore: interrupted, but the snapshot had finished: tag {tag} names it ({key})")
        }
        None => {
            let now = match repo.tag(tag) {
                Ok(Some(k)) => format!("it still names {}", repo.snapshot_key(k).unwrap_or(k)),
                Ok(None) => "it does not exist yet".to_string(),
                Err(e) => format!("its value could not be read: {e}"),
            };
            eprintln!(
                "ore: interrupted: the snapshot was stopped and tag {tag} was not moved ({now}); \
                 the blocks stored so far stay in the archive, and running the snapshot again \
                 skips them"
            );
        }
    }
    crate::metrics::finish(130);
    std::process::exit(130)
}

/// Prints what a snapshot run did: its key on stdout, its counts on stderr (or JSON).
pub fn report_snapshot(env: &Env, r: &SnapshotOutcome, dry_run: bool) -> Result<()> {
    let s = &r.snapshot;
    let key = r.key.map(|k| k.to_hex());
    if env.global.json {
        return env.json(&json!({
            "key": key,
            "tag": s.tag,
            "dry_run": dry_run,
            "chained_onto": r.raced.map(|k| k.to_hex()),
            "stats": s.stats,
            "warnings": s.warnings.iter().map(|w| json!({"path": ore::core::util::show(&w.path), "message": w.message})).collect::<Vec<_>>(),
            "warnings_total": s.warnings_total,
            "cpu": ore::core::cpustat::enabled().then(ore::core::cpustat::json),
        }));
    }
    if let Some(k) = &key {
        out(&format!("{k}\n"))?;
    }
    // Asked for by name: shown even with --quiet.
    if ore::core::cpustat::enabled() {
        eprint!("{}", ore::core::cpustat::text());
    }
    if env.global.quiet {
        return Ok(());
    }
    let st = &s.stats;
    eprintln!(
        "{}{} ({} files read); {}; {:.2} s{}",
        if dry_run {
            "dry run: would store: "
        } else {
            ""
        },
        crate::summary::contents(st),
        st.files_read,
        crate::summary::stored(st),
        st.duration_ms as f64 / 1000.0,
        if s.warnings_total > 0 {
            format!("; {} warning(s)", s.warnings_total)
        } else {
            String::new()
        }
    );
    if let Some(k) = r.raced {
        eprintln!(
            "another snapshot moved tag {} meanwhile; this one follows it ({k})",
            s.tag
        );
    }
    Ok(())
}

pub fn restore(env: &Env, a: RestoreArgs) -> Result<Done> {
    let (name, path) = ore::core::spec::split_path(&a.snapshot);
    let select = ore::commands::restore::Selection::new(&a.include, &a.exclude)?;
    if a.delete {
        refuse_deleting_the_archive(env, &a.dest)?;
    }
    let (repo, snap) = env.open_at(name)?;
    let verify = a.verify;
    let opts = RestoreOptions {
        overwrite: match a.overwrite {
            Some(OverwriteArg::Never) => Overwrite::Never,
            None if !a.delete => Overwrite::Never,
            Some(OverwriteArg::IfChanged) | None => Overwrite::IfChanged,
            Some(OverwriteArg::Always) => Overwrite::Always,
        },
        select,
        delete: a.delete,
        protect: if a.delete {
            protected_paths(env)
        } else {
            Vec::new()
        },
        verify: a.verify,
        no_owner: a.no_owner,
        progress: None,
    };
    if a.dry_run {
        return crate::preview::dry_run(env, &repo, &snap, path, &a.dest, &opts);
    }
    let started = std::time::Instant::now();
    let r = with_progress(env, |p| {
        ore::commands::restore::restore(
            &repo,
            &snap,
            path.as_bytes(),
            &a.dest,
            &RestoreOptions {
                progress: p,
                ..opts
            },
        )
    })?;
    let secs = started.elapsed().as_secs_f64();
    if env.global.json {
        env.json(&json!({"restored": r, "seconds": secs}))?;
    } else if !env.global.quiet {
        report_restore(&r, secs);
        if verify {
            eprintln!(
                "verified {} files ({}): each read back from disk after it was written, and \
                 every chunk matched its key in the snapshot, every hole was zeros, every size \
                 was right",
                r.verified,
                human_bytes(r.verified_bytes)
            );
        }
    }
    restore_status(&r)
}

/// The paths a `--files-from` list names: one a line (blank lines and `#` comments skipped),
/// or NUL-separated and taken as they are. A path that does not exist is an error naming the
/// list and the line, before anything is saved.
fn paths_in(list: &std::path::Path, null: bool) -> Result<Vec<std::path::PathBuf>> {
    use std::os::unix::ffi::OsStrExt;
    let bytes = std::fs::read(list).map_err(|e| anyhow!("--files-from {}: {e}", list.display()))?;
    let mut out = Vec::new();
    let sep = if null { b'\0' } else { b'\n' };
    for (i, item) in bytes.split(|&b| b == sep).enumerate() {
        let item = if null {
            item
        } else {
            item.strip_suffix(b"\r").unwrap_or(item)
        };
        if item.is_empty() || (!null && item.starts_with(b"#")) {
            continue;
        }
        let p = std::path::PathBuf::from(std::ffi::OsStr::from_bytes(item));
        if let Err(e) = std::fs::symlink_metadata(&p) {
            let at = if null {
                format!("item {}", i + 1)
            } else {
                format!("line {}", i + 1)
            };
            bail!(
                "--files-from {} ({at}): {}: {e}",
                list.display(),
                p.display()
            );
        }
        out.push(p);
    }
    if out.is_empty() {
        bail!("--files-from {}: lists no path", list.display());
    }
    Ok(out)
}

/// The paths to save, or the streams: `-` (or `/dev/stdin`) alone, `--stdin-name` or
/// `--stdin-from-command` (repeated in pairs, the n-th name for the n-th command). Standard
/// input that is a terminal is refused: a snapshot of what someone types is never what was
/// meant.
fn stream_of(
    paths: Vec<std::path::PathBuf>,
    names: Vec<String>,
    commands: Vec<String>,
) -> Result<(Vec<std::path::PathBuf>, Vec<Stream>)> {
    let dash =
        matches!(paths.as_slice(), [p] if p.as_os_str() == "-" || p.as_os_str() == "/dev/stdin");
    let name = |n: Option<String>| n.unwrap_or_else(|| "stdin".into()).into_bytes();
    if commands.len() > 1 && names.len() != commands.len() {
        bail!(
            "{} --stdin-from-command and {} --stdin-name: give each command its name, in the \
             same order (`--stdin-from-command 'pg_dump a' --stdin-name a.sql \
             --stdin-from-command 'pg_dump b' --stdin-name b.sql`)",
            commands.len(),
            names.len()
        );
    }
    if !commands.is_empty() {
        if dash {
            bail!("`-` (standard input) and --stdin-from-command: give one or the other");
        }
        if commands.len() == 1 && names.len() > 1 {
            bail!("one --stdin-from-command and {} --stdin-name", names.len());
        }
        let mut names = names.into_iter();
        let streams = commands
            .into_iter()
            .map(|c| Stream {
                name: name(names.next()),
                source: Source::Command(c),
            })
            .collect();
        return Ok((paths, streams));
    }
    if !dash && names.is_empty() {
        return Ok((paths, Vec::new()));
    }
    if names.len() > 1 {
        bail!("standard input is one stream: give --stdin-name once");
    }
    if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        bail!(
            "standard input is a terminal: pipe the data in (`pg_dump db | ore \
             snapshot db --stdin-name db.sql`), or use --stdin-from-command"
        );
    }
    let stream = Stream {
        name: name(names.into_iter().next()),
        source: Source::Stdin,
    };
    Ok((if dash { Vec::new() } else { paths }, vec![stream]))
}

/// `--delete` never runs where it would remove the archive itself: an archive directory (or
/// a backend's directory named in its command line) at or below the destination.
fn refuse_deleting_the_archive(env: &Env, dest: &std::path::Path) -> Result<()> {
    let Ok(dest) = std::fs::canonicalize(dest) else {
        return Ok(());
    };
    for word in archive_words(&env.archive_id()?) {
        let Ok(p) = std::fs::canonicalize(&word) else {
            continue;
        };
        if p.starts_with(&dest) && p.is_dir() {
            bail!(
                "--delete: the archive ({}) is inside {}, and would be removed with \
                 everything the snapshot does not hold; restore elsewhere, or move the archive",
                p.display(),
                dest.display()
            );
        }
    }
    Ok(())
}

/// Every word of an archive identifier that may name a path, with the words of identifiers
/// nested in it (`backend-cache c.db 'backend-fs /x'`): what `--delete` must never remove.
pub fn archive_words(id: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut todo = vec![id.to_string()];
    while let Some(id) = todo.pop() {
        match connect::open::classify(&id) {
            connect::open::Kind::Path(p) => out.push(p.display().to_string()),
            connect::open::Kind::Command(c) => {
                for w in shell_words::split(c).unwrap_or_default() {
                    if w.contains(char::is_whitespace) && todo.len() < 64 {
                        todo.push(w.clone());
                    }
                    out.push(w);
                }
            }
            connect::open::Kind::S3(_) => {}
        }
    }
    out
}

/// What `--delete` leaves wherever it is found: every path the identifier names, ore's file
/// cache, its config file, and the passphrase file.
fn protected_paths(env: &Env) -> Vec<std::path::PathBuf> {
    let mut out: Vec<std::path::PathBuf> = env
        .archive_id()
        .map(|id| archive_words(&id))
        .unwrap_or_default()
        .into_iter()
        .map(std::path::PathBuf::from)
        .filter(|p| p.exists())
        .collect();
    out.extend(env.cache_dir());
    out.extend(env.global.config.clone());
    out.extend(crate::config::default_path());
    out.extend(env.global.passphrase_file.clone());
    out
}

/// Prints what a restore did on stderr, and when it is incomplete, why.
fn report_restore(r: &RestoreOutcome, secs: f64) {
    eprintln!(
        "restored {} files, {} dirs, {} other, {} in {secs:.2} s{}{}{}",
        r.files,
        r.dirs,
        r.other,
        human_bytes(r.bytes),
        if r.removed > 0 {
            format!("; {} removed (--delete)", entries(r.removed))
        } else {
            String::new()
        },
        if r.skipped > 0 {
            format!("; {} left as they were", r.skipped)
        } else {
            String::new()
        },
        if r.warnings.is_empty() {
            String::new()
        } else {
            format!("; {} warning(s)", r.warnings.len())
        },
    );
    if r.incomplete {
        eprintln!(
            "ore: the restore is INCOMPLETE: missing or damaged blocks in the archive left {} \
             incomplete (each named above with its block); everything else was restored:",
            entries(r.damaged.len() as u64)
        );
        for p in &r.damaged {
            eprintln!("  {p}");
        }
    }
    if r.not_restored > 0 {
        eprintln!(
            "ore: the restore is INCOMPLETE: {} could not be restored here (see above)",
            entries(r.not_restored)
        );
    }
}

/// How a restore ends: an error when anything was left out, warnings when any were given.
fn restore_status(r: &RestoreOutcome) -> Result<Done> {
    if r.incomplete {
        return Err(anyhow!(
            "restore incomplete: data missing or damaged in the archive ({} problem(s) reported)",
            r.warnings.len()
        ));
    }
    if r.not_restored > 0 {
        return Err(anyhow!(
            "restore incomplete: {} could not be restored here",
            entries(r.not_restored)
        ));
    }
    Ok(if r.warnings.is_empty() {
        Done::Clean
    } else {
        Done::Warnings
    })
}

/// "1 entry", "2 entries": files, directories and links alike.
fn entries(n: u64) -> String {
    format!("{n} {}", if n == 1 { "entry" } else { "entries" })
}
