//! `ore cache list|prune`: finds this machine's cache directory and prints; which caches are
//! kept is decided by `ore::commands::cache`.

use crate::cli::{CacheArgs, CacheCommand};
use crate::{out, Done, Env};
use anyhow::{anyhow, Result};
use ore::commands::cache;
use ore::core::filecache::CacheFile;
use ore::core::util::{format_time, human_bytes};
use serde_json::json;

pub fn run(env: &Env, a: CacheArgs) -> Result<Done> {
    let dir = env
        .cache_dir()
        .ok_or_else(|| anyhow!("no cache directory: set HOME, XDG_CACHE_HOME or cache_dir"))?;
    let caches = cache::list(&dir)?;
    match a.command {
        CacheCommand::List => {
            for c in &caches {
                show(env, c, None)?;
            }
        }
        CacheCommand::Prune { dry_run } => {
            for c in &caches {
                let verdict = cache::prune(c, dry_run)?.to_string();
                show(env, c, Some(&verdict))?;
            }
        }
    }
    Ok(Done::Clean)
}

fn show(env: &Env, c: &CacheFile, verdict: Option<&str>) -> Result<()> {
    let id = c.identifier.as_deref().unwrap_or("?");
    let used = c.used_ns.map(format_time).unwrap_or_else(|| "?".into());
    if env.global.json {
        return env.json(&json!({
            "path": c.path, "kind": c.kind, "archive_id": c.archive_id, "identifier": c.identifier,
            "used_ns": c.used_ns, "bytes": c.bytes, "verdict": verdict,
        }));
    }
    let mut line = format!(
        "{}  {:<9}  {}  {}  used {used}",
        &c.archive_id,
        c.kind,
        id,
        human_bytes(c.bytes)
    );
    if let Some(v) = verdict {
        line.push_str(&format!("  {v}"));
    }
    line.push('\n');
    out(&line)
}
