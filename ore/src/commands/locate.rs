//! `ore search [TAG] --file PATH` and `--name NAME`: where a file is, across every stored
//! object and every catalogued disk of the archive's archive tags (docs/ARCHIVAL.md, "A
//! catalogue of many disks").
//!
//! Both are scans of one prefix of a tag's index: a file given by path is hashed as an import
//! hashes what it stores (its content id, `core::filelist`), and its id's `f` entries name
//! every copy; a name's `n` entries every file of that name, case folded (or, ending in `*`,
//! every name that starts so). Only current objects have such entries, so a replaced or
//! forgotten object is never an answer; each answer names its tag, its object, whether that
//! object holds the data or only catalogued it (and then on which disk), and the path the
//! file had when it was imported.

use crate::core::archival::{entry_object, Object};
use crate::core::block::Kind;
use crate::core::error::{Error, Result};
use crate::core::filelist::{content_id, content_prefix, entry_path, name_prefix};
use crate::core::index::Cursor;
use crate::core::objects::head_of;
use crate::core::repo::Repo;
use crate::core::volume::Volume;
use protocol::Key;
use std::collections::HashMap;

/// What to look for.
#[derive(Clone, Debug)]
pub enum Wanted {
    /// Copies of the bytes of this file.
    Contents(std::path::PathBuf),
    /// Files of this name (case folded; a final `*` matches every name starting so).
    Name(String),
}

/// One file found.
#[derive(Clone, Debug)]
pub struct Located {
    pub tag: String,
    /// The object that holds or catalogued it.
    pub object: Key,
    /// Its path inside the object.
    pub path: Vec<u8>,
    /// Where it was when imported: the object's source with `path` below it.
    pub origin: Vec<u8>,
    /// The disk it was catalogued from; `None` when the archive holds its data.
    pub catalogue: Option<Volume>,
}

/// Every file `wanted` names on archive tag `tag`, or on every archive tag when `tag` is
/// `None`, by tag and then in index order.
pub fn locate(repo: &Repo, tag: Option<&str>, wanted: &Wanted) -> Result<Vec<Located>> {
    let prefix = match wanted {
        Wanted::Contents(path) => {
            let md = std::fs::metadata(path).map_err(|cause| Error::Io {
                path: path.clone(),
                cause,
            })?;
            if !md.is_file() {
                return Err(Error::Usage(format!(
                    "--file {}: not a regular file (give a file whose copies to find)",
                    path.display()
                )));
            }
            let file = crate::core::fsys::open_regular_path(path).map_err(|cause| Error::Io {
                path: path.clone(),
                cause,
            })?;
            if crate::core::filelist::too_sparse(&file) {
                return Err(Error::Usage(format!(
                    "{}: it has more than {} of holes, and such files are listed by name only \
                     (ore search --name)",
                    path.display(),
                    crate::core::filelist::ID_HOLES_SHOWN
                )));
            }
            let (id, _) = content_id(repo.keys(), &file).map_err(|cause| Error::Io {
                path: path.clone(),
                cause,
            })?;
            content_prefix(&id)
        }
        Wanted::Name(name) => {
            let (name, whole) = match name.strip_suffix('*') {
                Some(start) => (start, false),
                None => (name.as_str(), true),
            };
            // Only a whole name or its start is an index scan: a pattern elsewhere would
            // silently find nothing.
            if (whole && name.is_empty()) || name.contains(['/', '\0', '*', '?', '[']) {
                return Err(Error::Usage(format!(
                    "--name `{name}`: give a file's whole name (no `/`), or its start and a \
                     final `*` (`IMG_00*`); other patterns are not searched"
                )));
            }
            name_prefix(name.as_bytes(), whole)
        }
    };
    let tags = match tag {
        Some(t) => match head_of(repo, t)? {
            Some((_, head)) => vec![(t.to_string(), head)],
            None => return Err(Error::Usage(format!("there is no archive tag {t}"))),
        },
        None => crate::core::objects::archive_heads(repo)?,
    };
    let mut out = Vec::new();
    for (tag, head) in tags {
        let mut objects: HashMap<Key, Object> = HashMap::new();
        for item in Cursor::new(repo, head.index.as_ref(), &prefix)? {
            let item = item?;
            if !item.key.starts_with(&prefix) {
                break;
            }
            let (Some(object), Some(path)) = (entry_object(&item.key), entry_path(&item.key))
            else {
                return Err(Error::Archive(format!(
                    "the index of {tag} holds an entry that is not a file's: run `ore check`"
                )));
            };
            let o = match objects.entry(object) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert(repo.get(object, Kind::Object)?)
                }
            };
            out.push(Located {
                tag: tag.clone(),
                object,
                path: path.to_vec(),
                origin: origin(o, path),
                catalogue: o.catalogue.clone(),
            });
        }
    }
    Ok(out)
}

/// Where file `path` of object `o` was when imported: below the object's source, or beside
/// it when the object is one file (its tree is the directory made around it, whose entry has
/// no name).
fn origin(o: &Object, path: &[u8]) -> Vec<u8> {
    let base: &[u8] = match o.root.name.is_empty() {
        true => match o.source.iter().rposition(|&b| b == b'/') {
            Some(0) => b"/",
            Some(i) => &o.source[..i],
            None => b"",
        },
        false => &o.source,
    };
    match base {
        b"" => path.to_vec(),
        b"/" => [b"/", path].concat(),
        _ => [base, b"/", path].concat(),
    }
}
