//! Ore's backend protocol.
//!
//! A backend is a separate program that stores blocks and tags; the frontend talks to it over
//! the program's stdin and stdout. This crate holds everything both sides share: the frame codec
//! ([`frame`]), the messages ([`message`]), the [`Backend`] trait that every store, proxy and
//! the child-process [`Client`] implement, the one server loop [`serve`], fault injection for
//! crash tests ([`fault`]), an in-memory backend ([`MemoryBackend`]) and the [`conformance`]
//! suite that checks any backend against the rules of `PROTOCOL.md`.

mod abandon;
mod answers;
pub mod backend;
pub mod client;
pub mod conformance;
pub mod duration;
pub mod error;
pub mod fault;
pub mod frame;
pub mod history;
pub mod key;
pub mod lanes;
pub mod linger;
pub mod log;
pub mod memory;
pub mod message;
pub mod provenance;
pub mod restrict;
pub mod serve;
pub mod share;
pub mod spawn;
pub mod tagrules;

pub use abandon::Abandon;
pub use backend::{
    AdminCommand, AdminOutput, AttachPoint, Backend, BackendInfo, CasOutcome, Stats, Ticket,
};
pub use client::{Client, ClientOptions};
pub use error::{Error, ErrorCode, Result};
pub use key::{Key, KEY_LEN};
pub use lanes::Lanes;
pub use memory::MemoryBackend;
pub use message::Level;
pub use restrict::{Access, Restricted};
pub use serve::{serve, serve_stdio};
