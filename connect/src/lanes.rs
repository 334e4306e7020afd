//! Several connections to one archive, used as one backend.
//!
//! Over a long, narrow path a single connection is capped by more than round trips: an ssh
//! session moves at most one channel window per round trip (2 MiB in OpenSSH), about 50 MB/s
//! over a link with 40 ms round trips, however many requests are in flight. Opening the same
//! archive identifier several times gives as many windows. [`Lanes`] spreads blocks over the
//! connections by key, so every operation on one key — its put, a later get or exists — goes to
//! the same connection, in order, and "a get sees an earlier put" still holds. Everything else
//! (tags, lists, removals, stats, admin) goes to the first connection; whatever changes
//! something or looks at blocks there (a tag move, a removal, a list, stats, admin) waits until
//! the others have flushed what they accepted since their last flush: each connection may be a
//! process of its own (backend-fs), and a flush is what makes its blocks visible to the others
//! and durable.
//!
//! A backend that allows one process per archive (splitlog) lets further processes attach to the
//! one that holds it (see [`protocol::share`]), so lanes work with it too. Lanes may also join
//! later ([`Lanes::joining`]): a run starts on the first connection at once, and the others are
//! taken in between two requests once they are all up.

use ore_util::sync::{lock, read, write};
use protocol::backend::{AdminOutput, Backend, BackendInfo, CasOutcome, Stats, Ticket};
use protocol::{Key, Result};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::{Mutex, RwLock};

/// Connections to one archive; the first one also carries everything that is not a block.
pub struct Lanes<B: Backend> {
    /// The connections after the first: empty until they have joined.
    rest: RwLock<Vec<B>>,
    /// Where connections still being opened arrive, all at once.
    joining: Mutex<Option<Receiver<Vec<B>>>>,
    waiting: AtomicBool,
    /// Dropped by hand, in `drop`, so that it may close alongside the others.
    first: std::mem::ManuallyDrop<B>,
    /// Whether any connection after the first accepted a put since its last flush.
    dirty: AtomicBool,
    /// Whether the first connection accepted a put since its last flush.
    first_put: AtomicBool,
    /// Stops connections still being opened, if the lanes are dropped before they join.
    abandon: Option<crate::Abandon>,
}

impl<B: Backend> Lanes<B> {
    /// Uses `first` and `rest` as connections to one archive.
    pub fn new(first: B, rest: Vec<B>) -> Lanes<B> {
        Lanes {
            rest: RwLock::new(rest),
            joining: Mutex::new(None),
            waiting: AtomicBool::new(false),
            first: std::mem::ManuallyDrop::new(first),
            dirty: AtomicBool::new(false),
            first_put: AtomicBool::new(false),
            abandon: None,
        }
    }

    /// Abandons the connections opened with `abandon` if these lanes are dropped while they
    /// are still joining: nothing will use them, and the first connection may not be able to
    /// end before they do (ssh's master waits for the sessions it carries).
    pub fn with_abandon(mut self, abandon: crate::Abandon) -> Lanes<B> {
        self.abandon = Some(abandon);
        self
    }

    /// Uses `first` alone until the connections sent on `joining` arrive, then all of them. The
    /// switch happens between two requests, after a flush of the first connection, so that
    /// whatever it accepted is visible through every other one (which may be another process).
    pub fn joining(first: B, joining: Receiver<Vec<B>>) -> Lanes<B> {
        let lanes = Lanes::new(first, Vec::new());
        *lock(&lanes.joining) = Some(joining);
        lanes.waiting.store(true, Ordering::Release);
        lanes
    }

    /// The first connection (the one tags and everything but blocks go to).
    pub fn first(&self) -> &B {
        &self.first
    }

    /// How many connections are in use.
    pub fn count(&self) -> usize {
        1 + read(&self.rest).len()
    }

    /// Takes in connections that have finished joining.
    ///
    /// Blocks the first connection accepted must be visible through the others before keys
    /// move to them (each may be a process of its own), so the first connection is flushed —
    /// but only if it took a put since its last flush: a flush is answered after everything
    /// asked before it, which over a slow link can be many megabytes of blocks (a restore asks
    /// far ahead), and requests must not stop meanwhile. So that flush runs while requests
    /// still go to the first connection alone; under the switch's lock only the puts that
    /// arrived during it are flushed again.
    fn admit(&self) -> Result<()> {
        if !self.waiting.load(Ordering::Acquire) {
            return Ok(());
        }
        let arrived = {
            let mut joining = lock(&self.joining);
            let arrived = match joining.as_ref().map(|r| r.try_recv()) {
                Some(Ok(v)) => v,
                Some(Err(TryRecvError::Empty)) => return Ok(()),
                Some(Err(TryRecvError::Disconnected)) | None => Vec::new(),
            };
            *joining = None;
            self.waiting.store(false, Ordering::Release);
            arrived
        };
        if arrived.is_empty() {
            return Ok(());
        }
        self.flush_first_if_put()?;
        let mut rest = write(&self.rest);
        self.flush_first_if_put()?;
        rest.extend(arrived);
        Ok(())
    }

