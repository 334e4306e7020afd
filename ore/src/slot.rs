//! Hand-over points between threads that only make a system call when someone is waiting.
//!
//! The standard condition variable wakes through the kernel on every notify, waiter or not;
//! with one hand-over per file that alone costs a measurable share of a snapshot of many
//! small files. These types remember whether anyone sleeps and stay in user space otherwise.

use std::sync::{Condvar, Mutex};

struct SlotState<T> {
    value: Option<T>,
    waiting: bool,
}

/// A value filled in once by one thread and taken by another.
pub struct Slot<T> {
    state: Mutex<SlotState<T>>,
    ready: Condvar,
}

impl<T> std::fmt::Debug for Slot<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Slot")
    }
}

impl<T> Default for Slot<T> {
    fn default() -> Self {
        Slot {
            state: Mutex::new(SlotState {
                value: None,
                waiting: false,
            }),
            ready: Condvar::new(),
        }
    }
}

impl<T> Slot<T> {
    /// Fills the slot.
    pub fn set(&self, v: T) {
        let mut g = self.state.lock().unwrap_or_else(|p| p.into_inner());
        g.value = Some(v);
        if g.waiting {
            self.ready.notify_all();
        }
    }

    /// Waits until the slot is filled and takes the value.
    pub fn take(&self) -> T {
        let mut g = self.state.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(v) = g.value.take() {
                return v;
            }
            g.waiting = true;
            g = self.ready.wait(g).unwrap_or_else(|p| p.into_inner());
        }
    }
}

/// Counts work in flight and makes the producer wait at a limit.
#[derive(Debug)]
pub struct Gate {
    state: Mutex<(usize, bool)>,
    cv: Condvar,
    limit: usize,
}

impl Gate {
    /// A gate letting `limit` items through at once.
    pub fn new(limit: usize) -> Gate {
        Gate {
            state: Mutex::new((0, false)),
            cv: Condvar::new(),
            limit,
        }
    }

    /// Lets `n` items in, waiting while the limit is reached.
    pub fn enter(&self, n: usize) {
        let mut g = self.state.lock().unwrap_or_else(|p| p.into_inner());
        while g.0 >= self.limit {
            g.1 = true;
            g = self.cv.wait(g).unwrap_or_else(|p| p.into_inner());
        }
        g.1 = false;
        g.0 += n;
    }

    /// Lets `n` items out.
    pub fn leave(&self, n: usize) {
        let mut g = self.state.lock().unwrap_or_else(|p| p.into_inner());
        g.0 -= n.min(g.0);
        if g.1 && g.0 < self.limit {
            g.1 = false;
            self.cv.notify_all();
        }
    }
}
