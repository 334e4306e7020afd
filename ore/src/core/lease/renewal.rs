//! Keeping a lease or a sweep alive: a background thread that renews one tag's heartbeat by
//! compare-and-swap, and the secret that binds a lease to its holder.
//!
//! A lease's value carries a `lock`, the hash of a secret only its holder knows
//! ([`protocol::tagrules::lease_lock`]); a backend lets an append-only connection change a
//! live, locked lease only with a value that reveals that secret as its `proof`. Each write of
//! the lease — every renewal, and freeing it — reveals the current secret and, for a renewal,
//! locks the new value with a fresh one. A revealed secret is spent: the value now in the tag
//! has a new lock. So another writer, a compromised laptop say, cannot free a running
//! snapshot's lease and let the owner's gc sweep without waiting for it.
//!
//! Kept apart from `lease.rs` so that the protocol of a renewal — what is written, when, and
//! with which secret — reads in one place.

use super::{renew_every, ttl_ns, GcState, Holder};
use crate::core::crypto::random;
use crate::core::error::Result;
use ore_util::sync::{lock, wait_timeout_while};
use protocol::tagrules::lease_lock;
use protocol::{Backend, CasOutcome};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering::SeqCst};
use std::sync::{Arc, Condvar, Mutex};

/// A lease's secret: revealed as the `proof` of the next value written, never before.
pub type Secret = [u8; 32];

/// A fresh secret.
pub fn secret() -> Secret {
    random::<32>()
}

/// A background renewal of one tag's timestamp, stopped on drop.
pub struct Renewal {
    stop: Arc<(Mutex<bool>, Condvar)>,
    pub thread: Option<std::thread::JoinHandle<()>>,
    pub lost: Arc<AtomicBool>,
    /// When the last renewal succeeded (ns since the epoch).
    renewed: Arc<AtomicI64>,
    /// The tag's value last written, and the secret its lock was made from.
    state: Arc<Mutex<(Vec<u8>, Secret)>>,
}

/// What a renewal writes: from the current value and its secret, the next value and the
/// secret of its lock.
pub type Next = fn(&[u8], &Secret) -> (Vec<u8>, Secret);

impl Renewal {
    /// Renews `name` every ttl/10 by compare-and-swap from the current value to the one
    /// `next` makes of it; a failed swap means someone else took the tag: the renewal is lost.
    pub fn start(
        backend: Arc<dyn Backend>,
        name: String,
        value: Vec<u8>,
        secret: Secret,
        next: Next,
    ) -> Renewal {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let lost = Arc::new(AtomicBool::new(false));
        let renewed = Arc::new(AtomicI64::new(crate::core::util::now_ns()));
        let state = Arc::new(Mutex::new((value, secret)));
        let thread = {
            let (stop, lost, renewed, state) =
                (stop.clone(), lost.clone(), renewed.clone(), state.clone());
            std::thread::spawn(move || loop {
                {
                    let (m, c) = &*stop;
                    let g = lock(m);
                    let (g, _) = wait_timeout_while(c, g, renew_every(), |s| !*s);
                    if *g {
                        return;
                    }
                }
                let mut cur = lock(&state);
                let new = next(&cur.0, &cur.1);
                match backend.set_tag(&name, Some(&cur.0), &new.0) {
                    Ok(CasOutcome::Done) => {
                        *cur = new;
                        renewed.store(crate::core::util::now_ns(), SeqCst);
                    }
                    Ok(CasOutcome::Conflict { .. }) => {
                        lost.store(true, SeqCst);
                        return;
                    }
                    // Kept: if the write did not land, the tag still holds the value this
                    // secret opens; if it landed and only the answer was lost, the next swap
                    // fails and the lease counts as lost.
                    Err(e) => protocol::log::debug(&format!("renewing {name}: {e}")),
                }
            })
        };
        Renewal {
            stop,
            thread: Some(thread),
            lost,
            renewed,
            state,
        }
    }

    /// Whether the tag may no longer be ours: taken by someone else, or not renewed for most
    /// of the ttl.
    pub fn doubtful(&self) -> bool {
        self.lost.load(SeqCst)
            || crate::core::util::now_ns() - self.renewed.load(SeqCst) > ttl_ns() * 4 / 5
    }

    /// Whether the tag still holds the value this renewal last wrote (one `get_tag`). The
    /// value stays locked meanwhile, so that a renewal cannot change it between the two.
    pub fn still_holds(&self, backend: &dyn Backend, name: &str) -> Result<bool> {
        if self.lost.load(SeqCst) {
            return Ok(false);
        }
        let mine = lock(&self.state);
        Ok(backend.get_tag(name)?.as_deref() == Some(mine.0.as_slice()))
    }

    /// Stops renewing; returns the tag's last value written and its secret.
    pub fn stop(&mut self) -> (Vec<u8>, Secret) {
        {
            let (m, c) = &*self.stop;
            *lock(m) = true;
            c.notify_all();
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        lock(&self.state).clone()
    }
}

impl Drop for Renewal {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A new lease holder's value, locked with a fresh secret.
pub fn locked_holder() -> (Vec<u8>, Secret) {
    let s = secret();
    let mut h = Holder::new();
    h.lock = Some(lease_lock(&s));
    (h.to_bytes(), s)
}

/// A lease's next value: a new heartbeat, the spent secret as proof, a fresh lock.
pub fn renew_holder(v: &[u8], spent: &Secret) -> (Vec<u8>, Secret) {
    match serde_json::from_slice::<Holder>(v) {
        Ok(mut h) => {
            let fresh = secret();
            h.heartbeat = crate::core::util::now_ns();
            h.proof = Some(hex::encode(spent));
            h.lock = Some(lease_lock(&fresh));
            (h.to_bytes(), fresh)
        }
        Err(_) => (v.to_vec(), *spent),
    }
}

/// A sweep's next value: a new heartbeat (sweeps are not locked: only the owner announces
/// them, and the backend lets no one else end a live one).
pub fn renew_sweep(v: &[u8], secret: &Secret) -> (Vec<u8>, Secret) {
    let next = match GcState::parse(Some(v)) {
        GcState::Sweeping {
            epoch,
            unclean,
            mut holder,
        } => {
            holder.heartbeat = crate::core::util::now_ns();
            GcState::Sweeping {
                epoch,
                unclean,
                holder,
            }
            .to_bytes()
        }
        idle => idle.to_bytes(),
    };
    (next, *secret)
}
