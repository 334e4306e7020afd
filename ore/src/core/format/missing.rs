//! An archive without its format record: new and empty, or damaged — and putting it back.
//!
//! Every command reads the format record first, through the tag [`FORMAT_TAG`]. When the tag
//! is missing, the archive is new only if it holds nothing at all: no block, no other tag, and
//! no value of `ore:format` in the backend's tag history (PROTOCOL.md §6). An archive that holds
//! any of these had a format record that was lost — a tag file deleted, a repair that could not
//! read it — and telling its owner to run `ore init` would be the worst advice: a new record
//! has a new master key, and nothing stored so far could be read with it. So `ore init` refuses
//! there, and the error says what is missing and how to recover.
//!
//! The recovery is [`restore`] (`ore restore-format`): the backend's tag history keeps every
//! value `ore:format` had, and the record itself is a block stored in the clear, so the newest
//! kept value whose block still decodes as a format record is put back — with
//! compare-and-swap from "no tag", so it never replaces a record that is there.

use super::{FormatRecord, FORMAT_TAG};
use crate::core::block::{self, Kind};
use crate::core::crypto::Keys;
use crate::core::error::{Error, Result};
use protocol::history::{keeps_history, TAG_HISTORY};
use protocol::{Backend, CasOutcome, Key};

/// What an archive without a format record holds that says it had one.
#[derive(Debug, Default)]
pub struct Evidence {
    /// It holds at least one block.
    pub blocks: bool,
    /// Its tags (lease tags aside).
    pub tags: Vec<String>,
    /// The values the backend's tag history kept for `ore:format`, oldest first.
    pub kept: Vec<String>,
    /// The tag history could not be read whole (the backend said it is damaged).
    pub history_damaged: Option<String>,
}

impl Evidence {
    /// Whether the archive holds nothing: it is new, and `ore init` is what it needs.
    pub fn is_empty(&self) -> bool {
        !self.blocks && self.tags.is_empty() && self.kept.is_empty()
    }

    fn describe(&self) -> String {
        let mut what = Vec::new();
        if self.blocks {
            what.push("blocks".to_string());
        }
        if !self.tags.is_empty() {
            what.push(format!(
                "{} tag(s) ({})",
                self.tags.len(),
                self.tags.join(", ")
            ));
        }
        if !self.kept.is_empty() {
            what.push(format!(
                "a tag history in which {FORMAT_TAG} was set {} time(s)",
                self.kept.len()
            ));
        }
        what.join(", ")
    }
}

/// Looks at what an archive without a format record holds.
pub fn evidence(backend: &dyn Backend) -> Result<Evidence> {
    // A block that is a format record is what an `ore init` killed before it set the tag
    // leaves behind: no sign of data.
    let (first, _) = backend.list(None, 2)?;
    let mut e = Evidence {
        blocks: first.iter().any(|k| decode(backend, *k).is_err()),
        tags: backend
            .list_tags()?
            .into_iter()
            .map(|(n, _)| n)
            .filter(|n| keeps_history(n) && n != FORMAT_TAG)
            .collect(),
        ..Evidence::default()
    };
    match backend.admin(TAG_HISTORY, &[FORMAT_TAG.to_string()]) {
        Ok(out) => {
            e.kept = protocol::history::parse(&out.json)?
                .into_iter()
                .filter(|h| h.tag == FORMAT_TAG)
                .map(|h| h.value)
                .collect()
        }
        Err(err) if err.code() == protocol::ErrorCode::Corrupt => {
            e.history_damaged = Some(err.to_string())
        }
        // A backend that keeps no history: the blocks and tags say enough.
        Err(_) => {}
    }
    Ok(e)
}

/// The error for an archive whose tag [`FORMAT_TAG`] is missing: "not initialised" when it
/// holds nothing, otherwise what it holds, that `ore init` is not the fix, and how to recover.
pub fn missing_error(backend: &dyn Backend, id: &str) -> Error {
    let e = match evidence(backend) {
        Ok(e) => e,
        Err(err) => {
            return Error::Archive(format!(
                "archive {id} has no format record (tag {FORMAT_TAG} does not exist), and what \
                 else it holds cannot be read ({err}); if it holds data, do NOT run `ore init`"
            ))
        }
    };
    if e.is_empty() && e.history_damaged.is_none() {
        return Error::Archive(format!(
            "archive {id} is not initialised: run `ore init` first"
        ));
    }
    Error::Archive(damaged_message(&e, id))
}

