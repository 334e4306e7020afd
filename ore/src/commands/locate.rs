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
//!
//! A directory given to `--file` is walked, and each regular file under it looked up so: the
//! answer says which of its files are kept somewhere and which are not, the question asked
//! before a directory is deleted.

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
use std::path::Path;

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
                    "--file {}: not a regular file or a directory (give a file whose copies to \
                     find, or a directory whose files' copies to find)",
                    path.display()
                )));
            }
            content_prefix(&file_id(repo, path)?)
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
    let mut out = Vec::new();
    for (tag, head) in heads(repo, tag)? {
        scan(repo, &tag, &head, &prefix, &mut HashMap::new(), &mut out)?;
    }
    Ok(out)
}

/// One regular file under a directory given to [`locate_under`], and its copies.
#[derive(Debug)]
pub struct FileCopies {
    /// Its path, as the walk of the directory found it.
    pub path: std::path::PathBuf,
    /// Its copies, by tag and then in index order; `Err` says why its contents could not be
    /// known (unreadable, more holes than are hashed).
    pub copies: std::result::Result<Vec<Located>, String>,
}

/// `ore search --file DIR`: each regular file under `dir` (symlinks are not followed, other
/// file systems are entered as any directory is), in name order, with its copies on tag `tag`
/// or on every archive tag: what of a directory is kept somewhere, and what is not.
pub fn locate_under(repo: &Repo, tag: Option<&str>, dir: &Path) -> Result<Vec<FileCopies>> {
    let heads = heads(repo, tag)?;
    let walk = ignore::WalkBuilder::new(dir)
        .standard_filters(false)
        .follow_links(false)
        .sort_by_file_name(|a, b| a.cmp(b))
        .build();
    let mut out = Vec::new();
    // An object is read once, however many files it holds.
    let mut objects: HashMap<Key, Object> = HashMap::new();
    for entry in walk {
        let entry = entry.map_err(|e| Error::Usage(format!("--file {}: {e}", dir.display())))?;
        if !entry.file_type().is_some_and(|t| t.is_file()) {
            continue;
        }
        let path = entry.into_path();
        let copies = match file_id(repo, &path) {
            Ok(id) => {
                let prefix = content_prefix(&id);
                let mut found = Vec::new();
                for (tag, head) in &heads {
                    scan(repo, tag, head, &prefix, &mut objects, &mut found)?;
                }
                Ok(found)
            }
            Err(Error::Usage(why)) => Err(why),
            Err(Error::Io { cause, .. }) => Err(cause.to_string()),
            Err(e) => return Err(e),
        };
        out.push(FileCopies { path, copies });
    }
    Ok(out)
}

/// The archive tags searched: `tag`, or every archive tag.
fn heads(repo: &Repo, tag: Option<&str>) -> Result<Vec<(String, crate::core::archival::Head)>> {
    match tag {
        Some(t) => match head_of(repo, t)? {
            Some((_, head)) => Ok(vec![(t.to_string(), head)]),
            None => Err(Error::Usage(format!("there is no archive tag {t}"))),
        },
        None => crate::core::objects::archive_heads(repo),
    }
}

/// The content id of the regular file at `path`, as an import computes it.
fn file_id(repo: &Repo, path: &Path) -> Result<Key> {
    let io = |cause| Error::Io {
        path: path.to_path_buf(),
        cause,
    };
    let file = crate::core::fsys::open_regular_path(path).map_err(io)?;
    if crate::core::filelist::too_sparse(&file) {
        return Err(Error::Usage(format!(
            "{}: it has more than {} of holes, and such files are listed by name only \
             (ore search --name)",
            path.display(),
            crate::core::filelist::ID_HOLES_SHOWN
        )));
    }
    Ok(content_id(repo.keys(), &file).map_err(io)?.0)
}

/// Appends to `out` every file of tag `tag` (whose head is `head`) that an `f` or `n` entry
/// under `prefix` names; `objects` keeps the objects read.
fn scan(
    repo: &Repo,
    tag: &str,
    head: &crate::core::archival::Head,
    prefix: &[u8],
    objects: &mut HashMap<Key, Object>,
    out: &mut Vec<Located>,
) -> Result<()> {
    for item in Cursor::new(repo, head.index.as_ref(), prefix)? {
        let item = item?;
        if !item.key.starts_with(prefix) {
            break;
        }
        let (Some(object), Some(path)) = (entry_object(&item.key), entry_path(&item.key)) else {
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
            tag: tag.to_string(),
            object,
            path: path.to_vec(),
            origin: origin(o, path),
            catalogue: o.catalogue.clone(),
        });
    }
    Ok(())
}

/// Where file `path` of object `o` was when imported: below the object's source, or beside
/// it when the object is one file ([`Object::one_file`]).
fn origin(o: &Object, path: &[u8]) -> Vec<u8> {
    let base: &[u8] = match o.one_file() {
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
