//! Values' directories listed ahead: once `by-PROP/` under an archive tag is listed, a thread
//! reads the objects of each of its values, in the order the listing gives them, while the
//! kernel and the program walking the mount are busy with the ones before.
//!
//! The mount answers one request at a time, and `find` waits for each answer, so without it
//! a `find` over `by-creator/` of a million objects kept one core busy at a time: the index
//! read for each value's directory (about 60% of the mount's time, a descent and a thousand
//! entries per value) and then the thousands of replies that list it, one after the other.
//! Read ahead, the index is on the other core, in one pass over the property's entries
//! ([`browse::holders`]) rather than a descent per value.
//!
//! What is read ahead and not yet asked for is bounded ([`HELD`], counted as keys, each value
//! weighing [`VALUE_WEIGHT`] keys more). Once no one has taken a listing for [`IDLE`], the
//! thread gives up and drops what it holds; so it does after reading everything, and when it
//! fails or panics. A value asked for far from where the thread is, or after it ended, is read
//! where it is asked for, as without this: what is read ahead only ever saves time, it never
//! answers differently.

use crate::core::browse;
use crate::core::index::Root;
use crate::core::repo::Repo;
use crate::core::vtree::Links;
use ore_util::sync::{wait, wait_timeout_while};
use protocol::Key;
use std::collections::BTreeMap;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// Most read ahead and not yet asked for: object keys of 32 bytes, each value's listing
/// weighing [`VALUE_WEIGHT`] more.
const HELD: usize = 1 << 18;
/// What a value's listing weighs besides its keys, in keys: its vector and its place in the
/// map of those held (a `by-date/` of a million values of one object each is mostly this).
const VALUE_WEIGHT: usize = 4;
/// How long a thread waits for room before it gives up.
const IDLE: Duration = Duration::from_secs(10);
/// How many values past the thread's place a directory asked for may be, and still be
/// waited for rather than read where it is asked for.
const NEAR: usize = 4;

/// A `by-PROP/` directory's values, read ahead.
pub(super) struct Ahead {
    /// The values, in the listing's order, which is increasing.
    order: Vec<Vec<u8>>,
    bounds: Bounds,
    state: Mutex<State>,
    changed: Condvar,
}

#[derive(Default)]
struct State {
    /// Values' listings read and not yet taken, by their place.
    done: BTreeMap<usize, Links>,
    /// What `done` weighs ([`HELD`]).
    held: usize,
    /// Listings taken so far.
    taken: u64,
    /// The place of the first value the thread has not finished.
    next: usize,
    /// The thread has ended: all read, failed or given up.
    over: bool,
}

/// What the thread reads: the values of property `key` among the objects of an index that
/// have every `(property, value)` of `filters`.
pub(super) struct Job {
    pub(super) repo: Arc<Repo>,
    pub(super) index: Option<Root>,
    pub(super) filters: Vec<(String, Vec<u8>)>,
    pub(super) key: String,
    pub(super) made_ns: i64,
}

/// How far a thread reads ahead and how long it waits.
#[derive(Clone, Copy, Debug)]
pub(super) struct Bounds {
    /// Most object keys read ahead and not yet asked for.
    pub(super) held: usize,
    /// How long a thread waits for room before it gives up.
    pub(super) idle: Duration,
    /// How many values past the thread's place a directory asked for may be, and still be
    /// waited for rather than read where it is asked for.
    pub(super) near: usize,
}

/// What the mount reads ahead with.
pub(super) const BOUNDS: Bounds = Bounds {
    held: HELD,
    idle: IDLE,
    near: NEAR,
};

impl Ahead {
    /// Read-ahead of the directories of `values` (as listed, in increasing order), before
    /// any is read.
    fn new(values: Vec<Vec<u8>>, bounds: Bounds) -> Arc<Ahead> {
        Arc::new(Ahead {
            order: values,
            bounds,
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
        })
    }

    /// Starts reading ahead the directories of `values` (as listed, in increasing order).
    pub(super) fn start(job: Job, values: Vec<Vec<u8>>) -> Arc<Ahead> {
        let ahead = Ahead::new(values, BOUNDS);
        let me = ahead.clone();
        let spawned = std::thread::Builder::new()
            .name("ore-values-ahead".into())
            .spawn(move || {
                // Ended however `run` ends, a panic too: no reader waits for it then.
                let _ended = Ended(&me);
                me.run(&job);
                me.finish();
                me.linger();
            });
        if spawned.is_err() {
            ahead.finish();
        }
        ahead
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        ore_util::sync::lock(&self.state)
    }

