//! Walking everything an archive's roots reach, each block once: the engine under `check`,
//! `gc` and `sync`.
//!
//! Work is a shared stack of (key, what it should be) items taken by a pool of threads — many
//! when the backend pipelines, so that a distant archive is read with many requests in flight,
//! a few otherwise. A [`KeySet`] says what was already visited, so a directory shared by a
//! thousand snapshots is read once, and memory stays bounded however big the archive is. Tree
//! blocks are fetched, opened (which verifies them) and decoded to find their children; chunks
//! are handed to the caller unread, since what to do with them — nothing, ask whether they
//! exist, read them, copy them — is what differs between the commands.

use crate::core::block::{self, Kind, Plain};
use crate::core::entry::{decode, Content, Entry, EntryKind, Piece, Snapshot};
use crate::core::error::{Error, Result};
use crate::core::keyset::KeySet;
use crate::core::link::Link;
use crate::core::reflog::ReflogBlock;
use crate::core::repo::Repo;
use crate::core::tree::{decode_node, DirTree, FileTree, Node as TreeNode};
use ore_util::sync::{into_inner, lock, wait};
use protocol::Key;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Condvar, Mutex};

/// What a reachable block is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Node {
    /// A place on a chain, as a tag, the reflog or a link names it: a link (format 2), or a
    /// snapshot block that names the one before it itself (format 1).
    Snapshot,
    /// A snapshot a link names: its own `previous` (a format-1 snapshot relinked by a
    /// forget) is not part of any chain, and is not followed.
    Linked,
    /// A node of a directory tree (leaf or inner).
    Dir,
    /// A node of a file's index tree (leaf or inner).
    File,
    Chunk,
    Reflog,
    Format,
    /// A node of an archive tag's index (leaf or inner).
    Index,
    /// An archive object.
    Object,
}

impl Node {
    /// Its name in messages.
    pub fn name(self) -> &'static str {
        match self {
            Node::Snapshot => "snapshot or chain link",
            Node::Linked => "snapshot",
            Node::Dir => "directory",
            Node::File => "file index",
            Node::Chunk => "file data",
            Node::Reflog => "reflog",
            Node::Format => "format record",
            Node::Index => "index node",
            Node::Object => "archive object",
        }
    }

    /// The block kind it is read as (trees accept their inner kind too).
    pub fn kind(self) -> Kind {
        match self {
            Node::Snapshot | Node::Linked => Kind::Snapshot,
            Node::Dir => Kind::Dir,
            Node::File => Kind::FileLeaf,
            Node::Chunk => Kind::Chunk,
            Node::Reflog => Kind::Reflog,
            Node::Format => Kind::Format,
            Node::Index => Kind::IndexLeaf,
            Node::Object => Kind::Object,
        }
    }
}

/// What a walk does with what it finds. Called from many threads at once.
pub trait Visitor: Sync {
    /// Whether snapshots' `previous` links are followed (whole chains) or not.
    fn chains(&self) -> bool {
        true
    }
    /// A tree, snapshot, reflog or format block was read and verified; `stored` is what the
    /// backend returned.
    fn block(&self, _key: Key, _node: Node, _stored: &[u8], _plain: &Plain) -> Result<()> {
        Ok(())
    }
    /// A chunk was reached (first time only). It was not read.
    fn chunk(&self, key: Key) -> Result<()>;
    /// [`Visitor::chunk`], with the chunk's length before compression as the file that holds
    /// it says (for visitors that count bytes).
    fn chunk_of(&self, key: Key, len: u64) -> Result<()> {
        let _ = len;
        self.chunk(key)
    }
    /// Whether each file's slice of a bundle is reported ([`Visitor::slice`]) besides the
    /// bundle itself (a chunk, reached with length 0).
    fn slices(&self) -> bool {
        false
    }
    /// A file's slice `start..start + len` of bundle `bundle` was reached (first time only;
    /// `id` is the key [`slice_id`] gives it). Its range was not checked: the bundle was not
    /// read.
    fn slice(&self, id: Key, bundle: Key, start: u64, len: u64) -> Result<()> {
        let _ = (id, bundle, start, len);
        Ok(())
    }
    /// A block could not be read or was damaged. `Ok` goes on with the rest of the walk;
    /// `Err` stops it.
    fn damaged(&self, key: Key, node: Node, error: Error) -> Result<()> {
        let _ = (key, node);
        Err(error)
    }
}

