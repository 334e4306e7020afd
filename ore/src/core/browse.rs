//! Browsing an archive tag by property: what `ore explore` and `ore mount` show under an
//! archive tag (docs/ARCHIVAL.md, "Browsing").
//!
//! ```text
//! /TAG/by-key/KEY                        every object, by its key
//! /TAG/by-PROP/VALUE/KEY                 the current objects whose PROP has VALUE
//! /TAG/by-PROP/VALUE/by-OTHER/VALUE/KEY  … narrowed by another property, and so on (the
//!                                        by-OTHER names are reached, not listed: `find` over
//!                                        by-PROP meets each object once)
//! ```
//!
//! Everything is read from the index, as it is asked for, never from a scan of the objects:
//! the properties present are found by stepping from one property's first entry to the next
//! one's, and a property's values likewise from one value to the next (each value's end is
//! known: text ends with 0x00, numbers are 8 bytes, FORMAT.md §13), so listing `by-PROP/`
//! reads one path of the index per value shown, whatever the number of objects holding it.

use crate::core::archival::{
    entry_object, format_date, prop_prefix, DATE_VALUE, INT_VALUE, OBJECTS, PROPS, TEXT_VALUE,
};
use crate::core::error::Result;
use crate::core::index::{Cursor, Entries, Root, Tree};
use crate::core::repo::Repo;
use protocol::Key;

/// The first entry at or after `from`, if any.
fn first(repo: &Repo, index: Option<&Root>, from: &[u8]) -> Result<Option<Vec<u8>>> {
    match Cursor::new(repo, index, from)?.next() {
        Some(item) => Ok(Some(item?.key)),
        None => Ok(None),
    }
}

/// The smallest key above every key that starts with `prefix`: what steps past them.
fn past(prefix: &[u8]) -> Vec<u8> {
    let mut k = prefix.to_vec();
    k.extend_from_slice(&[0xff; 40]);
    k
}

/// The properties some current object of the index has, in order.
pub fn properties(repo: &Repo, index: Option<&Root>) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut from = vec![PROPS];
    while let Some(k) = first(repo, index, &from)? {
        if k.first() != Some(&PROPS) {
            break;
        }
        let Some(end) = k.iter().skip(1).position(|&b| b == 0) else {
            // Not an entry this format makes: step past it.
            from = [&k[..], &[0]].concat();
            continue;
        };
        let name = &k[1..1 + end];
        out.push(String::from_utf8_lossy(name).into_owned());
        // The next property's entries start after every `p name 0 …`.
        from = [&[PROPS][..], name, &[1]].concat();
    }
    Ok(out)
}

/// The length of the value at the start of `v` (its type byte included), when well formed.
fn value_len(v: &[u8]) -> Option<usize> {
    match *v.first()? {
        TEXT_VALUE => v.iter().position(|&b| b == 0).map(|i| i + 1),
        INT_VALUE | DATE_VALUE if v.len() >= 9 => Some(9),
        _ => None,
    }
}

/// The values property `key` has among the current objects of the index, in order, as the
/// bytes the index keeps.
pub fn values(repo: &Repo, index: Option<&Root>, key: &str) -> Result<Vec<Vec<u8>>> {
    let prefix = prop_prefix(key, &[]);
    let mut out = Vec::new();
    let mut from = prefix.clone();
    while let Some(k) = first(repo, index, &from)? {
        let Some(rest) = k.strip_prefix(prefix.as_slice()) else {
            break;
        };
        match value_len(rest) {
            Some(n) if rest.len() == n + 32 => {
                out.push(rest[..n].to_vec());
                from = past(&k[..prefix.len() + n]);
            }
            _ => from = [&k[..], &[0]].concat(),
        }
    }
    Ok(out)
}

/// Every value property `key` has among the current objects, each with the objects that
/// hold it (in increasing order), from one pass over the property's entries: what
/// [`values`] and a [`with_value`] for each of them give, without a descent from the root
/// for each value. `each` is shown a value once its last entry is read, and ends the pass
/// by returning `false`.
pub fn holders(
    repo: &Repo,
    index: Option<&Root>,
    key: &str,
    each: &mut dyn FnMut(&[u8], Vec<Key>) -> bool,
) -> Result<()> {
    let prefix = prop_prefix(key, &[]);
    let mut value: Vec<u8> = Vec::new();
    let mut keys: Vec<Key> = Vec::new();
    for item in Cursor::new(repo, index, &prefix)? {
        let item = item?;
        let Some(rest) = item.key.strip_prefix(prefix.as_slice()) else {
            break;
        };
        // Entries this format does not make are passed over, as `values` passes them.
        let Some(n) = value_len(rest).filter(|n| rest.len() == n + 32) else {
            continue;
        };
        if rest[..n] != value[..] {
            if !keys.is_empty() && !each(&value, std::mem::take(&mut keys)) {
                return Ok(());
            }
            value = rest[..n].to_vec();
        }
        keys.extend(entry_object(&item.key));
    }
    if !keys.is_empty() {
        each(&value, keys);
    }
    Ok(())
}

/// The current objects whose property `key` has `value` (bytes as the index keeps them), in
/// increasing order: the order their entries have in the index, so no set is built.
pub fn with_value(entries: &dyn Entries, key: &str, value: &[u8]) -> Result<Vec<Key>> {
    let prefix = prop_prefix(key, value);
    let mut out = Vec::new();
    entries.prefixed(&prefix, &mut |k, _| {
        if k.len() == prefix.len() + 32 {
            out.extend(entry_object(k));
        }
    })?;
    Ok(out)
}

