//! `ore search TAG QUERY`: the objects of an archive tag whose properties match a query
//! (`core::query`), answered from the tag's index in the archive.
//!
//! Each term is one scan of the index: an equality or a list member (`:`) a scan of the
//! entries that start with the property and the value, a comparison a scan of the
//! property's entries, and `~` a scan of the property's words that start with each word
//! given (every word must match). The object keys they give are combined by `and`, `or` and
//! `not` as sets; `not` and `!=` take what they exclude from the objects not replaced.
//!
//! A property the vocabulary does not type is searched as every type its value can be read
//! as: `rating=5` finds the text "5" and the integer 5.

use crate::commands::import::head_of;
use crate::core::archival::{
    known_type, prop_prefix, property_key, typed, value_bytes, word_prefix, words, Summary, Type,
    OBJECTS,
};
use crate::core::error::{Error, Result};
use crate::core::index::{Cursor, Root};
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

/// The objects on archive tag `tag` that match `query`, in key order.
pub fn search(repo: &Repo, tag: &str, query: &Query) -> Result<Vec<Hit>> {
    let Some((_, head)) = head_of(repo, tag)? else {
        return Err(Error::Usage(format!("there is no archive tag {tag}")));
    };
    search_in(repo, head.index.as_ref(), query)
}

/// The objects on the index at `index` that match `query`, in key order.
pub fn search_in(repo: &Repo, index: Option<&Root>, query: &Query) -> Result<Vec<Hit>> {
    let s = Searcher { repo, index };
    let keys = s.eval(query)?;
    let mut hits = Vec::with_capacity(keys.len());
    for key in keys {
        hits.push(Hit {
            key,
            summary: crate::core::objects::summary_of(repo, s.index, &key)?.unwrap_or_default(),
        });
    }
    Ok(hits)
}

struct Searcher<'r> {
    repo: &'r Repo,
    index: Option<&'r Root>,
}

impl Searcher<'_> {
    fn eval(&self, q: &Query) -> Result<BTreeSet<Key>> {
        Ok(match q {
            Query::Term(t) => self.term(t)?,
            Query::And(qs) => {
                let mut sets = qs.iter().map(|q| self.eval(q));
                let mut acc = sets.next().transpose()?.unwrap_or_default();
                for s in sets {
                    let s = s?;
                    acc.retain(|k| s.contains(k));
                }
                acc
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
        for item in Cursor::new(self.repo, self.index, prefix)? {
            let item = item?;
            if !item.key.starts_with(prefix) {
                break;
            }
            each(&item.key, &item.value);
        }
        Ok(())
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
                Error::Usage(why) => at(why),
                e => e,
            });
        }
        let ranged = matches!(t.op, Op::Lt | Op::Le | Op::Gt | Op::Ge);
        let types: Vec<Type> = match known_type(&key) {
            Some(ty) => vec![ty],
            // A comparison is numeric when the value reads as a number or a date.
            None if ranged => vec![Type::Int, Type::Date, Type::Text],
            None => vec![Type::Text, Type::Int, Type::Date],
        };
        let mut values: Vec<(Type, Vec<u8>)> = Vec::new();
        for &ty in &types {
            if let Ok(v) = typed(&key, ty, &t.value) {
                values.extend(value_bytes(&v).into_iter().map(|b| (ty, b)));
                if ranged {
                    break;
                }
            }
        }
        if values.is_empty() {
            // Only a typed property can refuse a value: say why with its own message.
            return Err(at(typed(&key, types[0], &t.value)
                .err()
                .unwrap_or_default()));
        }
        let mut out = BTreeSet::new();
        match t.op {
            Op::Eq | Op::Has | Op::Ne => {
                for (_, v) in &values {
                    let prefix = prop_prefix(&key, v);
                    self.scan(&prefix, |k, _| {
                        if k.len() == prefix.len() + 32 {
                            out.extend(crate::core::archival::entry_object(k));
                        }
                    })?;
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
