//! Sending buffered requests soon, whoever waits.
//!
//! A client buffers requests so that a thread issuing thousands of them pays for a few writes.
//! Sending the buffer only when someone waits for an answer is right for one thread that
//! issues and then waits, and wrong for a pipeline: a snapshot's walk issues
//! questions that resolver threads wait for later, in order, over several lanes. A question
//! issued while a resolver waits on another lane would stay in its buffer until a resolver
//! reached it — a round trip after the answers before it — and over a long link the pipeline
//! would advance by a fraction of its window per round trip. So each connection also has a sender thread: a
//! request written into an empty buffer wakes it, and it sends whatever has gathered after
//! [`LINGER`]. Batches stay large (a millisecond of requests), and no request waits longer.

use ore_util::sync::{lock, wait_timeout_while};
use std::sync::{Condvar, Mutex, Weak};
use std::time::Duration;

/// How long a request may wait in the buffer for others to join it.
pub const LINGER: Duration = Duration::from_millis(1);

/// The signal from writers to the sender: something is waiting in the buffer.
#[derive(Default)]
pub(crate) struct Nudge {
    unsent: Mutex<bool>,
    cv: Condvar,
}

impl Nudge {
    /// Says that a request is waiting in the buffer.
    pub fn unsent(&self) {
        let mut u = lock(&self.unsent);
        if !*u {
            *u = true;
            self.cv.notify_one();
        }
    }

    /// Wakes the sender without anything to send (so it notices the connection has ended).
    pub fn wake(&self) {
        self.cv.notify_one();
    }

    /// Waits up to `limit` for a request to be waiting; true if one is (and clears the flag).
    fn wait(&self, limit: Duration) -> bool {
        let u = lock(&self.unsent);
        let (mut u, _) = wait_timeout_while(&self.cv, u, limit, |u| !*u);
        std::mem::replace(&mut *u, false)
    }
}

/// The sender thread's body: for as long as the connection `conn` lives and `send` says it is
/// open, sends what gathered in its buffer [`LINGER`] after a request was written into it.
pub(crate) fn run<S>(conn: Weak<S>, nudge: impl Fn(&S) -> &Nudge, send: impl Fn(&S) -> bool) {
    loop {
        // Hold the connection only while there is something to do: a dropped client ends
        // this thread within a tick.
        let Some(c) = conn.upgrade() else { return };
        let due = nudge(&c).wait(Duration::from_millis(100));
        if due {
            std::thread::sleep(LINGER);
        }
        if !send(&c) {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Instant;

    struct Conn {
        nudge: Nudge,
        sent: AtomicUsize,
        open: std::sync::atomic::AtomicBool,
    }

    #[test]
    fn a_nudged_request_is_sent_within_a_few_lingers_and_the_thread_ends_with_the_connection() {
        let c = Arc::new(Conn {
            nudge: Nudge::default(),
            sent: AtomicUsize::new(0),
            open: std::sync::atomic::AtomicBool::new(true),
        });
        let weak = Arc::downgrade(&c);
        let t = std::thread::spawn(move || {
            run(
                weak,
                |c: &Conn| &c.nudge,
                |c: &Conn| {
                    c.sent.fetch_add(1, Ordering::SeqCst);
                    c.open.load(Ordering::SeqCst)
                },
            )
        });
        std::thread::sleep(Duration::from_millis(20));
        let before = c.sent.load(Ordering::SeqCst);
        let started = Instant::now();
        c.nudge.unsent();
        while c.sent.load(Ordering::SeqCst) == before {
            assert!(
                started.elapsed() < Duration::from_millis(50),
                "not sent within 50 ms of the nudge"
            );
            std::thread::sleep(Duration::from_micros(200));
        }
        assert!(started.elapsed() >= LINGER, "sent before lingering");
        c.open.store(false, Ordering::SeqCst);
        c.nudge.wake();
        let started = Instant::now();
        t.join().unwrap();
        assert!(started.elapsed() < Duration::from_millis(500));
    }
}
