//! `ore tag-history`: every value the archive's tags have had, as the backend keeps them until
//! the owner expires them — the way back after a tag was moved where it should not have been
//! (by an append-only machine's `forget`, say). Each value names a snapshot that gc keeps
//! while the value is kept; `ore reset TAG KEY` or `ore fork KEY NEW` brings it back.
//! `ore restore-format` brings back a lost format record the same way (`ore::core::format::restore`).

use crate::cli::TagHistoryArgs;
use crate::{out, Done, Env};
use anyhow::Result;
use protocol::history::{parse, TAG_HISTORY};
use serde_json::json;

pub fn tag_history(env: &Env, a: TagHistoryArgs) -> Result<Done> {
    let repo = env.open_brief()?;
    let args: Vec<String> = a.tag.iter().cloned().collect();
    let answer = repo.backend().admin(TAG_HISTORY, &args)?;
    let entries = parse(&answer.json)?;
    let current: std::collections::HashMap<String, Vec<u8>> =
        repo.backend().list_tags()?.into_iter().collect();
    let keys: Vec<Option<protocol::Key>> = entries
        .iter()
        .map(|e| ore::core::format::parse_tag_value(e.value.as_bytes()))
        .collect();
    let stored: Vec<protocol::Key> = keys.iter().flatten().copied().collect();
    let held: std::collections::HashSet<protocol::Key> = stored
        .iter()
        .zip(repo.backend().exists(&stored)?)
        .filter_map(|(k, held)| held.then_some(*k))
        .collect();
    for (e, key) in entries.iter().zip(&keys) {
        let is_current = current
            .get(&e.tag)
            .is_some_and(|v| protocol::history::show_value(v) == e.value);
        let state = match key {
            _ if is_current => "current",
            Some(k) if held.contains(k) => "kept",
            Some(_) => "gone",
            None => "not a key",
        };
        let time = ore::core::util::format_time(e.time.saturating_mul(1_000_000_000));
        if env.global.json {
            env.json(&json!({"time": time, "tag": e.tag, "value": e.value, "state": state}))?;
        } else {
            out(&format!("{time}  {}  {}  {state}\n", e.tag, e.value))?;
        }
    }
    Ok(Done::Clean)
}

/// `ore restore-format`: puts back the newest kept value of `ore:format` that decodes.
pub fn restore_format(env: &Env) -> Result<Done> {
    let id = env.archive_id()?;
    let backend = ore::core::archive::open_existing_single(&id)?;
    let r = ore::core::format::restore(&*backend, &id)?;
    if env.global.json {
        env.json(&json!({
            "archive": id,
            "format_key": r.key.to_hex(),
            "archive_id": r.record.archive_id,
            "skipped": r.skipped.iter().map(|(v, why)| json!({"value": v, "why": why})).collect::<Vec<_>>(),
        }))?;
    } else if !env.global.quiet {
        for (v, why) in &r.skipped {
            eprintln!("passed over {v}: {why}");
        }
        out(&format!(
            "restored the format record of archive {id} (archive id {}): tag ore:format = {}\n",
            r.record.archive_id,
            r.key.to_hex()
        ))?;
    }
    Ok(Done::Clean)
}
