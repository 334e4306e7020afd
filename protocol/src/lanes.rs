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
//! one that holds it (see [`crate::share`]), so lanes work with it too. Lanes may also join
//! later ([`Lanes::joining`]): a run starts on the first connection at once, and the others are
//! taken in between two requests once they are all up.

use crate::backend::{AdminOutput, Backend, BackendInfo, CasOutcome, Stats, Ticket};
use crate::{Key, Result};
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
    first: B,
    /// Whether any connection after the first accepted a put since its last flush.
    dirty: AtomicBool,
}

impl<B: Backend> Lanes<B> {
    /// Uses `first` and `rest` as connections to one archive.
    pub fn new(first: B, rest: Vec<B>) -> Lanes<B> {
        Lanes {
            rest: RwLock::new(rest),
            joining: Mutex::new(None),
            waiting: AtomicBool::new(false),
            first,
            dirty: AtomicBool::new(false),
        }
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
    fn admit(&self) -> Result<()> {
        if !self.waiting.load(Ordering::Acquire) {
            return Ok(());
        }
        let mut joining = lock(&self.joining);
        let arrived = match joining.as_ref().map(|r| r.try_recv()) {
            Some(Ok(v)) => v,
            Some(Err(TryRecvError::Empty)) => return Ok(()),
            Some(Err(TryRecvError::Disconnected)) | None => Vec::new(),
        };
        *joining = None;
        self.waiting.store(false, Ordering::Release);
        if arrived.is_empty() {
            return Ok(());
        }
        let mut rest = write(&self.rest);
        self.first.flush()?;
        rest.extend(arrived);
        Ok(())
    }

    /// Runs `f` with the connection for `key` (the lanes cannot change meanwhile); `writes`
    /// says whether `f` stores something.
    fn with_lane<T>(&self, key: &Key, writes: bool, f: impl FnOnce(&B) -> T) -> T {
        let rest = read(&self.rest);
        let n = key.0[0] as usize % (1 + rest.len());
        if n == 0 {
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

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn read<T>(m: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(|p| p.into_inner())
}

fn write<T>(m: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    m.write().unwrap_or_else(|p| p.into_inner())
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
                        crate::Error::Protocol(format!(
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
    /// Closes the other connections all at once (each may take a round trip or two to end),
    /// and the first one last: a process holding the archive for attached ones ends their
    /// connections when its own ends.
    fn drop(&mut self) {
        let rest = std::mem::take(&mut *write(&self.rest));
        std::thread::scope(|s| {
            for b in rest {
                s.spawn(move || drop(b));
            }
        });
    }
}