    /// Reads `job`, offering each value's listing as it is read.
    fn run(&self, job: &Job) {
        let index = job.index.as_ref();
        let within = match job.filters.is_empty() {
            true => None,
            false => match browse::matching(&job.repo, index, &job.filters) {
                Ok(w) => Some(w),
                Err(_) => return,
            },
        };
        let narrowed_by = job.filters.len() + 1;
        let _ = browse::holders(&job.repo, index, &job.key, &mut |value, keys| {
            let keys: Vec<Key> = match &within {
                Some(w) => browse::both(w, &keys),
                None => keys,
            };
            self.offer(value, Links::new(keys, narrowed_by, job.made_ns))
        });
    }

    /// Holds `value`'s listing until it is asked for, once there is room for it; `false`:
    /// no one made room for [`Bounds::idle`], and the thread should give up.
    fn offer(&self, value: &[u8], links: Links) -> bool {
        let Ok(at) = self.order.binary_search_by(|v| v.as_slice().cmp(value)) else {
            return true;
        };
        let mut s = self.lock();
        while s.held >= self.bounds.held {
            let taken = s.taken;
            let (again, waited) = wait_timeout_while(&self.changed, s, self.bounds.idle, |s| {
                s.held >= self.bounds.held && s.taken == taken
            });
            s = again;
            if waited.timed_out() {
                return false;
            }
        }
        s.held += weight(&links);
        s.done.insert(at, links);
        s.next = at + 1;
        drop(s);
        self.changed.notify_all();
        true
    }

    /// Once all is read (or the thread gave up), keeps what is held for as long as someone
    /// takes a listing every [`Bounds::idle`], then drops it.
    fn linger(&self) {
        let mut s = self.lock();
        while !s.done.is_empty() {
            let taken = s.taken;
            let (again, waited) = wait_timeout_while(&self.changed, s, self.bounds.idle, |s| {
                s.taken == taken && !s.done.is_empty()
            });
            s = again;
            if waited.timed_out() {
                s.done.clear();
                s.held = 0;
            }
        }
    }

    /// The thread has ended: whatever it did not read is read where it is asked for.
    fn finish(&self) {
        self.lock().over = true;
        self.changed.notify_all();
    }

    /// Whether nothing more will come of it: the thread ended, and holds nothing.
    pub(super) fn spent(&self) -> bool {
        let s = self.lock();
        s.over && s.done.is_empty()
    }

    /// The listing of `value`'s directory, when it is read ahead or about to be; `None`:
    /// read it where it is asked for.
    pub(super) fn take(&self, value: &[u8]) -> Option<Links> {
        let at = self
            .order
            .binary_search_by(|v| v.as_slice().cmp(value))
            .ok()?;
        let mut s = self.lock();
        loop {
            if let Some(links) = s.done.remove(&at) {
                // Those before it were passed over: whoever asks for them reads them.
                let passed: Vec<usize> = s.done.range(..at).map(|(i, _)| *i).collect();
                let mut freed = weight(&links);
                for i in passed {
                    freed += s.done.remove(&i).map_or(0, |l| weight(&l));
                }
                s.held -= freed;
                s.taken += 1;
                drop(s);
                self.changed.notify_all();
                return Some(links);
            }
            let far = at > s.next + self.bounds.near;
            if s.over || at < s.next || far || s.held >= self.bounds.held {
                return None;
            }
            s = wait(&self.changed, s);
        }
    }
}

/// What a value's listing weighs against [`HELD`].
fn weight(links: &Links) -> usize {
    links.keys.len() + VALUE_WEIGHT
}

/// Ends the thread's read-ahead when dropped.
struct Ended<'a>(&'a Ahead);