/// Counts of a walk.
#[derive(Debug, Default)]
pub struct Counts {
    pub trees: AtomicU64,
    pub chunks: AtomicU64,
    pub skipped: AtomicU64,
}

struct Queue {
    /// Blocks to visit, and for a chunk its length (0 for the rest).
    items: Vec<(Key, Node, u64)>,
    busy: usize,
}

/// Visits every block reachable from `roots` that `seen` does not already hold, adding each to
/// `seen`. Returns the first error a visitor returned, after the other threads stopped.
pub fn walk(
    repo: &Repo,
    roots: &[(Key, Node)],
    seen: &KeySet,
    visitor: &dyn Visitor,
    counts: &Counts,
) -> Result<()> {
    let threads = if repo.backend().pipelines() { 32 } else { 4 };
    let queue = Mutex::new(Queue {
        items: roots.iter().rev().map(|&(k, n)| (k, n, 0)).collect(),
        busy: 0,
    });
    let ready = Condvar::new();
    let stop = AtomicBool::new(false);
    let failure: Mutex<Option<Error>> = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let item = {
                    let mut q = lock(&queue);
                    loop {
                        if stop.load(Relaxed) {
                            return;
                        }
                        if let Some(item) = q.items.pop() {
                            q.busy += 1;
                            break item;
                        }
                        if q.busy == 0 {
                            ready.notify_all();
                            return;
                        }
                        q = wait(&ready, q);
                    }
                };
                let mut children = Vec::new();
                let r = visit(repo, item, seen, visitor, counts, &mut children);
                let mut q = lock(&queue);
                q.busy -= 1;
                match r {
                    Ok(()) => {
                        // Pushed in reverse so that they are taken in order (depth first).
                        q.items.extend(children.into_iter().rev());
                    }
                    Err(e) => {
                        lock(&failure).get_or_insert(e);
                        stop.store(true, Relaxed);
                    }
                }
                ready.notify_all();
            });
        }
    });
    match into_inner(failure) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn visit(
    repo: &Repo,
    (key, node, len): (Key, Node, u64),
    seen: &KeySet,
    visitor: &dyn Visitor,
    counts: &Counts,
    children: &mut Vec<(Key, Node, u64)>,
) -> Result<()> {
    let chains = visitor.chains();
    let first = seen.insert(key)?;
    // The roles snapshot blocks were met in are marks beside the keys (not counted as blocks).
    let new_role = role(key, node, chains).is_some_and(|r| seen.mark(r));
    if !first {
        if new_role {
            // A snapshot block met before in another role: a format-1 snapshot first met as a
            // link's snapshot and now as a place on a chain (an earlier value of a tag), whose
            // own chain is still to be followed; or anything met before as a chain node and now
            // named as a link's snapshot, which must be a snapshot. Read once more, checked as
            // what it is now, with what it reaches (already visited parts are skipped).
            return match read(repo, key, node, (chains, None), children) {
                Ok(_) => Ok(()),
                Err(e) if crate::core::repo::is_damage(&e) => {
                    children.clear();
                    visitor.damaged(key, node, e)
                }
                Err(e) => Err(e),
            };
        }
        counts.skipped.fetch_add(1, Relaxed);
        return Ok(());
    }
    if node == Node::Chunk {
        counts.chunks.fetch_add(1, Relaxed);
        return visitor.chunk_of(key, len);
    }
    counts.trees.fetch_add(1, Relaxed);
    let mut slices = visitor.slices().then(Vec::new);
    match read(repo, key, node, (chains, slices.as_mut()), children) {
        Ok((stored, plain)) => {
            for (bundle, start, len) in slices.into_iter().flatten() {
                let id = slice_id(bundle, start, len);
                if seen.insert(id)? {
                    visitor.slice(id, bundle, start, len)?;
                }
            }
            visitor.block(key, node, &stored, &plain)
        }
        Err(e) if crate::core::repo::is_damage(&e) => {
            children.clear();
            visitor.damaged(key, node, e)
        }
        Err(e) => Err(e),
    }
}

