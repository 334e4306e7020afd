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

use crate::core::entry::Entry;
use crate::core::error::{Error, Result};
use crate::core::index::Root;
use protocol::Key;
use serde::{Deserialize, Serialize};

/// The format version that has archive tags.
pub const ARCHIVAL_FROM: u32 = 4;

/// A property's value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Value {
    Text(String),
    Int(i64),
    /// Seconds since the epoch, UTC (any year from -9999 to 9999: works are older than the
    /// nanosecond clock's 1677).
    Date(i64),
    List(Vec<String>),
}

/// A property's type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Type {
    Text,
    Int,
    Date,
    List,
}

impl Type {
    pub fn name(self) -> &'static str {
        match self {
            Type::Text => "text",
            Type::Int => "int",
            Type::Date => "date",
            Type::List => "list",
        }
    }

    /// Its name with its article: "an int", "a date".
    pub fn a(self) -> &'static str {
        match self {
            Type::Text => "a text",
            Type::Int => "an int",
            Type::Date => "a date",
            Type::List => "a list",
        }
    }

    /// The byte a tag's index records the type with (the `t` map).
    pub fn byte(self) -> u8 {
        match self {
            Type::Text => b't',
            Type::Int => b'i',
            Type::Date => b'd',
            Type::List => b'l',
        }
    }

    pub fn from_byte(b: u8) -> Option<Type> {
        [Type::Text, Type::Int, Type::Date, Type::List]
            .into_iter()
            .find(|t| t.byte() == b)
    }

    /// The type of `v`.
    pub fn of(v: &Value) -> Type {
        match v {
            Value::Text(_) => Type::Text,
            Value::Int(_) => Type::Int,
            Value::Date(_) => Type::Date,
            Value::List(_) => Type::List,
        }
    }

    fn parse(s: &str) -> Option<Type> {
        Some(match s {
            "text" => Type::Text,
            "int" => Type::Int,
            "date" => Type::Date,
            "list" => Type::List,
            _ => return None,
        })
    }
}

/// The fixed vocabulary, and the properties import finds itself, with their types.
pub const VOCABULARY: &[(&str, Type)] = &[
    ("title", Type::Text),
    ("creator", Type::Text),
    ("date", Type::Date),
    ("tags", Type::List),
    ("type", Type::Text),
    ("source", Type::Text),
    ("comment", Type::Text),
    ("size", Type::Int),
    ("mtime", Type::Date),
    ("name", Type::Text),
    ("camera", Type::Text),
    ("gps", Type::Text),
    ("album", Type::Text),
    ("track", Type::Int),
];

/// The type of property `key` when the vocabulary fixes it.
pub fn known_type(key: &str) -> Option<Type> {
    VOCABULARY.iter().find(|(k, _)| *k == key).map(|&(_, t)| t)
}

/// A property key, lower-cased and checked: ASCII letters, digits, `_`, `-` and `.`, 1 to
/// 64 bytes (keys are case-insensitive, and appear as directory names when browsing).
pub fn property_key(raw: &str) -> Result<String> {
    let k = raw.trim().to_ascii_lowercase();
    let ok = !k.is_empty()
        && k.len() <= 64
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b));
    match ok {
        // Browsing shows every object under `by-key/`: no property may take that name.
        true if k == "key" => Err(Error::Usage(
            "`key` is not a property name: `by-key/` lists every object when browsing".into(),
        )),
        true => Ok(k),
        false => Err(Error::Usage(format!(
            "`{raw}` is not a property name: use 1 to 64 letters, digits, `_`, `-` or `.`"
        ))),
    }
}

/// One `--set`: a property and its value, and whether the value's type was chosen by
/// default (a key outside the vocabulary given as KEY=VALUE): such a value is typed as the tag
/// records the key ([`settle`]), and is text only on a tag that has not seen the key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Setting {
    pub key: String,
    pub value: Value,
    pub by_default: bool,
}

