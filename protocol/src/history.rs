//! Tag history: every value each tag has had, kept by every backend until someone with full
//! access expires it (PROTOCOL.md §6, "Tag history").
//!
//! A tag is the only thing that says what an archive keeps, and an append-only connection may
//! move tags. So that moving one never loses anything, each backend records every value a tag
//! is set to, keeps the record across anything it does to its storage (splitlog's compaction
//! included), and answers two admin commands that every backend offers:
//!
//! - `tag-history [NAME]` (reading, allowed to every connection): the kept values of `NAME`, or
//!   of every tag, oldest first. Its JSON is an array of `{"tag", "value", "time"}`, the value
//!   as text when it is printable (a block key is 64 hex digits) and as hex otherwise, the time
//!   in seconds since the epoch when the backend first saw that value (or re-read it).
//! - `expire-tag-history SECONDS [NAME]` (changing, full access only): forgets every kept
//!   value (of `NAME`, or of every tag) first seen SECONDS or more ago that its tag no longer
//!   holds. Current values are never expired.
//!
//! Ore's gc takes every kept value as a root, so a snapshot a tag ever named stays until the
//! owner expires the history that names it (`ore reflog expire` does both). Lease tags
//! (`ore:lease:N`) are not recorded: their values are heartbeats, renewed every minute or so,
//! and name no blocks.
//!
//! This module is the one home of the command names, the JSON shape and the argument rules;
//! each backend stores the history its own way.

use crate::backend::{AdminCommand, AdminOutput};
use crate::error::{Error, ErrorCode, Result};
use serde::{Deserialize, Serialize};
use std::time::{SystemTime, UNIX_EPOCH};

/// The reading command.
pub const TAG_HISTORY: &str = "tag-history";
/// The expiring command.
pub const EXPIRE: &str = "expire-tag-history";

/// `tag-history` in a backend's list of admin commands.
pub const READ_COMMAND: AdminCommand = AdminCommand {
    name: TAG_HISTORY,
    args: "[NAME]",
    help: "every value the tag (or every tag) has had, oldest first, until expired",
};
/// `expire-tag-history` in a backend's list of admin commands.
pub const EXPIRE_COMMAND: AdminCommand = AdminCommand {
    name: EXPIRE,
    args: "SECONDS [NAME]",
    help: "forget kept values (of NAME or every tag) first seen SECONDS or more ago, never current ones",
};

/// One kept value of one tag.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub tag: String,
    /// The value as text (printable) or hex.
    pub value: String,
    /// Seconds since the epoch when the backend first saw the value.
    pub time: i64,
}

impl Entry {
    /// The entry for `value` of `tag`, first seen at `time` (seconds since the epoch).
    pub fn new(tag: String, value: &[u8], time: i64) -> Entry {
        Entry {
            tag,
            value: show_value(value),
            time,
        }
    }
}

/// Whether changes of tag `name` are recorded (lease heartbeats are not).
pub fn keeps_history(name: &str) -> bool {
    !name.starts_with(crate::tagrules::LEASE_PREFIX)
}

/// Now, in seconds since the epoch.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// A tag value as text when it is printable, else as hex.
pub fn show_value(v: &[u8]) -> String {
    match std::str::from_utf8(v) {
        Ok(s) if s.chars().all(|c| !c.is_control()) => s.to_string(),
        _ => hex::encode(v),
    }
}

/// The tag `tag-history` asks about (`None`: every tag).
pub fn history_arg(args: &[String]) -> Result<Option<&str>> {
    match args {
        [] => Ok(None),
        [name] => Ok(Some(name)),
        _ => Err(Error::backend(
            ErrorCode::Admin,
            format!("{TAG_HISTORY} takes at most one argument: a tag's name"),
        )),
    }
}

/// What `expire-tag-history SECONDS [NAME]` asks for: the cutoff (values first seen at or
/// before it go) and the tag (`None`: every tag).
pub fn expire_args(args: &[String]) -> Result<(i64, Option<&str>)> {
    let (secs, name) = match args {
        [s] => (s.parse::<u64>().ok(), None),
        [s, n] => (s.parse::<u64>().ok(), Some(n.as_str())),
        _ => (None, None),
    };
    let secs = secs.ok_or_else(|| {
        Error::backend(
            ErrorCode::Admin,
            format!("{EXPIRE} needs an age in whole seconds (0: all but the current values), then optionally a tag's name"),
        )
    })?;
    let cutoff = now().saturating_sub(i64::try_from(secs).unwrap_or(i64::MAX));
    Ok((cutoff, name))
}

