//! Leases: how gc and the runs that write to an archive stay out of each other's way without
//! a lock anyone ever has to break (FORMAT.md §10).
//!
//! The danger gc poses to a writer is deduplication: a snapshot asks "does the archive have
//! block B?", hears yes, and stores a tree that refers to B — while a gc that found B
//! unreachable removes it. So every run that writes holds a *lease*, a system tag
//! `ore:lease:N` whose value says who holds it and when it was last renewed, and gc's sweep
//! (the part that removes blocks) is announced in the tag `ore:gc`:
//!
//! - a writer takes a free lease slot, *then* reads `ore:gc`. If a sweep is under way it gives
//!   the slot back and waits for the sweep to end before trying again; otherwise it goes on,
//!   renewing the lease in the background, and frees the slot when it is done;
//! - gc announces its sweep in `ore:gc` (compare-and-swap), *then* lists the leases and waits
//!   until every lease it saw is freed or expired; only then does it read the tags again, mark
//!   what the finished runs added, and remove the rest.
//!
//! Because tag operations are atomic, either the writer read `ore:gc` before the announcement
//! (then gc sees its lease and waits for it), or after (then the writer waits for gc). A writer
//! that crashes stops renewing; after [`ttl`] its lease counts as free, so nothing stays locked.
//! One that ran on this machine and whose process is gone is taken over at once: each value
//! records where its holder runs, its pid and the pid's start time (see `lease/process.rs`),
//! and only a reader that can be sure the process ended acts on that.
//! A writer that was paused past the ttl finds out before it moves a tag ([`Lease::confirm`])
//! and refuses to finish if a gc ran meanwhile. A gc that crashes mid-sweep is noticed the same
//! way, from its own heartbeat in `ore:gc`, and writers take over from it.
//!
//! Each holder names its own ttl in the value (a lease or sweep lives for the ttl of the
//! process that holds it, whatever the reader's `ORE_LEASE_TTL`), and every reader — the
//! frontend here and the backend, which enforces the append-only rules — judges expiry by one
//! rule, [`protocol::tagrules::heartbeat_is_live`]. Clocks: expiry compares the holder's
//! timestamps with the reader's clock, so machines sharing an archive must agree on the time to
//! well within the ttl (15 minutes by default).
//!
//! A holder of an append-only key may be hostile, and these tags are the ones it can write, so
//! neither side trusts them blindly:
//!
//! - it cannot end a live sweep: the backend lets an append-only connection change `ore:gc`
//!   only in place of a sweep whose heartbeat is older than that sweep's ttl (only the owner
//!   can announce a sweep, so the ttl it declares is trusted), and only to the idle value
//!   derived from the dead sweep's ([`protocol::tagrules::abandoned_sweep_successor`]) — not
//!   to an earlier epoch, which file caches written under it would trust. And gc re-reads `ore:gc`
//!   before each batch of removals ([`Sweep::still_mine`]): should anyone with full access end
//!   its sweep, it stops removing at once rather than at its next renewal;
//! - it cannot free or take another run's live lease: each lease value carries a lock, the
//!   hash of a secret its holder reveals only in its next write (see `lease/renewal.rs`), and the
//!   backend lets an append-only connection change a live, locked lease only with that
//!   secret. Freeing a running snapshot's lease just before the owner's gc announces its sweep
//!   would otherwise let gc sweep without waiting, and remove blocks the snapshot deduplicated
//!   against — after the snapshot's last check, so that it would move its tag onto a tree
//!   with missing blocks. A backend check closes that window whole; a check in the writer
//!   could only narrow it;
//! - and should a lease change behind its holder's back all the same (a lease of an earlier
//!   version, without a lock; a full-access connection), the run re-reads its lease tag just
//!   before it moves a tag ([`Lease::confirm`]) and treats a value not its own as a lapsed
//!   lease: it takes a new one and refuses to finish when a gc ran meanwhile.
//!
//! What such a client can still do is hold leases of its own, renewed for as long as it likes:
//! the owner's gc then waits `--wait` (an hour by default) and gives up, removing nothing. A
//! delay, never a loss.

use crate::core::crypto::random;
use crate::core::error::{Error, Result};
use crate::core::repo::Repo;
use protocol::tagrules::{heartbeat_is_live, DEFAULT_TTL, MAX_TTL};
use protocol::{Backend, CasOutcome};
use renewal::{renew_holder, renew_sweep, Renewal};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod hint;
pub mod process;
mod renewal;
mod slots;

pub use hint::Hint;
use slots::{free_slot, take_slot};
pub use slots::{leases, Slot};

