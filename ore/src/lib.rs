//! The Ore frontend library: archives, snapshots, restores, keys — everything the `ore`
//! binary does, as functions that return errors instead of printing or exiting.
//!
//! Two layers: [`core`] is what an archive is — blocks, keys, entries, trees, tags, leases and
//! the opened archive, [`Repo`] — behind a small API; [`commands`] holds one module per
//! command (snapshot, restore, check, gc, forget, sync, dump, diff, mount, …), each built on
//! that API alone. FORMAT.md beside this crate is the normative description of everything
//! stored.

pub mod commands;
pub mod core;

pub use crate::core::error::{Error, Result};
pub use crate::core::repo::Repo;
