//! The repack lock: one object, `repack.lock`, that makes repacks (and reindexing) run one at a
//! time across every process and host sharing an archive (LAYOUT.md, "Repacking").
//!
//! Why a lock, when nothing else in backend-s3 has one: a repack drops the copies of a block
//! that are not its canonical copy (the one in the pack with the smallest id), relying on that
//! copy staying. Two repacks at once, each with its own view of the index, can each rely on a
//! copy the other is dropping or moving, and lose the block between them; one repack at a time
//! cannot. Writers never take it: a repack only ever copies before it deletes, so a running
//! snapshot is never blocked by it and never loses a block it deduplicated against.
//!
//! The lock is taken with `If-None-Match: *`, renewed with `If-Match` before every batch of
//! deletions, and released by deleting it. A holder that died stops renewing; after its ttl
//! (10 minutes) the next repack takes over with `If-Match` on the stale value. A holder that
//! finds its lock changed stops before deleting anything more.
//!
//! The condition alone is not trusted to make one taker win: in one run on a machine under
//! heavy load (load average above 30) SeaweedFS 4.48 let two of eight `If-Match` replaces of
//! one ETag sent at once both succeed. It was not seen again in 1,650 rounds of bare
//! conditional PUTs nor in the tag races of `s3_races` (the gateway serialises them with a
//! lock on its filer), but a lock that lets two repacks delete is worth 2 s. So a taker whose write
//! succeeded waits [`SETTLE`] (2 s) — until every write that raced its own has landed — and
//! then reads the lock back: all racers read the same last write, so exactly one finds its
//! own bytes and proceeds, and the others stop as if the lock had been held. A repack or
//! reindex pays those 2 s once. The hole that remains is the
//! one every lease has: a holder paused for longer than the ttl between its renewal and its
//! deletions. On a store without conditional writes there is no lock; repacks there keep
//! every copy (see `repack`).

use crate::store::Store;
use protocol::{Error, ErrorCode, Result};
use serde::{Deserialize, Serialize};

const PATH: &str = "repack.lock";
/// How long a holder may go without renewing before its lock may be taken over.
const TTL_NS: u128 = 600 * 1_000_000_000;
/// How long a taker waits after its write before reading the lock back: longer than a
/// racing write of a few bytes takes to land once the store has let it through.
const SETTLE: std::time::Duration = std::time::Duration::from_secs(2);

#[derive(Serialize, Deserialize)]
struct Holder {
    /// Who holds it, for messages: pid and a random-enough id.
    by: String,
    /// Last renewal, nanoseconds since the epoch.
    heartbeat: u128,
}

/// A held lock.
pub(crate) struct Lock {
    store: Store,
    by: String,
    etag: String,
}

fn now_ns() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

fn body(by: &str) -> Vec<u8> {
    serde_json::to_vec(&Holder {
        by: by.to_string(),
        heartbeat: now_ns(),
    })
    .unwrap_or_default()
}

fn busy(store: &Store, what: &str) -> Error {
    Error::backend(
        ErrorCode::Io,
        format!("{}: {what}; try again later", store.archive),
    )
}

impl Lock {
    /// Takes the lock, or says who holds it (`Err` inside: busy; outside: a failed request).
    pub(crate) async fn take(store: &Store) -> Result<std::result::Result<Lock, String>> {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        let by = format!(
            "pid {} on {} #{:x}",
            std::process::id(),
            host.trim(),
            now_ns() & 0xffff_ffff
        );
        for _ in 0..3 {
            if store.put_new(PATH, body(&by)).await? {
                return Lock::settle(store, by).await;
            }
            let Some(t) = store.get_tagged(PATH).await? else {
                continue; // released meanwhile
            };
            let held: Option<Holder> = serde_json::from_slice(&t.data).ok();
            if let Some(h) = &held {
                if h.by == by {
                    // Our write landed though its answer said otherwise (a retry of it).
                    return Lock::settle(store, by).await;
                }
                let age = now_ns().saturating_sub(h.heartbeat);
                if age < TTL_NS {
                    return Ok(Err(format!(
                        "another repack ({}) holds {PATH}, renewed {} s ago",
                        h.by,
                        age / 1_000_000_000
                    )));
                }
            }
            if store.put_if_match(PATH, body(&by), &t.etag).await? {
                return Lock::settle(store, by).await;
            }
        }
        Ok(Err(format!("{PATH} keeps changing")))
    }

    /// After a write that took the lock: waits until every write that raced it has landed,
    /// then reads the lock back. Exactly one of the racers finds its own bytes; the others
    /// are told who won.
    async fn settle(store: &Store, by: String) -> Result<std::result::Result<Lock, String>> {
        tokio::time::sleep(SETTLE).await;
        match store.get_tagged(PATH).await? {
            Some(t) if Lock::holds(&t.data, &by) => Ok(Ok(Lock {
                store: store.clone(),
                by,
                etag: t.etag,
            })),
            Some(t) => Ok(Err(format!(
                "another repack ({}) took {PATH} at the same moment",
                serde_json::from_slice::<Holder>(&t.data).map_or_else(|_| "?".into(), |h| h.by)
            ))),
            None => Ok(Err(format!("{PATH} vanished as it was taken"))),
        }
    }

    /// Reads the lock back: it must be ours; remembers its ETag for the next renewal.
    async fn confirm(store: &Store, by: String) -> Result<Lock> {
        let t = store.get_tagged(PATH).await?;
        match t {
            Some(t) if Lock::holds(&t.data, &by) => Ok(Lock {
                store: store.clone(),
                by,
                etag: t.etag,
            }),
            _ => Err(busy(store, &format!("{PATH} was taken by another repack"))),
        }
    }

    fn holds(data: &[u8], by: &str) -> bool {
        serde_json::from_slice::<Holder>(data).is_ok_and(|h| h.by == by)
    }

    /// Renews the lock before deleting anything; an error when it is no longer ours.
    pub(crate) async fn renew(&mut self) -> Result<()> {
        if !self
            .store
            .put_if_match(PATH, body(&self.by), &self.etag)
            .await?
        {
            return Err(Error::backend(
                ErrorCode::Io,
                format!(
                    "{}: the repack lost {PATH} to another process; it stopped before deleting anything more",
                    self.store.archive
                ),
            ));
        }
        let by = std::mem::take(&mut self.by);
        *self = Lock::confirm(&self.store, by).await?;
        Ok(())
    }

    /// Releases the lock if it is still ours.
    pub(crate) async fn release(self) -> Result<()> {
        if let Some(t) = self.store.get_tagged(PATH).await? {
            if Lock::holds(&t.data, &self.by) {
                self.store.delete(PATH).await?;
            }
        }
        Ok(())
    }
}