    fn flush_first_if_put(&self) -> Result<()> {
        if !self.first_put.swap(false, Ordering::AcqRel) {
            return Ok(());
        }
        let r = self.first.flush();
        if r.is_err() {
            self.first_put.store(true, Ordering::Release);
        }
        r
    }

    /// Runs `f` with the connection for `key` (the lanes cannot change meanwhile); `writes`
    /// says whether `f` stores something.
    fn with_lane<T>(&self, key: &Key, writes: bool, f: impl FnOnce(&B) -> T) -> T {
        let rest = read(&self.rest);
        let n = key.0[0] as usize % (1 + rest.len());
        if n == 0 {
            if writes {
                self.first_put.store(true, Ordering::Release);
            }
            f(&self.first)
        } else {
            if writes {
                self.dirty.store(true, Ordering::Release);
            }
            f(&rest[n - 1])
        }
    }

    /// Flushes the other connections (all at once) if they accepted anything since their last
    /// flush, so that the first connection's next request sees it.
    fn settle(&self) -> Result<()> {
        if !self.dirty.swap(false, Ordering::AcqRel) {
            return Ok(());
        }
        let r = self.flush_rest();
        if r.is_err() {
            self.dirty.store(true, Ordering::Release);
        }
        r
    }

    fn flush_rest(&self) -> Result<()> {
        let rest = read(&self.rest);
        std::thread::scope(|s| {
            let handles: Vec<_> = rest.iter().map(|b| s.spawn(|| b.flush())).collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect::<Result<Vec<()>>>()
        })?;
        Ok(())
    }
}

impl<B: Backend> Backend for Lanes<B> {
    fn info(&self) -> BackendInfo {
        self.first.info()
    }

    fn put(&self, key: Key, data: &[u8]) -> Result<()> {
        self.admit()?;
        self.with_lane(&key, true, |b| b.put(key, data))
    }

    fn get(&self, key: Key) -> Result<Option<Vec<u8>>> {
        self.admit()?;
        self.with_lane(&key, false, |b| b.get(key))
    }

    fn exists(&self, keys: &[Key]) -> Result<Vec<bool>> {
        self.start_exists(keys.to_vec()).wait()
    }

    fn remove(&self, keys: &[Key]) -> Result<()> {
        self.settle()?;
        self.first.remove(keys)
    }

    fn list(&self, after: Option<Key>, limit: u32) -> Result<(Vec<Key>, bool)> {
        self.settle()?;
        self.first.list(after, limit)
    }

    fn get_tag(&self, name: &str) -> Result<Option<Vec<u8>>> {
        self.first.get_tag(name)
    }

    fn set_tag(&self, name: &str, expected: Option<&[u8]>, value: &[u8]) -> Result<CasOutcome> {
        self.settle()?;
        self.first.set_tag(name, expected, value)
    }

    fn remove_tag(&self, name: &str, expected: Option<&[u8]>) -> Result<CasOutcome> {
        self.settle()?;
        self.first.remove_tag(name, expected)
    }

    fn list_tags(&self) -> Result<Vec<(String, Vec<u8>)>> {
        self.first.list_tags()
    }

    fn flush(&self) -> Result<()> {
        // Every connection flushes, whether or not it took puts since its last flush, and all
        // at once: over a long link a flush costs one round trip, not two.
        self.dirty.store(false, Ordering::Release);
        self.first_put.store(false, Ordering::Release);
        let (first, rest) = std::thread::scope(|s| {
            let rest = s.spawn(|| self.flush_rest());
            let first = self.first.flush();
            (
                first,
                rest.join().unwrap_or_else(|p| std::panic::resume_unwind(p)),
            )
        });
        if rest.is_err() {
            self.dirty.store(true, Ordering::Release);
        }
        if first.is_err() {
            self.first_put.store(true, Ordering::Release);
        }
        first.and(rest)
    }

    fn stats(&self) -> Result<Stats> {
        self.settle()?;
        self.first.stats()
    }

    fn admin(&self, command: &str, args: &[String]) -> Result<AdminOutput> {
        self.settle()?;
        self.first.admin(command, args)
    }

    fn pipelines(&self) -> bool {
        self.first.pipelines()
    }

    fn exists_waits(&self) -> bool {
        self.first.exists_waits()
    }

    fn start_put(&self, key: Key, data: Vec<u8>) -> Ticket<()> {
        if let Err(e) = self.admit() {
            return Ticket::ready(Err(e));
        }
        self.with_lane(&key, true, |b| b.start_put(key, data))
    }

