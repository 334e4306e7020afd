//! The commands of `ore`, one module each, built on [`crate::core`] alone: each takes an opened
//! archive and options and returns what it did or an error; none parses a command line, reads
//! a terminal or prints (that is the binaries' job, in `src/bin/ore/`).
//!
//! [`snapshot`] and [`restore`] walk trees on disk and in the archive; [`check`] (with its
//! `--compare` and `--unverified`), [`gc`], [`forget`] and [`sync`] work on the archive's
//! roots; [`dump`] writes and loads a snapshot as one stream; [`diff`] compares two snapshots;
//! [`mount`] and `ore explore` (whose prompt is the binary's) walk the archive as one tree of
//! names, [`crate::core::vtree`].

pub mod cache;
pub mod cat;
pub mod check;
pub mod diff;
pub mod dump;
pub mod explore;
pub mod forget;
pub mod fork;
pub mod gc;
pub mod key;
pub mod log;
pub mod ls;
pub mod mount;
pub mod reflog;
pub mod reset;
pub mod restore;
pub mod snapshot;
pub mod sync;
pub mod tag_history;
pub mod tags;
