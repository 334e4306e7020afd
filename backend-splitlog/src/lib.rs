//! backend-splitlog: Ore's default store — append-only logs of self-describing records with a
//! sqlite index that can always be rebuilt from them.
//!
//! This crate is being built; so far it holds the record format ([`record`]) and the log scanner ([`scan`]), which the log
//! writer, the scanner used by recovery and `reindex`, and `verify` all share.

pub mod record;
pub mod scan;
