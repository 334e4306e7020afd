//! `ore cache list|prune`: the file caches this machine keeps, one per archive.
//!
//! A cache is named by its archive's random id and remembers the identifier it was last used
//! with (see `ore::core::filecache`). An archive is gone when that identifier now leads nowhere (a
//! directory that no longer exists) or to an archive with another id (it was replaced). An
//! archive that cannot be reached at all (a host that is down) is not taken for gone: its cache
//! is kept, and so is a cache from an older version that never noted its identifier.

use crate::cli::{CacheArgs, CacheCommand};
use crate::{out, Done, Env};
use anyhow::{anyhow, Result};
use ore::core::filecache::{self, CacheFile};
use ore::core::util::{format_time, human_bytes};
use serde_json::json;

pub fn run(env: &Env, a: CacheArgs) -> Result<Done> {
    let dir = env
        .config
        .cache_dir
        .clone()
        .or_else(filecache::default_dir)
        .ok_or_else(|| anyhow!("no cache directory: set HOME, XDG_CACHE_HOME or cache_dir"))?;
    let caches = filecache::inventory(&dir)?;
    match a.command {
        CacheCommand::List => {
            for c in &caches {
                show(env, c, None)?;
            }
        }
        CacheCommand::Prune { dry_run } => {
            for c in &caches {
                let verdict = fate(c);
                if verdict.starts_with("gone") && !dry_run {
                    filecache::remove(&c.path)?;
                }
                show(env, c, Some(&verdict))?;
            }
        }
    }
    Ok(Done::Clean)
}

/// What becomes of a cache: `gone (why)` when its archive no longer exists, else `kept (why)`.
fn fate(c: &CacheFile) -> String {
    let Some(id) = &c.identifier else {
        return "kept (it does not say which archive it was used with)".into();
    };
    if let Some(dir) = ore::core::archive::local_dir(id) {
        if !dir.is_dir() {
            return format!("gone ({} no longer exists)", dir.display());
        }
    }
    let record = ore::core::archive::open_existing_single(id)
        .map_err(ore::Error::from)
        .and_then(|b| ore::core::repo::read_format(b.as_ref(), id));
    match record {
        Err(e) => format!("kept (cannot read it: {e})"),
        Ok(None) => format!("gone ({id} holds no archive now)"),
        Ok(Some((_, f))) if f.archive_id == c.archive_id => "kept (the archive is there)".into(),
        Ok(Some(_)) => format!("gone ({id} holds another archive now)"),
    }
}

fn show(env: &Env, c: &CacheFile, verdict: Option<&str>) -> Result<()> {
    let id = c.identifier.as_deref().unwrap_or("?");
    let used = c.used_ns.map(format_time).unwrap_or_else(|| "?".into());
    if env.global.json {
        return env.json(&json!({
            "path": c.path, "archive_id": c.archive_id, "identifier": c.identifier,
            "used_ns": c.used_ns, "bytes": c.bytes, "verdict": verdict,
        }));
    }
    let mut line = format!(
        "{}  {}  {}  used {used}",
        &c.archive_id,
        id,
        human_bytes(c.bytes)
    );
    if let Some(v) = verdict {
        line.push_str(&format!("  {v}"));
    }
    line.push('\n');
    out(&line)
}
