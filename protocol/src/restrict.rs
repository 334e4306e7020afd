//! Restricted access: a backend served append-only or read-only.
//!
//! A machine that makes backups should be able to add to an archive but never destroy it —
//! even when the machine is compromised. Served through an ssh forced command with
//! `--append-only`, a backend accepts puts and tag moves but refuses removals, tag removals,
//! every admin command that changes anything (expiring tag history among them), and tag values
//! that would stop the owner's routine commands ([`crate::tagrules`]); and since each backend
//! keeps the history of every tag, and gc keeps what that history names, a tag moved
//! elsewhere can be set back to any earlier value by someone with full access. Every block an
//! append-only connection newly stores is recorded as such until the owner vouches for it
//! ([`crate::provenance`]), so that garbage planted under a predicted key is found by reading
//! only those blocks. `--read-only` refuses every change. The rules live here once, as a wrapper around
//! any backend, so every backend program offers the same flags with the same meaning.

pub use crate::access::Access;
use crate::backend::{AdminOutput, AttachPoint, Backend, BackendInfo, CasOutcome, Stats, Ticket};
use crate::error::{Error, ErrorCode, Result};
use crate::key::Key;
use crate::tickets::Tickets;
use std::sync::Arc;

/// Admin commands that only read, allowed under any restriction.
pub const READING_ADMIN: &[&str] = &[
    "help",
    "info",
    "stats",
    "verify",
    "tag-history",
    "members",
    "unvouched",
];

/// A backend behind an access restriction: one connection's view of it.
pub struct Restricted<B> {
    inner: B,
    access: Access,
    /// Where this connection's process lets others attach, if it does (see `share`).
    tickets: Option<Arc<Tickets>>,
}

impl<B: Backend> Restricted<B> {
    pub fn new(inner: B, access: Access) -> Restricted<B> {
        Restricted {
            inner,
            access,
            tickets: None,
        }
    }

    /// Answers attach-point requests with tickets from `tickets` (when given), each carrying
    /// this connection's access.
    pub fn with_tickets(mut self, tickets: Option<Arc<Tickets>>) -> Restricted<B> {
        self.tickets = tickets;
        self
    }

    fn refuse(&self, what: &str) -> Error {
        Error::backend(
            ErrorCode::ReadOnly,
            format!(
                "{} is served {}: {what} refused",
                self.inner.info().server,
                self.access.name()
            ),
        )
    }

    fn may_write(&self) -> Result<()> {
        if self.access == Access::ReadOnly {
            return Err(self.refuse("writing"));
        }
        Ok(())
    }

    fn may_destroy(&self, what: &str) -> Result<()> {
        if self.access != Access::Full {
            return Err(self.refuse(what));
        }
        Ok(())
    }
}

impl<B: Backend> Backend for Restricted<B> {
    fn info(&self) -> BackendInfo {
        let mut i = self.inner.info();
        if self.access != Access::Full {
            i.can_remove = false;
            i.admin_commands
                .retain(|c| READING_ADMIN.contains(&c.as_str()));
            i.description = format!("{} ({})", i.description, self.access.name());
        }
        if self.access == Access::ReadOnly {
            i.writable = false;
        }
        i
    }
    fn pipelines(&self) -> bool {
        self.inner.pipelines()
    }
    fn exists_waits(&self) -> bool {
        self.inner.exists_waits()
    }
    fn put(&self, key: Key, data: &[u8]) -> Result<()> {
        self.may_write()?;
        match self.access {
            Access::Full => self.inner.put(key, data),
            _ => self.inner.put_restricted(key, data),
        }
    }
    fn start_put(&self, key: Key, data: Vec<u8>) -> Ticket<()> {
        match (self.may_write(), self.access) {
            (Err(e), _) => Ticket::ready(Err(e)),
            (Ok(()), Access::Full) => self.inner.start_put(key, data),
            (Ok(()), _) => self.inner.start_put_restricted(key, data),
        }
    }
    fn put_restricted(&self, key: Key, data: &[u8]) -> Result<()> {
        self.may_write()?;
        self.inner.put_restricted(key, data)
    }
    fn start_put_restricted(&self, key: Key, data: Vec<u8>) -> Ticket<()> {
        match self.may_write() {
            Ok(()) => self.inner.start_put_restricted(key, data),
            Err(e) => Ticket::ready(Err(e)),
        }
    }
    fn get(&self, key: Key) -> Result<Option<Vec<u8>>> {
        self.inner.get(key)
    }
    fn start_get(&self, key: Key) -> Ticket<Option<Vec<u8>>> {
        self.inner.start_get(key)
    }
    fn exists(&self, keys: &[Key]) -> Result<Vec<bool>> {
        self.inner.exists(keys)
    }
    fn start_exists(&self, keys: Vec<Key>) -> Ticket<Vec<bool>> {
        self.inner.start_exists(keys)
    }
    fn remove(&self, keys: &[Key]) -> Result<()> {
        self.may_destroy("removing blocks")?;
        self.inner.remove(keys)
    }
    fn list(&self, after: Option<Key>, limit: u32) -> Result<(Vec<Key>, bool)> {
        self.inner.list(after, limit)
    }
    fn get_tag(&self, name: &str) -> Result<Option<Vec<u8>>> {
        self.inner.get_tag(name)
    }
    fn set_tag(&self, name: &str, expected: Option<&[u8]>, value: &[u8]) -> Result<CasOutcome> {
        self.may_write()?;
        if self.access == Access::AppendOnly {
            crate::tagrules::append_only_may_set(name, expected, value)?;
        }
        self.inner.set_tag(name, expected, value)
    }
    fn remove_tag(&self, name: &str, expected: Option<&[u8]>) -> Result<CasOutcome> {
        self.may_destroy("removing a tag")?;
        self.inner.remove_tag(name, expected)
    }
    fn list_tags(&self) -> Result<Vec<(String, Vec<u8>)>> {
        self.inner.list_tags()
    }
    fn flush(&self) -> Result<()> {
        self.inner.flush()
    }
    fn stats(&self) -> Result<Stats> {
        self.inner.stats()
    }
    fn attach_point(&self) -> Result<AttachPoint> {
        match &self.tickets {
            Some(t) => t.issue(self.access),
            None => self.inner.attach_point(),
        }
    }
    fn admin(&self, command: &str, args: &[String]) -> Result<AdminOutput> {
        if self.access != Access::Full && !READING_ADMIN.contains(&command) {
            return Err(Error::backend(
                ErrorCode::Admin,
                format!(
                    "`{command}` is not allowed: {} is served {} (allowed: {})",
                    self.inner.info().server,
                    self.access.name(),
                    READING_ADMIN.join(", ")
                ),
            ));
        }
        self.inner.admin(command, args)
    }
}