/// The keys both increasing lists `a` and `b` hold, in increasing order.
pub fn both(a: &[Key], b: &[Key]) -> Vec<Key> {
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while let (Some(x), Some(y)) = (a.get(i), b.get(j)) {
        match x.cmp(y) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                out.push(*x);
                (i, j) = (i + 1, j + 1);
            }
        }
    }
    out
}

/// The current objects that have every `(property, value)` of `filters`, in increasing order.
pub fn matching(
    repo: &Repo,
    index: Option<&Root>,
    filters: &[(String, Vec<u8>)],
) -> Result<Vec<Key>> {
    let mut acc: Option<Vec<Key>> = None;
    for (key, value) in filters {
        let found = with_value(&Tree::new(repo, index), key, value)?;
        acc = Some(match acc {
            None => found,
            Some(a) => both(&a, &found),
        });
    }
    Ok(acc.unwrap_or_default())
}

/// Every object of the index, replaced ones too, in key order.
pub fn every_object(repo: &Repo, index: Option<&Root>) -> Result<Vec<Key>> {
    let mut out = Vec::new();
    for item in Cursor::new(repo, index, &[OBJECTS])? {
        let item = item?;
        if item.key.first() != Some(&OBJECTS) {
            break;
        }
        out.extend(entry_object(&item.key).filter(|_| item.key.len() == 33));
    }
    Ok(out)
}

/// The longest directory name a value is shown as (file systems allow 255 bytes).
const MAX_NAME: usize = 200;

/// A value as a directory name: text as it is kept (lower case), with `%`, `/`, `'` and `…`
/// written `%25`, `%2F`, `%27` and `%E2%80%A6` (an empty text `%00`, `.` and `..` `%2E` and
/// `%2E%2E`), and
/// in single quotes when it would read as a number or a date, so that no text has the name of
/// a number (`'5'` and `5` are two values); integers in decimal; dates as `YYYY-MM-DD
/// HH:MM:SS`, UTC. A name that would pass [`MAX_NAME`] bytes is cut, and ends with `…` and
/// eight hex digits of the value's hash, so that two long values keep two names.
pub fn value_name(v: &[u8]) -> String {
    let name = plain_name(v);
    if name.len() <= MAX_NAME {
        return name;
    }
    let mut end = MAX_NAME - 12;
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    let hash = blake3::hash(v);
    format!("{}…{}", &name[..end], &hash.to_hex()[..8])
}

fn plain_name(v: &[u8]) -> String {
    match v.first() {
        Some(&TEXT_VALUE) => {
            let text = String::from_utf8_lossy(&v[1..v.len().saturating_sub(1).max(1)]);
            match text.as_ref() {
                "" => "%00".to_string(),
                "." => "%2E".to_string(),
                ".." => "%2E%2E".to_string(),
                t if t.parse::<i64>().is_ok() || crate::core::archival::parse_date(t).is_some() => {
                    format!("'{}'", t.replace('%', "%25").replace('/', "%2F"))
                }
                // `…` only ends a cut name: a text holding it never has the name of one.
                t => t
                    .replace('%', "%25")
                    .replace('/', "%2F")
                    .replace('\'', "%27")
                    .replace('…', "%E2%80%A6"),
            }
        }
        Some(&INT_VALUE) | Some(&DATE_VALUE) if v.len() == 9 => {
            let mut b = [0u8; 8];
            b.copy_from_slice(&v[1..]);
            let n = (u64::from_be_bytes(b) ^ (1 << 63)) as i64;
            match v[0] {
                INT_VALUE => n.to_string(),
                _ => format_date(n),
            }
        }
        _ => format!("%{}", hex::encode(v)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::archival::{value_bytes, Value};

    #[test]
    fn a_value_s_name_escapes_what_a_directory_name_cannot_hold_and_reads_numbers_back() {
        let name = |v: Value| value_name(&value_bytes(&v)[0]);
        assert_eq!(name(Value::Text("AC/DC 100%".into())), "ac%2Fdc 100%25");
        assert_eq!(name(Value::Text("..".into())), "%2E%2E");
        assert_eq!(name(Value::Text(String::new())), "%00");
        assert_eq!(name(Value::Int(-42)), "-42");
        assert_eq!(name(Value::Date(0)), "1970-01-01 00:00:00");
        // A text that reads as a number or a date is quoted: it is another value.
        assert_eq!(name(Value::Text("5".into())), "'5'");
        assert_eq!(
            name(Value::Text("1970-01-01 00:00:00".into())),
            "'1970-01-01 00:00:00'"
        );
        assert_eq!(name(Value::Text("it's".into())), "it%27s");
        // Long values are cut to a name a file system takes, and stay apart.
        let (a, b) = (
            name(Value::Text("%".repeat(500))),
            name(Value::Text("%".repeat(499))),
        );
        assert!(a.len() <= MAX_NAME && b.len() <= MAX_NAME, "{a}");
        assert_ne!(a, b);
        // A text that is a cut name is not given that name: two values, two names (the
        // cut one's collided with it, and its objects could not be reached).
        let cut = Value::Text("x".repeat(300));
        let lookalike = Value::Text(name(cut.clone()));
        assert!(name(cut.clone()).contains('…'));
        assert_ne!(name(lookalike), name(cut));
    }
}
