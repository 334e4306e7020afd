//! `ore search TAG QUERY`: the objects of an archive tag whose properties match a query
//! (`core::query`), answered from the tag's index in the archive.
//!
//! Each term is one scan of the index: an equality or a list member (`:`) a scan of the
//! entries that start with the property and the value, a comparison a scan of the
//! property's entries, and `~` a scan of the property's words that start with each word
//! given (every word must match). The object keys they give are combined by `and`, `or` and
//! `not` as sets; `not` and `!=` take what they exclude from the objects not replaced.
//!
//! An `and` is the exception, because one broad term would make it read most of the index:
//! its equalities are scanned first, and once fewer than [`CHECK_FEWER_THAN`] objects are
//! left, its other terms are checked on each of those objects' own blocks, by the same rules
//! the index is built by ([`check`]). On a million objects, `creator=… and date>=1950-01-01
//! and tags:t7` went from 1.09 s (the date range read every date entry) to 0.09 s.
//!
//! A property the vocabulary does not type is searched as the type its tag records for it
//! (the `t` map, set by the first object filed with the key); on a tag that has not seen the
//! key, as every type its value can be read as.

use crate::commands::import::head_of;
use crate::core::archival::{
    known_type, object_entry, prop_prefix, property_key, typed, value_bytes, word_prefix, words,
    Object, Summary, Type, Value, MAX_INDEXED_VALUE, MAX_INDEXED_WORD, OBJECTS,
};
use crate::core::block::Kind;
use crate::core::error::{Error, Result};
use crate::core::index::{Entries, Root, Tree};
use crate::core::query::{Op, Query, Term};
use crate::core::repo::Repo;
use protocol::Key;
use std::collections::BTreeSet;

/// One object found.
#[derive(Clone, Debug)]
pub struct Hit {
    pub key: Key,
    pub summary: Summary,
}

/// The objects on archive tag `tag` that match `query`, in key order, answered from the
/// tag's index in the archive, or from a local copy of it in the search cache of directory
/// `cache` (`core::searchcache`), first brought to the tag's head.
pub fn search(
    repo: &Repo,
    tag: &str,
    query: &Query,
    cache: Option<&std::path::Path>,
) -> Result<Vec<Hit>> {
    let Some((_, head)) = head_of(repo, tag)? else {
        return Err(Error::Usage(format!("there is no archive tag {tag}")));
    };
    let index = head.index.as_ref();
    match cache {
        None => search_in(repo, index, query),
        Some(dir) => {
            use crate::core::searchcache::{cache_path, SearchCache};
            let id = &repo.format().archive_id;
            let copy = SearchCache::open(&cache_path(dir, id), id)
                .and_then(|c| c.refresh(repo, tag, index));
            match copy {
                Ok((copy, how)) => {
                    protocol::log::debug(&format!("the search cache of {tag}: {how}"));
                    search_with(repo, &copy, query)
                }
                // A cache that cannot be written or read (a full or read-only disk) only
                // makes the search slower.
                Err(e @ (Error::Cache { .. } | Error::Io { .. })) => {
                    protocol::log::warning(&format!(
                        "the search cache: {e}; searching the archive's index instead"
                    ));
                    search_in(repo, index, query)
                }
                Err(e) => Err(e),
            }
        }
    }
}

/// The objects on the index at `index` that match `query`, in key order: from the archive
/// alone, as what forgets objects must be.
pub fn search_in(repo: &Repo, index: Option<&Root>, query: &Query) -> Result<Vec<Hit>> {
    search_with(repo, &Tree::new(repo, index), query)
}