/// The two roles a snapshot block is read in — a place on a chain (whose own `previous` is
/// followed) and a link's snapshot (whose is not) — as keys no block has, so that a block met
/// in one is read again, once, when met in the other.
fn role(key: Key, node: Node, chains: bool) -> Option<Key> {
    let name: &[u8] = match node {
        Node::Snapshot if chains => b"ore reach: a chain node",
        Node::Linked => b"ore reach: a link's snapshot",
        _ => return None,
    };
    let mut h = blake3::Hasher::new();
    h.update(name);
    h.update(&key.0);
    Some(Key(*h.finalize().as_bytes()))
}

/// Files' slices of bundles met in a block: (bundle, start, len).
type Slices = Vec<(Key, u64, u64)>;

/// The key under which a walk knows the slice `start..start + len` of bundle `key`: no
/// block has it, and equal slices have equal ones.
pub fn slice_id(key: Key, start: u64, len: u64) -> Key {
    let mut h = blake3::Hasher::new();
    h.update(b"ore reach: a slice");
    h.update(&key.0);
    h.update(&start.to_le_bytes());
    h.update(&len.to_le_bytes());
    Key(*h.finalize().as_bytes())
}

/// Reads a non-chunk block and lists its children: snapshots' chains when `chains`, and into
/// `slices` (when given) the files' slices of bundles (bundle, start, len).
fn read(
    repo: &Repo,
    key: Key,
    node: Node,
    (chains, mut slices): (bool, Option<&mut Slices>),
    children: &mut Vec<(Key, Node, u64)>,
) -> Result<(Vec<u8>, Plain)> {
    let stored = crate::core::repo::fetched(repo.backend().get(key), key, node.kind())?;
    let plain_keys;
    let keys = match node {
        Node::Format => {
            plain_keys = crate::core::crypto::Keys::from_master(&[0; 32], false);
            &plain_keys
        }
        _ => repo.keys(),
    };
    let expect = match node {
        Node::Dir | Node::File | Node::Snapshot | Node::Index => None,
        n => Some(n.kind()),
    };
    let plain = block::open(keys, &key, expect, stored.clone())?;
    match node {
        Node::Snapshot | Node::Linked => {
            let previous = match plain.kind {
                Kind::Link if node == Node::Snapshot => {
                    let l: Link = decode(plain.data(), &key, Kind::Link)?;
                    children.push((l.snapshot, Node::Linked, 0));
                    l.previous
                }
                // An archive tag's head: its index. The head before it is not followed: what a
                // forget took out of the index must become garbage, so earlier heads live only
                // as long as the reflog and the tag's kept history name them.
                Kind::Head if node == Node::Snapshot => {
                    let h: crate::core::archival::Head = decode(plain.data(), &key, Kind::Head)?;
                    children.extend(h.index.map(|r| (r.node, Node::Index, 0)));
                    Vec::new()
                }
                Kind::Snapshot => {
                    let s: Snapshot = decode(plain.data(), &key, Kind::Snapshot)?;
                    if let EntryKind::Dir { tree } = s.root.kind {
                        children.push((tree, Node::Dir, 0));
                    }
                    match node {
                        Node::Snapshot => s.previous,
                        _ => Vec::new(),
                    }
                }
                other => {
                    return Err(Error::Corrupt {
                        key,
                        kind: "snapshot or chain link",
                        why: format!("it is {} block", crate::core::util::a(other.name())),
                    })
                }
            };
            if chains {
                children.extend(previous.into_iter().map(|k| (k, Node::Snapshot, 0)));
            }
        }
        Node::Dir => match decode_node::<DirTree>(&plain, key)? {
            TreeNode::Leaf(entries) => {
                for e in &entries {
                    entry_children(repo, key, Kind::Dir, e, children, &mut slices)?;
                }
            }
            TreeNode::Inner(inner) => {
                children.extend(inner.children.iter().map(|c| (c.key, Node::Dir, 0)))
            }
        },
        Node::File => match decode_node::<FileTree>(&plain, key)? {
            TreeNode::Leaf(pieces) => {
                for p in pieces {
                    if let Piece::Data { key, len } = p {
                        children.push((key, Node::Chunk, len));
                    }
                }
            }
            TreeNode::Inner(inner) => {
                children.extend(inner.children.iter().map(|c| (c.key, Node::File, 0)))
            }
        },
        Node::Reflog => {
            let b: ReflogBlock = decode(plain.data(), &key, Kind::Reflog)?;
            children.extend(b.previous.map(|k| (k, Node::Reflog, 0)));
            for e in &b.entries {
                children.extend(
                    e.old
                        .iter()
                        .chain(e.new.iter())
                        .map(|k| (*k, Node::Snapshot, 0)),
                );
            }
        }
        Node::Index => match crate::core::index::read_node(&plain, key)? {
            crate::core::index::NodeView::Leaf(items) => {
                children.extend(
                    (items.iter())
                        .filter(|i| i.key.first() == Some(&crate::core::archival::OBJECTS))
                        .filter_map(|i| crate::core::archival::entry_object(&i.key))
                        .map(|k| (k, Node::Object, 0)),
                );
            }
            crate::core::index::NodeView::Inner(nodes) => {
                children.extend(nodes.into_iter().map(|k| (k, Node::Index, 0)))
            }
        },
        Node::Object => {
            let o: crate::core::archival::Object = decode(plain.data(), &key, Kind::Object)?;
            // An object of one file made by `--each` is the file itself (its directory is
            // implied, never stored: `core::implied`), checked here as the directory's entry
            // would be where it is read, so that `ore check` names a crafted one.
            if !matches!(o.root.kind, EntryKind::Dir { .. }) {
                let f = repo.format().format;
                let bad = match f < crate::core::archival::FILE_ROOTS_FROM {
                    // An ore of that format reaches no data from it: its gc would free it.
                    true => Err(format!(
                        "it is one file, which an archive of format {f} cannot hold"
                    )),
                    false => crate::core::entry::check_entry(&o.root),
                };
                bad.map_err(|why| Error::Corrupt {
                    key,
                    kind: Kind::Object.name(),
                    why: format!("its file: {why}"),
                })?;
            }
            entry_children(repo, key, Kind::Object, &o.root, children, &mut slices)?;
            children.extend(o.parent.map(|k| (k, Node::Object, 0)));
            // A long file list is an index of its own (`core::filelist`).
            children.extend(o.files.index().map(|r| (r.node, Node::Index, 0)));
        }
        Node::Chunk | Node::Format => {}
    }
    Ok((stored, plain))
}

