//! Locks that survive a panic elsewhere.
//!
//! A thread that panics while holding a mutex poisons it, and `lock().unwrap()` would then
//! panic in every other thread too. Ore's shared state is kept consistent at each step (a
//! counter, a queue, a connection that is checked before use), so the data behind a poisoned
//! lock is still the best there is: one failed request must not take the whole program down.
//! These take the guard either way.

use std::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Locks `m`, whether or not a thread panicked while holding it.
pub fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Locks `l` for reading, whether or not a thread panicked while holding it.
pub fn read<T: ?Sized>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|p| p.into_inner())
}

/// Locks `l` for writing, whether or not a thread panicked while holding it.
pub fn write<T: ?Sized>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_lock_poisoned_by_a_panicking_thread_still_hands_out_its_data() {
        let m = Arc::new(Mutex::new(7));
        let l = Arc::new(RwLock::new(8));
        let (m2, l2) = (m.clone(), l.clone());
        let r = std::thread::spawn(move || {
            let _g = m2.lock().unwrap();
            let _w = l2.write().unwrap();
            panic!("poison both");
        })
        .join();
        assert!(r.is_err());
        assert!(m.is_poisoned() && l.is_poisoned());
        *lock(&m) += 1;
        assert_eq!(*lock(&m), 8);
        *write(&l) += 1;
        assert_eq!(*read(&l), 9);
    }
}
