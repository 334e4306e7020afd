//! Admin commands of the cache; anything it does not know goes to the inner backend.
//!
//! `check` is the cache's own search for damage: a cached key the archive does not hold is
//! the one thing a cache must never have (a snapshot would skip storing that block), so each
//! one is forgotten and named in the answer's `problems` (PROTOCOL.md §6, "admin"). A command
//! passed to the inner backend (its `verify`, say) answers with the inner backend's JSON,
//! `problems` included, unchanged.

use crate::{CacheBackend, GC_TAG};
use protocol::admin::{entry, no_args, Table};
use protocol::backend::AdminOutput;
use protocol::{Backend, Error, ErrorCode, Key, Result};
use serde_json::json;
use std::sync::atomic::Ordering::SeqCst;

/// The cache's own commands; any other name goes to the inner backend.
pub(crate) const TABLE: &Table<CacheBackend> = &[&[
    entry(
        "help",
        "",
        "list the admin commands (the cache's and the inner backend's)",
        help,
    ),
    entry(
        "info",
        "",
        "the cache file, the inner archive, and how many keys are cached",
        info,
    ),
    entry(
        "stats",
        "",
        "exists answered from the cache (hits) and asked of the inner backend (misses)",
        stats,
    ),
    entry(
        "clear",
        "",
        "forget every key (always safe; the next snapshot asks the archive again)",
        clear,
    ),
    entry(
        "rebuild",
        "",
        "replace the cached keys with a listing of the inner backend",
        rebuild,
    ),
    entry(
        "check",
        "",
        "ask the inner backend about every cached key; forget and report those it lacks",
        check,
    ),
    entry(
        "inner",
        "COMMAND [ARGS...]",
        "run an admin command of the inner backend (also for names the cache uses)",
        inner,
    ),
]];