/// The answer to `tag-history` for `entries` (oldest first).
pub fn output(asked: Option<&str>, entries: &[Entry]) -> AdminOutput {
    let mut text = String::new();
    for e in entries {
        text.push_str(&format!("{} {} {}\n", e.time, e.tag, e.value));
    }
    if entries.is_empty() {
        text = match asked {
            Some(n) => format!("tag {n} has no kept history\n"),
            None => "no tag has kept history\n".into(),
        };
    }
    AdminOutput::new(text, serde_json::to_value(entries).unwrap_or_default())
}

/// The answer to `expire-tag-history`.
pub fn expired_output(forgotten: u64) -> AdminOutput {
    AdminOutput::new(
        format!("forgot {forgotten} kept tag value(s)\n"),
        serde_json::json!({ "expired": forgotten }),
    )
}

/// Reads the JSON of a `tag-history` answer.
pub fn parse(json: &str) -> Result<Vec<Entry>> {
    serde_json::from_str(json).map_err(|e| {
        Error::backend(
            ErrorCode::Internal,
            format!("the backend's {TAG_HISTORY} answer is not a list of kept values: {e}"),
        )
    })
}

/// An in-memory history, for backends that keep everything in memory (and for proxies' tests).
#[derive(Debug, Default)]
pub struct Memory {
    entries: Vec<Entry>,
}

impl Memory {
    /// Records that `tag` was set to `value`, unless that value is already kept for it.
    pub fn record(&mut self, tag: &str, value: &[u8]) {
        if !keeps_history(tag) {
            return;
        }
        let value = show_value(value);
        if !self
            .entries
            .iter()
            .any(|e| e.tag == tag && e.value == value)
        {
            self.entries.push(Entry {
                tag: tag.to_string(),
                value,
                time: now(),
            });
        }
    }

    /// The kept values of `tag` (or all), oldest first.
    pub fn list(&self, tag: Option<&str>) -> Vec<Entry> {
        self.entries
            .iter()
            .filter(|e| tag.is_none_or(|t| e.tag == t))
            .cloned()
            .collect()
    }

    /// Forgets values (of `tag`, or all) first seen at or before `cutoff` that `current` says
    /// their tag no longer holds.
    pub fn expire(
        &mut self,
        cutoff: i64,
        tag: Option<&str>,
        current: impl Fn(&str) -> Option<Vec<u8>>,
    ) -> u64 {
        let before = self.entries.len();
        self.entries.retain(|e| {
            e.time > cutoff
                || tag.is_some_and(|t| t != e.tag)
                || current(&e.tag).is_some_and(|v| show_value(&v) == e.value)
        });
        (before - self.entries.len()) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tag_history_answer_is_pinned_as_the_protocol_says() {
        let e = Entry {
            tag: "home".into(),
            value: "ab".into(),
            time: 7,
        };
        let out = output(None, std::slice::from_ref(&e));
        assert_eq!(out.json, r#"[{"tag":"home","time":7,"value":"ab"}]"#);
        assert_eq!(parse(&out.json).unwrap(), vec![e]);
        assert_eq!(expired_output(3).json, r#"{"expired":3}"#);
        assert_eq!(show_value(&[0, 255]), "00ff");
    }

    #[test]
    fn expiring_keeps_current_and_recent_values_and_leases_are_not_recorded() {
        let mut m = Memory::default();
        m.record("home", b"a");
        m.record("home", b"b");
        m.record("home", b"a");
        m.record("ore:lease:1", b"free");
        assert_eq!(m.list(None).len(), 2, "each value once; no leases");
        assert_eq!(
            m.expire(now() - 3600, None, |_| None),
            0,
            "recent values stay"
        );
        assert_eq!(
            m.expire(now(), Some("other"), |_| None),
            0,
            "only the tag named"
        );
        assert_eq!(m.expire(now(), None, |_| Some(b"b".to_vec())), 1);
        assert_eq!(m.list(Some("home"))[0].value, "b");
        assert!(expire_args(&["x".into()]).is_err());
        assert!(history_arg(&["a".into(), "b".into()]).is_err());
    }
}
