//! Members at run time: their connections, their health in this session, and drawing them by
//! weight.
//!
//! Every member is connected when the backend opens (in parallel, so a slow one costs its own
//! time only); one that cannot be reached, or that fails later, is *broken* for the rest of the
//! session — no more writes go to it, reads try it last — and its error is kept in the state
//! for `members` to show. A new session tries it again.

use crate::state::MemberRow;
use ore_util::lock;
use protocol::{Backend, BackendInfo, Error};
use std::sync::{Arc, Mutex};

/// One member in this session.
pub struct Member {
    pub row: MemberRow,
    backend: Option<Arc<dyn Backend>>,
    info: Option<BackendInfo>,
    broken: Mutex<Option<String>>,
}

impl Member {
    /// Connects to the member; a failure leaves it broken with the reason.
    pub fn connect(row: MemberRow) -> Member {
        match connect::open(&row.archive) {
            Ok(b) => Member {
                info: Some(b.info()),
                backend: Some(b),
                row,
                broken: Mutex::new(None),
            },
            Err(e) => Member {
                row,
                backend: None,
                info: None,
                broken: Mutex::new(Some(e.to_string())),
            },
        }
    }

    /// The same member (and connection) with changed settings.
    pub fn with_row(&self, row: MemberRow) -> Member {
        Member {
            row,
            backend: self.backend.clone(),
            info: self.info.clone(),
            broken: Mutex::new(self.broken()),
        }
    }

    /// Connects to every member at once.
    pub fn connect_all(rows: Vec<MemberRow>) -> Vec<Arc<Member>> {
        std::thread::scope(|s| {
            let handles: Vec<_> = rows
                .into_iter()
                .map(|row| s.spawn(move || Member::connect(row)))
                .collect();
            handles
                .into_iter()
                .filter_map(|h| h.join().ok())
                .map(Arc::new)
                .collect()
        })
    }

    /// How the member is named in messages: `member 2 (backend-splitlog /disk2)`.
    pub fn name(&self) -> String {
        format!("member {} ({})", self.row.id, self.row.archive)
    }

    /// The connection, unless the member is broken.
    pub fn backend(&self) -> Option<&Arc<dyn Backend>> {
        if self.broken().is_some() {
            return None;
        }
        self.backend.as_ref()
    }

    /// The connection even when broken (reads try broken members as a last resort).
    pub fn any_backend(&self) -> Option<&Arc<dyn Backend>> {
        self.backend.as_ref()
    }

    pub fn info(&self) -> Option<&BackendInfo> {
        self.info.as_ref()
    }

    /// Why the member is broken in this session, if it is.
    pub fn broken(&self) -> Option<String> {
        lock(&self.broken).clone()
    }

    /// Marks the member broken; returns `true` the first time (so it is reported once).
    pub fn mark_broken(&self, e: &Error) -> bool {
        let mut b = lock(&self.broken);
        if b.is_some() {
            return false;
        }
        *b = Some(e.to_string());
        true
    }

    /// Takes writes: healthy, with a write weight, and its backend accepts them.
    pub fn writable(&self) -> bool {
        self.row.write_weight > 0
            && self.backend().is_some()
            && self.info.as_ref().is_some_and(|i| i.writable)
    }
}

/// A small random number generator for drawing members (no need for more).
pub struct Rng(Mutex<u64>);

impl Rng {
    pub fn new() -> Rng {
        let mut seed = [0u8; 8];
        if getrandom::getrandom(&mut seed).is_err() {
            seed = (std::process::id() as u64 ^ crate::state::now() as u64).to_le_bytes();
        }
        Rng(Mutex::new(u64::from_le_bytes(seed) | 1))
    }

    /// A number below `n` (which must be positive).
    pub fn below(&self, n: u64) -> u64 {
        let mut s = lock(&self.0);
        // xorshift64*
        let mut x = *s;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        *s = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }

    /// Takes one of `candidates` at random, each as likely as its write weight.
    pub fn draw(&self, candidates: &mut Vec<Arc<Member>>) -> Option<Arc<Member>> {
        let total: u64 = candidates
            .iter()
            .map(|m| u64::from(m.row.write_weight))
            .sum();
        if total == 0 {
            return None;
        }
        let mut pick = self.below(total);
        let i = candidates.iter().position(|m| {
            let w = u64::from(m.row.write_weight);
            if pick < w {
                true
            } else {
                pick -= w;
                false
            }
        })?;
        Some(candidates.remove(i))
    }
}

impl Default for Rng {
    fn default() -> Self {
        Rng::new()
    }
}

/// Members to store a block on: drawn from `candidates` by write weight until `have` plus
/// their trust reaches 100.
pub fn choose(rng: &Rng, candidates: &mut Vec<Arc<Member>>, mut have: u32) -> Vec<Arc<Member>> {
    let mut chosen = Vec::new();
    while have < 100 {
        match rng.draw(candidates) {
            Some(m) => {
                have += m.row.trust;
                chosen.push(m);
            }
            None => break,
        }
    }
    chosen
}