    fn start_get(&self, key: Key) -> Ticket<Option<Vec<u8>>> {
        if let Err(e) = self.admit() {
            return Ticket::ready(Err(e));
        }
        self.with_lane(&key, false, |b| b.start_get(key))
    }

    fn start_exists(&self, keys: Vec<Key>) -> Ticket<Vec<bool>> {
        if let Err(e) = self.admit() {
            return Ticket::ready(Err(e));
        }
        let rest = read(&self.rest);
        let n = 1 + rest.len();
        if n == 1 {
            return self.first.start_exists(keys);
        }
        // Each connection is asked about its own keys; the answers are put back in order.
        let mut split: Vec<Vec<Key>> = vec![Vec::new(); n];
        let lanes: Vec<usize> = keys.iter().map(|k| k.0[0] as usize % n).collect();
        for (k, &l) in keys.iter().zip(&lanes) {
            split[l].push(*k);
        }
        let tickets: Vec<Option<Ticket<Vec<bool>>>> = split
            .into_iter()
            .enumerate()
            .map(|(l, ks)| {
                (!ks.is_empty()).then(|| {
                    if l == 0 {
                        self.first.start_exists(ks)
                    } else {
                        rest[l - 1].start_exists(ks)
                    }
                })
            })
            .collect();
        drop(rest);
        Ticket::pending(move || {
            let mut answers: Vec<std::vec::IntoIter<bool>> = Vec::with_capacity(n);
            for t in tickets {
                answers.push(match t {
                    Some(t) => t.wait()?.into_iter(),
                    None => Vec::new().into_iter(),
                });
            }
            lanes
                .iter()
                .map(|&l| {
                    answers[l].next().ok_or_else(|| {
                        protocol::Error::Protocol(format!(
                            "connection {} answered fewer exists than it was asked",
                            l + 1
                        ))
                    })
                })
                .collect()
        })
    }
}

