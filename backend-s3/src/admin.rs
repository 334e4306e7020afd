//! backend-s3's admin commands: the standard ones, where the archive lives and what the
//! start-up probe found (`info`), the tag history and the record of blocks restricted
//! connections stored (`unvouched/<key>` objects, see LAYOUT.md).

use crate::{tag_history, tags, S3Backend, FORMAT};
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
        name: "packs",
        args: "",
        help: "count packs, block copies, duplicate copies and copies of removed blocks (what a repack would give back)",
    },
    AdminCommand {
        name: "compact",
        args: "[SHARE]",
        help: "repack packs whose dead share (removed blocks, duplicate copies) is at least SHARE (never below --repack-threshold); gc runs it",
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
                    } else if store.tag_log {
                        "immutable records in tag-log/, the value found by replaying them"
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
                    "tags": if store.tag_log { "log" } else { "objects" },
                }),
            ))
        }
        "compact" => compact(b, args),
        "packs" => {
            no_args(command, args)?;
            b.settle()?;
            let c = crate::repack::census(&b.blocks.read_index());
            Ok(AdminOutput::new(
                format!(
                    "{} pack(s) holding {} copies ({} bytes): {} live ({} bytes), {} duplicate, {} removed\n",
                    c.packs, c.copies, c.bytes, c.live, c.live_bytes, c.duplicates, c.removed
                ),
                serde_json::to_value(&c).unwrap_or_default(),
            ))
        }
        "reindex" => {
            no_args(command, args)?;
            b.check_writable("reindexing")?;
            // Under the repack lock: a pack a repack is deleting must not get its index back.
            let rebuilt = b.run(async {
                let lock = match b.conditional.exact() {
                    true => Some(crate::lock::Lock::take(store).await?.map_err(|busy| {
                        Error::backend(
                            ErrorCode::Io,
                            format!("{}: reindex waits for the repack: {busy}", store.archive),
                        )
                    })?),
                    false => None,
                };
                let rebuilt = crate::packs::reindex(store).await;
                if let Some(l) = lock {
                    l.release().await?;
                }
                rebuilt
            })?;
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
            let kept = b.run(tag_history::history(store, asked))?;
            Ok(protocol::history::output(
                asked,
                &tag_history::entries(&kept),
            ))
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

/// `compact [SHARE]`: a repack at the larger of SHARE and the backend's own threshold.
fn compact(b: &S3Backend, args: &[String]) -> Result<AdminOutput> {
    let asked = match args {
        [] => 0.0,
        [s] => s
            .parse::<f64>()
            .ok()
            .filter(|t| (0.0..=1.0).contains(t))
            .ok_or_else(|| {
                Error::backend(
                    ErrorCode::Admin,
                    format!("compact: {s:?} is not a share between 0 and 1"),
                )
            })?,
        _ => {
            return Err(Error::backend(
                ErrorCode::Admin,
                format!(
                    "`compact` takes at most one argument, got {}",
                    args.join(" ")
                ),
            ))
        }
    };
    b.check_writable("repacking")?;
    let threshold = asked.max(b.repack_threshold);
    b.blocks.flush(&b.rt, &b.store)?;
    let exact = b.conditional.exact();
    let out = b.run(crate::repack::repack(&b.store, &b.blocks, threshold, exact))?;
    if let Some(busy) = &out.skipped {
        return Ok(AdminOutput::new(
            format!("repack skipped: {busy}\n"),
            serde_json::to_value(&out).unwrap_or_default(),
        ));
    }
    let text = format!(
        "repacked {} pack(s) (dead share at least {threshold}) into {}: {} bytes deleted, {} written, {} bytes freed; {} removal record(s) deleted{}\n",
        out.repacked.len(),
        out.written.len(),
        out.bytes_deleted,
        out.bytes_written,
        out.bytes_deleted.saturating_sub(out.bytes_written),
        out.records_deleted,
        if exact { "" } else { " (duplicate copies kept: the store ignores conditional writes)" }
    );
    let json = serde_json::to_value(&out).unwrap_or_default();
    Ok(AdminOutput::new(text, json))
}
