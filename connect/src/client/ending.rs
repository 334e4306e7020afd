//! How a connection ends: the backend program's stdin closed, then its exit waited for — or,
//! when it closes its stdout and runs on, not (PROTOCOL.md §8).
//!
//! A holder of a splitlog archive that other runs attached to goes on serving them after its
//! own connection ends (see `share`); it closes its stdout so that the run that started it is
//! not kept waiting for theirs, which may be whole runs. Over ssh the frontend's child is
//! `ssh`, which stays while the remote holder lives but passes the end of its stdout on. Such
//! a program is left running and reaped in the background; one that neither exits nor closes
//! its stdout within the grace is hung, and killed.

use super::{lock, Shared};
use std::process::Child;
use std::time::{Duration, Instant};

/// How long a program whose streams have ended is given to exit before it is taken for one
/// that goes on without this connection.
const EXIT_AFTER_STREAMS: Duration = Duration::from_millis(200);

/// Closes the child's stdin and waits up to `grace` for it to exit; kills it after that. A
/// child that closes its stdout (`let_go` says when) and goes on running is not killed but
/// returned, to be reaped by the caller. A socket connection is closed for writing: its
/// server answers what it has and closes in turn.
pub(super) fn shutdown_child(
    shared: &Shared,
    grace: Duration,
    let_go: impl Fn() -> bool,
) -> Option<Child> {
    lock(&shared.writer).out = None;
    shared.nudge.wake();
    if let Some(s) = &shared.socket {
        let _ = s.shutdown(std::net::Shutdown::Write);
    }
    let mut guard = lock(&shared.child);
    let mut child = guard.take()?;
    let deadline = Instant::now() + grace;
    let mut streams_ended: Option<Instant> = None;
    loop {
        match child.try_wait() {
            Ok(Some(_)) | Err(_) => return None,
            Ok(None) => {}
        }
        let now = Instant::now();
        if streams_ended.is_none() && let_go() {
            streams_ended = Some(now);
        }
        if streams_ended.is_some_and(|t| now - t >= EXIT_AFTER_STREAMS) {
            return Some(child);
        }
        if now >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}
