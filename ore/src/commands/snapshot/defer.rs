//! Not waiting for the archive: the questions of a snapshot over a slow link.
//!
//! With a backend in another process — above all one across a network — every `exists` is a
//! round trip. Waiting for each answer before reading on would make a snapshot of many small
//! files cost one round trip per file. So when an `exists` waits (`Backend::exists_waits`), a file's chunks (and the
//! directory and index blocks) are hashed, their keys go into the tree at once, and the
//! question "which of these does the archive lack?" is sent without waiting: the data and the
//! pending answer are queued here. A few *resolver* threads take the queue in order, wait for
//! each answer, seal (compress, encrypt) what is missing and hand it to the pipelined puts.
//!
//! Memory stays bounded: at most [`budget`] of data (sized by the backend's round trip, within
//! [`MIN_BYTES`] and [`MAX_BYTES`]) and [`MAX_ITEMS`] questions wait in the queue; readers
//! block beyond that. Everything queued is resolved and its puts confirmed
//! before the snapshot flushes, so the crash rule (blocks, flush, then the tag) is unchanged.
//! A backend that answers `exists` from memory (one working in place, or backend-s3 with its
//! index) answers at once, so nothing is deferred for it: deferring answers that were ready
//! only piled up read data behind the store's uploads.

use super::Writer;
use crate::core::block::{Compression, Kind};
use crate::core::error::{Error, Result};
use ore_util::sync::{lock, wait};
use protocol::{Key, Ticket};
use std::collections::HashSet;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Condvar, Mutex};

/// Fewest bytes of data allowed to wait for answers. Behind a backend slower than the
/// snapshot (an object store whose uploads hold puts back) the queue stays full, so this is
/// memory the run keeps: snapshots of /usr/share into SeaweedFS, whose backend process answers
/// at once, peaked at 178 MB with 64 MiB here, 133 MB with 24 MiB and 97 MB with 8 MiB (the
/// backend's process then being the larger), in the same time.
pub const MIN_BYTES: u64 = 8 << 20;
/// Most bytes of data allowed to wait for answers, however far the archive.
pub const MAX_BYTES: u64 = 32 << 20;
/// Bytes allowed to wait per second of round trip. A far archive needs its answers covered:
/// over a link of 20 ms each way, /usr/share/doc took 1.26–1.31 s with 8 MiB waiting and
/// 1.03–1.18 s with 24 MiB.
const PER_SECOND_OF_ROUND_TRIP: f64 = 512e6;

/// How many bytes may wait for answers from a backend whose round trip is `rtt`.
pub fn budget(rtt: std::time::Duration) -> u64 {
    ((rtt.as_secs_f64() * PER_SECOND_OF_ROUND_TRIP) as u64).clamp(MIN_BYTES, MAX_BYTES)
}

/// Most questions waiting for answers.
pub const MAX_ITEMS: usize = 2048;
/// Keys remembered as stored by this run (so concurrent windows do not store a chunk twice).
const RECENT: usize = 1 << 18;

/// What waits for an answer.
pub(crate) enum Work {
    /// Chunks `cuts` of `data` with their `keys`, to be compressed with `comp`.
    Chunks {
        data: Vec<u8>,
        cuts: Vec<(usize, usize)>,
        keys: Vec<Key>,
        comp: Compression,
    },
    /// One tree block.
    Block {
        kind: Kind,
        plain: Vec<u8>,
        key: Key,
    },
}

impl Work {
    fn bytes(&self) -> u64 {
        match self {
            Work::Chunks { data, .. } => data.len() as u64,
            Work::Block { plain, .. } => plain.len() as u64,
        }
    }
}

pub(crate) struct Item {
    present: Ticket<Vec<bool>>,
    work: Work,
}

/// The queue, its byte budget, and the keys this run stored.
pub(crate) struct Deferred {
    tx: Mutex<Option<SyncSender<Item>>>,
    rx: Mutex<Receiver<Item>>,
    in_flight: Mutex<u64>,
    /// Most bytes waiting at once (see [`budget`]).
    limit: u64,
    room: Condvar,
    recent: Mutex<HashSet<Key>>,
}

impl Deferred {
    /// A queue holding at most `limit` bytes (see [`budget`]).
    pub fn new(limit: u64) -> Deferred {
        let (tx, rx) = sync_channel(MAX_ITEMS);
        Deferred {
            tx: Mutex::new(Some(tx)),
            rx: Mutex::new(rx),
            in_flight: Mutex::new(0),
            limit,
            room: Condvar::new(),
            recent: Mutex::new(HashSet::new()),
        }
    }

    /// Queues `work` behind the pending answer `present`; blocks while the queue is full.
    /// Fails once the queue is closed (the run stopped).
    pub fn push(&self, present: Ticket<Vec<bool>>, work: Work) -> Result<()> {
        let n = work.bytes();
        {
            let mut used = lock(&self.in_flight);
            while *used > 0 && *used + n > self.limit {
                used = wait(&self.room, used);
            }
            *used += n;
        }
        let tx = lock(&self.tx).clone();
        match tx {
            Some(tx) if tx.send(Item { present, work }).is_ok() => Ok(()),
            _ => {
                self.release(n);
                Err(Error::Stopped)
            }
        }
    }

    fn release(&self, n: u64) {
        *lock(&self.in_flight) -= n;
        self.room.notify_all();
    }

    /// No more work: resolvers end once the queue is empty.
    pub fn close(&self) {
        lock(&self.tx).take();
    }

    fn next(&self) -> Option<Item> {
        lock(&self.rx).recv().ok()
    }

    /// Claims `key` for storing: `false` if this run stored it already.
    fn claim(&self, key: Key) -> bool {
        let mut r = lock(&self.recent);
        if r.len() >= RECENT {
            r.clear();
        }
        r.insert(key)
    }

    /// A resolver: waits for answers in queue order and stores what the archive lacks. On a
    /// failure it stops the run (through `fail`) and drains the queue without storing.
    pub fn resolve(&self, writer: &Writer, fail: &dyn Fn(Error)) {
        let mut failed = false;
        while let Some(Item { present, work }) = self.next() {
            let n = work.bytes();
            if !failed {
                if let Err(e) = self.resolve_one(writer, present, work) {
                    failed = true;
                    fail(e);
                }
            }
            self.release(n);
        }
    }

    fn resolve_one(&self, writer: &Writer, present: Ticket<Vec<bool>>, work: Work) -> Result<()> {
        let present = present.wait().map_err(Error::Backend)?;
        match work {
            Work::Chunks {
                data,
                cuts,
                keys,
                comp,
            } => {
                let present = writer.repo.answered(keys.len(), present)?;
                for (i, &(o, l)) in cuts.iter().enumerate() {
                    if !present[i] && self.claim(keys[i]) {
                        writer.seal_and_put(Kind::Chunk, &data[o..o + l], keys[i], comp)?;
                    }
                }
            }
            Work::Block { kind, plain, key } => {
                let present = writer.repo.answered(1, present)?;
                if !present[0] && self.claim(key) {
                    writer.seal_and_put(kind, &plain, key, writer.repo.compression())?;
                }
            }
        }
        Ok(())
    }
}
