//! Labels: `key=value` pairs a user keeps with a snapshot (`ore snapshot --label env=prod`),
//! shown by `ore snapshots` and `ore log` and matched by `ore snapshots --label`.
//!
//! They are the snapshot block's one optional field, after all the others (FORMAT.md §6):
//! written only when there are labels, so a snapshot without them encodes byte for byte as
//! before labels existed (its key unchanged), and read as absent when the block ends before
//! them — which is how every snapshot made before them reads. An older `ore` reading a
//! labelled snapshot decodes the fields it knows and leaves the rest (postcard reads a value
//! from the front of its bytes). This is why [`Snapshot`]'s encoding is written by hand here
//! instead of derived.

use crate::core::entry::{Snapshot, SnapshotStats, Warning};
use crate::core::error::{Error, Result};
use protocol::Key;
use serde::de::{self, SeqAccess, Visitor};
use serde::ser::SerializeStruct;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One label.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Label {
    pub key: String,
    pub value: String,
}

/// Most labels on one snapshot, and the longest key and value.
pub const MAX_LABELS: usize = 64;
pub const MAX_KEY: usize = 64;
pub const MAX_VALUE: usize = 1024;

/// Parses `KEY=VALUE`: a key of letters, digits, `_`, `.` and `-`, and a value without
/// control characters.
pub fn parse(s: &str) -> Result<Label> {
    let bad = |why: &str| Error::Usage(format!("--label {s:?}: {why}"));
    let (key, value) = s.split_once('=').ok_or_else(|| bad("not KEY=VALUE"))?;
    if key.is_empty() || key.len() > MAX_KEY {
        return Err(bad(&format!("the key must be 1 to {MAX_KEY} bytes")));
    }
    if !key
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
    {
        return Err(bad(
            "the key may hold letters, digits, `_`, `.` and `-` only",
        ));
    }
    if value.len() > MAX_VALUE || value.chars().any(char::is_control) {
        return Err(bad(&format!(
            "the value must be at most {MAX_VALUE} bytes, without control characters"
        )));
    }
    Ok(Label {
        key: key.into(),
        value: value.into(),
    })
}

/// Checks a set of labels: at most [`MAX_LABELS`], each key once.
pub fn check(labels: &[Label]) -> Result<()> {
    if labels.len() > MAX_LABELS {
        return Err(Error::Usage(format!("at most {MAX_LABELS} labels")));
    }
    for (i, l) in labels.iter().enumerate() {
        if labels[..i].iter().any(|o| o.key == l.key) {
            return Err(Error::Usage(format!("--label {}: given twice", l.key)));
        }
    }
    Ok(())
}

/// `k=v,k2=v2`, for a listing.
pub fn shown(labels: &[Label]) -> String {
    labels
        .iter()
        .map(|l| format!("{}={}", l.key, l.value))
        .collect::<Vec<_>>()
        .join(",")
}

const FIELDS: &[&str] = &[
    "previous",
    "root",
    "time",
    "host",
    "user",
    "tag",
    "paths",
    "comment",
    "stats",
    "warnings",
    "warnings_total",
    "labels",
];

impl Serialize for Snapshot {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let n = FIELDS.len() - usize::from(self.labels.is_empty());
        let mut st = s.serialize_struct("Snapshot", n)?;
        st.serialize_field("previous", &self.previous)?;
        st.serialize_field("root", &self.root)?;
        st.serialize_field("time", &self.time)?;
        st.serialize_field("host", &self.host)?;
        st.serialize_field("user", &self.user)?;
        st.serialize_field("tag", &self.tag)?;
        st.serialize_field("paths", &self.paths)?;
        st.serialize_field("comment", &self.comment)?;
        st.serialize_field("stats", &self.stats)?;
        st.serialize_field("warnings", &self.warnings)?;
        st.serialize_field("warnings_total", &self.warnings_total)?;
        if !self.labels.is_empty() {
            st.serialize_field("labels", &self.labels)?;
        }
        st.end()
    }
}

impl<'de> Deserialize<'de> for Snapshot {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Snapshot, D::Error> {
        d.deserialize_struct("Snapshot", FIELDS, SnapshotVisitor)
    }
}

struct SnapshotVisitor;