/// The objects of the map `entries` (an index, or a copy of one) that match `query`, in key
/// order.
pub fn search_with(repo: &Repo, entries: &dyn Entries, query: &Query) -> Result<Vec<Hit>> {
    let types = crate::core::objects::recorded_types(entries)?;
    let s = Searcher {
        repo,
        entries,
        types: &types,
    };
    // Every term is read first, so that a bad one is refused whatever the others find.
    validate(query, &types)?;
    let keys: Vec<Key> = s.eval(query)?.into_iter().collect();
    // One look-up of each object's summary (in an index, a leaf read apiece).
    let wanted: Vec<Vec<u8>> = keys.iter().map(object_entry).collect();
    let found = entries.get_many(&wanted)?;
    keys.into_iter()
        .zip(found)
        .map(|(key, value)| {
            let summary = match value {
                Some(v) => crate::core::entry::decode(&v, &key, Kind::IndexLeaf)?,
                None => Summary::default(),
            };
            Ok(Hit { key, summary })
        })
        .collect()
}

/// Below this many objects left by an `and`'s first terms, the rest are checked on each
/// object's own block (one read each) rather than by a scan of the index each.
const CHECK_FEWER_THAN: usize = 2048;

struct Searcher<'r> {
    repo: &'r Repo,
    entries: &'r dyn Entries,
    /// The types the tag records for keys outside the vocabulary.
    types: &'r Types,
}

/// Property key → the type its tag records.
type Types = std::collections::HashMap<String, Type>;

impl Searcher<'_> {
    fn eval(&self, q: &Query) -> Result<BTreeSet<Key>> {
        Ok(match q {
            Query::All => self.current()?,
            Query::Term(t) => self.term(t)?,
            Query::And(qs) => {
                // Equalities first (one short scan each), then: while the objects left are
                // many, the next term's scan; once they are few, each is checked against the
                // rest by its own properties (a range over a million dates would read every
                // date entry to keep a few dozen objects).
                let mut order: Vec<&Query> = qs.iter().collect();
                order.sort_by_key(
                    |q| !matches!(q, Query::Term(t) if matches!(t.op, Op::Eq | Op::Has)),
                );
                let mut acc: Option<BTreeSet<Key>> = None;
                for (i, q) in order.iter().enumerate() {
                    match &mut acc {
                        Some(a) if a.len() <= CHECK_FEWER_THAN => {
                            let rest =
                                Query::And(order[i..].iter().map(|q| (*q).clone()).collect());
                            let mut kept = BTreeSet::new();
                            for k in std::mem::take(a) {
                                let o: Object = self.repo.get(k, Kind::Object)?;
                                if check(&o, &rest, self.types)? {
                                    kept.insert(k);
                                }
                            }
                            return Ok(kept);
                        }
                        Some(a) => {
                            let s = self.eval(q)?;
                            a.retain(|k| s.contains(k));
                        }
                        None => acc = Some(self.eval(q)?),
                    }
                }
                acc.unwrap_or_default()
            }
            Query::Or(qs) => {
                let mut acc = BTreeSet::new();
                for q in qs {
                    acc.extend(self.eval(q)?);
                }
                acc
            }
            Query::Not(q) => {
                let not = self.eval(q)?;
                let mut all = self.current()?;
                all.retain(|k| !not.contains(k));
                all
            }
        })
    }

    /// Every entry whose key starts with `prefix`, from `from` on (at least `prefix`).
    fn scan(&self, prefix: &[u8], mut each: impl FnMut(&[u8], &[u8])) -> Result<()> {
        self.entries.prefixed(prefix, &mut each)
    }

    /// The objects not replaced.
    fn current(&self) -> Result<BTreeSet<Key>> {
        let mut out = BTreeSet::new();
        let mut bad = None;
        self.scan(&[OBJECTS], |k, v| {
            let key = crate::core::archival::entry_object(k);
            match (key, postcard::from_bytes::<Summary>(v)) {
                (Some(key), Ok(s)) if !s.replaced => {
                    out.insert(key);
                }
                (Some(_), Ok(_)) => {}
                _ => bad = Some(hex::encode(k)),
            }
        })?;
        match bad {
            Some(k) => Err(Error::Archive(format!(
                "the index's object entry {k} does not decode: run `ore check`"
            ))),
            None => Ok(out),
        }
    }

    fn term(&self, t: &Term) -> Result<BTreeSet<Key>> {
        let at = |why: String| Error::Usage(format!("query: at {}: {why}", t.at));
        let key = property_key(&t.key).map_err(|e| at(e.to_string()))?;
        if t.op == Op::Words {
            return self.words(&key, &t.value).map_err(|e| match e {
                Error::Usage(why) => Error::Usage(format!("query: at {}: {why}", t.value_at)),
                e => e,
            });
        }
        let values = bounds(t, &key, self.types)?;
        let mut out = BTreeSet::new();
        match t.op {
            Op::Eq | Op::Has | Op::Ne => {
                for (_, v) in &values {
                    out.extend(crate::core::browse::with_value(self.entries, &key, v)?);
                }
                if t.op == Op::Ne {
                    let mut all = self.current()?;
                    all.retain(|k| !out.contains(k));
                    return Ok(all);
                }
            }
            Op::Lt | Op::Le | Op::Gt | Op::Ge => {
                // Only values of the type the bound has: its first byte.
                let (ty, v) = &values[0];
                let prefix = prop_prefix(&key, &v[..1]);
                let at = prefix.len() - 1;
                let numeric = matches!(ty, Type::Int | Type::Date);
                self.scan(&prefix, |k, _| {
                    let Some(value) = k.get(at..k.len().saturating_sub(32)) else {
                        return;
                    };
                    // A number is its type byte and 8 bytes; anything else is not compared.
                    if numeric && value.len() != 9 {
                        return;
                    }
                    let o = value.cmp(v.as_slice());
                    let hit = match t.op {
                        Op::Lt => o.is_lt(),
                        Op::Le => o.is_le(),
                        Op::Gt => o.is_gt(),
                        _ => o.is_ge(),
                    };
                    if hit {
                        out.extend(crate::core::archival::entry_object(k));
                    }
                })?;
            }
            Op::Words => unreachable!("answered above"),
        }
        Ok(out)
    }

    /// Objects whose property `key` has, for each word of `text`, a word that starts with it.
    fn words(&self, key: &str, text: &str) -> Result<BTreeSet<Key>> {
        let wanted = words(text);
        if wanted.is_empty() {
            return Err(Error::Usage(format!("`{text}` has no word to look for")));
        }
        let mut acc: Option<BTreeSet<Key>> = None;
        for w in wanted {
            let mut prefix = word_prefix(key);
            prefix.extend_from_slice(w.as_bytes());
            let mut found = BTreeSet::new();
            self.scan(&prefix, |k, _| {
                found.extend(crate::core::archival::entry_object(k));
            })?;
            acc = Some(match acc {
                None => found,
                Some(a) => a.intersection(&found).copied().collect(),
            });
        }
        Ok(acc.unwrap_or_default())
    }
}