const SAFETY: &str = "\
Safety rule: a cache is only correct if every removal of blocks goes through it. Run `ore gc`
with the cached identifier (\"backend-cache C.db 'INNER'\"); if blocks were removed any other
way, run `clear` (or `rebuild`). Ore's gc also changes the archive's `ore:gc` tag, and a cache
that finds it changed behind its back starts empty by itself.
";

pub fn run(cache: &CacheBackend, command: &str, args: &[String]) -> Result<AdminOutput> {
    match protocol::admin::find(TABLE, command) {
        Some(spec) => (spec.run)(cache, args),
        None => cache.inner.admin(command, args),
    }
}

/// `inner COMMAND [ARGS...]`: the inner backend's command, even one named like the cache's.
fn inner(cache: &CacheBackend, args: &[String]) -> Result<AdminOutput> {
    match args.split_first() {
        Some((c, rest)) => cache.inner.admin(c, rest),
        None => Err(Error::backend(
            ErrorCode::InvalidArgument,
            "`inner` needs the inner backend's command, e.g. `inner help`",
        )),
    }
}

fn clear(cache: &CacheBackend, args: &[String]) -> Result<AdminOutput> {
    no_args("clear", args)?;
    let (before, _) = cache.shared.db().counts()?;
    cache.shared.hits.store(0, SeqCst);
    cache.shared.misses.store(0, SeqCst);
    cache.shared.notes().clear();
    cache.shared.db().clear()?;
    Ok(AdminOutput::new(
        format!("forgot {before} keys\n"),
        json!({"forgotten": before}),
    ))
}

fn help(cache: &CacheBackend, args: &[String]) -> Result<AdminOutput> {
    no_args("help", args)?;
    let own = protocol::admin::help(&cache.info.server, TABLE);
    let inner_info = cache.inner.info();
    let names: Vec<&str> = inner_info
        .admin_commands
        .iter()
        .map(String::as_str)
        .filter(|c| protocol::admin::find(TABLE, c).is_none())
        .collect();
    let text = format!(
        "{}\nEvery other command is passed to the inner backend ({}){}.\n\n{SAFETY}",
        own.text,
        cache.inner_id,
        if names.is_empty() {
            String::new()
        } else {
            format!(": {}", names.join(", "))
        }
    );
    let json = json!({
        "commands": serde_json::from_str::<serde_json::Value>(&own.json).unwrap_or_default(),
        "inner_commands": names,
        "safety": SAFETY.replace('\n', " ").trim(),
    });
    Ok(AdminOutput::new(text, json))
}

fn info(cache: &CacheBackend, args: &[String]) -> Result<AdminOutput> {
    no_args("info", args)?;
    let noted = cache.shared.notes().len() as u64;
    let db = cache.shared.db();
    let (known, unflushed) = db.counts()?;
    let unflushed = unflushed + noted;
    let gc = db.meta("gc")?.unwrap_or_default();
    let path = db.path().display().to_string();
    drop(db);
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    let text = format!(
        "cache:        {path} ({size} bytes)\n\
         inner:        {}\n\
         inner says:   {}\n\
         keys cached:  {known}\n\
         unflushed:    {unflushed}\n\
         {GC_TAG}:       {}\n",
        cache.inner_id,
        cache.inner.info().description,
        if gc.is_empty() { "(none)" } else { &gc },
    );
    let json = json!({
        "kind": "cache",
        "path": path,
        "size": size,
        "inner": cache.inner_id,
        "inner_description": cache.inner.info().description,
        "keys": known,
        "unflushed": unflushed,
        "gc": gc,
    });
    Ok(AdminOutput::new(text, json))
}

fn stats(cache: &CacheBackend, args: &[String]) -> Result<AdminOutput> {
    no_args("stats", args)?;
    let noted = cache.shared.notes().len() as u64;
    let db = cache.shared.db();
    let (known, unflushed) = db.counts()?;
    let unflushed = unflushed + noted;
    let hits = db.counter("hits")? + cache.shared.hits.load(SeqCst);
    let misses = db.counter("misses")? + cache.shared.misses.load(SeqCst);
    drop(db);
    let rate = if hits + misses > 0 {
        format!("{:.1}%", 100.0 * hits as f64 / (hits + misses) as f64)
    } else {
        "-".into()
    };
    let text = format!(
        "hits:         {hits}\nmisses:       {misses}\nhit rate:     {rate}\n\
         keys cached:  {known}\nunflushed:    {unflushed}\n"
    );
    let json = json!({"hits": hits, "misses": misses, "keys": known, "unflushed": unflushed});
    Ok(AdminOutput::new(text, json))
}

fn rebuild(cache: &CacheBackend, args: &[String]) -> Result<AdminOutput> {
    no_args("rebuild", args)?;
    let inner = &cache.inner;
    if !inner.info().can_list {
        return Err(Error::backend(
            ErrorCode::NotSupported,
            format!(
                "the inner backend ({}) cannot list its blocks, so the cache cannot be rebuilt \
                 from it; `clear` it instead",
                cache.inner_id
            ),
        ));
    }
    // Only what is durable may be recorded.
    inner.flush()?;
    cache.shared.removals.fetch_add(1, SeqCst);
    let mut after: Option<Key> = None;
    let mut done = false;
    let pages = std::iter::from_fn(|| {
        if done {
            return None;
        }
        Some(inner.list(after, 10_000).map(|(keys, more)| {
            done = !more || keys.is_empty();
            after = keys.last().copied();
            keys
        }))
    });
    let n = cache.shared.db().replace(pages)?;
    Ok(AdminOutput::new(
        format!("the cache now knows {n} keys, listed by the inner backend\n"),
        json!({"keys": n}),
    ))
}

/// Keys asked about at once.
const CHECK_PAGE: u32 = 4096;

/// Asks the inner backend whether it holds each cached key; forgets and reports those it lacks.
fn check(cache: &CacheBackend, args: &[String]) -> Result<AdminOutput> {
    no_args("check", args)?;
    let (mut checked, mut lacking) = (0u64, Vec::new());
    let mut after: Option<Key> = None;
    loop {
        let keys = cache.shared.db().page(after, CHECK_PAGE)?;
        let Some(last) = keys.last().copied() else {
            break;
        };
        after = Some(last);
        let held = cache.inner.exists(&keys)?;
        if held.len() != keys.len() {
            return Err(Error::backend(
                ErrorCode::Io,
                format!(
                    "{} answered exists for {} keys with {} answers",
                    cache.inner_id,
                    keys.len(),
                    held.len()
                ),
            ));
        }
        checked += keys.len() as u64;
        let gone: Vec<Key> = keys
            .iter()
            .zip(held)
            .filter(|(_, h)| !h)
            .map(|(k, _)| *k)
            .collect();
        cache.shared.db().forget(&gone)?;
        lacking.extend(gone);
    }
    let problems: Vec<String> = lacking
        .iter()
        .map(|k| {
            format!(
                "block {k}: the cache recorded that {} holds it, but it does not (forgotten \
                 now; run `ore check` on the archive: a snapshot that trusted the cache may \
                 name the block)",
                cache.inner_id
            )
        })
        .collect();
    Ok(AdminOutput::checked(
        format!(
            "checked {checked} cached key(s) against {}: {} missing from the archive\n",
            cache.inner_id,
            lacking.len()
        ),
        json!({"checked": checked, "missing": lacking.len()}),
        &problems,
    ))
}
