//! What damaged logs cost, and what may still be trusted: missing logs, logs cut short, and
//! tags whose newest value the logs can no longer show.
//!
//! Damage is answered where it is, never by refusing the whole archive:
//!
//! - a block whose record is damaged, cut off or in a missing log is answered with a `Corrupt`
//!   error for that one request, naming the block, its log and offset and what is wrong
//!   ([`crate::logs::read_record`]); every other block reads as before;
//! - a log the index names that is gone does not stop the archive from opening: the opening
//!   warns, naming the log and the blocks and bytes the index says it held ([`missing_logs`]),
//!   and `info` and `verify` list it; new records go to a log numbered after it, so its number
//!   is never reused ([`crate::logs::Logs::open`]).
//!
//! **Tags.** A tag's value is the value of its last sound tag record. A damaged stretch of a log
//! that could have been a tag record (a damaged header, a tag record with a damaged payload, a
//! log cut short, a missing log: a [`Suspect`]) may have changed any tag whose last sound record
//! comes before it, so for each such tag the logs alone prove only an older value. A replay
//! never picks that older value quietly ([`doubts`]):
//!
//! - a reindex takes the value the index it replaces holds, when that index is sound and
//!   reflected the logs past the damage (it applied the record while it was sound), and — for
//!   a value that names a block — that block is stored. It then writes the value again as a
//!   fresh tag record, so the logs alone show it from then on;
//! - otherwise the reindex is refused, naming each tag, the value its last sound record gives
//!   and the damage after it; the index is left as it was. `reindex --accept-older TAG` keeps
//!   the older value (written again as a fresh record); `ore reflog TAG` (which reads the
//!   frontend's encrypted record of tag moves, which the backend cannot) then tells the newest
//!   value, and `ore reset TAG KEY` moves the tag there;
//! - when the replay at opening meets such doubt (it replays everything when the index was
//!   deleted), the archive opens for reading only and refuses to answer for the doubted tags
//!   until a reindex settles them. Damage after the index's last commit is the exception: that
//!   stretch was never flushed, and a machine crash may leave it half written, so what it held
//!   is lost as the durability contract allows (reported, not doubted; the values settled on
//!   are written again after it, so a later replay of every log does not doubt them).
//!
//! What cannot be told: lease tags (`ore:lease:N`) are heartbeats, not doubted (a stale one
//! ends by its ttl); a damaged header whose key field was hit in more than [`KEY_DAMAGE`] bytes
//! is taken for a block record (tag and setting records have a zero key, a block's key is a
//! hash); a damaged record that created a tag nothing else names cannot name it, and is
//! reported only as a damaged record; a newest log cut short with no index to say it was ever
//! longer looks like an interrupted write.

use crate::index::Index;
use crate::record::{RecordType, HEADER_LEN};
use crate::State;
use protocol::Result;
use std::collections::{BTreeMap, BTreeSet};

/// A log position: log number, then offset (records are ordered by it).
pub type Pos = (u32, u64);

/// A damaged stretch that could have been a tag record.
#[derive(Clone, Debug)]
pub struct Suspect {
    pub at: Pos,
    pub what: String,
    /// The stretch is the tail of the newest log: an interrupted write, unless an index
    /// reflected the log past it (then it was written, flushed and later cut).
    pub newest_tail: bool,
}

/// Above this many nonzero bytes in a damaged header's key field, the record was a block's.
pub const KEY_DAMAGE: usize = 4;

/// Whether a damaged record with header bytes `header` (as read) and sound type `kind` could
/// have been a tag record.
pub fn could_be_tag(kind: Option<RecordType>, header: Option<&[u8; HEADER_LEN]>) -> bool {
    match kind {
        Some(k) => matches!(k, RecordType::TagSet | RecordType::TagRemoved),
        None => header.is_none_or(|h| h[13..45].iter().filter(|&&b| b != 0).count() <= KEY_DAMAGE),
    }
}

/// What a replay saw of the tags: the position of each tag's last sound change, and the
/// suspects.
#[derive(Debug, Default)]
pub struct TagTrail {
    pub changes: BTreeMap<String, Pos>,
    pub suspects: Vec<Suspect>,
}

/// A tag whose newest value the logs cannot show.
#[derive(Debug, Clone)]
pub struct Doubt {
    pub tag: String,
    /// The value its last sound record gives (`None`: removed, or never set).
    pub older: Option<Vec<u8>>,
    /// The damage after that record, described.
    pub after: Vec<String>,
    /// The furthest suspect.
    pub last: Pos,
}

