//! `reindex [--grace DURATION]`: an index object for the packs no index object covers, from the
//! table at each pack's end (LAYOUT.md, "Blocks: packs, index, removal records").
//!
//! Why a grace period: a pack no index object covers is either a dead writer's (it stored the
//! pack and died before its flush) or a running writer's, whose index object is on its way at
//! its next flush (a checkpoint of 256 MiB, or the end of its snapshot). Reindex is an admin
//! command that no lease stops, and it cannot tell the two apart from the pack; covering a
//! running writer's pack gives that pack two index objects and a repack a view of it that the
//! writer did not mean to publish yet. So reindex leaves alone packs younger than the grace
//! period ([`DEFAULT_GRACE`], one hour: far beyond the time a writer takes from a pack to its
//! flush), and says how many. Their age is judged by the store's clock alone: the pack's
//! Last-Modified against the Last-Modified of a scratch object reindex writes itself
//! (`clock/<pid>-<ns>`, deleted at once), so a host whose clock is off by hours neither takes a
//! running writer's pack nor leaves a dead one's for ever. `--grace 0s` takes every pack (a
//! test, or an administrator who knows no writer runs).

use crate::index::{store_object, Index};
use crate::packs::{corrupt, parse_table};
use crate::store::Store;
use protocol::{Error, ErrorCode, Result};
use std::collections::HashSet;
use std::time::{Duration, SystemTime};

/// Packs younger than this (by the store's clock) are left to their writer.
pub(crate) const DEFAULT_GRACE: Duration = Duration::from_secs(3600);

/// What a reindex did.
pub(crate) struct Reindexed {
    /// Packs it wrote an index object for.
    pub rebuilt: Vec<String>,
    /// Packs no index object covers that it left alone, being younger than the grace period.
    pub young: Vec<String>,
}

/// Reads the arguments of `reindex`: nothing, or `--grace DURATION`.
pub(crate) fn grace_arg(args: &[String]) -> Result<Duration> {
    let bad = |why: String| Error::backend(ErrorCode::Admin, format!("reindex: {why}"));
    match args {
        [] => Ok(DEFAULT_GRACE),
        [flag, value] if flag == "--grace" => {
            protocol::duration::parse_duration("--grace", value).map_err(bad)
        }
        [flag] if flag == "--grace" => Err(bad("--grace needs a duration, like 1h or 0s".into())),
        _ => Err(bad(format!(
            "takes at most `--grace DURATION`, got {:?}",
            args.join(" ")
        ))),
    }
}

/// A grace period as people write it: `1h`, `90m`, `45s`, `0.5s`.
pub(crate) fn describe(grace: Duration) -> String {
    let s = grace.as_secs();
    match s {
        _ if grace.subsec_nanos() != 0 => format!("{}s", grace.as_secs_f64()),
        0 => "0s".into(),
        _ if s.is_multiple_of(3600) => format!("{}h", s / 3600),
        _ if s.is_multiple_of(60) => format!("{}m", s / 60),
        _ => format!("{s}s"),
    }
}

/// The store's time now: the Last-Modified of a scratch object written for the purpose.
async fn store_now(store: &Store) -> Result<SystemTime> {
    let ns = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let clock = format!("clock/{}-{ns}", std::process::id());
    store.put(&clock, Vec::new()).await?;
    let now = store.modified(&clock).await;
    store.delete(&clock).await?;
    now?.ok_or_else(|| {
        Error::backend(
            ErrorCode::Io,
            format!(
                "{}: {clock} vanished right after it was written, so the store's time is unknown",
                store.archive
            ),
        )
    })
}

/// Writes an index object for every stored pack that no index object covers and that is at
/// least `grace` old by the store's clock; `index` must have read every index object first.
pub(crate) async fn reindex(
    store: &Store,
    index: &std::sync::RwLock<Index>,
    grace: Duration,
) -> Result<Reindexed> {
    let covered: HashSet<String> = ore_util::sync::read(index)
        .covered()
        .into_iter()
        .map(str::to_string)
        .collect();
    let now = store_now(store).await?;
    let (mut tables, mut young) = (Vec::new(), Vec::new());
    for (id, stored) in store.list_timed("packs/").await? {
        if covered.contains(&id) {
            continue;
        }
        if now.duration_since(stored).unwrap_or_default() < grace {
            young.push(id);
            continue;
        }
        let table = pack_table(store, &id).await?;
        let entries = parse_table(&store.archive, &format!("packs/{id}"), &table)?;
        ore_util::sync::write(index).add(&id, &entries);
        tables.push((id, table));
    }
    store_object(store, index, &tables).await?;
    Ok(Reindexed {
        rebuilt: tables.into_iter().map(|(id, _)| id).collect(),
        young,
    })
}

/// The table at the end of pack `id`: two ranged GETs (its length, then the table).
async fn pack_table(store: &Store, id: &str) -> Result<Vec<u8>> {
    let path = format!("packs/{id}");
    let size = store
        .head(&path)
        .await?
        .ok_or_else(|| corrupt(&store.archive, &path, "vanished while being reindexed"))?;
    let too_short = || corrupt(&store.archive, &path, "is too short to end with a table");
    let tail_at = size.checked_sub(8).ok_or_else(too_short)?;
    let tail = store
        .get_range(&path, tail_at, 8)
        .await?
        .unwrap_or_default();
    let len = u64::from_le_bytes(tail.as_slice().try_into().map_err(|_| too_short())?);
    let table_at = tail_at.checked_sub(len).ok_or_else(too_short)?;
    let table = store
        .get_range(&path, table_at, len)
        .await?
        .unwrap_or_default();
    let entries = parse_table(&store.archive, &path, &table)?;
    if entries.iter().any(|e| e.1 + u64::from(e.2) > table_at) {
        return Err(corrupt(
            &store.archive,
            &path,
            "has a table pointing past its blocks",
        ));
    }
    Ok(table)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn reindex_takes_an_hour_of_grace_unless_told_otherwise() {
        assert_eq!(grace_arg(&[]).expect("none"), DEFAULT_GRACE);
        assert_eq!(
            grace_arg(&args(&["--grace", "0s"])).expect("0s"),
            Duration::ZERO
        );
        assert_eq!(
            grace_arg(&args(&["--grace", "90m"])).expect("90m"),
            Duration::from_secs(5400)
        );
        assert_eq!(describe(DEFAULT_GRACE), "1h");
        assert_eq!(describe(Duration::from_secs(5400)), "90m");
        assert_eq!(describe(Duration::from_millis(1500)), "1.5s");
        for bad in [&["--grace"][..], &["--grace", "soon"], &["now"]] {
            let e = grace_arg(&args(bad)).expect_err("refused");
            assert!(e.to_string().contains("reindex"), "{e}");
        }
    }
}
