//! Turning an archive identifier into a connected [`Backend`](protocol::Backend).
//!
//! An identifier is a plain path, opened in process as a splitlog archive, or a command line
//! that starts a backend program ([`open`]: the one rule every program of Ore follows, with
//! the policy for how many connections to open). A command is split and resolved
//! ([`spawn`]) and driven over its stdin and stdout by the child-process [`Client`]; over a
//! long link several connections are used as one ([`Lanes`]), opened in the background under a
//! switch that kills them if the run ends first ([`Abandon`]); over ssh they share one master
//! connection and may join the far process's attach point through a forwarding (`sshmux`).
//!
//! The wire format and the server side (serve, restrictions, a holder's attach socket) are the
//! `protocol` crate's; the stores are crates of their own. This crate sits above both: stores
//! do not depend on it, and the frontend and the proxies open every archive through it.

mod abandon;
pub mod client;
pub mod lanes;
mod linger;
pub mod open;
pub mod s3;
pub mod spawn;
mod sshmux;

pub use abandon::Abandon;
pub use client::{Client, ClientOptions};
pub use lanes::Lanes;
pub use open::{classify, open, open_existing, open_existing_single, open_single, Kind};
