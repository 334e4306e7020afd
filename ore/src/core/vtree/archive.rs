//! The places under an archive tag in the browsing tree ([`crate::core::browse`] reads them
//! from the index): `by-key/`, `by-PROP/`, a value's directory, and the objects, which are
//! entries like a snapshot's root, named by their keys.

use super::{Named, VNode, VTree};
use crate::core::archival::Head;
use crate::core::browse;
use crate::core::error::Result;
use protocol::Key;
use std::sync::Arc;

/// Where under an archive tag.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Place {
    /// `/TAG`: `by-key` and a `by-PROP` for each property.
    Top,
    /// `/TAG/by-key`: every object.
    ByKey,
    /// `…/by-PROP`: the values `key` has among the objects `filters` leave.
    Values {
        filters: Vec<(String, Vec<u8>)>,
        key: String,
    },
    /// `…/by-PROP/VALUE`: the objects that have every `(property, value)` of `filters`; a
    /// `by-OTHER` for each property not among them is there too, but not listed.
    Narrowed { filters: Vec<(String, Vec<u8>)> },
}

const BY: &str = "by-";
const BY_KEY: &str = "by-key";

impl VTree<'_> {
    /// The head of archive tag `tag` (`None`: a snapshot tag), read once, as chains are.
    pub fn head(&self, tag: &str) -> Option<Head> {
        if let Some(h) = ore_util::sync::lock(&self.heads).get(tag) {
            return h.clone();
        }
        let head = crate::core::objects::head_of(self.repo, tag)
            .ok()
            .flatten()
            .map(|(_, h)| h);
        ore_util::sync::lock(&self.heads).insert(tag.to_string(), head.clone());
        head
    }

    /// When archive tag `tag`'s head was made (`None`: a snapshot tag): the time its
    /// directories show, as a snapshot tag's show its newest snapshot's.
    pub fn archive_made(&self, tag: &str) -> Option<i64> {
        self.head(tag).map(|h| h.made_ns)
    }

    /// How many objects archive tag `tag` lists, and how many of them are current (`None`:
    /// a snapshot tag).
    pub fn archive_counts(&self, tag: &str) -> Option<(u64, u64)> {
        self.head(tag).map(|h| (h.objects, h.current))
    }

    /// Object `key` of archive tag `tag` as a named snapshot of its tree.
    pub(super) fn object(&self, tag: &str, key: Key) -> Result<Named> {
        let node = crate::core::objects::object_node(self.repo, tag, key)?;
        Ok(Named {
            name: key.to_hex(),
            key,
            snapshot: Arc::new(node.snapshot),
            previous: None,
        })
    }

    /// What place `place` of archive tag `tag` holds.
    pub(super) fn list_archive(&self, tag: &str, place: &Place) -> Result<Vec<(Vec<u8>, VNode)>> {
        let head = self.head(tag);
        let index = head.as_ref().and_then(|h| h.index.as_ref());
        let at = |place: Place| VNode::Archive {
            tag: tag.to_string(),
            place,
        };
        let objects = |keys: &mut dyn Iterator<Item = Key>| -> Result<Vec<(Vec<u8>, VNode)>> {
            keys.map(|k| {
                let n = self.object(tag, k)?;
                Ok((
                    n.name.clone().into_bytes(),
                    VTree::snapshot_node(tag, &n, &n.name),
                ))
            })
            .collect()
        };
        let by = |filters: &[(String, Vec<u8>)], out: &mut Vec<(Vec<u8>, VNode)>| -> Result<()> {
            for key in browse::properties(self.repo, index)? {
                if filters.iter().any(|(k, _)| *k == key) {
                    continue;
                }
                let place = Place::Values {
                    filters: filters.to_vec(),
                    key: key.clone(),
                };
                out.push((format!("{BY}{key}").into_bytes(), at(place)));
            }
            Ok(())
        };
        match place {
            Place::Top => {
                let mut out = vec![(BY_KEY.as_bytes().to_vec(), at(Place::ByKey))];
                by(&[], &mut out)?;
                Ok(out)
            }
            Place::ByKey => objects(&mut browse::every_object(self.repo, index)?.into_iter()),
            Place::Values { filters, key } => {
                let within = match filters.is_empty() {
                    true => None,
                    false => Some(browse::matching(self.repo, index, filters)?),
                };
                let mut out = Vec::new();
                for value in browse::values(self.repo, index, key)? {
                    if let Some(within) = &within {
                        let holders = browse::with_value(
                            &crate::core::index::Tree::new(self.repo, index),
                            key,
                            &value,
                        )?;
                        if browse::both(&holders, within).is_empty() {
                            continue;
                        }
                    }
                    let mut narrowed = filters.clone();
                    narrowed.push((key.clone(), value.clone()));
                    let name = browse::value_name(&value);
                    out.push((name.into_bytes(), at(Place::Narrowed { filters: narrowed })));
                }
                Ok(out)
            }
            // Only the objects, each a link to its place in `by-key/`: the `by-OTHER` levels
            // below a value are reached by name, not listed, so that `find` or `du` over
            // `by-PROP/` meets each object once instead of once per order the other
            // properties can be narrowed in; and as links, listing a value's objects reads
            // none of them, and `find` lists them without walking into each one's tree.
            Place::Narrowed { filters } => {
                let links = self.narrowed(tag, filters)?;
                Ok((0..links.keys.len())
                    .map(|i| {
                        let (key, name) = (links.keys[i], links.name(i));
                        let target = links.target(i);
                        let node = link(tag, key, name.clone(), target, links.made_ns);
                        (name.into_bytes(), node)
                    })
                    .collect())
            }
        }
    }

    /// The objects of a value's directory (`…/by-PROP/VALUE`), as the links it lists.
    pub(super) fn narrowed(&self, tag: &str, filters: &[(String, Vec<u8>)]) -> Result<Links> {
        let head = self.head(tag);
        let index = head.as_ref().and_then(|h| h.index.as_ref());
        let made_ns = head.as_ref().map_or(0, |h| h.made_ns);
        let keys = browse::matching(self.repo, index, filters)?;
        Ok(Links::new(keys, filters.len(), made_ns))
    }

    /// The child `name` of place `place` of archive tag `tag`.
    pub(super) fn child_archive(
        &self,
        tag: &str,
        place: &Place,
        name: &[u8],
    ) -> Result<Option<VNode>> {
        if let (Place::Narrowed { filters }, Some(key)) = (
            place,
            std::str::from_utf8(name)
                .ok()
                .and_then(|n| n.strip_prefix(BY)),
        ) {
            let head = self.head(tag);
            let index = head.as_ref().and_then(|h| h.index.as_ref());
            let known = browse::properties(self.repo, index)?;
            if filters.iter().all(|(k, _)| k != key) && known.iter().any(|k| k == key) {
                return Ok(Some(VNode::Archive {
                    tag: tag.to_string(),
                    place: Place::Values {
                        filters: filters.clone(),
                        key: key.to_string(),
                    },
                }));
            }
        }
        // In `by-key`, an object is found by its key without listing every object.
        if *place == Place::ByKey {
            let Some(key) = std::str::from_utf8(name)
                .ok()
                .and_then(|n| n.parse::<Key>().ok())
            else {
                return Ok(None);
            };
            let head = self.head(tag);
            let index = head.as_ref().and_then(|h| h.index.as_ref());
            if crate::core::objects::summary_of(self.repo, index, &key)?.is_none() {
                return Ok(None);
            }
            let n = self.object(tag, key)?;
            return Ok(Some(VTree::snapshot_node(tag, &n, &n.name)));
        }
        Ok(self
            .list_archive(tag, place)?
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v))
    }
}