/// The blocks entry `e` of block `key` (a directory, or an object whose root is `e`) leads
/// to: a directory's tree, a file's data; a slice of a bundle is noted in `slices` too.
fn entry_children(
    repo: &Repo,
    key: Key,
    kind: Kind,
    e: &Entry,
    children: &mut Vec<(Key, Node, u64)>,
    slices: &mut Option<&mut Slices>,
) -> Result<()> {
    match &e.kind {
        EntryKind::Dir { tree } => children.push((*tree, Node::Dir, 0)),
        EntryKind::File { content, size } => match *content {
            // A catalogue's file: its bytes were never stored.
            Content::Empty | Content::Catalogued { .. } => {}
            Content::Chunk(k) => children.push((k, Node::Chunk, *size)),
            Content::Index(k) => children.push((k, Node::File, 0)),
            // Slices exist from format 3 on (FORMAT.md §4): one in an older archive was put
            // there by hand, and would be copied as stored to archives that cannot read it.
            Content::Slice { .. } if repo.format().format < crate::core::format::SLICES_FROM => {
                return Err(Error::Corrupt {
                    key,
                    kind: kind.name(),
                    why: format!(
                        "it holds a slice of a bundle ({}), which an archive of format {} cannot \
                         hold",
                        crate::core::util::show(&e.name),
                        repo.format().format
                    ),
                })
            }
            Content::Slice { key, start, len } => {
                children.push((key, Node::Chunk, 0));
                if let Some(s) = slices.as_mut() {
                    s.push((key, start, len));
                }
            }
        },
        _ => {}
    }
    Ok(())
}

/// What a key the user named (`ore check KEY`, `ore stats KEY`) is walked as: an archive
/// object as one, anything else as a snapshot. Walked as a snapshot, an object was reported
/// as a corrupt block.
pub fn named_node(repo: &Repo, key: Key) -> Node {
    match repo.get_block_any(key) {
        Ok(p) if p.kind == Kind::Object => Node::Object,
        _ => Node::Snapshot,
    }
}

/// Blocks to walk from, with what each is.
pub type Roots = Vec<(Key, Node)>;

