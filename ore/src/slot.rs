//! A value filled in once by one thread and taken by another.

use std::sync::{Condvar, Mutex};

/// A one-shot hand-over point.
#[derive(Debug)]
pub struct Slot<T> {
    value: Mutex<Option<T>>,
    ready: Condvar,
}

impl<T> Default for Slot<T> {
    fn default() -> Self {
        Slot {
            value: Mutex::new(None),
            ready: Condvar::new(),
        }
    }
}

impl<T> Slot<T> {
    /// Fills the slot.
    pub fn set(&self, v: T) {
        let mut g = self.value.lock().unwrap_or_else(|p| p.into_inner());
        *g = Some(v);
        self.ready.notify_all();
    }

    /// Waits until the slot is filled and takes the value.
    pub fn take(&self) -> T {
        let mut g = self.value.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(v) = g.take() {
                return v;
            }
            g = self.ready.wait(g).unwrap_or_else(|p| p.into_inner());
        }
    }
}
