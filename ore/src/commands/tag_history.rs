//! `ore tag-history`: every value the archive's tags have had, as the backend keeps them until
//! the owner expires them — the way back after a tag was moved where it should not have been
//! (by an append-only machine's `forget`, say). Each value names a snapshot that gc keeps
//! while the value is kept; `ore reset TAG KEY` or `ore fork KEY NEW` brings it back.
//!
//! A module because telling what each value is takes three reads of the archive: the history
//! (the backend's `protocol::history` admin command), the tags as they are now, and which of
//! the keys the values name are still stored.

use crate::core::error::Result;
use crate::core::repo::Repo;
use protocol::history::{parse, show_value, TAG_HISTORY};
use protocol::Key;
use std::collections::{HashMap, HashSet};

/// What a value of a tag is now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// The tag holds it now.
    Current,
    /// An earlier value whose block is still stored.
    Kept,
    /// An earlier value whose block is gone.
    Gone,
    /// A value that is not a block key at all.
    NotAKey,
}

impl State {
    /// The word `ore tag-history` shows.
    pub fn name(self) -> &'static str {
        match self {
            State::Current => "current",
            State::Kept => "kept",
            State::Gone => "gone",
            State::NotAKey => "not a key",
        }
    }
}

/// One value a tag has had.
#[derive(Debug, Clone)]
pub struct Value {
    pub tag: String,
    /// The value as text (printable) or hex.
    pub value: String,
    /// Seconds since the epoch when the backend first saw it.
    pub time: i64,
    pub state: State,
    /// For a value that is a chain link (format 2), the key of the snapshot it names: the key
    /// the user knows.
    pub snapshot: Option<Key>,
}

/// The values of every tag, or of `tag` only, in the backend's order.
pub fn tag_history(repo: &Repo, tag: Option<&str>) -> Result<Vec<Value>> {
    let args: Vec<String> = tag.iter().map(|t| t.to_string()).collect();
    let answer = repo.backend().admin(TAG_HISTORY, &args)?;
    let entries = parse(&answer.json)?;
    let current: HashMap<String, Vec<u8>> = repo.backend().list_tags()?.into_iter().collect();
    let keys: Vec<Option<Key>> = entries
        .iter()
        .map(|e| crate::core::format::parse_tag_value(e.value.as_bytes()))
        .collect();
    let stored: Vec<Key> = keys.iter().flatten().copied().collect();
    let held: HashSet<Key> = stored
        .iter()
        .zip(repo.backend().exists(&stored)?)
        .filter_map(|(k, held)| held.then_some(*k))
        .collect();
    let values = entries.into_iter().zip(keys).map(|(e, key)| {
        let is_current = current
            .get(&e.tag)
            .is_some_and(|v| show_value(v) == e.value);
        let state = match key {
            _ if is_current => State::Current,
            Some(k) if held.contains(&k) => State::Kept,
            Some(_) => State::Gone,
            None => State::NotAKey,
        };
        let snapshot = match (key, state) {
            (Some(k), State::Current | State::Kept)
                if !crate::core::format::is_system_tag(&e.tag) =>
            {
                repo.snapshot_key(k).ok().filter(|s| *s != k)
            }
            _ => None,
        };
        Value {
            tag: e.tag,
            value: e.value,
            time: e.time,
            state,
            snapshot,
        }
    });
    Ok(values.collect())
}