impl<'de> Visitor<'de> for SnapshotVisitor {
    type Value = Snapshot;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a snapshot block")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<Snapshot, A::Error> {
        fn next<'de, T: Deserialize<'de>, A: SeqAccess<'de>>(
            seq: &mut A,
            i: usize,
        ) -> std::result::Result<T, A::Error> {
            seq.next_element()?
                .ok_or_else(|| de::Error::invalid_length(i, &"a snapshot's fields"))
        }
        let previous: Vec<Key> = next(&mut seq, 0)?;
        let root = next(&mut seq, 1)?;
        let time = next(&mut seq, 2)?;
        let host = next(&mut seq, 3)?;
        let user = next(&mut seq, 4)?;
        let tag = next(&mut seq, 5)?;
        let paths = next(&mut seq, 6)?;
        let comment = next(&mut seq, 7)?;
        let stats: SnapshotStats = next(&mut seq, 8)?;
        let warnings: Vec<Warning> = next(&mut seq, 9)?;
        let warnings_total = next(&mut seq, 10)?;
        // Absent from every snapshot made before labels: the block ends here.
        let labels = seq.next_element().ok().flatten().unwrap_or_default();
        Ok(Snapshot {
            previous,
            root,
            time,
            host,
            user,
            tag,
            paths,
            comment,
            stats,
            warnings,
            warnings_total,
            labels,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::entry::{decode, encode, Entry, EntryKind};

    /// The snapshot block as it was before labels, for comparison.
    #[derive(Serialize, Deserialize)]
    struct Before {
        previous: Vec<Key>,
        root: Entry,
        time: i64,
        host: String,
        user: String,
        tag: String,
        paths: Vec<serde_bytes::ByteBuf>,
        comment: String,
        stats: SnapshotStats,
        warnings: Vec<Warning>,
        warnings_total: u64,
    }

    fn snapshot(labels: Vec<Label>) -> Snapshot {
        Snapshot {
            previous: vec![Key([7; 32])],
            root: Entry {
                name: Vec::new(),
                kind: EntryKind::Dir { tree: Key([1; 32]) },
                mode: 0o755,
                uid: 0,
                gid: 0,
                user: None,
                group: None,
                mtime: 5,
                atime: None,
                ctime: None,
                xattrs: Vec::new(),
            },
            time: 42,
            host: "h".into(),
            user: "u".into(),
            tag: "t".into(),
            paths: vec![serde_bytes::ByteBuf::from(b"/x".to_vec())],
            comment: "c".into(),
            stats: SnapshotStats::default(),
            warnings: Vec::new(),
            warnings_total: 0,
            labels,
        }
    }

    fn before(s: &Snapshot) -> Before {
        Before {
            previous: s.previous.clone(),
            root: s.root.clone(),
            time: s.time,
            host: s.host.clone(),
            user: s.user.clone(),
            tag: s.tag.clone(),
            paths: s.paths.clone(),
            comment: s.comment.clone(),
            stats: s.stats.clone(),
            warnings: s.warnings.clone(),
            warnings_total: s.warnings_total,
        }
    }

    #[test]
    fn a_snapshot_without_labels_encodes_as_before_labels_existed_and_reads_back() {
        let s = snapshot(Vec::new());
        let old = encode(&before(&s));
        assert_eq!(encode(&s), old, "the same bytes, so the same key");
        let back: Snapshot = decode(&old, &Key([0; 32]), crate::core::block::Kind::Snapshot)
            .expect("an old block decodes");
        assert_eq!(back, s);
    }

    #[test]
    fn labels_round_trip_and_an_older_reader_reads_the_rest() {
        let s = snapshot(vec![parse("env=prod").unwrap(), parse("team=a b").unwrap()]);
        let bytes = encode(&s);
        let back: Snapshot =
            decode(&bytes, &Key([0; 32]), crate::core::block::Kind::Snapshot).expect("decodes");
        assert_eq!(back.labels, s.labels);
        let old: Before = postcard::from_bytes(&bytes).expect("an older reader decodes it");
        assert_eq!(old.comment, "c");
    }

    #[test]
    fn a_bad_label_is_named() {
        for bad in ["novalue", "=v", "k y=v", "k=\u{7}"] {
            let e = parse(bad).unwrap_err().to_string();
            assert!(e.contains("--label"), "{bad}: {e}");
        }
        let twice = [parse("a=1").unwrap(), parse("a=2").unwrap()];
        assert!(check(&twice)
            .unwrap_err()
            .to_string()
            .contains("given twice"));
    }
}
