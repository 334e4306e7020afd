//! An archive that does not exist yet: opened on a missing or empty directory, it creates
//! nothing until something is written.
//!
//! Only `ore init` writes to an archive that is not there: every other command reads the
//! archive's format tag first and stops at "not initialised". A store that created its files
//! when it was opened would leave them behind after any mistaken identifier — a typo given to
//! `ore-admin ... help`, `ore tags` on an empty directory — and the next snapshot of that
//! directory would carry them. So a store opened where there is no archive answers as an empty
//! one (no blocks, no tags) and makes its files on the first write, which is init's.
//! A removal of what is not there, or a compare-and-swap that expects a value, changes nothing
//! and creates nothing. Its admin commands are refused, naming the place: there is nothing
//! yet to administer, and the refusal is how a typo shows.
//!
//! The wrapper holds no lock: two processes could both find the place vacant, and then the
//! store's own opening decides between them when both write (one of them is refused as it
//! creates, as it would be refused opening an existing archive).

use crate::backend::{AdminOutput, AttachPoint, Backend, BackendInfo, CasOutcome, Stats, Ticket};
use crate::error::{Error, ErrorCode, Result};
use crate::key::Key;
use std::sync::{Mutex, OnceLock};

/// Makes the store, on the first write.
type Create<B> = Box<dyn FnOnce() -> Result<B> + Send>;

/// A store not created yet: an empty archive until the first write makes it (see the module
/// documentation).
pub struct Vacant<B> {
    /// What the welcome says until the store exists (as the store would say it).
    info: BackendInfo,
    /// Where the archive would be, for messages ("no archive at DIR").
    place: String,
    create: Mutex<Option<Create<B>>>,
    made: OnceLock<B>,
}

impl<B: Backend> Vacant<B> {
    /// A vacant store at `place` that describes itself as `info` and is made by `create`.
    pub fn new(
        info: BackendInfo,
        place: impl Into<String>,
        create: impl FnOnce() -> Result<B> + Send + 'static,
    ) -> Vacant<B> {
        Vacant {
            info,
            place: place.into(),
            create: Mutex::new(Some(Box::new(create))),
            made: OnceLock::new(),
        }
    }

    /// A vacant store in directory `dir`, made by `create`: it describes itself as program
    /// `server` (name and version) keeping a `kind` archive there, writable, with removals,
    /// listings and `admin` commands, blocks up to `max_block_size`.
    pub fn in_dir(
        server: String,
        kind: &str,
        dir: &std::path::Path,
        (max_block_size, admin_commands): (u32, Vec<String>),
        create: impl FnOnce() -> Result<B> + Send + 'static,
    ) -> Vacant<B> {
        let info = BackendInfo {
            server,
            description: format!("{kind} archive at {} (not created yet)", dir.display()),
            max_block_size,
            writable: true,
            can_remove: true,
            can_list: true,
            admin_commands,
        };
        Vacant::new(info, dir.display().to_string(), create)
    }

    /// The store, if a write has made it.
    pub fn made(&self) -> Option<&B> {
        self.made.get()
    }

    /// The store, made now if it is not yet.
    fn make(&self) -> Result<&B> {
        if let Some(b) = self.made.get() {
            return Ok(b);
        }
        let mut create = self.create.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(b) = self.made.get() {
            return Ok(b);
        }
        let f = create.take().ok_or_else(|| {
            Error::backend(
                ErrorCode::Internal,
                format!("creating the archive at {} failed before", self.place),
            )
        })?;
        let b = f()?;
        Ok(self.made.get_or_init(|| b))
    }
}

impl<B: Backend> Backend for Vacant<B> {
    fn info(&self) -> BackendInfo {
        match self.made() {
            Some(b) => b.info(),
            None => self.info.clone(),
        }
    }

    fn put(&self, key: Key, data: &[u8]) -> Result<()> {
        self.make()?.put(key, data)
    }

    fn put_restricted(&self, key: Key, data: &[u8]) -> Result<()> {
        self.make()?.put_restricted(key, data)
    }

