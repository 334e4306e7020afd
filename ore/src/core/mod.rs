//! The core of Ore: what an archive is and how it is read and written — blocks and their
//! envelope, keys, entries and trees, tags and their reflog, leases, and the opened archive
//! ([`repo::Repo`]) that ties them together.
//!
//! The layers, bottom up: [`block`] seals plaintext into stored blocks (compression,
//! encryption, the key check) under the keys of [`crypto`]; [`entry`] and [`tree`] define what
//! blocks hold and how long lists become trees of blocks; [`repo`] is an opened archive, and
//! [`reflog`] and [`lease`] keep its tags' history and keep gc and writers apart. [`reach`]
//! walks everything the roots reach, and [`chains`] lists every snapshot the tags reach;
//! [`vtree`] shows the archive as one tree of names. FORMAT.md beside this crate is the
//! normative description of everything stored.
//!
//! The commands ([`crate::commands`]) are built on this API alone; nothing here knows of a
//! command line, a terminal or a prompt.

pub mod archival;
pub mod archive;
pub mod block;
pub mod browse;
pub mod chains;
pub mod cpustat;
pub mod crypto;
pub mod depth;
pub mod entry;
pub mod error;
pub mod extract;
pub mod filecache;
pub mod filelist;
pub mod format;
pub mod formatcopy;
pub mod fsys;
pub mod implied;
pub mod index;
pub mod keyset;
pub mod labels;
pub mod lease;
pub mod link;
pub mod meta;
pub mod names;
pub mod objects;
pub mod plaincache;
pub mod prefetch;
pub mod progress;
pub mod query;
pub mod reach;
pub mod reflog;
pub mod repo;
pub mod searchcache;
pub mod spec;
pub mod tree;
pub mod unlock;
pub mod util;
pub mod volume;
pub mod vtree;
