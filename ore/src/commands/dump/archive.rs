//! `ore dump TAG` and `ore load TAG` of an archive tag: every object of the tag, with its
//! properties, its history of versions and its tree, as one stream (version 4, FORMAT.md
//! §11), and on load the objects stored again under the destination's keys and filed in a
//! new index.
//!
//! ```text
//! stream  = "ORE-DUMP" 4 header object* trailer
//! header  = 1 postcard(ArchiveHeader)
//! object  = 8 postcard(DumpObject), then its tree's records as in a snapshot's stream
//!           (a catalogued file's data records are one record 9: its content id)
//! ```
//!
//! Objects come parents first, each naming its parent by its place in the stream, so a
//! loader never meets a parent it has not stored, and the keys that change with the
//! archive's keys are never in the stream. Which objects were replaced is not in the stream
//! either: it follows from the parent links (an object some later object names as parent),
//! so a stream cannot claim a current object is replaced or the reverse. A catalogued file
//! keeps its content id, which only an archive with the same keys can use: the header
//! carries the id of no bytes under the source's keys, and `load` refuses a catalogued file
//! where that differs from its own. Every other file's id is computed again as it is loaded.

use super::load::{ended, Rebuild, Records};
use super::{dump_tree, DumpStats, Hashed, HEADER, MAGIC, OBJECT, TRAILER};
use crate::core::archival::{
    around, property_key, Object, Prop, Value, FILE_ROOTS_FROM, MAX_VALUE, OBJECTS,
};
use crate::core::block::Kind;
use crate::core::entry::{encode, EntryKind};
use crate::core::error::{Error, Result};
use crate::core::index::Cursor;
use crate::core::objects::head_of;
use crate::core::repo::Repo;
use crate::core::volume::Volume;
use protocol::Key;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};

/// The stream version of an archive tag.
pub const ARCHIVE: u8 = 4;

/// What the refusal of a catalogued file says ([`Error::ForeignIds`]), when the stream's
/// content ids were made with other keys.
pub const FOREIGN_IDS: &str = "known by a content id made with another archive's keys";

/// What an archive tag's stream starts with.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ArchiveHeader {
    /// The tag it was dumped from.
    pub tag: String,
    pub dumped_ns: i64,
    /// The content id of no bytes under the source archive's keys.
    pub ids: Key,
    pub objects: u64,
}

/// An object in the stream, without any block key.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DumpObject {
    pub props: Vec<Prop>,
    pub imported_ns: i64,
    pub host: String,
    pub user: String,
    #[serde(with = "serde_bytes")]
    pub source: Vec<u8>,
    /// The place in the stream of the object this one replaces.
    pub parent: Option<u64>,
    pub size: u64,
    pub catalogue: Option<Volume>,
}

/// Writes every object of archive tag `tag` (replaced versions too) to `out`.
pub fn dump_archive(repo: &Repo, tag: &str, out: &mut dyn Write) -> Result<DumpStats> {
    let Some((_, head)) = head_of(repo, tag)? else {
        return Err(Error::Usage(format!("there is no archive tag {tag}")));
    };
    // Parents first: every object's parent, then an order that puts each after it.
    let mut parents: Vec<(Key, Option<Key>)> = Vec::new();
    for item in Cursor::new(repo, head.index.as_ref(), &[OBJECTS])? {
        let item = item?;
        let Some(key) = crate::core::archival::entry_object(&item.key)
            .filter(|_| item.key.first() == Some(&OBJECTS))
        else {
            break;
        };
        let o: Object = repo.get(key, Kind::Object)?;
        parents.push((key, o.parent));
    }
    let order = parents_first(&parents);
    let mut w = Hashed {
        inner: std::io::BufWriter::with_capacity(1 << 20, out),
        hash: blake3::Hasher::new(),
        n: 0,
        version: ARCHIVE,
    };
    let mut stats = DumpStats::default();
    w.raw(MAGIC)?;
    w.raw(&[ARCHIVE])?;
    let header = ArchiveHeader {
        tag: tag.to_string(),
        dumped_ns: crate::core::util::now_ns(),
        ids: repo.keys().key_of(Kind::Chunk as u8, b""),
        objects: order.len() as u64,
    };
    w.record(HEADER, &encode(&header))?;
    let mut place: HashMap<Key, u64> = HashMap::new();
    for key in order {
        let o: Object = repo.get(key, Kind::Object)?;
        let d = DumpObject {
            props: o.props,
            imported_ns: o.imported_ns,
            host: o.host,
            user: o.user,
            source: o.source,
            parent: o.parent.and_then(|p| place.get(&p).copied()),
            size: o.size,
            catalogue: o.catalogue,
        };
        place.insert(key, place.len() as u64);
        w.record(OBJECT, &encode(&d))?;
        dump_tree(repo, &o.root, &mut w, &mut stats)?;
    }
    stats.stream_bytes = w.finish()?;
    Ok(stats)
}

