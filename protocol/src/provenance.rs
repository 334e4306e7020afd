//! Who wrote a block: every backend remembers the blocks a restricted connection stored until
//! the owner vouches for them (PROTOCOL.md §6, "Blocks written by restricted connections").
//!
//! Blocks are named by a keyed hash of their plaintext, and the key comes from the passphrase.
//! A machine that holds the passphrase but only an append-only key can therefore compute the
//! name of a block it expects someone else to write (a well-known file, a file it has seen) and
//! store garbage under that name first. Puts never overwrite, so the owner's next snapshot finds
//! the name taken, deduplicates against the garbage, and the damage stays invisible until a
//! restore — or a check that reads every block. Reading every block of a large archive is the
//! one thing nobody does every day.
//!
//! So the backend, which knows which connection is restricted (the client does not get a say),
//! records each block that a restricted connection newly stored, and offers three admin
//! commands:
//!
//! - `unvouched [AFTER [LIMIT]]` (reading): the recorded keys that nobody vouched for yet, in
//!   ascending order, after `AFTER` (a key, or `-` for the start), at most `LIMIT` (default and
//!   maximum [`MAX_PAGE`]). JSON: `{"keys": [HEX...], "more": BOOL}`.
//! - `vouch KEY...` (full access only): forgets the record of these keys — the owner read them
//!   and found them sound (`ore check --unverified` does this).
//! - `mark-unvouched KEY...` (full access only): records these keys as written by a restricted
//!   connection. Only a proxy needs it: a proxy served append-only that talks to its stores as
//!   an ordinary client marks what it stored this way ([`crate::Backend::put_restricted`]).
//!
//! Removing a block forgets its record. A block the owner stored first is never recorded,
//! whoever stores it again: a put of a stored key changes nothing. Full-access puts cost
//! nothing more; a restricted put costs one small record beside the block.
//!
//! This module holds the command names, argument rules and JSON shapes once, and an in-memory
//! record for backends that keep everything in memory.

use crate::backend::{AdminCommand, AdminOutput};
use crate::error::{Error, ErrorCode, Result};
use crate::key::Key;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// The reading command.
pub const UNVOUCHED: &str = "unvouched";
/// The owner's command that clears records.
pub const VOUCH: &str = "vouch";
/// The proxies' command that adds records.
pub const MARK: &str = crate::backend::MARK_UNVOUCHED;
/// Most keys in one `unvouched` answer (and its default).
pub const MAX_PAGE: usize = 4096;
/// Most keys one `vouch` or `mark-unvouched` takes.
pub const MAX_KEYS: usize = 4096;

pub const UNVOUCHED_COMMAND: AdminCommand = AdminCommand {
    name: UNVOUCHED,
    args: "[AFTER|- [LIMIT]]",
    help:
        "blocks stored by restricted (append-only) connections that the owner has not vouched for",
};
pub const VOUCH_COMMAND: AdminCommand = AdminCommand {
    name: VOUCH,
    args: "KEY...",
    help: "forget that these blocks came from a restricted connection (read and found sound)",
};
pub const MARK_COMMAND: AdminCommand = AdminCommand {
    name: MARK,
    args: "KEY...",
    help: "record these blocks as stored by a restricted connection (for proxies)",
};
/// The three commands, for a backend's list.
pub const COMMANDS: [AdminCommand; 3] = [UNVOUCHED_COMMAND, VOUCH_COMMAND, MARK_COMMAND];

/// One page of the `unvouched` answer.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Page {
    pub keys: Vec<String>,
    pub more: bool,
}

fn admin_error(message: String) -> Error {
    Error::backend(ErrorCode::Admin, message)
}

fn parse_key(command: &str, s: &str) -> Result<Key> {
    s.parse::<Key>().map_err(|_| {
        admin_error(format!(
            "{command}: {:?} is not a block key (64 hex digits)",
            s.chars().take(80).collect::<String>()
        ))
    })
}

/// What `unvouched [AFTER|- [LIMIT]]` asks for.
pub fn page_args(args: &[String]) -> Result<(Option<Key>, usize)> {
    if args.len() > 2 {
        return Err(admin_error(format!(
            "{UNVOUCHED} takes at most two arguments: a key to start after (or -) and a limit"
        )));
    }
    let after = match args.first().map(String::as_str) {
        None | Some("-") => None,
        Some(s) => Some(parse_key(UNVOUCHED, s)?),
    };
    let limit = match args.get(1) {
        None => MAX_PAGE,
        Some(s) => match s.parse::<usize>() {
            Ok(n) if (1..=MAX_PAGE).contains(&n) => n,
            _ => {
                return Err(admin_error(format!(
                    "{UNVOUCHED}: the limit must be a whole number from 1 to {MAX_PAGE}, not {s:?}"
                )))
            }
        },
    };
    Ok((after, limit))
}