fn damaged_message(e: &Evidence, id: &str) -> String {
    let recovery = if e.kept.is_empty() {
        format!(
            "the backend's tag history keeps no earlier value of it{}; restore the tag from a \
             backup of the archive (`ore-admin '{id}' verify` names the file where the backend \
             keeps it)",
            e.history_damaged
                .as_deref()
                .map(|d| format!(" (it is damaged: {d})"))
                .unwrap_or_default()
        )
    } else {
        format!(
            "the backend's tag history keeps its earlier value(s) (`ore-admin '{id}' tag-history \
             {FORMAT_TAG}`); `ore -a '{id}' restore-format` puts back the newest one that still \
             decodes as a format record"
        )
    };
    format!(
        "archive {id}: the format record is missing or damaged — tag {FORMAT_TAG} does not \
         exist, but the archive holds {}. Do NOT run `ore init`: a new format record has a new \
         master key, and nothing stored so far could be read with it. To recover: {recovery}",
        if e.describe().is_empty() {
            "a damaged tag history".to_string()
        } else {
            e.describe()
        }
    )
}

/// Refuses `ore init` on an archive that holds anything (see the module documentation).
pub fn check_empty(backend: &dyn Backend, id: &str) -> Result<()> {
    let e = evidence(backend)?;
    if e.is_empty() && e.history_damaged.is_none() {
        return Ok(());
    }
    Err(Error::Archive(format!(
        "refusing to initialise: {}",
        damaged_message(&e, id)
    )))
}

/// Reads block `key` as a format record.
fn decode(backend: &dyn Backend, key: Key) -> Result<FormatRecord> {
    let stored = backend.get(key)?.ok_or_else(|| Error::Missing {
        key,
        kind: Kind::Format.name(),
    })?;
    let keys = Keys::from_master(&[0; 32], false);
    let plain = block::open(&keys, &key, Some(Kind::Format), stored)?;
    FormatRecord::parse(plain.data())
}

/// What [`restore`] did.
#[derive(Debug)]
pub struct Restored {
    pub key: Key,
    pub record: FormatRecord,
    /// Newer kept values passed over, each with why.
    pub skipped: Vec<(String, String)>,
}

/// Puts back the newest value of [`FORMAT_TAG`] the backend's tag history keeps whose block
/// decodes as a format record. Refuses when the tag exists, and sets it only if it still does
/// not (compare-and-swap), so a record that is there is never replaced.
pub fn restore(backend: &dyn Backend, id: &str) -> Result<Restored> {
    if let Some(v) = backend.get_tag(FORMAT_TAG)? {
        return Err(Error::Archive(format!(
            "archive {id} has a format record already (tag {FORMAT_TAG} = {}); nothing to restore",
            String::from_utf8_lossy(&v)
        )));
    }
    let out = backend.admin(TAG_HISTORY, &[FORMAT_TAG.to_string()])?;
    let kept = protocol::history::parse(&out.json)?;
    let mut skipped = Vec::new();
    for h in kept.iter().rev().filter(|h| h.tag == FORMAT_TAG) {
        let Some(key) = crate::core::format::parse_tag_value(h.value.as_bytes()) else {
            skipped.push((h.value.clone(), "not a block key".to_string()));
            continue;
        };
        let record = match decode(backend, key) {
            Ok(r) => r,
            Err(e) => {
                skipped.push((h.value.clone(), e.to_string()));
                continue;
            }
        };
        return match backend.set_tag(FORMAT_TAG, None, key.to_hex().as_bytes())? {
            CasOutcome::Done => Ok(Restored {
                key,
                record,
                skipped,
            }),
            CasOutcome::Conflict { .. } => Err(Error::Archive(format!(
                "archive {id}: tag {FORMAT_TAG} was set by someone else while restoring it; \
                 nothing was changed"
            ))),
        };
    }
    let tried = skipped
        .iter()
        .map(|(v, why)| format!("{v}: {why}"))
        .collect::<Vec<_>>()
        .join("; ");
    Err(Error::Archive(format!(
        "archive {id}: the backend's tag history keeps no value of {FORMAT_TAG} that decodes as \
         a format record{}",
        if tried.is_empty() {
            String::new()
        } else {
            format!(" (tried: {tried})")
        }
    )))
}
