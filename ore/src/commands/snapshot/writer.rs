//! Storing a snapshot's blocks: sealing each, sending it, and counting what was stored.
//!
//! With a backend that pipelines, a put is not waited for here: its ticket goes to the drain
//! (a thread of [`super::snapshot`]'s), which remembers the first failure and stops the run;
//! questions about which blocks the archive has are deferred the same way ([`super::defer`]).
//! Every block of a snapshot is sealed and sent through [`Writer::seal_and_put`].

use super::defer::{Deferred, Work};
use crate::core::block::{Compression, Kind};
use crate::core::cpustat::{time, Stage};
use crate::core::error::{Error, Result};
use crate::core::repo::Repo;
use ore_util::sync::lock;
use protocol::{Key, Ticket};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::SyncSender;
use std::sync::Mutex;

/// Counters of stored blocks, and the pipelined puts still to be confirmed.
pub(crate) struct Writer<'r> {
    pub(super) repo: &'r Repo,
    dry: bool,
    /// Questions waiting for answers (only when the backend pipelines).
    pub(super) deferred: Option<Deferred>,
    pub(super) tickets: Mutex<Option<SyncSender<Ticket<()>>>>,
    pub(super) failed: Mutex<Option<protocol::Error>>,
    pub(super) new_blocks: AtomicU64,
    pub(super) new_bytes: AtomicU64,
    pub(super) stored_bytes: AtomicU64,
}

impl<'r> Writer<'r> {
    /// A writer for `repo` (that stores nothing when `dry`), handing pipelined puts to the
    /// drain through `tickets`.
    /// `rtt` is the backend's round trip, which sizes the questions that may wait for answers.
    pub fn new(
        repo: &'r Repo,
        dry: bool,
        tickets: SyncSender<Ticket<()>>,
        rtt: std::time::Duration,
    ) -> Writer<'r> {
        Writer {
            repo,
            dry,
            deferred: repo
                .backend()
                .exists_waits()
                .then(|| Deferred::new(super::defer::budget(rtt))),
            tickets: Mutex::new(Some(tickets)),
            failed: Mutex::new(None),
            new_blocks: AtomicU64::new(0),
            new_bytes: AtomicU64::new(0),
            stored_bytes: AtomicU64::new(0),
        }
    }

    /// Stores `plain` as a block of `kind` unless it is `known` or the archive has it.
    pub fn store(&self, kind: Kind, plain: &[u8], known: Option<Key>) -> Result<Key> {
        // Waits for the keys while they are being derived (see `core::unlock`).
        let keys = self.repo.try_keys()?;
        let key = time(Stage::Hash, || keys.key_of(kind as u8, plain));
        if Some(key) == known {
            return Ok(key);
        }
        if let Some(d) = &self.deferred {
            let present = time(Stage::Store, || self.repo.backend().start_exists(vec![key]));
            let plain = plain.to_vec();
            d.push(present, Work::Block { kind, plain, key })?;
            return Ok(key);
        }
        if time(Stage::Store, || self.repo.backend().exists(&[key]))?.first() == Some(&true) {
            return Ok(key);
        }
        self.seal_and_put(kind, plain, key, self.repo.compression())?;
        Ok(key)
    }

    /// Whether questions to the archive are answered later (see [`super::defer`]).
    pub fn defers(&self) -> bool {
        self.deferred.is_some()
    }

    /// Queues chunks behind the archive's answer about them (see [`super::defer`]).
    pub fn defer_chunks(
        &self,
        present: Ticket<Vec<bool>>,
        data: Vec<u8>,
        cuts: Vec<(usize, usize)>,
        keys: Vec<Key>,
        comp: Compression,
    ) -> Result<()> {
        match &self.deferred {
            Some(d) => d.push(
                present,
                Work::Chunks {
                    data,
                    cuts,
                    keys,
                    comp,
                },
            ),
            None => Err(Error::Archive(
                "internal: nothing is deferred for this backend".into(),
            )),
        }
    }

    /// Seals `plain` as a block of `kind` with key `key`, compressed with `comp`, and sends
    /// it: every block and chunk a snapshot stores goes through here.
    pub fn seal_and_put(
        &self,
        kind: Kind,
        plain: &[u8],
        key: Key,
        comp: Compression,
    ) -> Result<()> {
        self.put(key, self.repo.seal(kind, &key, plain, comp)?, plain.len())
    }

    /// Sends a sealed block.
    pub fn put(&self, key: Key, sealed: Vec<u8>, plain_len: usize) -> Result<()> {
        self.new_blocks.fetch_add(1, Relaxed);
        self.new_bytes.fetch_add(plain_len as u64, Relaxed);
        self.stored_bytes.fetch_add(sealed.len() as u64, Relaxed);
        if self.dry {
            return Ok(());
        }
        let len = sealed.len() as u64;
        let started = time(Stage::Store, || self.repo.backend().start_put(key, sealed));
        let ticket = match started.try_ready() {
            // An in-process backend answers at once: no need to involve the drain.
            Ok(r) => {
                r.map_err(Error::Backend)?;
                return self.repo.stored(len);
            }
            Err(t) => t,
        };
        self.repo.stored(len)?;
        let tx = lock(&self.tickets).clone();
        match tx {
            Some(tx) if tx.send(ticket).is_ok() => Ok(()),
            _ => Err(self.failure()),
        }
    }

    /// The error for a put that could not be sent. The backend's own error stays in
    /// `failed`, to be returned as the snapshot's error.
    fn failure(&self) -> Error {
        match &*lock(&self.failed) {
            Some(e) => Error::Archive(e.to_string()),
            None => Error::Archive(format!(
                "archive {}: the snapshot was stopped",
                self.repo.id()
            )),
        }
    }
}