/// The tag announcing gc sweeps; its value changes whenever blocks were removed.
pub const GC_TAG: &str = protocol::tagrules::GC_TAG;
/// Lease tags are this prefix and a slot number.
pub const LEASE_PREFIX: &str = protocol::tagrules::LEASE_PREFIX;
/// The value of a free lease slot (its holder frees it with a proof, see `lease/renewal.rs`).
pub const FREE: &[u8] = b"free";

/// How long a lease or a sweep stays valid without renewal: `ORE_LEASE_TTL` (seconds, or a
/// duration like `15m`), or 900 s when it is unset, zero or not valid (`ore` refuses an invalid
/// value at start, see [`ttl_setting`]).
pub fn ttl() -> Duration {
    ttl_setting().unwrap_or(DEFAULT_TTL)
}

/// The `ORE_LEASE_TTL` setting, or why it is not a valid one (above [`MAX_TTL`], an hour, is
/// not: backends refuse such leases from append-only connections).
pub fn ttl_setting() -> Result<Duration, String> {
    match std::env::var("ORE_LEASE_TTL") {
        Ok(v) => protocol::duration::parse_duration("ORE_LEASE_TTL", &v).and_then(|d| {
            if d.is_zero() {
                Ok(DEFAULT_TTL)
            } else if d > MAX_TTL {
                Err(format!(
                    "ORE_LEASE_TTL={v:?} is longer than an hour ({} s), the longest a lease may last",
                    MAX_TTL.as_secs()
                ))
            } else {
                Ok(d)
            }
        }),
        Err(std::env::VarError::NotPresent) => Ok(DEFAULT_TTL),
        Err(e) => Err(format!("ORE_LEASE_TTL: {e}")),
    }
}

fn ttl_ns() -> i64 {
    ttl().as_nanos() as i64
}

fn renew_every() -> Duration {
    ttl() / 10
}

/// Who this process is, for messages about leases.
fn whoami() -> String {
    format!(
        "{}@{} pid {}",
        crate::core::meta::username(),
        crate::core::util::hostname(),
        std::process::id()
    )
}

/// The value of a held lease.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Holder {
    pub by: String,
    pub since: i64,
    pub heartbeat: i64,
    pub id: String,
    /// How long the holder may go without renewing (ns): its `ORE_LEASE_TTL`.
    #[serde(default = "default_ttl_ns")]
    pub ttl: i64,
    /// A lease's lock: the hash of the secret its holder reveals in its next write.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock: Option<String>,
    /// The secret of the lock this value replaced (spent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proof: Option<String>,
    /// Where the holder runs, as far as its pid means anything (see `lease/process.rs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// The holder's process id there, and its start time (clock ticks after boot).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<u64>,
}

fn default_ttl_ns() -> i64 {
    DEFAULT_TTL.as_nanos() as i64
}

impl Holder {
    fn new() -> Holder {
        let now = crate::core::util::now_ns();
        Holder {
            by: whoami(),
            since: now,
            heartbeat: now,
            id: hex::encode(random::<8>()),
            ttl: ttl_ns(),
            lock: None,
            proof: None,
            host: process::this_host().map(str::to_string),
            pid: Some(std::process::id()),
            start: process::own_start(),
        }
    }

    /// Whether its holder is known to have stopped: it ran on this machine (as `host` says)
    /// and its process is gone, or its pid now names another process. Such a lease or sweep
    /// is taken over at once rather than after its ttl; one from another machine, or one that
    /// does not say where it runs (written by an earlier version), never is.
    pub fn gone(&self) -> bool {
        match (&self.host, self.pid, self.start) {
            (Some(host), Some(pid), Some(start)) => process::is_gone(host, pid, start),
            _ => false,
        }
    }

    /// Whether it may be taken over: [`expired`](Self::expired), or [`gone`](Self::gone).
    pub fn abandoned(&self) -> bool {
        self.expired() || self.gone()
    }

    /// Why it may be taken over, for messages.
    fn why_abandoned(&self) -> String {
        if self.gone() {
            format!("its process ({}) is no longer running", self.by)
        } else {
            format!(
                "its holder ({}) stopped renewing it at {}",
                self.by,
                crate::core::util::format_time(self.heartbeat)
            )
        }
    }

    /// Whether it has not been renewed for longer than its ttl — or claims a heartbeat more
    /// than its ttl in the future, which no holder on a clock that agrees with ours (as they
    /// must, see above) can have written: a forged value, made to keep everyone waiting, is
    /// cleared like a dead holder's.
    pub fn expired(&self) -> bool {
        !heartbeat_is_live(self.heartbeat, self.ttl, crate::core::util::now_ns())
    }

    fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// What `ore:gc` says.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum GcState {
    /// No sweep; `epoch` changes whenever a sweep removed something, `unclean` whenever a
    /// sweep stopped part way. After only complete sweeps, a block that exists still has
    /// everything below it (a sweep removes a block together with all that only it reached),
    /// which is what lets a file cache check its entries instead of forgetting them.
    Idle {
        epoch: String,
        #[serde(default)]
        unclean: String,
    },
    /// A gc is removing blocks.
    Sweeping {
        epoch: String,
        #[serde(default)]
        unclean: String,
        #[serde(flatten)]
        holder: Holder,
    },
}

impl GcState {
    /// Parses the tag's value; an absent tag, or a value written before sweeps were announced,
    /// is idle.
    pub fn parse(value: Option<&[u8]>) -> GcState {
        match value {
            None => GcState::Idle {
                epoch: String::new(),
                unclean: String::new(),
            },
            Some(v) => serde_json::from_slice(v).unwrap_or_else(|_| GcState::Idle {
                epoch: hex::encode(v),
                unclean: String::new(),
            }),
        }
    }

    fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// The marker that changes when a sweep stops part way.
    pub fn unclean(&self) -> &str {
        match self {
            GcState::Idle { unclean, .. } | GcState::Sweeping { unclean, .. } => unclean,
        }
    }

    /// Idle with a new epoch and a new unclean marker: after a sweep that may have stopped
    /// part way.
    fn after_partial_sweep() -> GcState {
        GcState::Idle {
            epoch: hex::encode(random::<8>()),
            unclean: hex::encode(random::<8>()),
        }
    }
}

/// A held lease: gc does not sweep while it is held. Freed on drop.
pub struct Lease {
    backend: Arc<dyn Backend>,
    name: String,
    renewal: Renewal,
    /// `ore:gc` as it was when the lease was taken.
    gc_value: Vec<u8>,
    /// Where to say which slot this run leaves free, for the next run on this machine.
    hint: Option<Hint>,
}

impl Lease {
    /// Takes a lease on `repo`, waiting while a gc sweeps.
    pub fn acquire(repo: &Repo) -> Result<Lease> {
        Lease::acquire_hinted(repo, None)
    }

    /// [`Lease::acquire`], trying first the slot that `hint` says this machine's last run left
    /// free, and saying there which slot this run leaves free (see `lease/hint.rs`).
    pub fn acquire_hinted(repo: &Repo, hint: Option<Hint>) -> Result<Lease> {
        let backend = repo.backend().clone();
        let mut said = false;
        loop {
            let (name, value, secret) = take_slot(&*backend, hint.as_ref())?;
            let gc_value = backend.get_tag(GC_TAG)?;
            match GcState::parse(gc_value.as_deref()) {
                GcState::Idle { .. } => {
                    return Ok(Lease {
                        renewal: Renewal::start(
                            backend.clone(),
                            name.clone(),
                            value,
                            secret,
                            renew_holder,
                        ),
                        backend,
                        name,
                        gc_value: gc_value.unwrap_or_default(),
                        hint,
                    })
                }
                GcState::Sweeping { holder, .. } => {
                    free_slot(&*backend, &name, &value, &secret);
                    if holder.abandoned() {
                        match end_abandoned_sweep(&*backend, gc_value.as_deref(), &holder) {
                            Ok(()) => continue,
                            // An append-only backend whose clock says the sweep still lives
                            // refuses to end it: wait for the clocks to agree.
                            Err(e) if holder.expired() => {
                                protocol::log::debug(&format!("ending an abandoned sweep: {e}"));
                                std::thread::sleep(Duration::from_secs(1));
                                continue;
                            }
                            // Nor does it end a sweep whose gc it cannot see has died (it
                            // judges by the ttl alone): wait for it as for a live one.
                            Err(e) => {
                                protocol::log::debug(&format!("ending an abandoned sweep: {e}"))
                            }
                        }
                    }
                    if !said {
                        protocol::log::info(&format!(
                            "waiting for a gc to finish removing blocks (run by {}, since {})",
                            holder.by,
                            crate::core::util::format_time(holder.since)
                        ));
                        said = true;
                    }
                    wait_while_sweeping(&*backend, gc_value.as_deref())?;
                }
            }
        }
    }

    /// The value of `ore:gc` when the lease was taken (no blocks are removed while it is held).
    pub fn gc_value(&self) -> &[u8] {
        &self.gc_value
    }

