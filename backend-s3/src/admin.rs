//! backend-s3's admin commands: the standard ones, where the archive lives and what the
//! start-up probe found (`info`), repacking (`packs`, `compact`), the tag history and the
//! record of blocks restricted connections stored (`unvouched/<key>` objects, see LAYOUT.md).
//!
//! One table, [`TABLE`], holds each command's name, help and handler: `help`, the welcome's list
//! and the dispatch all read it.

mod reindex;

use crate::{tag_history, tags, S3Backend, FORMAT, FORMAT_1};
use protocol::admin::{entry, no_args, records, Records, Table};
use protocol::{provenance, AdminOutput, Backend, Error, ErrorCode, Key, Result};

pub(crate) const TABLE: &Table<S3Backend> = &[
    &[
        entry("help", "", "list the admin commands", |_, _| {
            Ok(protocol::admin::help("backend-s3", TABLE))
        }),
        entry(
            "info",
            "",
            "where the archive lives, its layout, and whether the store honours conditional writes",
            info,
        ),
        entry(
            "stats",
            "",
            "count blocks and tags (lists the whole archive)",
            stats,
        ),
        entry(
            "reindex",
            "[--grace DURATION]",
            "write an index object for every pack that lacks one, from the pack's own table; packs younger than DURATION (default 1h, by the store's clock) are left to the writer that may still index them",
            reindex,
        ),
        entry(
            "packs",
            "",
            "count packs, block copies, duplicate copies and copies of removed blocks (what a repack would give back)",
            packs,
        ),
        entry(
            "compact",
            "[SHARE]",
            "repack packs whose dead share (removed blocks, duplicate copies) is at least SHARE (never below --repack-threshold); gc runs it",
            compact,
        ),
        entry(
            "requests",
            "",
            "the requests this backend process made to the store so far, by kind",
            requests,
        ),
    ],
    &records::<S3Backend>(),
];

fn info(b: &S3Backend, args: &[String]) -> Result<AdminOutput> {
    let store = &b.store;
    no_args("info", args)?;
    let c = b.conditional()?;
    let format = if store.layout == 1 { FORMAT_1 } else { FORMAT };
    Ok(AdminOutput::new(
        format!(
            "backend-s3 archive\n  location:          {}\n  endpoint:          {}\n  credentials:       {}\n  format:            {format} (blocks in packs)\n  max block size:    {} bytes\n  access:            {}\n  conditional writes: {}\n  tag changes:       {}\n",
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
            "format": format,
            "max_block_size": b.max_block_size,
            "read_only": b.read_only,
            "conditional_writes": c,
            "tags": if store.tag_log { "log" } else { "objects" },
        }),
    ))
}

fn stats(b: &S3Backend, args: &[String]) -> Result<AdminOutput> {
    no_args("stats", args)?;
    Ok(b.stats()?.admin_output())
}

fn requests(b: &S3Backend, args: &[String]) -> Result<AdminOutput> {
    no_args("requests", args)?;
    let counts = b.store.requests.json();
    Ok(AdminOutput::new(format!("{counts}\n"), counts))
}

fn packs(b: &S3Backend, args: &[String]) -> Result<AdminOutput> {
    no_args("packs", args)?;
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

fn reindex(b: &S3Backend, args: &[String]) -> Result<AdminOutput> {
    let store = &b.store;
    let grace = reindex::grace_arg(args)?;
    b.check_writable("reindexing")?;
    // Under the repack lock: a pack a repack is deleting must not get its index back.
    let exact = b.conditional()?.exact();
    let done = b.run(async {
        let lock = match exact {
            true => Some(crate::lock::Lock::take(store).await?.map_err(|busy| {
                Error::backend(
                    ErrorCode::Io,
                    format!("{}: reindex waits for the repack: {busy}", store.archive),
                )
            })?),
            false => None,
        };
        // Every index object read first: a pack any of them covers is indexed.
        let done = match b.blocks.refresh(store).await {
            Ok(()) => reindex::reindex(store, b.blocks.index(), grace).await,
            Err(e) => Err(e),
        };
        if let Some(l) = lock {
            l.release().await?;
        }
        done
    })?;
    b.run(b.blocks.refresh(store))?;
    let young = match done.young.len() {
        0 => String::new(),
        n => format!(
            "; left alone {n} pack(s) no index object covers yet, younger than {} by the store's clock (a running writer indexes them at its flush; --grace 0s takes them too)",
            reindex::describe(grace)
        ),
    };
    Ok(AdminOutput::new(
        format!("reindexed {} pack(s){young}\n", done.rebuilt.len()),
        serde_json::json!({
            "reindexed": done.rebuilt,
            "young": done.young,
            "grace_seconds": grace.as_secs_f64(),
        }),
    ))
}

impl Records for S3Backend {
    fn tag_history(&self, args: &[String]) -> Result<AdminOutput> {
        let asked = protocol::history::history_arg(args)?;
        let kept = self.run(tag_history::history(&self.store, asked))?;
        Ok(protocol::history::output(
            asked,
            &tag_history::entries(&kept),
        ))
    }

    fn expire_tag_history(&self, args: &[String]) -> Result<AdminOutput> {
        let (cutoff, tag) = protocol::history::expire_args(args)?;
        self.check_writable("expiring tag history")?;
        let n = self.run(tags::expire(&self.store, cutoff, tag))?;
        Ok(protocol::history::expired_output(n))
    }

    fn unvouched(&self, args: &[String]) -> Result<AdminOutput> {
        let store = &self.store;
        let (after, limit) = provenance::page_args(args)?;
        let after = after.map(|k| k.to_hex());
        let (names, more) = self.run(store.list("unvouched/", after.as_deref(), limit, false))?;
        let keys: Vec<Key> = names.iter().filter_map(|n| n.parse().ok()).collect();
        Ok(provenance::page_output(&keys, more))
    }

    fn record_vouching(&self, kind: &str, args: &[String]) -> Result<AdminOutput> {
        let store = &self.store;
        let keys = provenance::key_args(kind, args)?;
        self.check_writable("recording who stored a block")?;
        self.run(async {
            for k in &keys {
                let p = format!("unvouched/{}", k.to_hex());
                if kind == provenance::VOUCH {
                    store.delete(&p).await?;
                } else {
                    store.put(&p, Vec::new()).await?;
                }
            }
            Ok(())
        })?;
        Ok(provenance::count_output(kind, keys.len()))
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
    let exact = b.conditional()?.exact();
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