/// The objects in an order that puts each after its parent (a parent not on the tag is
/// none; a crafted cycle is cut where it is met).
fn parents_first(parents: &[(Key, Option<Key>)]) -> Vec<Key> {
    let of: HashMap<Key, Option<Key>> = parents.iter().copied().collect();
    let mut done: HashSet<Key> = HashSet::new();
    let mut out = Vec::with_capacity(parents.len());
    for &(key, _) in parents {
        let mut chain = Vec::new();
        let mut at = Some(key);
        while let Some(k) = at.filter(|k| of.contains_key(k) && !done.contains(k)) {
            if chain.contains(&k) {
                break;
            }
            chain.push(k);
            at = of[&k];
        }
        for k in chain.into_iter().rev() {
            if done.insert(k) {
                out.push(k);
            }
        }
    }
    out
}

/// Reads the rest of an archive tag's stream (after its magic) from `r`, stores its objects
/// under this archive's keys and files them on `tag`. The new head, the objects, the counts.
pub(super) fn load_archive<R: Read>(
    repo: &Repo,
    tag: &str,
    r: &mut Records<R>,
) -> Result<(Key, u64, DumpStats)> {
    crate::core::archival::check_writable(repo)?;
    // A snapshot tag is refused before anything is stored.
    head_of(repo, tag)?;
    let (kind, payload, _) = r.next()?;
    if kind != HEADER {
        return Err(r.bad(format!("record kind {kind} where the header belongs")));
    }
    let header: ArchiveHeader =
        postcard::from_bytes(&payload).map_err(|e| r.bad(format!("header: {e}")))?;
    let same_ids = header.ids == repo.keys().key_of(Kind::Chunk as u8, b"");
    let mut objects: Vec<(Key, Object)> = Vec::new();
    let mut replaced: HashSet<Key> = HashSet::new();
    let mut stats = DumpStats::default();
    loop {
        let (kind, payload, before) = r.next()?;
        match kind {
            OBJECT => {}
            TRAILER => {
                ended(r, &payload, &before)?;
                break;
            }
            k => return Err(r.bad(format!("record kind {k} where an object belongs"))),
        }
        r.at = format!("object {} of the stream", objects.len() + 1);
        let d: DumpObject =
            postcard::from_bytes(&payload).map_err(|e| r.bad(format!("object: {e}")))?;
        check_object(&d).map_err(|why| r.bad(why))?;
        let parent = match d.parent {
            None => None,
            Some(i) => match objects.get(i as usize) {
                Some((k, _)) if replaced.insert(*k) => Some(*k),
                Some(_) => return Err(r.bad("two objects replace one object".into())),
                None => {
                    return Err(
                        r.bad("an object names a parent that does not come before it".into())
                    )
                }
            },
        };
        let mut tree = Rebuild::new(repo, ARCHIVE, Some(same_ids));
        tree.catalogue = d.catalogue.is_some();
        tree.file_root = true;
        let mut root = tree.read_tree(r)?;
        if !matches!(root.kind, EntryKind::Dir { .. }) && repo.format().format < FILE_ROOTS_FROM {
            // An object that is one file, loaded (or synced) into an archive an ore of format 5
            // still reads: that ore would take the file's data for garbage, so the directory
            // around the file is stored, as `--each` stores it there.
            let (leaf, made) = around(&root);
            root = made(repo.put_block(Kind::Dir, &leaf)?.0);
        }
        tree.store.settle()?;
        let files = tree.files.take().unwrap_or_default();
        stats.entries += tree.stats.entries;
        stats.bytes += tree.stats.bytes;
        let o = Object {
            root,
            props: d.props,
            imported_ns: d.imported_ns,
            host: d.host,
            user: d.user,
            source: d.source,
            parent,
            size: d.size,
            files: crate::core::filelist::Files::make(repo, files)?,
            catalogue: d.catalogue,
        };
        let (key, _) = repo.put_block(Kind::Object, &encode(&o))?;
        objects.push((key, o));
    }
    if objects.is_empty() {
        return Err(Error::Usage(
            "the dump holds no object: nothing to file".into(),
        ));
    }
    repo.backend().flush()?;
    let (head, _, _) = crate::commands::import::file_loaded(repo, tag, &objects, &replaced)?;
    Ok((head, objects.len() as u64, stats))
}

/// Refuses an object whose properties no import could have made: keys that are not property
/// names, out of order or twice, values too long or holding NUL, a value of another type than
/// the vocabulary gives its key.
fn check_object(d: &DumpObject) -> std::result::Result<(), String> {
    let mut last: Option<&str> = None;
    for p in &d.props {
        let key = property_key(&p.key).map_err(|e| e.to_string())?;
        if key != p.key || last.is_some_and(|l| l >= p.key.as_str()) {
            return Err(format!(
                "its properties are not sorted lower-case names, each once (`{}`)",
                p.key
            ));
        }
        last = Some(&p.key);
        let texts: Vec<&str> = match &p.value {
            Value::Text(t) => vec![t],
            Value::List(l) => l.iter().map(String::as_str).collect(),
            _ => Vec::new(),
        };
        if texts
            .iter()
            .any(|t| t.len() > MAX_VALUE || t.contains('\0'))
        {
            return Err(format!("a value of `{}` is too long or holds NUL", p.key));
        }
        if let Some(t) = crate::core::archival::known_type(&p.key) {
            if crate::core::archival::Type::of(&p.value) != t {
                return Err(format!("`{}` is not {}", p.key, t.a()));
            }
        }
    }
    Ok(())
}