/// The objects a value's directory lists: each a link named by its key to its place in
/// `by-key/`, dated when the tag's head was made. Kept as keys alone, so that `ore mount` can
/// list a million of them without a name, a target and a node for each.
#[derive(Clone, Debug)]
pub struct Links {
    /// In increasing order.
    pub keys: Vec<Key>,
    /// How many levels up `by-key/` is (two per property narrowed by).
    pub up: usize,
    pub made_ns: i64,
}

impl Links {
    /// The objects `keys` (in increasing order) of a value's directory narrowed by
    /// `narrowed_by` properties, its tag's head made at `made_ns`.
    pub fn new(keys: Vec<Key>, narrowed_by: usize, made_ns: i64) -> Links {
        Links {
            keys,
            up: 2 * narrowed_by,
            made_ns,
        }
    }

    /// The name of link `i`: its object's key.
    pub fn name(&self, i: usize) -> String {
        self.keys[i].to_hex()
    }

    /// The target of link `i`: `../` up to the tag, then `by-key/KEY`.
    pub fn target(&self, i: usize) -> Vec<u8> {
        format!("{}{BY_KEY}/{}", "../".repeat(self.up), self.name(i)).into_bytes()
    }

    /// The length of every link's target.
    pub fn target_len(&self) -> u64 {
        (3 * self.up + BY_KEY.len() + 1 + 64) as u64
    }

    /// Which link is named `name` (exactly as listed: lower-case hex).
    pub fn find(&self, name: &[u8]) -> Option<usize> {
        let key: Key = std::str::from_utf8(name).ok()?.parse().ok()?;
        let i = self.keys.binary_search(&key).ok()?;
        (self.name(i).as_bytes() == name).then_some(i)
    }
}

/// Object `key` as a link named `name` to `target`, dated `made_ns` (when its tag's head was
/// made: the link says nothing of the object itself, which is not read to list it).
fn link(tag: &str, key: Key, name: String, target: Vec<u8>, made_ns: i64) -> VNode {
    let mut entry = crate::core::entry::Entry::made_now(
        name.clone().into_bytes(),
        crate::core::entry::EntryKind::Symlink { target },
        0o777,
    );
    entry.mtime = made_ns;
    VNode::Entry {
        tag: tag.to_string(),
        snapshot: name.clone(),
        key,
        path: name.into_bytes(),
        entry: Box::new(entry),
    }
}