/// The keys `vouch` or `mark-unvouched` was given.
pub fn key_args(command: &str, args: &[String]) -> Result<Vec<Key>> {
    if args.is_empty() || args.len() > MAX_KEYS {
        return Err(admin_error(format!(
            "{command} takes 1 to {MAX_KEYS} block keys, got {}",
            args.len()
        )));
    }
    args.iter().map(|a| parse_key(command, a)).collect()
}

/// The answer to `unvouched`.
pub fn page_output(keys: &[Key], more: bool) -> AdminOutput {
    let mut text: String = keys.iter().map(|k| format!("{k}\n")).collect();
    if keys.is_empty() {
        text = "no block stored by a restricted connection awaits the owner's check\n".into();
    } else if more {
        text.push_str("(more follow)\n");
    }
    let page = Page {
        keys: keys.iter().map(Key::to_hex).collect(),
        more,
    };
    AdminOutput::new(text, serde_json::to_value(page).unwrap_or_default())
}

/// The answer to `vouch` or `mark-unvouched`.
pub fn count_output(command: &str, n: usize) -> AdminOutput {
    let word = if command == VOUCH {
        "vouched"
    } else {
        "marked"
    };
    AdminOutput::new(
        format!("{word} for {n} block(s)\n"),
        serde_json::json!({ word: n }),
    )
}

/// Reads the JSON of an `unvouched` answer.
pub fn parse_page(json: &str) -> Result<(Vec<Key>, bool)> {
    let bad = |why: String| {
        Error::backend(
            ErrorCode::Internal,
            format!("the backend's {UNVOUCHED} answer is not a page of keys: {why}"),
        )
    };
    let page: Page = serde_json::from_str(json).map_err(|e| bad(e.to_string()))?;
    let keys = page
        .keys
        .iter()
        .map(|k| {
            k.parse::<Key>()
                .map_err(|_| bad(format!("{k:?} is not a key")))
        })
        .collect::<Result<Vec<Key>>>()?;
    if page.more && keys.is_empty() {
        return Err(bad("it says more keys follow but holds none".into()));
    }
    Ok((keys, page.more))
}

/// One page from a sorted set: up to `limit` keys after `after`, and whether more follow.
pub fn page_of<'a>(
    sorted: impl Iterator<Item = &'a Key>,
    after: Option<Key>,
    limit: usize,
) -> (Vec<Key>, bool) {
    let mut it = sorted.filter(|k| after.is_none_or(|a| **k > a)).copied();
    let keys: Vec<Key> = it.by_ref().take(limit).collect();
    let more = it.next().is_some();
    (keys, more)
}

/// The records kept in memory.
#[derive(Debug, Default)]
pub struct Marks {
    keys: BTreeSet<Key>,
}

impl Marks {
    pub fn mark(&mut self, key: Key) {
        self.keys.insert(key);
    }
    pub fn forget(&mut self, key: &Key) -> bool {
        self.keys.remove(key)
    }
    pub fn page(&self, after: Option<Key>, limit: usize) -> (Vec<Key>, bool) {
        match after {
            Some(a) => page_of(
                self.keys
                    .range((std::ops::Bound::Excluded(a), std::ops::Bound::Unbounded)),
                None,
                limit,
            ),
            None => page_of(self.keys.iter(), None, limit),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_unvouched_answer_is_pinned_as_the_protocol_says() {
        let k = Key([1; 32]);
        let out = page_output(&[k], true);
        assert_eq!(
            out.json,
            format!(r#"{{"keys":["{}"],"more":true}}"#, k.to_hex())
        );
        assert_eq!(parse_page(&out.json).unwrap(), (vec![k], true));
        assert!(parse_page(r#"{"keys":[],"more":true}"#).is_err());
        assert_eq!(count_output(VOUCH, 2).json, r#"{"vouched":2}"#);
        assert_eq!(page_args(&[]).unwrap(), (None, MAX_PAGE));
        assert_eq!(page_args(&[k.to_hex(), "3".into()]).unwrap(), (Some(k), 3));
        assert!(page_args(&["-".into(), "0".into()]).is_err());
        assert!(key_args(VOUCH, &[]).is_err());
        assert!(key_args(VOUCH, &["zz".into()]).is_err());
    }

    #[test]
    fn marks_page_in_key_order() {
        let mut m = Marks::default();
        for b in [3u8, 1, 2] {
            m.mark(Key([b; 32]));
        }
        assert_eq!(m.page(None, 2), (vec![Key([1; 32]), Key([2; 32])], true));
        assert_eq!(m.page(Some(Key([2; 32])), 2), (vec![Key([3; 32])], false));
        assert!(m.forget(&Key([3; 32])));
        assert_eq!(m.page(Some(Key([2; 32])), 2), (vec![], false));
    }
}
