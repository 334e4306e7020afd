//! backend-s3's admin commands: the standard ones, where the archive lives and what the
//! start-up probe found (`info`), the tag history and the record of blocks restricted
//! connections stored (`unvouched/<key>` objects, see LAYOUT.md).

use crate::{tags, S3Backend, FORMAT};
use protocol::backend::{admin_help, unknown_admin, AdminCommand};
use protocol::{provenance, AdminOutput, Backend, Error, ErrorCode, Key, Result};

pub(crate) const COMMANDS: &[AdminCommand] = &[
    AdminCommand {
        name: "help",
        args: "",
        help: "list the admin commands",
    },
    AdminCommand {
        name: "info",
        args: "",
        help:
            "where the archive lives, its layout, and whether the store honours conditional writes",
    },
    AdminCommand {
        name: "stats",
        args: "",
        help: "count blocks and tags (lists the whole archive)",
    },
    AdminCommand {
        name: "reindex",
        args: "",
        help:
            "write the index object again for every pack that lacks one, from the pack's own table",
    },
    AdminCommand {
        name: "requests",
        args: "",
        help: "the requests this backend process made to the store so far, by kind",
    },
    protocol::history::READ_COMMAND,
    protocol::history::EXPIRE_COMMAND,
    provenance::UNVOUCHED_COMMAND,
    provenance::VOUCH_COMMAND,
    provenance::MARK_COMMAND,
];

fn no_args(command: &str, args: &[String]) -> Result<()> {
    if args.is_empty() {
        return Ok(());
    }
    Err(Error::backend(
        ErrorCode::Admin,
        format!("`{command}` takes no arguments, got {}", args.join(" ")),
    ))
}

pub(crate) fn run(b: &S3Backend, command: &str, args: &[String]) -> Result<AdminOutput> {
    let store = &b.store;
    match command {
        "help" => Ok(admin_help("backend-s3", COMMANDS)),
        "info" => {
            no_args(command, args)?;
            let c = b.conditional;
            Ok(AdminOutput::new(
                format!(
                    "backend-s3 archive\n  location:          {}\n  endpoint:          {}\n  credentials:       {}\n  format:            {FORMAT} (blocks in packs)\n  max block size:    {} bytes\n  access:            {}\n  conditional writes: {}\n  tag changes:       {}\n",
                    store.archive,
                    b.endpoint,
                    b.credentials_source,
                    b.max_block_size,
                    if b.read_only { "read-only" } else { "read-write" },
                    c.describe(),
                    if b.read_only {
                        "refused (read-only)"
                    } else if c.exact() {
                        "exact compare-and-swap (If-None-Match / If-Match)"
                    } else {
                        "refused: the store ignores conditional writes"
                    }
                ),
                serde_json::json!({
                    "kind": "s3",
                    "location": store.archive,
                    "endpoint": b.endpoint,
                    "credentials": b.credentials_source,
                    "format": FORMAT,
                    "max_block_size": b.max_block_size,
                    "read_only": b.read_only,
                    "conditional_writes": c,
                }),
            ))
        }
        "reindex" => {
            no_args(command, args)?;
            b.check_writable("reindexing")?;
            let rebuilt = b.run(crate::packs::reindex(store))?;
            b.run(b.blocks.refresh(store))?;
            Ok(AdminOutput::new(
                format!("reindexed {} pack(s)\n", rebuilt.len()),
                serde_json::json!({ "reindexed": rebuilt }),
            ))
        }
        "requests" => {
            no_args(command, args)?;
            let counts = store.requests.json();
            Ok(AdminOutput::new(format!("{counts}\n"), counts))
        }
        "stats" => {
            no_args(command, args)?;
            Ok(b.stats()?.admin_output())
        }
        protocol::history::TAG_HISTORY => {
            let asked = protocol::history::history_arg(args)?;
            let kept = b.run(tags::history(store, asked))?;
            Ok(protocol::history::output(asked, &tags::entries(&kept)))
        }
        protocol::history::EXPIRE => {
            let (cutoff, tag) = protocol::history::expire_args(args)?;
            b.check_writable("expiring tag history")?;
            let n = b.run(tags::expire(store, cutoff, tag))?;
            Ok(protocol::history::expired_output(n))
        }
        provenance::UNVOUCHED => {
            let (after, limit) = provenance::page_args(args)?;
            let after = after.map(|k| k.to_hex());
            let (names, more) = b.run(store.list("unvouched/", after.as_deref(), limit, false))?;
            let keys: Vec<Key> = names.iter().filter_map(|n| n.parse().ok()).collect();
            Ok(provenance::page_output(&keys, more))
        }
        provenance::VOUCH | provenance::MARK => {
            let keys = provenance::key_args(command, args)?;
            b.check_writable("recording who stored a block")?;
            b.run(async {
                for k in &keys {
                    let p = format!("unvouched/{}", k.to_hex());
                    if command == provenance::VOUCH {
                        store.delete(&p).await?;
                    } else {
                        store.put(&p, Vec::new()).await?;
                    }
                }
                Ok(())
            })?;
            Ok(provenance::count_output(command, keys.len()))
        }
        other => Err(unknown_admin(other, COMMANDS)),
    }
}
