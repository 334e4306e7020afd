//! Reading blocks out of packs in few requests: a restore asks for tens of thousands of
//! blocks, and one ranged GET per block made a restore of /usr/share cost 47,665 GETs and
//! five times restic's time (which reads whole packs).
//!
//! A read that misses fetches a *segment*: the block and the bytes after it in its pack, up to
//! a window. Reads that land inside a segment are answered from it, and reads that arrive
//! while it is on its way wait for it instead of asking the store themselves. The window
//! adapts the way a kernel's read-ahead does, because the backend only sees keys, never the
//! frontend's plan:
//!
//! - a miss just past the end of a segment of the same pack means the reader walks the pack
//!   in order (a restore, which reads blocks in the order a snapshot stored them): the window
//!   doubles, up to [`MAX_WINDOW`], which is a whole pack, so a restore costs about one GET
//!   per pack;
//! - a miss elsewhere in a pack already read from means scattered reads (a listing that only
//!   wants tree blocks, a mount): the window halves, and below [`MIN_WINDOW`] a miss reads its
//!   block alone, which is also how a reader starts;
//! - a miss in a pack not read from yet keeps the window as it is.
//!
//! Why start with nothing: a reader that waits for each block before asking for the next
//! (`ore ls -R` walks trees one by one) pays for every byte read ahead in time. Measured on
//! /usr/share through SeaweedFS, `ls -R` took 13 s reading blocks alone (3,243 GETs) and 22 s
//! with a window that started at 1 MiB and never fell below 64 KiB (666 GETs, 100 MB read).
//!
//! Memory is bounded: segments are kept, oldest dropped first, while they hold at most
//! [`BUDGET`] bytes; when the segments still on their way fill the budget, a read fetches its
//! block alone. Packs are immutable, so a kept segment never goes stale (a pack that a repack
//! deleted still answers from memory what it held).

use crate::packs::{Loc, PackId};
use crate::store::Store;
use ore_util::sync::lock;
use protocol::Result;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use tokio::sync::OnceCell;

/// The least window that reads beyond its block: below it, a miss reads its block alone.
pub(crate) const MIN_WINDOW: u64 = 128 << 10;
/// The window a fresh reader starts with: its block alone.
const FIRST_WINDOW: u64 = 0;
/// The most: a whole pack (a range past the object's end is answered up to the end).
pub(crate) const MAX_WINDOW: u64 = crate::packs::PACK_BYTES as u64;
/// How far past a segment's end a miss still counts as reading on.
const ADJACENT: u64 = 64 << 10;
/// Bytes of segments kept (or on their way) at most.
pub(crate) const BUDGET: u64 = 48 << 20;

struct Segment {
    pack: PackId,
    start: u64,
    /// The end asked for; the bytes may stop earlier, at the pack's end.
    end: u64,
    /// The bytes once read; `None` when the read failed or the pack is missing.
    data: OnceCell<Option<Arc<Vec<u8>>>>,
}

impl Segment {
    fn covers(&self, loc: &Loc) -> bool {
        *self.pack == *loc.pack
            && loc.offset >= self.start
            && loc.offset + u64::from(loc.len) <= self.end
    }

    fn held(&self) -> u64 {
        match self.data.get() {
            Some(Some(d)) => d.len() as u64,
            Some(None) => 0,
            None => self.end - self.start,
        }
    }
}

struct State {
    segments: VecDeque<Arc<Segment>>,
    window: u64,
}

/// The segments of one archive's packs that this process holds.
pub(crate) struct Readahead {
    state: Mutex<State>,
}

impl Default for Readahead {
    fn default() -> Readahead {
        Readahead {
            state: Mutex::new(State {
                segments: VecDeque::new(),
                window: FIRST_WINDOW,
            }),
        }
    }
}

/// How a read is served: from a segment, or alone.
enum Plan {
    Segment(Arc<Segment>),
    Alone,
}

impl Readahead {
    /// The block at `loc`, or `None` when its pack is missing. The length is not checked here.
    /// `blocks_end` tells where the blocks of a pack end (its table follows them): a segment
    /// never asks for more, since a store answers a range past an object's end short.
    pub async fn read(
        &self,
        store: &Store,
        loc: &Loc,
        blocks_end: impl FnOnce() -> u64,
    ) -> Result<Option<Vec<u8>>> {
        let path = format!("packs/{}", loc.pack);
        let seg = match self.plan(loc, blocks_end) {
            Plan::Segment(s) => s,
            Plan::Alone => return store.get_range(&path, loc.offset, u64::from(loc.len)).await,
        };
        let mut failure = None;
        let data = seg
            .data
            .get_or_init(|| async {
                match store.get_range(&path, seg.start, seg.end - seg.start).await {
                    Ok(Some(d)) => Some(Arc::new(d)),
                    Ok(None) => None,
                    Err(e) => {
                        failure = Some(e);
                        None
                    }
                }
            })
            .await
            .clone();
        let from = (loc.offset - seg.start) as usize;
        match data {
            Some(d) if from + loc.len as usize <= d.len() => {
                Ok(Some(d[from..from + loc.len as usize].to_vec()))
            }
            // The pack ended before the block: the block alone, whose length the caller
            // checks and reports.
            Some(_) => store.get_range(&path, loc.offset, u64::from(loc.len)).await,
            None => {
                self.drop_segment(&seg);
                match failure {
                    Some(e) => Err(e),
                    // Another read's fetch failed (its caller has the error) or the pack is
                    // missing: this block alone tells which, for this caller.
                    None => store.get_range(&path, loc.offset, u64::from(loc.len)).await,
                }
            }
        }
    }

