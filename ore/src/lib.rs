//! The Ore frontend library: archives, snapshots, restores, keys — everything the `ore`
//! binary does, as functions that return errors instead of printing or exiting.
//!
//! The layers, bottom up: [`block`] seals plaintext into stored blocks (compression,
//! encryption, the key check); [`entry`] and [`tree`] define what blocks hold and how long lists
//! become trees of blocks; [`repo`] is an opened archive; [`snapshot`] and [`restore`] walk
//! trees on disk and in the archive. FORMAT.md beside this crate is the normative description
//! of everything stored.

pub mod admin;
pub mod archive;
pub mod block;
pub mod check;
pub mod compare;
pub mod crypto;
pub mod depth;
pub mod diff;
pub mod dump;
pub mod entry;
pub mod error;
pub mod filecache;
pub mod forget;
pub mod format;
pub mod formatcopy;
pub mod fsys;
pub mod gc;
pub mod keyset;
pub mod lease;
pub mod meta;
pub mod mount;
pub mod names;
pub mod prefetch;
pub mod progress;
pub mod reach;
pub mod reflog;
pub mod repo;
pub mod restore;
pub mod rules;
pub mod snapshot;
pub mod spec;
pub mod sync;
pub mod tree;
pub mod unverified;
pub mod util;
pub mod vtree;

pub use error::{Error, Result};
pub use repo::Repo;
