//! `ore key add|list|remove|passwd`.

use crate::cli::KeyCommand;
use crate::{out, Done, Env};
use anyhow::{bail, Result};
use ore::core::crypto::KdfParams;
use serde_json::json;

pub fn run(env: &Env, cmd: KeyCommand) -> Result<Done> {
    let mut repo = env.open_brief()?;
    if !repo.format().encrypted() {
        bail!(
            "archive {} is not encrypted: it has no passphrases",
            repo.id()
        );
    }
    match cmd {
        KeyCommand::List => {
            for s in &repo.format().key_slots {
                let current = repo.slot() == Some(s.id.as_str());
                if env.global.json {
                    env.json(&json!({"id": s.id, "created": ore::core::util::format_time(s.created * 1_000_000_000), "creator": s.creator, "kdf": s.kdf, "current": current}))?;
                } else {
                    out(&format!(
                        "{}{}  {}  {}  argon2id m={}MiB t={} p={}\n",
                        if current { "*" } else { " " },
                        s.id,
                        ore::core::util::format_time(s.created * 1_000_000_000),
                        s.creator,
                        s.kdf.memory_kib / 1024,
                        s.kdf.iterations,
                        s.kdf.parallelism
                    ))?;
                }
            }
        }
        KeyCommand::Add(n) => {
            let pass = crate::pass::new_passphrase(n.new_passphrase_file.as_deref())?;
            let slot = repo.new_slot(&pass, KdfParams::new_default())?;
            let id = slot.id.clone();
            let mut f = repo.format().clone();
            f.key_slots.push(slot);
            repo.update_format(f)?;
            report(env, "added", &id)?;
        }
        KeyCommand::Remove { id } => {
            let mut f = repo.format().clone();
            let before = f.key_slots.len();
            f.key_slots.retain(|s| s.id != id);
            if f.key_slots.len() == before {
                bail!("no key slot `{id}` (see `ore key list`)");
            }
            if f.key_slots.is_empty() {
                bail!("key slot `{id}` is the last one; removing it would lock everyone out");
            }
            repo.update_format(f)?;
            report(env, "removed", &id)?;
        }
        KeyCommand::Passwd(n) => {
            let Some(current) = repo.slot() else {
                bail!("no key slot opened this archive");
            };
            let pass = crate::pass::new_passphrase(n.new_passphrase_file.as_deref())?;
            let slot = repo.new_slot(&pass, KdfParams::new_default())?;
            let id = slot.id.clone();
            let mut f = repo.format().clone();
            f.key_slots.retain(|s| s.id != current);
            f.key_slots.push(slot);
            repo.update_format(f)?;
            report(env, "changed", &id)?;
        }
    }
    Ok(Done::Clean)
}

fn report(env: &Env, what: &str, id: &str) -> Result<()> {
    if env.global.json {
        env.json(&json!({ what: id }))
    } else {
        if !env.global.quiet {
            eprintln!("key slot {id} {what}");
        }
        Ok(())
    }
}