    fn get(&self, key: Key) -> Result<Option<Vec<u8>>> {
        match self.made() {
            Some(b) => b.get(key),
            None => Ok(None),
        }
    }

    fn exists(&self, keys: &[Key]) -> Result<Vec<bool>> {
        match self.made() {
            Some(b) => b.exists(keys),
            None => Ok(vec![false; keys.len()]),
        }
    }

    fn remove(&self, keys: &[Key]) -> Result<()> {
        match self.made() {
            Some(b) => b.remove(keys),
            None => Ok(()),
        }
    }

    fn list(&self, after: Option<Key>, limit: u32) -> Result<(Vec<Key>, bool)> {
        match self.made() {
            Some(b) => b.list(after, limit),
            None => Ok((Vec::new(), false)),
        }
    }

    fn get_tag(&self, name: &str) -> Result<Option<Vec<u8>>> {
        match self.made() {
            Some(b) => b.get_tag(name),
            None => Ok(None),
        }
    }

    fn set_tag(&self, name: &str, expected: Option<&[u8]>, value: &[u8]) -> Result<CasOutcome> {
        match (self.made(), expected) {
            // Expecting a value where there is none: nothing to change, nothing to create.
            (None, Some(_)) => Ok(CasOutcome::Conflict { current: None }),
            _ => self.make()?.set_tag(name, expected, value),
        }
    }

    fn remove_tag(&self, name: &str, expected: Option<&[u8]>) -> Result<CasOutcome> {
        match (self.made(), expected) {
            (Some(b), _) => b.remove_tag(name, expected),
            (None, Some(_)) => Ok(CasOutcome::Conflict { current: None }),
            (None, None) => Ok(CasOutcome::Done),
        }
    }

    fn list_tags(&self) -> Result<Vec<(String, Vec<u8>)>> {
        match self.made() {
            Some(b) => b.list_tags(),
            None => Ok(Vec::new()),
        }
    }

    fn flush(&self) -> Result<()> {
        match self.made() {
            Some(b) => b.flush(),
            None => Ok(()),
        }
    }

    fn stats(&self) -> Result<Stats> {
        match self.made() {
            Some(b) => b.stats(),
            None => Ok(Stats {
                blocks: Some(0),
                bytes: Some(0),
                tags: Some(0),
            }),
        }
    }

    fn admin(&self, command: &str, args: &[String]) -> Result<AdminOutput> {
        match self.made() {
            Some(b) => b.admin(command, args),
            None => Err(Error::backend(
                ErrorCode::Admin,
                format!(
                    "no archive at {}: nothing there to run `{command}` on (`ore init` creates \
                     an archive; check the path for a typo)",
                    self.place
                ),
            )),
        }
    }

    fn pipelines(&self) -> bool {
        self.made().is_some_and(|b| b.pipelines())
    }

    fn exists_waits(&self) -> bool {
        self.made().is_some_and(|b| b.exists_waits())
    }

    fn start_put(&self, key: Key, data: Vec<u8>) -> Ticket<()> {
        match self.make() {
            Ok(b) => b.start_put(key, data),
            Err(e) => Ticket::ready(Err(e)),
        }
    }

    fn start_put_restricted(&self, key: Key, data: Vec<u8>) -> Ticket<()> {
        match self.make() {
            Ok(b) => b.start_put_restricted(key, data),
            Err(e) => Ticket::ready(Err(e)),
        }
    }

    fn start_get(&self, key: Key) -> Ticket<Option<Vec<u8>>> {
        match self.made() {
            Some(b) => b.start_get(key),
            None => Ticket::ready(Ok(None)),
        }
    }

    fn start_exists(&self, keys: Vec<Key>) -> Ticket<Vec<bool>> {
        match self.made() {
            Some(b) => b.start_exists(keys),
            None => Ticket::ready(Ok(vec![false; keys.len()])),
        }
    }

    fn attach_point(&self) -> Result<AttachPoint> {
        match self.made() {
            Some(b) => b.attach_point(),
            None => Err(crate::backend::not_supported(
                "attach-point",
                &self.info.server,
            )),
        }
    }
}