/// Parses `--set KEY=VALUE` (or `KEY:TYPE=VALUE`, TYPE one of text, int, date, list).
pub fn parse_set(arg: &str) -> Result<Setting> {
    let Some((lhs, value)) = arg.split_once('=') else {
        return Err(Error::Usage(format!(
            "--set `{arg}`: expected KEY=VALUE (or KEY:TYPE=VALUE)"
        )));
    };
    let (key, declared) = match lhs.split_once(':') {
        Some((k, t)) => {
            let t = Type::parse(&t.trim().to_ascii_lowercase()).ok_or_else(|| {
                Error::Usage(format!(
                    "--set `{arg}`: `{t}` is not a property type (text, int, date or list)"
                ))
            })?;
            (property_key(k)?, Some(t))
        }
        None => (property_key(lhs)?, None),
    };
    let ty = match (known_type(&key), declared) {
        (Some(k), Some(d)) if k != d => {
            return Err(Error::Usage(format!(
                "--set `{arg}`: `{key}` is {} property, not {}",
                k.a(),
                d.name()
            )))
        }
        (Some(t), _) | (None, Some(t)) => t,
        (None, None) => Type::Text,
    };
    Ok(Setting {
        key: key.clone(),
        value: typed(&key, ty, value)
            .map_err(|why| Error::Usage(format!("--set `{arg}`: {why}")))?,
        by_default: known_type(&key).is_none() && declared.is_none(),
    })
}

/// The `--set` values of an import or a new version on a tag whose index records the types
/// in `recorded` (its `t` map): a value typed by default takes the recorded type, and a value
/// of another type than the one recorded is refused, naming both. The tag records each key's
/// type the first time an object with it is filed ([`type_entries`]), so one key never holds
/// two types on one tag.
pub fn settle(
    set: &[Setting],
    tag: &str,
    recorded: &std::collections::HashMap<String, Type>,
) -> Result<Vec<(String, Value)>> {
    let mut out = Vec::with_capacity(set.len());
    for s in set {
        let value = match (recorded.get(&s.key), &s.value) {
            (Some(&ty), Value::Text(raw)) if s.by_default && ty != Type::Text => {
                typed(&s.key, ty, raw).map_err(|why| {
                    Error::Usage(format!("--set {}: {why} on archive tag {tag}", s.key))
                })?
            }
            (Some(&ty), v) if Type::of(v) != ty => {
                return Err(Error::Usage(format!(
                    "--set {}: `{}` is {} property on archive tag {tag}, not {}",
                    s.key,
                    s.key,
                    ty.a(),
                    Type::of(v).name()
                )))
            }
            (_, v) => v.clone(),
        };
        out.push((s.key.clone(), value));
    }
    Ok(out)
}

/// The `t` entry that records property `key`'s type on a tag.
pub fn type_entry(key: &str) -> Vec<u8> {
    [&[TYPES][..], key.as_bytes()].concat()
}

/// The types of the properties of `objects` that the vocabulary does not fix, once each;
/// an error when two of them give one key two types.
pub fn type_entries<'a>(
    objects: impl Iterator<Item = &'a Object>,
) -> Result<std::collections::BTreeMap<String, Type>> {
    let mut out = std::collections::BTreeMap::new();
    for p in objects.flat_map(|o| &o.props) {
        if known_type(&p.key).is_some() {
            continue;
        }
        let ty = Type::of(&p.value);
        if let Some(other) = out.insert(p.key.clone(), ty).filter(|&t| t != ty) {
            return Err(Error::Usage(format!(
                "`{}` is given as {} and as {} by the objects of one import",
                p.key,
                other.name(),
                ty.name()
            )));
        }
    }
    Ok(out)
}

/// `text` as a value of type `ty` for property `key`.
pub fn typed(key: &str, ty: Type, text: &str) -> std::result::Result<Value, String> {
    if text.contains('\0') {
        return Err(format!("a value of `{key}` holds a NUL byte"));
    }
    if text.len() > MAX_VALUE {
        return Err(format!(
            "a value of `{key}` of {} bytes: at most {MAX_VALUE}",
            text.len()
        ));
    }
    Ok(match ty {
        Type::Text => Value::Text(text.to_string()),
        Type::Int => Value::Int(text.trim().parse().map_err(|_| format!("`{text}` is not an integer (`{key}` is int)"))?),
        Type::Date => Value::Date(parse_date(text).ok_or_else(|| {
            format!("`{text}` is not a date (YYYY-MM-DD, or YYYY-MM-DDTHH:MM[:SS], UTC; `{key}` is a date)")
        })?),
        Type::List => Value::List(
            text.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect(),
        ),
    })
}