impl<B: Backend> Drop for Lanes<B> {
    /// Closes the other connections all at once (each may take a round trip or two to end).
    /// The first one closes with them when no connection holds a put that was not flushed;
    /// otherwise it closes last, since a process holding the archive for attached ones stops
    /// reading their requests when its own connection ends, and closing a connection is what
    /// makes its backend flush.
    fn drop(&mut self) {
        let mut rest = std::mem::take(&mut *write(&self.rest));
        if self.waiting.load(Ordering::Acquire) {
            if let Some(a) = &self.abandon {
                a.abandon();
            }
            // Connections that arrived but never joined are closed with the others.
            if let Some(Ok(unused)) = lock(&self.joining).take().map(|r| r.try_recv()) {
                rest.extend(unused);
            }
        }
        let settled =
            !self.dirty.load(Ordering::Acquire) && !self.first_put.load(Ordering::Acquire);
        // SAFETY: `first` is taken once, here, and nothing uses it afterwards: this is the
        // last code that runs on `self`.
        let first = unsafe { std::mem::ManuallyDrop::take(&mut self.first) };
        let first = std::thread::scope(|s| {
            for b in rest {
                s.spawn(move || drop(b));
            }
            if settled {
                drop(first);
                None
            } else {
                Some(first)
            }
        });
        drop(first);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::sync::Arc;
    use testkit::conformance::{test_data, test_key};
    use testkit::MemoryBackend;

    /// A connection that counts its flushes (and, with a closer, takes a while to close).
    #[derive(Clone, Default)]
    struct Counted(
        Arc<MemoryBackend>,
        Arc<AtomicUsize>,
        #[expect(dead_code, reason = "held for its Drop, which is the point")] Option<Arc<Closer>>,
    );

    /// When each connection's closing began and ended.
    type CloseLog = Arc<Mutex<Vec<(&'static str, std::time::Instant, std::time::Instant)>>>;

    /// Closes its connection (the last copy of it) in 100 ms, and logs when.
    struct Closer(&'static str, CloseLog);

    impl Drop for Closer {
        fn drop(&mut self) {
            let began = std::time::Instant::now();
            std::thread::sleep(std::time::Duration::from_millis(100));
            lock(&self.1).push((self.0, began, std::time::Instant::now()));
        }
    }

    impl Backend for Counted {
        fn info(&self) -> BackendInfo {
            self.0.info()
        }
        fn put(&self, key: Key, data: &[u8]) -> Result<()> {
            self.0.put(key, data)
        }
        fn get(&self, key: Key) -> Result<Option<Vec<u8>>> {
            self.0.get(key)
        }
        fn exists(&self, keys: &[Key]) -> Result<Vec<bool>> {
            self.0.exists(keys)
        }
        fn remove(&self, keys: &[Key]) -> Result<()> {
            self.0.remove(keys)
        }
        fn list(&self, after: Option<Key>, limit: u32) -> Result<(Vec<Key>, bool)> {
            self.0.list(after, limit)
        }
        fn get_tag(&self, name: &str) -> Result<Option<Vec<u8>>> {
            self.0.get_tag(name)
        }
        fn set_tag(&self, n: &str, e: Option<&[u8]>, v: &[u8]) -> Result<CasOutcome> {
            self.0.set_tag(n, e, v)
        }
        fn remove_tag(&self, n: &str, e: Option<&[u8]>) -> Result<CasOutcome> {
            self.0.remove_tag(n, e)
        }
        fn list_tags(&self) -> Result<Vec<(String, Vec<u8>)>> {
            self.0.list_tags()
        }
        fn flush(&self) -> Result<()> {
            self.1.fetch_add(1, Ordering::SeqCst);
            self.0.flush()
        }
        fn stats(&self) -> Result<Stats> {
            self.0.stats()
        }
        fn admin(&self, c: &str, a: &[String]) -> Result<AdminOutput> {
            self.0.admin(c, a)
        }
    }

    /// Regression: a restore over a slow link stalled for up to a second as its lanes joined.
    /// The switch flushed the first connection under the lanes' lock, and that flush was
    /// answered only after the many megabytes of blocks asked for ahead of it, while every
    /// other request waited for the lock. A run that stored nothing has nothing to flush.
    #[test]
    fn lanes_join_a_run_that_only_reads_without_a_flush() {
        let first = Counted::default();
        let flushes = first.1.clone();
        first.put(test_key(1), &test_data(1, 100)).unwrap();
        first.flush().unwrap();
        flushes.store(0, Ordering::SeqCst);
        let (tx, rx) = std::sync::mpsc::channel();
        let lanes = Lanes::joining(first.clone(), rx);
        assert!(lanes.get(test_key(1)).unwrap().is_some());
        tx.send(vec![Counted(first.0.clone(), Arc::default(), None)])
            .unwrap();
        assert!(lanes.start_get(test_key(1)).wait().unwrap().is_some());
        assert_eq!(lanes.count(), 2, "the lane joined");
        assert_eq!(flushes.load(Ordering::SeqCst), 0);
    }

    /// What the first connection accepted before the switch is flushed once, before keys move
    /// to connections that may be processes of their own.
    #[test]
    fn lanes_join_a_run_that_stored_after_one_flush_of_the_first() {
        let first = Counted::default();
        let flushes = first.1.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        let lanes = Lanes::joining(first.clone(), rx);
        lanes.put(test_key(2), &test_data(2, 100)).unwrap();
        tx.send(vec![Counted(first.0.clone(), Arc::default(), None)])
            .unwrap();
        assert!(lanes.get(test_key(2)).unwrap().is_some());
        assert_eq!(lanes.count(), 2, "the lane joined");
        assert_eq!(flushes.load(Ordering::SeqCst), 1);
        // A flush of the lanes clears what the first connection owed.
        lanes.put(test_key(3), &test_data(3, 100)).unwrap();
        lanes.flush().unwrap();
        assert_eq!(flushes.load(Ordering::SeqCst), 2);
    }

    /// A run's end: with nothing stored and not flushed, the first connection closes alongside
    /// the others (over a slow link, a round trip less at the end of every run); after a put
    /// that was not flushed it closes only once they have, because a backend holding the
    /// archive for attached connections stops reading them when its own connection ends.
    #[test]
    fn lanes_close_the_first_with_the_others_unless_a_put_was_not_flushed() {
        for unflushed in [false, true] {
            let log = CloseLog::default();
            let mem = Arc::new(MemoryBackend::default());
            let conn = |name| {
                Counted(
                    mem.clone(),
                    Arc::default(),
                    Some(Arc::new(Closer(name, log.clone()))),
                )
            };
            let lanes = Lanes::new(conn("first"), vec![conn("second"), conn("third")]);
            lanes.put(test_key(4), &test_data(4, 100)).unwrap();
            lanes.put(test_key(5), &test_data(5, 100)).unwrap();
            if !unflushed {
                lanes.flush().unwrap();
            }
            drop(lanes);
            let log = lock(&log);
            assert_eq!(log.len(), 3);
            let first = log.iter().find(|e| e.0 == "first").unwrap();
            let others_end = log
                .iter()
                .filter(|e| e.0 != "first")
                .map(|e| e.2)
                .max()
                .unwrap();
            if unflushed {
                assert!(
                    first.1 >= others_end,
                    "the first closed before the others had"
                );
            } else {
                assert!(
                    first.1 < others_end,
                    "the first waited for the others to close"
                );
            }
        }
    }
}
