//! Whole packs read once into local scratch files, for readers that want most of a pack.
//!
//! Read-ahead (`readahead`) serves readers that walk a pack in order. A restore does not: it
//! restores directories in parallel, in an order that has little to do with the order a
//! snapshot's parallel walk stored them in. Measured on /usr/share (19 packs), every window
//! of 500 reads in a restore touched 12 to 19 of the packs, so any window of memory smaller
//! than the archive thrashes, and read-ahead alone still cost 2,431 GETs, most of the
//! store's CPU time.
//!
//! So a pack from which a reader has asked for [`HOT_READS`] blocks, or 1/[`HOT_SHARE`] of the
//! bytes, is read whole, in one GET, into an unnamed temporary file (created already unlinked, so nothing is
//! left behind whatever way the process ends), and every later read of it is a `pread`. A
//! listing that wants only tree blocks asks for a small share of each pack and never gets
//! there. The files hold at most the spill limit (`--spill`, default [`DEFAULT_LIMIT`]); once
//! it is reached, further packs are read through read-ahead as before, so a restore of an
//! archive larger than the limit degrades to the read-ahead figures instead of thrashing.
//! A pack goes to its file as it arrives, and at most [`WHOLE_AT_ONCE`] are fetched at a
//! time.
//!
//! Once [`EAGER_AFTER`] packs have become hot, the reader is one that reads whole archives (a
//! restore, `ls -R`, `check --read-data`), and every pack it touches afterwards is read whole
//! at its first read: waiting for four reads first cost up to three ranged GETs per pack, 70
//! GETs for a restore of /usr/share's 19 packs where one per pack is the floor.

use crate::packs::{Loc, PackId};
use crate::store::Store;
use ore_util::sync::lock;
use protocol::{Error, Result};
use std::collections::HashMap;
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Mutex};
use tokio::sync::{OnceCell, Semaphore};

/// The share of a pack's bytes asked for after which the rest is read whole...
pub(crate) const HOT_SHARE: u64 = 32;
/// ...or the number of reads of it.
pub(crate) const HOT_READS: u32 = 4;
/// Packs become hot by the rules above before every further pack is read whole at once.
pub(crate) const EAGER_AFTER: usize = 2;
/// Bytes of scratch files by default: 1 GiB.
pub const DEFAULT_LIMIT: u64 = 1 << 30;
/// Whole packs on their way at once (each is written to its file as it arrives, so this
/// bounds requests, not memory).
const WHOLE_AT_ONCE: usize = 4;

struct Spilled {
    /// The pack's blocks (bytes 0..len), once read; `None` when the read failed.
    file: OnceCell<Option<std::fs::File>>,
    len: u64,
}

struct Asked {
    reads: u32,
    bytes: u64,
    blocks_end: u64,
}

#[derive(Default)]
struct State {
    /// Packs read whole (or on their way).
    packs: HashMap<PackId, Arc<Spilled>>,
    /// Reads and bytes asked for so far from packs not read whole, and where each one's
    /// blocks end (looked up once per pack: it walks the pack's table).
    asked: HashMap<PackId, Asked>,
    /// Bytes of scratch files.
    used: u64,
}

/// The packs of one archive that this process holds in scratch files.
pub(crate) struct Spill {
    limit: u64,
    state: Mutex<State>,
    whole: Semaphore,
}

impl Spill {
    pub fn new(limit: u64) -> Spill {
        Spill {
            limit,
            state: Mutex::default(),
            whole: Semaphore::new(WHOLE_AT_ONCE),
        }
    }

    /// The block at `loc` from a scratch file, reading its pack whole first if it has become
    /// hot; `None` when the pack is not (or cannot be) held here, and the caller reads it
    /// otherwise. `blocks_end` tells where the pack's blocks end.
    pub async fn read(
        &self,
        store: &Store,
        loc: &Loc,
        blocks_end: impl FnOnce() -> u64,
    ) -> Result<Option<Vec<u8>>> {
        let Some(spilled) = self.note(loc, blocks_end) else {
            return Ok(None);
        };
        let file = spilled
            .file
            .get_or_init(|| self.fetch(store, &loc.pack, spilled.len))
            .await;
        let Some(file) = file else {
            self.forget(&loc.pack, &spilled);
            return Ok(None);
        };
        read_at(file, &spilled, loc, &store.archive)
    }

    /// The block at `loc` when its pack is in a scratch file already: read now, without
    /// waiting on anything (a restore's reads, answered on the caller's thread instead of by a
    /// task each). `None` when the pack is not there (yet).
    pub fn read_ready(&self, loc: &Loc, archive: &str) -> Option<Result<Vec<u8>>> {
        let spilled = lock(&self.state).packs.get(&*loc.pack).cloned()?;
        let file = spilled.file.get()?.as_ref()?;
        read_at(file, &spilled, loc, archive).transpose()
    }