    /// Finds the segment that covers `loc`, or starts one (adapting the window), or says the
    /// block is read alone when the budget is spent.
    fn plan(&self, loc: &Loc, blocks_end: impl FnOnce() -> u64) -> Plan {
        let mut st = lock(&self.state);
        if let Some(s) = st.segments.iter().find(|s| s.covers(loc)) {
            return Plan::Segment(s.clone());
        }
        let same_pack = st.segments.iter().filter(|s| *s.pack == *loc.pack);
        let mut any = false;
        let mut adjacent = false;
        for s in same_pack {
            any = true;
            adjacent |= loc.offset >= s.start && loc.offset <= s.end + ADJACENT;
        }
        if adjacent {
            st.window = (st.window * 2).clamp(MIN_WINDOW, MAX_WINDOW);
        } else if any {
            st.window /= 2;
            if st.window < MIN_WINDOW {
                st.window = 0;
            }
        }
        let block_end = loc.offset + u64::from(loc.len);
        let len = (loc.offset + st.window).min(blocks_end()).max(block_end) - loc.offset;
        // Room for the new segment: drop the oldest finished ones.
        let mut held: u64 = st.segments.iter().map(|s| s.held()).sum();
        while held + len > BUDGET {
            let Some(pos) = st.segments.iter().position(|s| s.data.initialized()) else {
                break;
            };
            if let Some(s) = st.segments.remove(pos) {
                held -= s.held();
            }
        }
        if held + len > BUDGET {
            return Plan::Alone;
        }
        let seg = Arc::new(Segment {
            pack: loc.pack.clone(),
            start: loc.offset,
            end: loc.offset + len,
            data: OnceCell::new(),
        });
        st.segments.push_back(seg.clone());
        Plan::Segment(seg)
    }

    fn drop_segment(&self, seg: &Arc<Segment>) {
        lock(&self.state).segments.retain(|s| !Arc::ptr_eq(s, seg));
    }

    /// The window the next new segment would read (for tests and `info`).
    #[cfg(test)]
    fn window(&self) -> u64 {
        lock(&self.state).window
    }
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

    fn finish(r: &Readahead, l: &Loc, bytes: usize) -> Arc<Segment> {
        let Plan::Segment(s) = r.plan(l, || u64::MAX) else {
            panic!("no segment planned for {l:?}");
        };
        s.data
            .set(Some(Arc::new(vec![0; bytes])))
            .expect("a new segment is empty");
        s
    }

    #[test]
    fn reading_a_pack_in_order_grows_the_window_to_a_whole_pack() {
        let r = Readahead::default();
        let mut offset = 8;
        let mut segments = 0;
        while offset < 31 << 20 {
            let s = finish(&r, &loc("p", offset, 4096), (r.window()) as usize);
            offset = s.end;
            segments += 1;
        }
        assert_eq!(r.window(), MAX_WINDOW);
        assert!(
            segments <= 10,
            "{segments} segments for 31 MiB read in order"
        );
    }

    #[test]
    fn scattered_reads_in_one_pack_shrink_the_window_to_the_block_alone() {
        let r = Readahead::default();
        for i in 0..8u64 {
            let s = finish(&r, &loc("p", i << 20, 100), r.window().max(100) as usize);
            finish(&r, &loc("p", s.end, 100), r.window().max(100) as usize);
        }
        assert!(
            r.window() >= MIN_WINDOW,
            "reading on did not grow the window"
        );
        for i in 0..12u64 {
            finish(&r, &loc("p", (i + 9) * (4 << 20), 100), 100);
        }
        assert_eq!(r.window(), 0);
    }

    #[test]
    fn a_block_inside_a_segment_is_served_by_it_not_by_a_new_one() {
        let r = Readahead::default();
        lock(&r.state).window = 1 << 20;
        let s = finish(&r, &loc("p", 8, 100), 1 << 20);
        let Plan::Segment(t) = r.plan(&loc("p", 5000, 100), || u64::MAX) else {
            panic!("read alone");
        };
        assert!(Arc::ptr_eq(&s, &t));
        let Plan::Segment(u) = r.plan(&loc("q", 5000, 100), || u64::MAX) else {
            panic!("read alone");
        };
        assert!(
            !Arc::ptr_eq(&s, &u),
            "another pack's block shares a segment"
        );
    }

    #[test]
    fn a_segment_stops_where_its_packs_blocks_end() {
        let r = Readahead::default();
        lock(&r.state).window = 1 << 20;
        let Plan::Segment(s) = r.plan(&loc("p", 8, 100), || 4000) else {
            panic!("read alone");
        };
        assert_eq!((s.start, s.end), (8, 4000));
        let Plan::Segment(t) = r.plan(&loc("q", 8, 100), || 50) else {
            panic!("read alone");
        };
        assert_eq!(
            (t.start, t.end),
            (8, 108),
            "a segment shorter than its block"
        );
    }

    #[test]
    fn segments_on_their_way_never_hold_more_than_the_budget() {
        let r = Readahead::default();
        let mut planned = 0u64;
        for i in 0..1000u64 {
            if let Plan::Segment(s) = r.plan(&loc(&format!("p{i}"), 8, 1 << 20), || u64::MAX) {
                planned += s.end - s.start;
            }
        }
        assert!(planned <= BUDGET, "{planned} bytes planned on their way");
        assert!(planned > 0);
    }
}
