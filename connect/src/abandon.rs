//! `Abandon`: a switch for connections opened in the background, and whatever was set up for
//! them, undone together when the run stops wanting them.
//!
//! Extra lanes over ssh take a few round trips and a remote login to come up; a short command
//! may be done before then. Its first connection (the ssh master the lanes share) can only end
//! once the lanes' sessions have, so waiting for them to open just to close them would keep
//! the command alive for that long. Abandoning instead kills their processes — which have
//! answered no request — and makes every later connection attempt with the switch fail at once.
//!
//! Lanes may also need something outside the connections: a socket on disk that the ssh master
//! forwards to the far side's attach point. A process that ends while that is being set up must
//! not leave it behind, so it is made under the switch ([`Abandon::make`]) and abandoning
//! removes it too.

use ore_util::sync::lock;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

/// A connection that can be abandoned: its backend killed, every waiting request failed. The
/// client's connections are; the switch knows them only through this, so that it does not
/// depend on the client that uses it.
pub(crate) trait Abandonable: Send + Sync {
    /// Kills the backend of a connection that will not be used.
    fn abandoned(&self);
}

/// Connections opened in the background, killed together when they are no longer wanted (see
/// the module documentation).
#[derive(Clone, Default)]
pub struct Abandon(Arc<Mutex<State>>);

#[derive(Default)]
struct State {
    /// Set once abandoned; under the same lock as the rest, so nothing slips in between.
    abandoned: bool,
    /// Connections started with the switch and not released.
    live: Vec<Weak<dyn Abandonable>>,
    /// What abandoning undoes besides the connections (see [`Abandon::make`]).
    undo: Vec<Box<dyn FnOnce() + Send>>,
}

impl std::fmt::Debug for Abandon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.lock();
        f.debug_struct("Abandon")
            .field("abandoned", &s.abandoned)
            .field("live", &s.live.len())
            .field("undo", &s.undo.len())
            .finish()
    }
}

impl Abandon {
    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.0)
    }

    /// Kills every backend started with this switch and not released, undoes what was made
    /// with it, and refuses new ones.
    pub fn abandon(&self) {
        let mut s = self.lock();
        s.abandoned = true;
        for shared in s.live.drain(..).filter_map(|w| w.upgrade()) {
            shared.abandoned();
        }
        for undo in s.undo.drain(..) {
            undo();
        }
    }

    /// Forgets the connections started so far and what was made: they are in use (and what
    /// was made is the caller's to undo), and [`Abandon::abandon`] no longer touches them.
    pub fn release(&self) {
        let mut s = self.lock();
        s.live.clear();
        s.undo.clear();
    }

    /// Runs `make` unless already abandoned, and has a later [`Abandon::abandon`] call `undo`
    /// on what it made. `make` runs under the switch's lock, so an abandon that comes meanwhile
    /// waits for it rather than missing what it makes: keep it short. `None` when abandoned
    /// already, or when `make` made nothing.
    pub fn make<T: Clone + Send + 'static>(
        &self,
        make: impl FnOnce() -> Option<T>,
        undo: impl FnOnce(T) + Send + 'static,
    ) -> Option<T> {
        let mut s = self.lock();
        if s.abandoned {
            return None;
        }
        let made = make()?;
        let kept = made.clone();
        s.undo.push(Box::new(move || undo(kept)));
        Some(made)
    }

    /// Records a connection being opened; false when already abandoned (the caller kills it).
    pub(crate) fn register<C: Abandonable + 'static>(&self, conn: &Arc<C>) -> bool {
        let mut s = self.lock();
        if s.abandoned {
            return false;
        }
        s.live.retain(|w| w.strong_count() > 0);
        let conn: Arc<dyn Abandonable> = conn.clone();
        s.live.push(Arc::downgrade(&conn));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_made_is_undone_by_abandoning_and_not_after_release() {
        let undone = Arc::new(Mutex::new(Vec::new()));
        let undo = |u: &Arc<Mutex<Vec<u32>>>| {
            let u = u.clone();
            move |n| u.lock().unwrap().push(n)
        };
        let a = Abandon::default();
        assert_eq!(a.make(|| Some(1), undo(&undone)), Some(1));
        assert_eq!(a.make(|| None::<u32>, undo(&undone)), None);
        a.abandon();
        assert_eq!(*undone.lock().unwrap(), [1]);
        // Abandoned: nothing more is made.
        let mut ran = false;
        assert_eq!(
            a.make(
                || {
                    ran = true;
                    Some(2)
                },
                undo(&undone)
            ),
            None
        );
        assert!(!ran);
        // Released: what was made stays.
        let b = Abandon::default();
        assert_eq!(b.make(|| Some(3), undo(&undone)), Some(3));
        b.release();
        b.abandon();
        assert_eq!(*undone.lock().unwrap(), [1]);
    }

    #[test]
    fn an_abandon_during_make_waits_for_it_and_undoes_it() {
        let undone = Arc::new(Mutex::new(Vec::new()));
        let a = Abandon::default();
        let (started, go) = std::sync::mpsc::channel();
        let maker = {
            let (a, undone) = (a.clone(), undone.clone());
            std::thread::spawn(move || {
                a.make(
                    || {
                        started.send(()).unwrap();
                        std::thread::sleep(std::time::Duration::from_millis(200));
                        Some(7)
                    },
                    move |n| undone.lock().unwrap().push(n),
                )
            })
        };
        go.recv().unwrap();
        a.abandon();
        assert_eq!(*undone.lock().unwrap(), [7]);
        assert_eq!(maker.join().unwrap(), Some(7));
    }
}