/// The values term `t` (on property `key`) compares with, each with its type, as the index
/// keeps them: for a comparison, one; for an equality, one per type the value reads as.
fn bounds(t: &Term, key: &str, types: &Types) -> Result<Vec<(Type, Vec<u8>)>> {
    let at = |why: String| Error::Usage(format!("query: at {}: {why}", t.value_at));
    let ranged = matches!(t.op, Op::Lt | Op::Le | Op::Gt | Op::Ge);
    let types: Vec<Type> = match known_type(key).or_else(|| types.get(key).copied()) {
        Some(ty) => vec![ty],
        // A comparison is numeric when the value reads as a number or a date.
        None if ranged => vec![Type::Int, Type::Date, Type::Text],
        None => vec![Type::Text, Type::Int, Type::Date],
    };
    let mut values: Vec<(Type, Vec<u8>)> = Vec::new();
    for &ty in &types {
        if let Ok(v) = typed(key, ty, &t.value) {
            values.extend(value_bytes(&v).into_iter().map(|b| (ty, b)));
            if ranged {
                break;
            }
        }
    }
    if values.is_empty() {
        // Only a typed property can refuse a value: say why with its own message (an empty
        // list member reads as a list of nothing, which no type refuses).
        let why = typed(key, types[0], &t.value)
            .err()
            .filter(|why| !why.is_empty())
            .unwrap_or_else(|| format!("`{}` is no value `{key}` can hold", t.value));
        return Err(at(why));
    }
    Ok(values)
}

