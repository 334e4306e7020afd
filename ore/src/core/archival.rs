//! Archival mode's blocks (format 4): archive objects, the heads archive tags name, typed
//! properties, and how an object is filed in its tag's index ([`crate::core::index`]).
//!
//! A snapshot tag names a chain of snapshots; an archive tag names a [`Head`], whose index
//! holds every object imported on the tag. The index is one sorted map, and each entry's
//! first byte says which of its maps it belongs to (docs/ARCHIVAL.md):
//!
//! - `o` + object key → the object's [`Summary`] (title, date, type, size, replaced);
//! - `p` + property + 0 + value + object key → nothing: one per property value of a current
//!   object, values encoded so that byte order is the value's order ([`value_bytes`]);
//! - `w` + property + 0 + word + 0 + object key → nothing: one per word of a text property;
//! - `f` and `n`: an object's files by content id and by name ([`crate::core::filelist`]);
//! - `t` + property → its type, for a key outside the vocabulary, recorded once per tag.
//!
//! So an equality is a scan of one prefix, a range a scan between two keys, and a word a scan
//! of words that start with it; each gives object keys in order, ready to be merged.

use crate::core::entry::{Entry, EntryKind};
use crate::core::index::Root;
use protocol::Key;
use serde::{Deserialize, Serialize};

/// The format version that has archive tags.
pub const ARCHIVAL_FROM: u32 = 4;
/// The format version whose objects list their files and may be catalogues, whose files may
/// be catalogued (`Content::Catalogued`), and whose indexes have the `t`, `f` and `n` maps:
/// what every change to an archive tag writes since. An archive of format 4 is read as it
/// is (its objects list no files, [`object_de`]) and must be upgraded before it is changed.
pub const LISTS_FROM: u32 = 5;
/// The format version whose objects of one file (`--each`) may have the file itself as their
/// root, read as a nameless directory holding it whose block is implied, never stored
/// ([`Object::tree`]). An ore that reads only format 5 would take such a file's data for
/// garbage, so an archive of format 5 gets that directory stored, as before.
pub const FILE_ROOTS_FROM: u32 = 6;

/// Refuses to change an archive tag of `repo` while its format is older than [`LISTS_FROM`]:
/// an ore that reads only format 4 would misread what this one writes (an object's file
/// list would be garbage to its gc).
pub fn check_writable(repo: &crate::core::repo::Repo) -> crate::core::error::Result<()> {
    let f = repo.format().format;
    match f < LISTS_FROM {
        true => Err(crate::core::error::Error::Usage(format!(
            "this archive has format {f}, and archive tags are written in format {LISTS_FROM}: \
             run `ore upgrade` (ore releases before it then refuse the archive)"
        ))),
        false => Ok(()),
    }
}

mod values;
pub use values::*;

/// A property of an object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prop {
    pub key: String,
    pub value: Value,
}

/// An archive object (kind 10). Read by [`object_de`]: an object of format 4 ends after
/// `size`, and reads as one without files or catalogue.
#[derive(Clone, Debug, Serialize)]
pub struct Object {
    /// The imported tree's root entry, as a snapshot's; for an object of one file made by
    /// `--each`, the file's own entry (read as a nameless directory holding it:
    /// [`Object::tree`]).
    pub root: Entry,
    /// Sorted by key, one per key.
    pub props: Vec<Prop>,
    pub imported_ns: i64,
    pub host: String,
    pub user: String,
    /// The path it was imported from.
    #[serde(with = "serde_bytes")]
    pub source: Vec<u8>,
    /// The object this one replaces.
    pub parent: Option<Key>,
    /// Bytes of file data in the tree.
    pub size: u64,
    /// Its regular files by content id and path (the index's `f` and `n` maps).
    pub files: crate::core::filelist::Files,
    /// A catalogue object: the tree's names, metadata and content ids were recorded, its
    /// data was not stored; this is the volume it was on.
    pub catalogue: Option<crate::core::volume::Volume>,
}

impl<'de> Deserialize<'de> for Object {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Object, D::Error> {
        object_de::read(d)
    }
}

mod object_de;

impl Object {
    /// Property `key`.
    pub fn prop(&self, key: &str) -> Option<&Value> {
        self.props.iter().find(|p| p.key == key).map(|p| &p.value)
    }

    /// Whether it is an object of one file: its root is the file itself (`--each`), or the
    /// nameless directory made around a file PATH (or around a file by `--each` before
    /// objects held the file itself).
    pub fn one_file(&self) -> bool {
        self.root.name.is_empty() || !matches!(self.root.kind, EntryKind::Dir { .. })
    }

    /// Its tree as a directory, as every reader of a tree takes it: its root, or for an
    /// object whose root is one file, the directory [`around`] it, whose block is implied,
    /// never stored (`core::implied`).
    pub fn tree(&self, repo: &crate::core::repo::Repo) -> crate::core::error::Result<Entry> {
        if matches!(self.root.kind, EntryKind::Dir { .. }) {
            return Ok(self.root.clone());
        }
        let (leaf, made) = around(&self.root);
        Ok(made(repo.imply(crate::core::block::Kind::Dir, &leaf)?))
    }
}

/// The nameless directory made around entry `e`, holding just it, with its owner and times
/// and mode 0755: the plaintext of the directory's one block, and the directory's entry
/// given that block's key.
pub fn around(e: &Entry) -> (Vec<u8>, impl FnOnce(Key) -> Entry + '_) {
    let leaf = crate::core::entry::encode(&std::slice::from_ref(e));
    (leaf, move |tree| Entry {
        name: Vec::new(),
        kind: EntryKind::Dir { tree },
        mode: 0o755,
        xattrs: Vec::new(),
        ..e.clone()
    })
}

