//! Small helpers that several Ore crates need, each with one home.
//!
//! Before this crate, the same few lines were written again wherever they were needed: the
//! poison-tolerant mutex lock in nine files, the private sqlite file in two proxies, the
//! `--append-only`/`--read-only` flags in every backend program, and every backend's admin
//! commands as a help table kept apart from a `match` on strings. A copy that drifts is a bug
//! waiting (a lock that panics on poison in one place and not another), so each lives here.
//!
//! This crate depends on no other Ore crate, so that `protocol`, the stores and the proxies
//! may all use it. That is why [`admin::Spec`] is generic over the command description and the
//! answer (protocol's `AdminCommand` and `Result<AdminOutput>`), and why [`sqlite`] has its own
//! error type. Hex encoding has no module here: it is the `hex` crate's job.
//!
//! Features: `sqlite` (the [`sqlite`] module, with rusqlite), `clap` (the [`flags`] module).

pub mod admin;
#[cfg(feature = "clap")]
pub mod flags;
#[cfg(feature = "sqlite")]
pub mod sqlite;
pub mod sync;

pub use sync::lock;
