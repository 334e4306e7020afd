//! The Ore frontend library: opening archives and the admin client.
//!
//! The binaries (`ore-admin`, and `ore` as it grows) are thin: they parse arguments and call
//! into this library, which returns errors instead of printing or exiting.

pub mod admin;
pub mod archive;
