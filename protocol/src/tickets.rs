//! Tickets: how a connection that brings no process of its own joins the archive's holder.
//!
//! Asked for its attach point, the holder names its socket and a ticket; a client that reaches
//! the socket (through an ssh forwarding, for lanes over ssh) shows the ticket instead of
//! declaring an access, and is served with the access of the connection the ticket was issued
//! to — so no one gains by attaching. The story of the socket, its relays and their secret is
//! in [`crate::share`]; this module holds the tickets themselves, so that [`crate::restrict`]
//! (which issues them to each connection it serves) and `share` (which admits them) both name
//! them without depending on each other. (Not to be confused with [`crate::Ticket`], an answer
//! still to come.)

use crate::access::Access;
use crate::backend::AttachPoint;
use crate::error::{Error, ErrorCode, Result};
use ore_util::sync::lock;
use std::path::Path;
use std::sync::Mutex;

/// The first byte of an attachment that shows a ticket (the ticket's bytes follow) instead
/// of declaring an access.
pub(crate) const SHOWS_TICKET: u8 = 3;
/// Length of a ticket, and of the relay secret.
pub const TICKET_LEN: usize = 32;

/// 32 bytes from the operating system's random source.
pub(crate) fn random_bytes(what: &str) -> Result<[u8; TICKET_LEN]> {
    let mut t = [0u8; TICKET_LEN];
    getrandom::getrandom(&mut t)
        .map_err(|e| Error::backend(ErrorCode::Internal, format!("no random {what}: {e}")))?;
    Ok(t)
}

/// Whether two secrets are equal, compared in constant time.
pub(crate) fn same_secret(a: &[u8; TICKET_LEN], b: &[u8; TICKET_LEN]) -> bool {
    a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

/// The tickets a holder hands out with its attach point: one per access level, made at first
/// request from the operating system's random source and valid while the holder lives. A
/// ticket admits a connection with the access of the connection it was issued to, so a
/// connection can never gain by attaching — however it reaches the socket (an ssh forwarding
/// of it, say), it must have been served first with at least that access.
pub struct Tickets {
    socket: String,
    issued: Mutex<Vec<([u8; TICKET_LEN], Access)>>,
}

impl Tickets {
    /// Tickets for attachments through `socket` (`None` when its path is not UTF-8: no
    /// attach point can then be named in the protocol).
    pub fn new(socket: &Path) -> Option<Tickets> {
        Some(Tickets {
            socket: socket.to_str()?.to_string(),
            issued: Mutex::new(Vec::new()),
        })
    }

    /// The attach point, with the ticket for `access`.
    pub fn issue(&self, access: Access) -> Result<AttachPoint> {
        let mut issued = lock(&self.issued);
        let ticket = match issued.iter().find(|(_, a)| *a == access) {
            Some((t, _)) => *t,
            None => {
                let t = random_bytes("ticket")?;
                issued.push((t, access));
                t
            }
        };
        Ok(AttachPoint {
            socket: self.socket.clone(),
            ticket: ticket.to_vec(),
        })
    }

    /// The access `ticket` was issued for, if it was (compared in constant time).
    pub(crate) fn admit(&self, ticket: &[u8; TICKET_LEN]) -> Option<Access> {
        let issued = lock(&self.issued);
        let mut found = None;
        for (t, a) in issued.iter() {
            if same_secret(t, ticket) {
                found = Some(*a);
            }
        }
        found
    }
}

/// What a process that joins through an attach point sends first: the ticket it was given.
pub fn ticket_preamble(ticket: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(1 + ticket.len());
    v.push(SHOWS_TICKET);
    v.extend_from_slice(ticket);
    v
}
