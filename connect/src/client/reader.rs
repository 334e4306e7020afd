//! The reader thread, which turns what the backend sends into completed requests, and the
//! watchdog, which gives up on a backend that leaves requests unanswered too long.
//!
//! Answers come in request order, so the reader pairs each with the oldest waiting completion.
//! Log frames go to the log sink and are not progress: only an answer resets the watchdog's
//! clock, so a backend that talks for ever without answering is still given up. A backend that
//! breaks the protocol (a frame over the limit, an answer nobody asked for, a body that does
//! not decode) is killed at once rather than waited for.

use super::{lock, Input, Shared};
use protocol::frame::{read_frame, MAX_FRAME_BODY};
use protocol::log;
use protocol::message::Response;
use std::io::BufReader;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Kills a backend that leaves requests waiting for `limit` without sending anything (a hung
/// process, a network that went silent); the reader then fails every waiting request.
pub(super) fn watchdog(shared: std::sync::Weak<Shared>, limit: Duration) {
    let tick = (limit / 4).clamp(Duration::from_millis(10), Duration::from_secs(1));
    loop {
        std::thread::sleep(tick);
        let Some(shared) = shared.upgrade() else {
            return;
        };
        if lock(&shared.dead).is_some() {
            return;
        }
        let waiting = !lock(&shared.pending).queue.is_empty();
        if waiting && lock(&shared.heard).elapsed() >= limit {
            shared.mark_dead(format!(
                "the backend sent nothing for {} s while requests waited: it was stopped \
                 (the limit is set with --timeout or ORE_TIMEOUT)",
                limit.as_secs_f64()
            ));
            shared.cut();
            return;
        }
    }
}

/// The reader thread: answers to completions, log frames to the log sink.
pub(super) fn read_answers(shared: &Arc<Shared>, mut input: Input) {
    let why = loop {
        let frame = match read_frame(&mut input, MAX_FRAME_BODY) {
            Ok(Some(f)) => f,
            Ok(None) => break None,
            Err(e) => break Some(e.to_string()),
        };
        let resp = match Response::decode(frame) {
            Ok(r) => r,
            Err(e) => break Some(e.to_string()),
        };
        if let Response::Log { level, message } = resp {
            // A log frame is not progress: a backend that only talks would otherwise keep
            // requests waiting past the timeout for ever.
            log::log(level, &log::capped(message));
            continue;
        }
        *lock(&shared.heard) = Instant::now();
        let Some(done) = shared.pop_completion() else {
            break Some(format!(
                "protocol error: an answer of kind {:#04x} arrived with no request waiting",
                resp.kind()
            ));
        };
        done(Ok(resp));
        // Do not hold on to a buffer of many megabytes after a large answer.
        if input.buffer().is_empty() && input.capacity() > 1 << 20 {
            input = BufReader::with_capacity(256 * 1024, input.into_inner());
        }
    };
    let unanswered = lock(&shared.pending).queue.len();
    // A clean end with nothing owed needs no exit status (and the program may well go on: a
    // holder serving others, see `share`): not waited for.
    let mut how = if why.is_none() && unanswered == 0 {
        None
    } else {
        shared.child_exit()
    };
    if why.is_some() && how.is_none() {
        // A backend that broke the protocol (a frame over the limit, an answer out of turn)
        // is not waited for: nothing it sends now can be trusted.
        shared.cut();
        how = Some("was stopped".to_string());
    }
    let message = match (why, how) {
        (Some(w), Some(h)) => format!("{w} (the backend {h})"),
        (Some(w), None) => w,
        (None, Some(h)) if unanswered > 0 => {
            format!("the backend {h} with {unanswered} request(s) unanswered")
        }
        (None, Some(h)) => format!("the backend {h}"),
        (None, None) => "the backend closed the connection".to_string(),
    };
    shared.mark_dead(message);
    // Fail every queued request; new ones fail at submit because the connection is dead.
    loop {
        let next = shared.pop_completion();
        match next {
            Some(done) => done(Err(shared
                .dead_error()
                .unwrap_or_else(|| shared.conn_error("the connection ended")))),
            None => break,
        }
    }
}