/// Seconds since the epoch of `YYYY-MM-DD` (its first second) or `YYYY-MM-DD[T ]HH:MM[:SS]`,
/// UTC; `jiff` checks the calendar.
pub fn parse_date(text: &str) -> Option<i64> {
    let t = text.trim();
    let t = t.strip_suffix('Z').unwrap_or(t);
    // A year before 0 is written `-YYYY`; jiff reads signed years with six digits.
    let wide;
    let t = match t.strip_prefix('-') {
        Some(rest) if rest.len() >= 4 && rest.as_bytes()[4..].first() == Some(&b'-') => {
            wide = format!("-00{rest}");
            wide.as_str()
        }
        _ => t,
    };
    let at: jiff::civil::DateTime = match t.find(['T', ' ']) {
        None => t.parse::<jiff::civil::Date>().ok()?.at(0, 0, 0, 0),
        Some(i) => {
            let time = &t[i + 1..];
            if !(2..=3).contains(&time.split(':').count()) || time.contains(['.', ',']) {
                return None;
            }
            t[..i]
                .parse::<jiff::civil::Date>()
                .ok()?
                .to_datetime(time.parse().ok()?)
        }
    };
    if !(-9999..=9999).contains(&at.year()) {
        return None;
    }
    // Civil arithmetic, not a timestamp: jiff's timestamps stop a day short of either end
    // of the years a date may have.
    Some(at.duration_since(EPOCH).as_secs())
}

/// 1970-01-01T00:00:00, the zero of a date's seconds.
const EPOCH: jiff::civil::DateTime = jiff::civil::DateTime::constant(1970, 1, 1, 0, 0, 0, 0);

/// A date as `YYYY-MM-DD HH:MM:SS` (a year before 0 as `-YYYY`), UTC.
pub fn format_date(secs: i64) -> String {
    match EPOCH.checked_add(jiff::SignedDuration::from_secs(secs)) {
        Ok(t) => {
            let year = match t.year() {
                y if y < 0 => format!("-{:04}", -y),
                y => format!("{y:04}"),
            };
            format!("{year}-{}", t.strftime("%m-%d %H:%M:%S"))
        }
        Err(_) => secs.to_string(),
    }
}

/// The longest value a property may be given.
pub const MAX_VALUE: usize = 4096;

/// A property of an object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prop {
    pub key: String,
    pub value: Value,
}

/// An archive object (kind 10).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Object {
    /// The imported tree's root entry, as a snapshot's.
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

impl Object {
    /// Property `key`.
    pub fn prop(&self, key: &str) -> Option<&Value> {
        self.props.iter().find(|p| p.key == key).map(|p| &p.value)
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_of_every_year_from_minus_9999_to_9999_read_and_show_back() {
        for text in [
            "-9999-01-01",
            "-0500-03-01",
            "0000-01-01",
            "0800-01-01",
            "1969-12-31",
            "2019-07-01",
            "9999-12-31",
        ] {
            let secs = parse_date(text).unwrap_or_else(|| panic!("{text} is a date"));
            assert_eq!(format_date(secs), format!("{text} 00:00:00"));
        }
        assert_eq!(parse_date("1970-01-01T00:01"), Some(60));
        assert_eq!(parse_date("2019-01-01 10:00:00Z"), Some(1_546_336_800));
        for bad in [
            "10000-01-01",
            "-10000-01-01",
            "2019-02-30",
            "-05-03-01",
            "2019-01-01T10",
        ] {
            assert_eq!(parse_date(bad), None, "{bad}");
        }
        assert!(parse_date("-0500-03-01") < parse_date("0000-01-01"));
    }
}