/// The tags (of `index` after the replay, and `more` names) that a suspect of `trail` may have
/// changed. `through` is how far an earlier index reflected the logs: a newest log's tail
/// before it was flushed, so its damage counts. Suspects at or after `unflushed` (where the
/// index's last commit ended, for the replay at opening) are passed over: nothing written
/// there was ever flushed, and a machine crash may leave such a tail half written — what it
/// loses is what the durability contract allows to be lost.
pub fn doubts(
    trail: &TagTrail,
    index: &Index,
    more: &BTreeSet<String>,
    through: Option<Pos>,
    unflushed: Option<Pos>,
) -> Result<Vec<Doubt>> {
    let mut names: BTreeSet<String> = index.tags()?.into_iter().map(|(n, _)| n).collect();
    names.extend(trail.changes.keys().cloned());
    names.extend(more.iter().cloned());
    let mut out: BTreeMap<String, Doubt> = BTreeMap::new();
    for s in &trail.suspects {
        if s.newest_tail && through.is_none_or(|t| t <= s.at) {
            continue;
        }
        if unflushed.is_some_and(|u| u <= s.at) {
            continue;
        }
        for name in &names {
            if name.starts_with(protocol::tagrules::LEASE_PREFIX) {
                continue;
            }
            if trail.changes.get(name).is_some_and(|&c| c > s.at) {
                continue;
            }
            let d = match out.get_mut(name) {
                Some(d) => d,
                None => out.entry(name.clone()).or_insert(Doubt {
                    tag: name.clone(),
                    older: index.tag(name)?,
                    after: Vec::new(),
                    last: s.at,
                }),
            };
            d.after.push(s.what.clone());
            d.last = d.last.max(s.at);
        }
    }
    Ok(out.into_values().collect())
}

/// A tag value as a message shows it.
pub fn show(v: Option<&[u8]>) -> String {
    match v {
        Some(v) => protocol::history::show_value(v),
        None => "(no value: removed or never set)".into(),
    }
}

/// The sentence that says why `doubts` keep their tags from being answered, and what to do.
pub fn explain(dir: &std::path::Path, doubts: &[Doubt]) -> String {
    let mut m = format!(
        "the logs cannot show the newest value of {} tag(s):\n",
        doubts.len()
    );
    for d in doubts {
        m.push_str(&format!(
            "  tag {}: its last sound record gives {}, but later damage may have changed it: {}\n",
            d.tag,
            show(d.older.as_deref()),
            d.after.join("; ")
        ));
    }
    let accept: String = doubts
        .iter()
        .map(|d| {
            format!(
                " --accept-older {}",
                protocol::history::show_value(d.tag.as_bytes())
            )
        })
        .collect();
    m.push_str(&format!(
        "`ore-admin {} reindex{accept}` keeps the older values; then `ore reflog TAG` shows \
         each tag's newest value, and `ore reset TAG KEY` moves the tag there",
        dir.display()
    ));
    m
}

/// A log the index names that is gone, with what the index says it held.
#[derive(Debug, Clone)]
pub struct MissingLog {
    pub log: u32,
    pub blocks: u64,
    pub bytes: u64,
}

impl MissingLog {
    pub fn describe(&self, dir: &std::path::Path) -> String {
        format!(
            "{} is missing: the index says it held {} block(s) ({} bytes); reads of them fail \
             as damaged, everything else reads as before",
            crate::logs::log_path(dir, self.log).display(),
            self.blocks,
            self.bytes
        )
    }
}

/// The logs the index counts live records in that are not on disk.
pub(crate) fn missing_logs(st: &mut State) -> Result<Vec<MissingLog>> {
    let present: BTreeSet<u32> = crate::logs::list_logs(st.logs.dir())?.into_iter().collect();
    let mut out = Vec::new();
    for (log, _) in st.index.live_logs()? {
        if !present.contains(&log) {
            let (blocks, bytes) = st.index.blocks_in_log(log)?;
            out.push(MissingLog { log, blocks, bytes });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn suspect(log: u32, offset: u64, newest_tail: bool) -> Suspect {
        Suspect {
            at: (log, offset),
            what: format!("damage at {log}/{offset}"),
            newest_tail,
        }
    }

    fn doubted(trail: &TagTrail, through: Option<Pos>, unflushed: Option<Pos>) -> Vec<String> {
        let mut index = Index::placeholder().unwrap();
        for name in trail.changes.keys() {
            index.set_tag(name, Some(b"v")).unwrap();
        }
        doubts(trail, &index, &BTreeSet::new(), through, unflushed)
            .unwrap()
            .into_iter()
            .map(|d| d.tag)
            .collect()
    }

    #[test]
    fn only_tags_last_changed_before_the_damage_are_in_doubt_and_leases_never() {
        let mut trail = TagTrail::default();
        trail.changes.insert("before".into(), (1, 10));
        trail.changes.insert("after".into(), (2, 10));
        trail.changes.insert("ore:lease:0".into(), (1, 20));
        trail.suspects.push(suspect(1, 50, false));
        assert_eq!(doubted(&trail, None, None), ["before"]);
        // Past where the last commit ended, the damage was never flushed: reported only.
        assert!(doubted(&trail, None, Some((1, 40))).is_empty());
    }

    #[test]
    fn a_torn_newest_tail_counts_only_when_an_index_reflected_the_log_past_it() {
        let mut trail = TagTrail::default();
        trail.changes.insert("t".into(), (1, 10));
        trail.suspects.push(suspect(1, 50, true));
        assert!(doubted(&trail, None, None).is_empty());
        assert!(doubted(&trail, Some((1, 50)), None).is_empty());
        assert_eq!(doubted(&trail, Some((1, 90)), None), ["t"]);
    }

    #[test]
    fn a_damaged_header_with_a_block_key_was_not_a_tag_record() {
        let mut h = [0u8; HEADER_LEN];
        assert!(could_be_tag(None, Some(&h)));
        h[13..45].copy_from_slice(&[0xab; 32]);
        assert!(!could_be_tag(None, Some(&h)));
        assert!(could_be_tag(Some(RecordType::TagSet), Some(&h)));
        assert!(!could_be_tag(Some(RecordType::Block), None));
        assert!(could_be_tag(None, None));
    }
}
