//! Unlocking an archive: from a passphrase and the format record's key slots to the master key
//! and the keys derived from it.
//!
//! Each key slot costs one key derivation (argon2id with the slot's parameters: 24 MiB and
//! three passes by default, 35–45 ms here). Most commands need the keys before anything else
//! and wait for it ([`Unlock::now`]). A snapshot does not: its lease, its tag, its file cache
//! and the walk of an unchanged tree need no key, and an unchanged re-snapshot of /usr/share
//! walks for about 250 ms. So [`Unlock::start`] derives in a thread of its own, and the first
//! use of the keys waits for it ([`Unlock::get`]). The passphrase is still asked for before
//! anything starts, and a wrong one is still an error before anything is stored: every block
//! a run stores is named and sealed with the keys, so none can be stored before they are
//! known good.
//!
//! An unchanged tree's directories take their trees' keys from the file cache's marks
//! (`commands/snapshot/walk/same.rs`), so such a walk never waits; `ORE_DEBUG` names each
//! thread that did wait, and for how long.

use crate::core::crypto::Keys;
use crate::core::error::{Error, Result};
use crate::core::format::FormatRecord;
use ore_util::sync::lock;
use std::sync::{Mutex, OnceLock};
use std::thread::JoinHandle;

/// What unlocking gives.
pub(crate) struct Unlocked {
    pub keys: Keys,
    /// The master key, kept for key management.
    pub master: [u8; 32],
    /// Which slot opened it (`None` when unencrypted).
    pub slot: Option<String>,
}

/// Why unlocking failed, kept so that every later asker gets the same error.
#[derive(Clone, Debug)]
enum Failed {
    WrongPassphrase { slots: usize },
    Other(String),
}

impl Failed {
    fn of(e: &Error) -> Failed {
        match e {
            Error::WrongPassphrase { slots } => Failed::WrongPassphrase { slots: *slots },
            e => Failed::Other(e.to_string()),
        }
    }

    fn error(&self) -> Error {
        match self {
            Failed::WrongPassphrase { slots } => Error::WrongPassphrase { slots: *slots },
            Failed::Other(why) => Error::Archive(why.clone()),
        }
    }
}

type Derived = Result<([u8; 32], Option<String>)>;

/// The keys of an opened archive: known, or being derived.
pub(crate) struct Unlock {
    done: OnceLock<std::result::Result<Unlocked, Failed>>,
    deriving: Mutex<Option<JoinHandle<Derived>>>,
    encrypted: bool,
}

impl Unlock {
    /// Unlocks the archive of `record` now, asking for a passphrase when it is encrypted.
    pub fn now(
        record: &FormatRecord,
        id: &str,
        passphrase: super::repo::Passphrase,
    ) -> Result<Unlock> {
        let (master, slot) = match record.encrypted() {
            true => open_slots(record, &passphrase("Passphrase: ")?)?,
            false => plain_master(record, id)?,
        };
        Ok(Unlock::known(master, slot, record.encrypted()))
    }

    /// Asks for the passphrase now, when the archive is encrypted, and derives the keys in a
    /// thread of its own; [`Unlock::get`] waits for them.
    pub fn start(
        record: &FormatRecord,
        id: &str,
        passphrase: super::repo::Passphrase,
    ) -> Result<Unlock> {
        if !record.encrypted() {
            let (master, slot) = plain_master(record, id)?;
            return Ok(Unlock::known(master, slot, false));
        }
        let pass = passphrase("Passphrase: ")?;
        let record = record.clone();
        let thread = std::thread::Builder::new()
            .name("ore unlock".into())
            .spawn(move || open_slots(&record, &pass))
            .map_err(|e| Error::Archive(format!("could not start the key derivation: {e}")))?;
        Ok(Unlock {
            done: OnceLock::new(),
            deriving: Mutex::new(Some(thread)),
            encrypted: true,
        })
    }

    /// Keys from a master key already known (a new archive, or a copy of another's).
    pub fn known(master: [u8; 32], slot: Option<String>, encrypted: bool) -> Unlock {
        let keys = Keys::from_master(&master, encrypted);
        Unlock {
            done: OnceLock::from(Ok(Unlocked { keys, master, slot })),
            deriving: Mutex::new(None),
            encrypted,
        }
    }

    /// The keys, once derived; the first caller waits for the derivation, the others for the
    /// first. A wrong passphrase is the same error for every caller.
    pub fn get(&self) -> Result<&Unlocked> {
        let done = self.done.get_or_init(|| {
            let thread = lock(&self.deriving).take();
            let waits = thread.as_ref().is_some_and(|t| !t.is_finished());
            let asked = std::time::Instant::now();
            let derived = match thread.map(JoinHandle::join) {
                Some(Ok(derived)) => derived,
                Some(Err(_)) => Err(Error::Archive(
                    "the key derivation failed (its thread panicked)".into(),
                )),
                None => Err(Error::Archive("the key derivation was lost".into())),
            };
            if waits {
                // Who needed the keys before they were known, and for how long (what the
                // snapshot's walk must not do when nothing changed: `walk/same.rs`).
                protocol::log::debug(&format!(
                    "thread {} waited {} ms for the key derivation",
                    std::thread::current().name().unwrap_or("unnamed"),
                    asked.elapsed().as_millis()
                ));
            }
            derived
                .map(|(master, slot)| Unlocked {
                    keys: Keys::from_master(&master, self.encrypted),
                    master,
                    slot,
                })
                .map_err(|e| Failed::of(&e))
        });
        done.as_ref().map_err(Failed::error)
    }
}

/// The master key from the first of `record`'s slots that `pass` opens.
fn open_slots(record: &FormatRecord, pass: &[u8]) -> Derived {
    for s in &record.key_slots {
        if let Some(m) = s.unwrap_master(pass)? {
            return Ok((m, Some(s.id.clone())));
        }
    }
    Err(Error::WrongPassphrase {
        slots: record.key_slots.len(),
    })
}

/// The master key an unencrypted archive's record holds in the clear.
fn plain_master(record: &FormatRecord, id: &str) -> Derived {
    let m = record
        .master_key
        .as_deref()
        .and_then(|h| hex::decode(h).ok())
        .and_then(|v| <[u8; 32]>::try_from(v.as_slice()).ok())
        .ok_or_else(|| {
            Error::Archive(format!(
                "archive {id}: the format record has no usable master key"
            ))
        })?;
    Ok((m, None))
}