impl Drop for Ended<'_> {
    fn drop(&mut self) {
        self.0.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn links(n: usize) -> Links {
        Links {
            keys: (0..n).map(|i| Key([i as u8; 32])).collect(),
            up: 2,
            made_ns: 0,
        }
    }

    fn values(n: u8) -> Vec<Vec<u8>> {
        (0..n).map(|i| vec![b'v', i]).collect()
    }

    const WIDE: Bounds = Bounds {
        held: 1000,
        idle: Duration::from_secs(30),
        near: 2,
    };

    #[test]
    fn a_reader_in_listing_order_waits_for_each_value_and_gets_what_was_offered() {
        let ahead = Ahead::new(values(20), WIDE);
        let me = ahead.clone();
        let thread = std::thread::spawn(move || {
            for i in 0..20u8 {
                std::thread::sleep(Duration::from_millis(2));
                assert!(me.offer(&[b'v', i], links(i as usize + 1)));
            }
            me.finish();
        });
        for i in 0..20u8 {
            let got = ahead.take(&[b'v', i]).expect("waited for, not read again");
            assert_eq!(got.keys.len(), i as usize + 1);
        }
        thread.join().expect("the thread ends");
        assert_eq!(ahead.lock().held, 0, "nothing is held once all is taken");
        assert!(ahead.take(b"not a value").is_none());
    }

    #[test]
    fn a_value_far_ahead_or_passed_over_is_read_where_it_is_asked_for() {
        let ahead = Ahead::new(values(20), WIDE);
        // Far past where the thread is: not waited for (it would never come: no thread).
        let started = Instant::now();
        assert!(ahead.take(&[b'v', 10]).is_none());
        assert!(started.elapsed() < Duration::from_secs(1));
        assert!(ahead.offer(&[b'v', 0], links(3)));
        assert!(ahead.offer(&[b'v', 1], links(4)));
        assert!(ahead.offer(&[b'v', 2], links(5)));
        assert_eq!(ahead.lock().held, 12 + 3 * VALUE_WEIGHT);
        // Taking value 2 drops 0 and 1, which were passed over.
        assert_eq!(ahead.take(&[b'v', 2]).map(|l| l.keys.len()), Some(5));
        assert_eq!(ahead.lock().held, 0);
        assert!(ahead.take(&[b'v', 0]).is_none(), "passed over: read again");
        // Once the thread ends, nothing is waited for.
        ahead.finish();
        assert!(ahead.take(&[b'v', 3]).is_none());
    }

    #[test]
    fn the_thread_waits_for_room_and_gives_up_when_no_one_takes_its_listings() {
        let tight = Bounds {
            held: 10,
            idle: Duration::from_millis(300),
            near: 2,
        };
        let ahead = Ahead::new(values(5), tight);
        assert!(ahead.offer(&[b'v', 0], links(10)));
        // Full: a reader of the next value does not wait for a thread that waits for room.
        assert!(ahead.take(&[b'v', 1]).is_none());
        // Room is made by taking: the thread, waiting, goes on.
        let me = ahead.clone();
        let thread = std::thread::spawn(move || me.offer(&[b'v', 1], links(4)));
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(ahead.take(&[b'v', 0]).map(|l| l.keys.len()), Some(10));
        assert!(thread.join().expect("joins"), "room was made");
        assert_eq!(ahead.lock().held, 4 + VALUE_WEIGHT);
        // No one takes: the thread gives up after `idle`, holding no more.
        assert!(ahead.offer(&[b'v', 2], links(6)));
        let started = Instant::now();
        assert!(!ahead.offer(&[b'v', 3], links(1)));
        assert!(started.elapsed() >= Duration::from_millis(300));
        assert_eq!(ahead.lock().held, 10 + 2 * VALUE_WEIGHT);
    }

    #[test]
    fn what_is_held_is_dropped_once_no_one_takes_it_and_a_panic_ends_the_read_ahead() {
        let quick = Bounds {
            held: 1000,
            idle: Duration::from_millis(100),
            near: 2,
        };
        let ahead = Ahead::new(values(5), quick);
        assert!(ahead.offer(&[b'v', 0], links(3)));
        assert!(ahead.offer(&[b'v', 1], links(3)));
        ahead.finish();
        // Taken within the idle time: kept.
        let me = ahead.clone();
        let lingering = std::thread::spawn(move || me.linger());
        assert_eq!(ahead.take(&[b'v', 0]).map(|l| l.keys.len()), Some(3));
        lingering.join().expect("lingers, then ends");
        // No one took value 1 for a while: dropped, and read where asked for.
        assert_eq!(ahead.lock().held, 0);
        assert!(ahead.take(&[b'v', 1]).is_none());

        // A thread that panics still ends the read-ahead: a reader does not wait for ever.
        let ahead = Ahead::new(values(5), WIDE);
        let me = ahead.clone();
        let dying = std::thread::spawn(move || {
            let _ended = Ended(&me);
            panic!("a read-ahead that fails in the middle");
        });
        assert!(dying.join().is_err());
        assert!(ahead.take(&[b'v', 0]).is_none());
    }
}
