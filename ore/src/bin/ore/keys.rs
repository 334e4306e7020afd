//! `ore key add|list|remove|passwd`: reads new passphrases and prints; the slots are changed by
//! `ore::commands::key`.

use crate::cli::KeyCommand;
use crate::{out, Done, Env};
use anyhow::Result;
use ore::commands::key;
use serde_json::json;

pub fn run(env: &Env, cmd: KeyCommand) -> Result<Done> {
    let mut repo = env.open_brief()?;
    key::check_encrypted(&repo)?;
    match cmd {
        KeyCommand::List => {
            for key::Slot { slot: s, current } in key::list(&repo)? {
                let created = ore::core::util::format_time(s.created * 1_000_000_000);
                if env.global.json {
                    env.json(&json!({"id": s.id, "created": created, "creator": s.creator, "kdf": s.kdf, "current": current}))?;
                } else {
                    out(&format!(
                        "{}{}  {created}  {}  argon2id m={}MiB t={} p={}\n",
                        if current { "*" } else { " " },
                        s.id,
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
            let id = key::add(&mut repo, &pass)?;
            report(env, "added", &id)?;
        }
        KeyCommand::Remove { id } => {
            key::remove(&mut repo, &id)?;
            report(env, "removed", &id)?;
        }
        KeyCommand::Passwd(n) => {
            let current = key::current(&repo)?;
            let pass = crate::pass::new_passphrase(n.new_passphrase_file.as_deref())?;
            let id = key::passwd(&mut repo, &current, &pass)?;
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
