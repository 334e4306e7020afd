//! `ore tag-history` and `ore restore-format`: the way back after a tag (or the format record)
//! was moved where it should not have been. `ore::commands::tag_history` tells what each value
//! a tag has had is now; `ore restore-format` puts back a lost format record
//! (`ore::core::format::restore`, one call). This file prints.

use crate::cli::TagHistoryArgs;
use crate::{out, Done, Env};
use anyhow::Result;
use serde_json::json;

pub fn tag_history(env: &Env, a: TagHistoryArgs) -> Result<Done> {
    let repo = env.open_brief()?;
    for v in ore::commands::tag_history::tag_history(&repo, a.tag.as_deref())? {
        let state = v.state.name();
        let time = ore::core::util::format_time(v.time.saturating_mul(1_000_000_000));
        if env.global.json {
            env.json(
                &json!({"time": time, "tag": v.tag, "value": v.value, "state": state,
                "snapshot": v.snapshot.map(|k| k.to_hex())}),
            )?;
        } else {
            let snapshot = v
                .snapshot
                .map_or(String::new(), |k| format!("  (snapshot {k})"));
            out(&format!(
                "{time}  {}  {}  {state}{snapshot}\n",
                v.tag, v.value
            ))?;
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

/// `ore upgrade`: moves the archive to the current format version.
pub fn upgrade(env: &Env) -> Result<Done> {
    let mut repo = env.open_brief()?;
    let was = repo.format().format;
    let upgraded = repo.upgrade()?;
    let now = repo.format().format;
    if env.global.json {
        env.json(&json!({"archive": repo.id(), "was": was, "format": now, "upgraded": upgraded}))?;
    } else if !env.global.quiet {
        if upgraded {
            // What each format after `was` brought, in order.
            let gained: Vec<&str> = [
                (2, "forget keeps the keys of the snapshots it keeps"),
                (
                    3,
                    "new snapshots keep small files together in shared chunks",
                ),
                (4, "`ore import` makes archive tags"),
                (
                    5,
                    "archive objects list their files (`ore search --file`, `--name`) and \
                     `ore import --catalogue-only` makes catalogues",
                ),
                (
                    6,
                    "`ore import --each` stores no directory block for each object",
                ),
            ]
            .into_iter()
            .filter(|&(v, _)| v > was && v <= now)
            .map(|(_, what)| what)
            .collect();
            let gained = gained.join("; ");
            eprintln!(
                "archive {} is now of format {now} (was {was}): {gained}; an ore that reads \
                 only format {was} refuses it from now on",
                repo.id()
            );
        } else {
            eprintln!("archive {} is of format {now} already", repo.id());
        }
    }
    Ok(Done::Clean)
}