/// What the index keeps of each object for listings (the `o` map).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub title: String,
    pub date: Option<i64>,
    pub kind: String,
    pub size: u64,
    /// Replaced by a newer object: listed by key, found by no search.
    pub replaced: bool,
}

impl Summary {
    pub fn of(o: &Object) -> Summary {
        let text = |k| match o.prop(k) {
            Some(Value::Text(t)) => t.clone(),
            _ => String::new(),
        };
        Summary {
            title: text("title"),
            date: match o.prop("date").or(o.prop("mtime")) {
                Some(Value::Date(d)) => Some(*d),
                _ => None,
            },
            kind: text("type"),
            size: o.size,
            replaced: false,
        }
    }
}

/// What an archive tag names (kind 13).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    /// The index (`None`: no object yet).
    pub index: Option<Root>,
    /// Objects listed (replaced ones included).
    pub objects: u64,
    /// Objects not replaced.
    pub current: u64,
    /// The head this one followed, as links chain snapshots.
    pub previous: Option<Key>,
    pub made_ns: i64,
}

/// Map bytes.
pub const OBJECTS: u8 = b'o';
pub const PROPS: u8 = b'p';
pub const WORDS: u8 = b'w';
/// Property key → its type's byte, for keys outside the vocabulary: recorded by the first
/// object filed with the key.
pub const TYPES: u8 = b't';

/// The byte a value's entry starts with: its type, so that values of one property of
/// different types (a key outside the vocabulary may hold text on one object and a number on
/// another) sort apart and a range scans only its own type.
pub const TEXT_VALUE: u8 = b't';
pub const INT_VALUE: u8 = b'i';
pub const DATE_VALUE: u8 = b'd';

/// Order-preserving bytes of one value of a property (a list gives one per element): its type
/// byte, then text lower-cased and ended by 0x00 (which no text holds, so one value never
/// runs into another and a listing can step from one value to the next), or an integer or
/// date as 8 bytes big-endian with the sign bit flipped, so byte order is numeric order.
pub fn value_bytes(v: &Value) -> Vec<Vec<u8>> {
    let text = |t: &str| [&[TEXT_VALUE][..], t.to_lowercase().as_bytes(), &[0]].concat();
    let number = |ty: u8, n: i64| [&[ty][..], &((n as u64) ^ (1 << 63)).to_be_bytes()].concat();
    match v {
        Value::Text(t) => vec![text(t)],
        Value::Int(n) => vec![number(INT_VALUE, *n)],
        Value::Date(n) => vec![number(DATE_VALUE, *n)],
        Value::List(l) => l.iter().map(|t| text(t)).collect(),
    }
}

/// The words of a text, lower-cased: runs of letters and digits.
pub fn words(text: &str) -> Vec<String> {
    let mut w: Vec<String> = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|s| !s.is_empty())
        .map(str::to_lowercase)
        .collect();
    w.sort();
    w.dedup();
    w
}

/// The prefix of `p` entries of property `key` with value bytes `value`.
pub fn prop_prefix(key: &str, value: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(key.len() + value.len() + 2);
    k.push(PROPS);
    k.extend_from_slice(key.as_bytes());
    k.push(0);
    k.extend_from_slice(value);
    k
}

/// The prefix of `w` entries of property `key` (a word follows).
pub fn word_prefix(key: &str) -> Vec<u8> {
    let mut k = vec![WORDS];
    k.extend_from_slice(key.as_bytes());
    k.push(0);
    k
}

/// The `o` entry's key of object `key`.
pub fn object_entry(key: &Key) -> Vec<u8> {
    let mut k = vec![OBJECTS];
    k.extend_from_slice(&key.0);
    k
}

/// The longest value a `p` entry is made for: a longer one is found by its words only.
pub const MAX_INDEXED_VALUE: usize = 512;
/// The longest word a `w` entry is made for.
pub const MAX_INDEXED_WORD: usize = 128;

/// The `p` and `w` entries that find object `key` (values are empty). Values and words past
/// [`MAX_INDEXED_VALUE`] and [`MAX_INDEXED_WORD`] bytes are left out, so that every entry fits
/// the index's bounds whatever a file's tags hold; the object keeps them whole.
pub fn search_entries(key: &Key, o: &Object) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for p in &o.props {
        for v in value_bytes(&p.value)
            .into_iter()
            .filter(|v| v.len() <= MAX_INDEXED_VALUE)
        {
            let mut e = prop_prefix(&p.key, &v);
            e.extend_from_slice(&key.0);
            out.push(e);
        }
        let text = match &p.value {
            Value::Text(t) => t.clone(),
            Value::List(l) => l.join(" "),
            _ => continue,
        };
        for w in words(&text)
            .into_iter()
            .filter(|w| w.len() <= MAX_INDEXED_WORD)
        {
            let mut e = word_prefix(&p.key);
            e.extend_from_slice(w.as_bytes());
            e.push(0);
            e.extend_from_slice(&key.0);
            out.push(e);
        }
    }
    out
}

/// The object key at the end of a `p` or `w` entry, or after an `o` entry's map byte.
pub fn entry_object(entry: &[u8]) -> Option<Key> {
    let tail = match entry.first() {
        Some(&OBJECTS) => entry.get(1..)?,
        _ => entry.get(entry.len().checked_sub(32)?..)?,
    };
    <[u8; 32]>::try_from(tail).ok().map(Key)
}
