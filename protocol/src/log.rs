//! Log messages from backends to the user.
//!
//! A backend may tell the user something at any moment (a recovered log tail, a broken replica,
//! a slow disk). Backend code calls [`warning`], [`info`], ... without knowing where it runs:
//! inside a backend program, `serve` installs a sink that turns each message into a log frame
//! for the frontend; in the frontend (or for an in-process backend) the default sink prints to
//! stderr. A `Client` hands log frames it receives to the same global sink, so messages from a
//! backend nested behind proxies climb up every level until a person sees them.
//!
//! What a backend says is shown, not trusted: a message (a log line, an error) is cut to
//! [`MAX_MESSAGE`] bytes where it arrives, so a broken or hostile backend cannot fill the
//! screen or a log with one frame of many megabytes.

use crate::message::Level;
use ore_util::sync::{read, write};
use std::sync::{Arc, RwLock};

/// Where log messages go.
pub trait LogSink: Send + Sync {
    fn log(&self, level: Level, message: &str);
}

/// The default sink: one line per message on stderr, debug messages only with `ORE_DEBUG`.
pub struct StderrSink;

impl LogSink for StderrSink {
    fn log(&self, level: Level, message: &str) {
        if level == Level::Debug && std::env::var_os("ORE_DEBUG").is_none() {
            return;
        }
        eprintln!("{}: {message}", level.name());
    }
}

static SINK: RwLock<Option<Arc<dyn LogSink>>> = RwLock::new(None);

/// Replaces the process's log sink; returns the previous one.
pub fn set_sink(sink: Option<Arc<dyn LogSink>>) -> Option<Arc<dyn LogSink>> {
    std::mem::replace(&mut *write(&SINK), sink)
}

/// Sends a message to the current sink.
pub fn log(level: Level, message: &str) {
    let sink = read(&SINK).clone();
    match sink {
        Some(s) => s.log(level, message),
        None => StderrSink.log(level, message),
    }
}

/// The longest message from a backend that is passed on whole.
pub const MAX_MESSAGE: usize = 4096;

/// A message from a backend, cut to [`MAX_MESSAGE`] bytes with a note of how much was left out.
pub fn capped(mut message: String) -> String {
    if message.len() <= MAX_MESSAGE {
        return message;
    }
    let mut end = MAX_MESSAGE;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    let left_out = message.len() - end;
    message.truncate(end);
    message.push_str(&format!(" [cut: {left_out} more bytes left out]"));
    message
}

pub fn debug(message: &str) {
    log(Level::Debug, message)
}
pub fn info(message: &str) {
    log(Level::Info, message)
}
pub fn warning(message: &str) {
    log(Level::Warning, message)
}
pub fn error(message: &str) {
    log(Level::Error, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_message_from_a_backend_is_cut_saying_how_much_was_left_out() {
        assert_eq!(capped("short".into()), "short");
        let long = "é".repeat(MAX_MESSAGE);
        let cut = capped(long.clone());
        assert!(cut.len() < MAX_MESSAGE + 64, "{}", cut.len());
        assert!(cut.ends_with(&format!(
            "[cut: {} more bytes left out]",
            long.len() - MAX_MESSAGE
        )));
    }
}
