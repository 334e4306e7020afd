//! The commands of `ore`, one module each, built on [`crate::core`] alone: each takes an opened
//! archive and options and returns what it did (a struct, an enum, an iterator) or an error;
//! none parses a command line, reads a terminal or prints (that is the binaries' job, in
//! `src/bin/ore/`), and none uses another command's module (the binary composes them: `get` in
//! `ore explore` is [`explore`] finding what to extract and [`restore`] writing it).
//!
//! Why a command gets a module: it changes the archive (a compare-and-swap on a tag, a reflog
//! entry, a new format record) or reads it in more than one step (a walk, a chain, a listing
//! checked against what is stored). A command that is one call of the core API and a print
//! (`ore restore-format`, `ore gc`'s options) stays in the binary.
//!
//! - making and reading back snapshots: [`snapshot`], [`restore`], [`dump`] (one stream);
//! - looking: [`ls`], [`cat`], [`log`], [`tags`], [`snapshots`], [`find`], [`diff`],
//!   [`stats`], [`explore`] and [`mount`] (which walk the archive as one tree of names,
//!   [`crate::core::vtree`]);
//! - keeping the archive sound: [`check`] (with `--compare` and `--unverified`), [`gc`],
//!   [`forget`], [`sync`];
//! - tags and their history: [`fork`], [`reset`], [`reflog`], [`tag_history`];
//! - keys and this machine: [`key`] (passphrase slots), [`cache`] (the file caches).

pub mod cache;
pub mod cat;
pub mod check;
pub mod diff;
pub mod dump;
pub mod explore;
pub mod find;
pub mod forget;
pub mod fork;
pub mod gc;
pub mod import;
pub mod key;
pub mod locate;
pub mod log;
pub mod ls;
pub mod mount;
pub mod reflog;
pub mod reset;
pub mod restore;
pub mod search;
pub mod snapshot;
pub mod snapshots;
pub mod stats;
pub mod sync;
pub mod tag_history;
pub mod tags;