/// Refuses a query with a term that names no property, or a value its property cannot have.
fn validate(q: &Query, types: &Types) -> Result<()> {
    match q {
        Query::Term(t) => {
            let at = |why: String| Error::Usage(format!("query: at {}: {why}", t.at));
            let key = property_key(&t.key).map_err(|e| at(e.to_string()))?;
            match t.op {
                Op::Words if words(&t.value).is_empty() => Err(Error::Usage(format!(
                    "query: at {}: `{}` has no word to look for",
                    t.value_at, t.value
                ))),
                Op::Words => Ok(()),
                _ => bounds(t, &key, types).map(|_| ()),
            }
        }
        Query::And(qs) | Query::Or(qs) => qs.iter().try_for_each(|q| validate(q, types)),
        Query::Not(q) => validate(q, types),
        Query::All => Ok(()),
    }
}

/// Whether object `o` (a current one) matches query `q`, read from its own properties by the
/// rules the index follows (lower-cased text, values and words the index leaves out left
/// out here too): how an `and` checks its other terms on the few objects its first terms
/// leave, instead of scanning the index for each.
fn check(o: &Object, q: &Query, types: &Types) -> Result<bool> {
    Ok(match q {
        Query::Term(t) => check_term(o, t, types)?,
        Query::And(qs) => {
            for q in qs {
                if !check(o, q, types)? {
                    return Ok(false);
                }
            }
            true
        }
        Query::Or(qs) => {
            for q in qs {
                if check(o, q, types)? {
                    return Ok(true);
                }
            }
            false
        }
        Query::Not(q) => !check(o, q, types)?,
        Query::All => true,
    })
}

fn check_term(o: &Object, t: &Term, types: &Types) -> Result<bool> {
    let at = |why: String| Error::Usage(format!("query: at {}: {why}", t.at));
    let key = property_key(&t.key).map_err(|e| at(e.to_string()))?;
    let props = o.props.iter().filter(|p| p.key == key);
    if t.op == Op::Words {
        let wanted = words(&t.value);
        if wanted.is_empty() {
            return Err(Error::Usage(format!(
                "query: at {}: `{}` has no word to look for",
                t.value_at, t.value
            )));
        }
        let mut have: Vec<String> = Vec::new();
        for p in props {
            let text = match &p.value {
                Value::Text(t) => t.clone(),
                Value::List(l) => l.join(" "),
                _ => continue,
            };
            have.extend(
                words(&text)
                    .into_iter()
                    .filter(|w| w.len() <= MAX_INDEXED_WORD),
            );
        }
        return Ok(wanted
            .iter()
            .all(|w| have.iter().any(|h| h.starts_with(w.as_str()))));
    }
    let values = bounds(t, &key, types)?;
    let held: Vec<Vec<u8>> = props
        .flat_map(|p| value_bytes(&p.value))
        .filter(|v| v.len() <= MAX_INDEXED_VALUE)
        .collect();
    Ok(match t.op {
        Op::Eq | Op::Has => held.iter().any(|h| values.iter().any(|(_, v)| v == h)),
        Op::Ne => !held.iter().any(|h| values.iter().any(|(_, v)| v == h)),
        _ => {
            let (ty, v) = &values[0];
            let numeric = matches!(ty, Type::Int | Type::Date);
            held.iter().any(|h| {
                if h.first() != v.first() || (numeric && h.len() != 9) {
                    return false;
                }
                let o = h.as_slice().cmp(v.as_slice());
                match t.op {
                    Op::Lt => o.is_lt(),
                    Op::Le => o.is_le(),
                    Op::Gt => o.is_gt(),
                    _ => o.is_ge(),
                }
            })
        }
    })
}