    /// Checks, just before a run moves a tag, that the lease held all along: its renewals did
    /// not lapse, and its tag still holds this run's value (one `get_tag`: another connection,
    /// an append-only one say, may have set it to `free`, and then a gc need not have waited
    /// for this run). If not, takes a new lease and checks that no gc ran meanwhile. Errors
    /// when one did: blocks the run relied on may be gone.
    pub fn confirm(&mut self, repo: &Repo) -> Result<()> {
        let lapsed = self.renewal.doubtful();
        if !lapsed && self.renewal.still_holds(&*self.backend, &self.name)? {
            return Ok(());
        }
        if !lapsed {
            protocol::log::warning(&format!(
                "this run's lease {} on archive {} was changed by another connection; \
                 checking that no gc ran meanwhile",
                self.name,
                repo.id()
            ));
        }
        let fresh = Lease::acquire_hinted(repo, self.hint.take())?;
        if fresh.gc_value != self.gc_value {
            return Err(Error::Archive(format!(
                "this run's lease on archive {} lapsed (it was paused or cut off for more than {} s, \
                 or another connection freed it) and a gc ran meanwhile, so blocks it relied on \
                 may be gone; nothing was changed: run it again",
                repo.id(),
                ttl().as_secs()
            )));
        }
        let old = std::mem::replace(self, fresh);
        drop(old);
        Ok(())
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let (last, secret) = self.renewal.stop();
        if !self.renewal.lost.load(SeqCst) {
            let left = free_slot(&*self.backend, &self.name, &last, &secret);
            if let (Some(hint), Some(left)) = (&self.hint, left) {
                hint.leave(&self.name, &left);
            }
        }
    }
}

/// Polls `ore:gc` until it no longer holds `value` (or the sweep it announces expired).
fn wait_while_sweeping(backend: &dyn Backend, value: Option<&[u8]>) -> Result<()> {
    let mut pause = Duration::from_millis(50);
    loop {
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_secs(2));
        let now = backend.get_tag(GC_TAG)?;
        if now.as_deref() != value {
            return Ok(());
        }
        if let GcState::Sweeping { holder, .. } = GcState::parse(now.as_deref()) {
            if holder.expired() || (holder.gone() && backend.info().writable) {
                return Ok(());
            }
        }
    }
}

/// Declares a sweep whose gc stopped renewing it over: `ore:gc` becomes idle with a new epoch
/// (it may have removed blocks before it died).
fn end_abandoned_sweep(backend: &dyn Backend, value: Option<&[u8]>, holder: &Holder) -> Result<()> {
    protocol::log::warning(&format!(
        "a gc run by {} (since {}) stopped without finishing ({}); carrying on without it",
        holder.by,
        crate::core::util::format_time(holder.since),
        if holder.gone() {
            "its process is no longer running"
        } else {
            "it stopped renewing its sweep"
        }
    ));
    // The one value every writer derives from the sweep's (new epoch, new unclean marker):
    // the only one an append-only backend accepts here.
    let idle = match value {
        Some(v) => protocol::tagrules::abandoned_sweep_successor(v),
        None => GcState::after_partial_sweep().to_bytes(),
    };
    backend.set_tag(GC_TAG, value, &idle)?;
    Ok(())
}

/// A sweep in progress: announced in `ore:gc` and renewed until it ends.
pub struct Sweep {
    backend: Arc<dyn Backend>,
    renewal: Renewal,
    /// `ore:gc` before the sweep, to put back when nothing was removed.
    before: Option<Vec<u8>>,
    /// Its unclean marker, kept by a sweep that completes.
    unclean: String,
    removed: AtomicBool,
}

impl Sweep {
    /// Announces a sweep. Errors when another live gc is sweeping.
    pub fn begin(repo: &Repo) -> Result<Sweep> {
        let backend = repo.backend().clone();
        loop {
            let before = backend.get_tag(GC_TAG)?;
            let (epoch, unclean) = match GcState::parse(before.as_deref()) {
                GcState::Idle { epoch, unclean } => (epoch, unclean),
                GcState::Sweeping { holder, .. } if holder.abandoned() => {
                    end_abandoned_sweep(&*backend, before.as_deref(), &holder)?;
                    continue;
                }
                GcState::Sweeping { holder, .. } => {
                    return Err(Error::Archive(format!(
                        "another gc is removing blocks from archive {} (run by {}, since {}); \
                         try again when it is done",
                        repo.id(),
                        holder.by,
                        crate::core::util::format_time(holder.since)
                    )))
                }
            };
            let value = GcState::Sweeping {
                epoch,
                unclean: unclean.clone(),
                holder: Holder::new(),
            }
            .to_bytes();
            if backend.set_tag(GC_TAG, before.as_deref(), &value)? == CasOutcome::Done {
                return Ok(Sweep {
                    renewal: Renewal::start(
                        backend.clone(),
                        GC_TAG.into(),
                        value,
                        renewal::secret(),
                        renew_sweep,
                    ),
                    backend,
                    before,
                    unclean,
                    removed: AtomicBool::new(false),
                });
            }
        }
    }

