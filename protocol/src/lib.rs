//! Ore's backend protocol.
//!
//! A backend is a separate program that stores blocks and tags; the frontend talks to it over
//! the program's stdin and stdout. This crate holds everything both sides share and the server
//! side: the frame codec ([`frame`]), the messages ([`message`]), the [`Backend`] trait that
//! every store and proxy implements, the one server loop [`serve`], access restrictions
//! ([`restrict`]), a process holding an archive for others that attach to it ([`share`],
//! [`tickets`]), an archive not created yet ([`vacant`]), fault injection for crash tests
//! ([`fault`]), and what every backend's admin table shares ([`admin`]). The client side —
//! turning an archive identifier into a connected backend — is the `ore-connect` crate; the
//! in-memory backend and the conformance suite are the `ore-testkit` crate.

mod access;
pub mod admin;
mod answers;
pub mod backend;
pub mod duration;
pub mod error;
pub mod fault;
pub mod frame;
pub mod history;
pub mod key;
pub mod log;
pub mod message;
pub mod provenance;
pub mod restrict;
pub mod serve;
pub mod share;
pub mod tagrules;
pub mod tickets;
pub mod vacant;

pub use access::Access;
pub use backend::{
    AdminCommand, AdminOutput, AttachPoint, Backend, BackendInfo, CasOutcome, Stats, Ticket,
};
pub use error::{Error, ErrorCode, Result};
pub use key::{Key, KEY_LEN};
pub use message::Level;
pub use restrict::Restricted;
pub use serve::{serve, serve_stdio};
pub use vacant::Vacant;
