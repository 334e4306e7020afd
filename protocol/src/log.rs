//! Log messages from backends to the user.
//!
//! A backend may tell the user something at any moment (a recovered log tail, a broken replica,
//! a slow disk). Backend code calls [`warning`], [`info`], ... without knowing where it runs:
//! inside a backend program, `serve` installs a sink that turns each message into a log frame
//! for the frontend; in the frontend (or for an in-process backend) the default sink prints to
//! stderr. A `Client` hands log frames it receives to the same global sink, so messages from a
//! backend nested behind proxies climb up every level until a person sees them.

use crate::message::Level;
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
    match SINK.write() {
        Ok(mut g) => std::mem::replace(&mut *g, sink),
        Err(poisoned) => std::mem::replace(&mut *poisoned.into_inner(), sink),
    }
}

/// Sends a message to the current sink.
pub fn log(level: Level, message: &str) {
    let sink = match SINK.read() {
        Ok(g) => g.clone(),
        Err(poisoned) => poisoned.into_inner().clone(),
    };
    match sink {
        Some(s) => s.log(level, message),
        None => StderrSink.log(level, message),
    }
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