    /// Waits until every lease held now is freed or expired, for at most `limit`.
    pub fn wait_for_leases(&self, limit: Duration) -> Result<()> {
        let started = Instant::now();
        let mut said = false;
        let mut pause = Duration::from_millis(20);
        loop {
            let mut held = Vec::new();
            for (name, value, h) in leases(&*self.backend)? {
                match h {
                    // A lease its holder stopped renewing is freed, so that nobody else waits
                    // for it either (should the holder wake up, its next renewal fails and it
                    // takes a new lease before it moves a tag).
                    Some(h) if h.abandoned() => {
                        protocol::log::info(&format!("freeing {name}: {}", h.why_abandoned()));
                        let _ = self.backend.set_tag(&name, Some(&value), FREE)?;
                    }
                    Some(h) => held.push(h),
                    None => {}
                }
            }
            if held.is_empty() {
                return Ok(());
            }
            if started.elapsed() > limit {
                return Err(Error::Archive(format!(
                    "gave up after {} s waiting for {} run(s) writing to the archive (e.g. {}, since {})",
                    limit.as_secs(),
                    held.len(),
                    held[0].by,
                    crate::core::util::format_time(held[0].since)
                )));
            }
            if !said {
                protocol::log::info(&format!(
                    "waiting for {} run(s) writing to the archive to finish (e.g. {})",
                    held.len(),
                    held[0].by
                ));
                said = true;
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_secs(1));
        }
    }

    /// Errors when the sweep may no longer be ours (this gc was paused past the ttl and a
    /// writer declared it abandoned, or someone with full access changed `ore:gc`): removing
    /// more would be unsafe, as writers may have started. Re-reads `ore:gc` (one `get_tag`),
    /// so gc calls it before each batch of removals.
    pub fn still_mine(&self) -> Result<()> {
        if self.renewal.doubtful() || !self.renewal.still_holds(&*self.backend, GC_TAG)? {
            return Err(Error::Archive(
                "this gc's sweep lapsed (it was paused or cut off for longer than the lease ttl, \
                 or another connection changed `ore:gc`); it stopped removing blocks: run it again"
                    .into(),
            ));
        }
        Ok(())
    }

    /// Notes that blocks were removed, so `ore:gc` gets a new epoch at the end.
    pub fn removed_some(&self) {
        self.removed.store(true, SeqCst);
    }

    /// Ends the sweep: `ore:gc` goes back to idle, with a new epoch when blocks were removed
    /// (file caches and backend-cache compare it).
    pub fn finish(mut self) -> Result<()> {
        let (last, _) = self.renewal.stop();
        if self.renewal.lost.load(SeqCst) {
            return Ok(());
        }
        let restore = if self.removed.load(SeqCst) {
            GcState::Idle {
                epoch: hex::encode(random::<8>()),
                unclean: self.unclean.clone(),
            }
            .to_bytes()
        } else {
            match self.before.take() {
                Some(v) => v,
                None => GcState::Idle {
                    epoch: String::new(),
                    unclean: String::new(),
                }
                .to_bytes(),
            }
        };
        self.backend.set_tag(GC_TAG, Some(&last), &restore)?;
        Ok(())
    }
}

impl Drop for Sweep {
    fn drop(&mut self) {
        // Ended without `finish` (an error): some blocks may be gone and others not yet.
        if self.renewal.thread.is_none() {
            return;
        }
        let (last, _) = self.renewal.stop();
        if !self.renewal.lost.load(SeqCst) {
            let idle = GcState::after_partial_sweep();
            let _ = self.backend.set_tag(GC_TAG, Some(&last), &idle.to_bytes());
        }
    }
}

/// Changing the format record takes a lease, so the method lives here rather than in
/// [`crate::core::repo`] (which knows nothing of leases).
impl Repo {
    /// Replaces the format record with `record` (key management), compare-and-swap on the tag.
    pub fn update_format(&mut self, record: crate::core::format::FormatRecord) -> Result<()> {
        // A gc must not take the new record between its put and the tag move.
        let _lease = Lease::acquire(self)?;
        self.replace_format(record)
    }
}