/// The roots of an archive: every tag, the format record, the reflog. Tags whose value is not
/// a key are reported as errors: a collection must not guess what they meant to keep.
pub fn roots(repo: &Repo) -> Result<Roots> {
    let (roots, bad) = roots_and_bad_tags(repo)?;
    match bad.into_iter().next() {
        Some(why) => Err(Error::Archive(format!("{why}; fix or remove it first"))),
        None => Ok(roots),
    }
}

/// What a tag named `name` points at, if it names a block.
fn node_of_tag(name: &str) -> Option<Node> {
    match name {
        crate::core::format::FORMAT_TAG => Some(Node::Format),
        crate::core::reflog::REFLOG_TAG => Some(Node::Reflog),
        n if crate::core::format::is_system_tag(n) => None,
        _ => Some(Node::Snapshot),
    }
}

/// The roots gc keeps besides `current` (the tags' roots): every snapshot and reflog block a
/// tag's kept history names (PROTOCOL.md §6, "Tag history"). So a tag moved by anyone — an
/// append-only client's `forget` or rewound reflog among them — loses nothing until the owner
/// expires the history (`ore reflog expire` with full access). A kept value is no root when its
/// block is gone (removed before it was kept, or by an earlier gc) or is not what its tag
/// says (a tag once pointed at another kind of block, or at a damaged one: nothing below it
/// could be read anyway); failing to read it at all stops gc. Earlier format records reach
/// nothing and are not kept. A backend that keeps no history is an error: gc cannot know what
/// it would destroy.
pub fn history_roots(repo: &Repo, current: &Roots) -> Result<Roots> {
    use protocol::history::{parse, TAG_HISTORY};
    let out = repo.backend().admin(TAG_HISTORY, &[]).map_err(|e| {
        Error::Archive(format!(
            "gc needs the tag history of archive {} (`{TAG_HISTORY}`), which its backend did not give: {e}",
            repo.id()
        ))
    })?;
    let known: std::collections::HashSet<Key> = current.iter().map(|(k, _)| *k).collect();
    let mut roots: Roots = parse(&out.json)?
        .into_iter()
        .filter_map(|e| {
            let node = node_of_tag(&e.tag).filter(|n| *n != Node::Format)?;
            Some((
                crate::core::format::parse_tag_value(e.value.as_bytes())?,
                node,
            ))
        })
        .filter(|(k, _)| !known.contains(k))
        .collect();
    roots.sort_by_key(|(k, _)| *k);
    roots.dedup_by_key(|(k, _)| *k);
    // Each is read (all requests in flight at once) to see that it is what it should be.
    let tickets: Vec<_> = roots
        .iter()
        .map(|(k, _)| repo.backend().start_get(*k))
        .collect();
    let mut kept = Vec::new();
    for ((key, node), ticket) in roots.into_iter().zip(tickets) {
        let Some(stored) = ticket.wait()? else {
            continue;
        };
        let sound = match node {
            Node::Reflog => repo
                .decode_stored::<ReflogBlock>(key, Kind::Reflog, stored)
                .map(|_| ()),
            _ => repo.open_node(key, stored).map(|_| ()),
        };
        match sound {
            // An archive tag's earlier head: a root like any other (`read` walks it).
            Ok(()) | Err(Error::ArchiveHead { .. }) => kept.push((key, node)),
            // Said out loud: a snapshot that a tag once named and that no longer reads is
            // either garbage a tag was pointed at, or damage the owner should hear about.
            Err(e @ (Error::Corrupt { .. } | Error::Missing { .. })) => {
                protocol::log::warning(&format!(
                    "gc: a value the tag history keeps ({key}) is no readable {}, so it keeps \
                     nothing: {e}",
                    node.name()
                ))
            }
            Err(e) => return Err(e),
        }
    }
    Ok(kept)
}

/// The roots, and a message for each tag whose value is not a key.
pub fn roots_and_bad_tags(repo: &Repo) -> Result<(Roots, Vec<String>)> {
    let mut out = Vec::new();
    let mut bad = Vec::new();
    for (name, value) in repo.backend().list_tags()? {
        let Some(node) = node_of_tag(&name) else {
            continue;
        };
        match crate::core::format::parse_tag_value(&value) {
            Some(key) => out.push((key, node)),
            None => bad.push(format!(
                "tag {name} does not hold a block key ({} bytes)",
                value.len()
            )),
        }
    }
    out.sort_by_key(|(k, _)| *k);
    Ok((out, bad))
}
