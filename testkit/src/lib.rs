//! Ore's test kit: what tests of every backend and of everything built on one share.
//!
//! - [`MemoryBackend`]: an in-memory backend, the reference implementation of the `Backend`
//!   trait's rules; its program, `backend-memory`, serves one over stdin/stdout so that the
//!   client, the server loop and fault injection can be tested through a real child process
//!   without any storage.
//! - [`conformance`]: the suite that holds any backend to the rules of `PROTOCOL.md`, run by
//!   each backend crate in process and through its binary.
//!
//! It is a dev-dependency only (the `tests` crate apart, which is not shipped): no production
//! program links it, so the suite's `expect`s and the memory store stay out of them.

pub mod conformance;
pub mod memory;

pub use memory::MemoryBackend;