    /// Counts what is asked of the pack, and returns its spilled copy when there is one or
    /// the pack has just become hot (and fits).
    fn note(&self, loc: &Loc, blocks_end: impl FnOnce() -> u64) -> Option<Arc<Spilled>> {
        if self.limit == 0 {
            return None;
        }
        let mut st = lock(&self.state);
        if let Some(s) = st.packs.get(&*loc.pack) {
            return Some(s.clone());
        }
        let asked = st.asked.entry(loc.pack.clone()).or_insert_with(|| Asked {
            reads: 0,
            bytes: 0,
            blocks_end: blocks_end(),
        });
        asked.reads += 1;
        asked.bytes += u64::from(loc.len);
        let len = asked.blocks_end;
        let hot = asked.reads >= HOT_READS
            || asked.bytes * HOT_SHARE >= len
            || st.packs.len() >= EAGER_AFTER;
        if !hot || st.used + len > self.limit {
            return None;
        }
        st.asked.remove(&*loc.pack);
        st.used += len;
        let s = Arc::new(Spilled {
            file: OnceCell::new(),
            len,
        });
        st.packs.insert(loc.pack.clone(), s.clone());
        Some(s)
    }

    /// Reads the pack's blocks into a new scratch file; `None` on any failure (the reads go
    /// on through read-ahead, which reports errors per block).
    async fn fetch(&self, store: &Store, pack: &str, len: u64) -> Option<std::fs::File> {
        let _permit = self.whole.acquire().await.ok()?;
        let mut f = tempfile::tempfile().ok()?;
        match store
            .get_range_into(&format!("packs/{pack}"), 0, len, &mut f)
            .await
        {
            Ok(true) => Some(f),
            _ => None,
        }
    }

    fn forget(&self, pack: &str, spilled: &Arc<Spilled>) {
        let mut st = lock(&self.state);
        if st.packs.get(pack).is_some_and(|s| Arc::ptr_eq(s, spilled)) {
            st.packs.remove(pack);
            st.used -= spilled.len;
        }
    }
}

/// The block at `loc` from its pack's scratch file; `None` when it lies past the blocks read.
fn read_at(
    file: &std::fs::File,
    spilled: &Spilled,
    loc: &Loc,
    archive: &str,
) -> Result<Option<Vec<u8>>> {
    // A crafted index may name any offset: past the end (or wrapping) is not here.
    if loc
        .offset
        .checked_add(u64::from(loc.len))
        .is_none_or(|end| end > spilled.len)
    {
        return Ok(None);
    }
    let mut out = vec![0; loc.len as usize];
    file.read_exact_at(&mut out, loc.offset).map_err(|e| {
        Error::io(
            format!("{archive}: reading pack {} from its scratch file", loc.pack),
            e,
        )
    })?;
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loc(pack: &str, offset: u64, len: u32) -> Loc {
        Loc {
            pack: pack.into(),
            offset,
            len,
        }
    }

    #[test]
    fn a_pack_is_read_whole_once_a_thirty_second_of_its_bytes_was_asked_for() {
        let s = Spill::new(DEFAULT_LIMIT);
        let pack = 16 << 20;
        assert!(s.note(&loc("p", 0, 256 << 10), || pack).is_none());
        assert!(s.note(&loc("p", 1 << 20, 256 << 10), || pack).is_some());
        assert_eq!(lock(&s.state).used, pack);
    }

    #[test]
    fn a_pack_is_read_whole_at_its_fourth_read() {
        let s = Spill::new(DEFAULT_LIMIT);
        for i in 0..3u64 {
            assert!(s.note(&loc("p", i * 700_000, 2_000), || 16 << 20).is_none());
        }
        assert!(s.note(&loc("p", 3 * 700_000, 2_000), || 16 << 20).is_some());
    }

    #[test]
    fn reading_one_small_file_from_each_pack_reads_no_pack_whole() {
        let s = Spill::new(DEFAULT_LIMIT);
        for p in 0..50 {
            for i in 0..3u64 {
                let l = loc(&format!("p{p}"), i * 700_000, 2_000);
                assert!(s.note(&l, || 16 << 20).is_none());
            }
        }
        assert_eq!(lock(&s.state).used, 0);
    }

    #[test]
    fn no_pack_is_spilled_past_the_limit() {
        let s = Spill::new(40 << 20);
        let spilled = (0..10)
            .filter(|p| {
                s.note(&loc(&format!("p{p}"), 0, 8 << 20), || 16 << 20)
                    .is_some()
            })
            .count();
        assert_eq!(spilled, 2);
        assert!(lock(&s.state).used <= 40 << 20);
    }

    #[test]
    fn after_two_hot_packs_every_further_pack_is_read_whole_at_its_first_read() {
        let s = Spill::new(DEFAULT_LIMIT);
        for p in ["a", "b"] {
            for i in 0..3u64 {
                assert!(s.note(&loc(p, i * 700_000, 2_000), || 16 << 20).is_none());
            }
            assert!(s.note(&loc(p, 3 * 700_000, 2_000), || 16 << 20).is_some());
        }
        assert!(s.note(&loc("c", 0, 2_000), || 16 << 20).is_some());
    }

    #[test]
    fn a_limit_of_zero_spills_nothing() {
        let s = Spill::new(0);
        assert!(s.note(&loc("p", 0, 16 << 20), || 16 << 20).is_none());
    }
}
