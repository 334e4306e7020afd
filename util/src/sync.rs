//! Locks that survive a panic elsewhere.
//!
//! A thread that panics while holding a mutex poisons it, and `lock().unwrap()` would then
//! panic in every other thread too. Ore's shared state is kept consistent at each step (a
//! counter, a queue, a connection that is checked before use), so the data behind a poisoned
//! lock is still the best there is: one failed request must not take the whole program down.
//! These take the guard either way.

use std::sync::{
    Condvar, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard, WaitTimeoutResult,
};
use std::time::Duration;

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

/// Waits on `cv` with `guard`'s lock, whether or not a thread panicked while holding it.
pub fn wait<'a, T>(cv: &Condvar, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
    cv.wait(guard).unwrap_or_else(|p| p.into_inner())
}

/// Waits on `cv` with `guard`'s lock while `condition` holds, at most `timeout`, whether or
/// not a thread panicked while holding it: the guard, and whether the time ran out.
pub fn wait_timeout_while<'a, T>(
    cv: &Condvar,
    guard: MutexGuard<'a, T>,
    timeout: Duration,
    condition: impl FnMut(&mut T) -> bool,
) -> (MutexGuard<'a, T>, WaitTimeoutResult) {
    cv.wait_timeout_while(guard, timeout, condition)
        .unwrap_or_else(|p| p.into_inner())
}

/// The data of `m`, which is consumed, whether or not a thread panicked while holding it (what
/// parallel workers gathered, once they are done).
pub fn into_inner<T>(m: Mutex<T>) -> T {
    m.into_inner().unwrap_or_else(|p| p.into_inner())
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
        let m = Arc::try_unwrap(m).unwrap();
        assert_eq!(into_inner(m), 8);
    }

    /// A flag and its condition variable, the flag's lock poisoned by a thread that panicked.
    fn poisoned_pair() -> Arc<(Mutex<bool>, Condvar)> {
        let pair = Arc::new((Mutex::new(false), Condvar::new()));
        let p2 = pair.clone();
        let _ = std::thread::spawn(move || {
            let _g = p2.0.lock().unwrap();
            panic!("poison");
        })
        .join();
        assert!(pair.0.is_poisoned());
        pair
    }

    #[test]
    fn a_wait_on_a_poisoned_lock_wakes_with_its_data() {
        let pair = poisoned_pair();
        let p3 = pair.clone();
        let setter = std::thread::spawn(move || {
            *lock(&p3.0) = true;
            p3.1.notify_all();
        });
        let mut ready = lock(&pair.0);
        while !*ready {
            ready = wait(&pair.1, ready);
        }
        drop(ready);
        setter.join().unwrap();
    }

    #[test]
    fn a_timed_wait_on_a_poisoned_lock_wakes_with_its_data_or_times_out() {
        let pair = poisoned_pair();
        let g = lock(&pair.0);
        let (g, waited) =
            wait_timeout_while(&pair.1, g, Duration::from_millis(10), |ready| !*ready);
        assert!(waited.timed_out() && !*g);
        drop(g);
        let p3 = pair.clone();
        let setter = std::thread::spawn(move || {
            *lock(&p3.0) = true;
            p3.1.notify_all();
        });
        let g = lock(&pair.0);
        let (g, waited) = wait_timeout_while(&pair.1, g, Duration::from_secs(60), |ready| !*ready);
        assert!(!waited.timed_out() && *g);
        drop(g);
        setter.join().unwrap();
    }
}
