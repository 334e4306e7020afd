//! Property values and their types: the fixed vocabulary, `--set` and how a tag records the
//! type of a key outside it, and dates from the year -9999 to 9999 (docs/ARCHIVAL.md, "Typed
//! values").

use super::{Object, TYPES};
use crate::core::error::{Error, Result};
use serde::{Deserialize, Serialize};

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
    let mut noted = std::collections::HashSet::new();
    for s in set {
        if known_type(&s.key).is_none() && !recorded.contains_key(&s.key) && noted.insert(&s.key) {
            new_key(&s.key, tag, recorded);
        }
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

/// Says that `key` is new on archive tag `tag` (neither in the vocabulary nor among the keys
/// `recorded` there), and which known key it may be a misspelling of: a `--set titel=…`
/// would otherwise file a property no `title` search finds, silently.
fn new_key(key: &str, tag: &str, recorded: &std::collections::HashMap<String, Type>) {
    // Of keys as near, the vocabulary's first: a misspelling the tag has recorded already is
    // no better a guess than the word it misspells.
    let known =
        (VOCABULARY.iter().map(|(k, _)| (0, *k))).chain(recorded.keys().map(|k| (1, k.as_str())));
    let near = known
        .map(|(rank, k)| (strsim::damerau_levenshtein(key, k), rank, k))
        .filter(|&(d, _, k)| d <= 2 && d < k.len())
        .min();
    let hint = match near {
        Some((_, _, k)) => format!(" (did you mean `{k}`?)"),
        None => String::new(),
    };
    protocol::log::info(&format!(
        "`{key}` is a new property key on archive tag {tag}{hint}"
    ));
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
                "`{}` is given as {} and as {} by objects filed together (one import or load)",
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
