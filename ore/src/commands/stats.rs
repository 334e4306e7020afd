//! `ore stats [SNAPSHOT...]`: how big snapshots are, how much deduplication saves, and what
//! each tag (or each snapshot named) holds that nothing else does.
//!
//! The sizes come from a walk of the snapshots' trees, as gc marks ([`crate::core::reach`]):
//! every directory and file-index block is read (their stored size is known exactly), and
//! every chunk is counted once, with its length before compression as the file holding it
//! records. A bundle of small files (format 3) is counted as one chunk, and its bytes as the
//! sum of its distinct slices that the walk reaches. Chunks themselves are not read — that would be reading the whole archive — so the
//! stored size of the data is the backend's own count for the archive as a whole, when it
//! keeps one.
//!
//! To say what a group (a tag with its chain, or one snapshot) holds alone, each group is
//! walked on its own, and every block remembers the first group that reached it, or that
//! several did. Memory is about 60 bytes per distinct block; a tree shared by several groups
//! is read once per group.

use crate::core::chains::every;
use crate::core::error::{Error, Result};
use crate::core::keyset::KeySet;
use crate::core::reach::{self, Counts, Node, Visitor};
use crate::core::repo::Repo;
use ore_util::sync::lock;
use protocol::Key;
use std::collections::HashMap;
use std::sync::Mutex;

/// Blocks and bytes.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct Sizes {
    /// Data chunks, and their bytes before compression.
    pub chunks: u64,
    pub chunk_bytes: u64,
    /// Snapshot, directory and file-index blocks, and their stored bytes.
    pub trees: u64,
    pub tree_bytes: u64,
}

/// What a counted block is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum What {
    Tree,
    Chunk,
    /// A small file's slice of a bundle chunk: its bytes count as the chunk's (the bundle
    /// itself is counted as a chunk of no bytes), and it is no block.
    Slice,
}

impl Sizes {
    fn add(&mut self, size: u64, what: What) {
        match what {
            // Sizes come from the archive's entries, which a hostile writer chooses: summed
            // without overflowing.
            What::Chunk => {
                self.chunks += 1;
                self.chunk_bytes = self.chunk_bytes.saturating_add(size);
            }
            What::Slice => self.chunk_bytes = self.chunk_bytes.saturating_add(size),
            What::Tree => {
                self.trees += 1;
                self.tree_bytes = self.tree_bytes.saturating_add(size);
            }
        }
    }
}

/// What one group holds: its name, what it reaches, and what only it reaches.
#[derive(Debug, serde::Serialize)]
pub struct Group {
    pub name: String,
    pub snapshots: u64,
    /// Bytes of regular files a restore of each of its snapshots writes, in all.
    pub restored_bytes: u64,
    pub files: u64,
    /// For an archive tag, the objects its index lists and how many of them are current (not
    /// replaced by a newer version).
    pub objects: Option<ObjectCounts>,
    pub reached: Sizes,
    pub unique: Sizes,
}

/// How many objects an archive tag lists, and how many of them are current.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct ObjectCounts {
    pub listed: u64,
    pub current: u64,
}

/// The answer.
#[derive(Debug, serde::Serialize)]
pub struct Stats {
    /// Whether the groups are tags (no snapshots were named) or the snapshots named.
    pub by: &'static str,
    pub snapshots: u64,
    pub files: u64,
    pub restored_bytes: u64,
    /// Archive tags, and the objects they list, when every tag is a group.
    pub archive_tags: u64,
    pub objects: u64,
    /// Every distinct block the groups reach, counted once.
    pub deduplicated: Sizes,
    /// The archive's stored bytes and blocks as its backend counts them (every block, of any
    /// snapshot), when it keeps the counts.
    pub archive_bytes: Option<u64>,
    pub archive_blocks: Option<u64>,
    pub groups: Vec<Group>,
}

/// Which group first reached a block, its size, and what it is.
struct Owner {
    group: u32,
    shared: bool,
    size: u64,
    what: What,
}

/// Counts what one group's walk reaches, and notes each block's owner.
struct Tally<'a> {
    group: u32,
    owners: &'a Mutex<HashMap<Key, Owner>>,
    reached: Mutex<Sizes>,
}

impl Tally<'_> {
    fn note(&self, key: Key, size: u64, what: What) {
        lock(&self.reached).add(size, what);
        let mut o = lock(self.owners);
        o.entry(key)
            .and_modify(|w| w.shared |= w.group != self.group)
            .or_insert(Owner {
                group: self.group,
                shared: false,
                size,
                what,
            });
    }
}

impl Visitor for Tally<'_> {
    fn block(
        &self,
        key: Key,
        node: Node,
        stored: &[u8],
        _: &crate::core::block::Plain,
    ) -> Result<()> {
        if node != Node::Reflog && node != Node::Format {
            self.note(key, stored.len() as u64, What::Tree);
        }
        Ok(())
    }
    fn chunk(&self, key: Key) -> Result<()> {
        self.chunk_of(key, 0)
    }
    fn chunk_of(&self, key: Key, len: u64) -> Result<()> {
        self.note(key, len, What::Chunk);
        Ok(())
    }
    fn slices(&self) -> bool {
        true
    }
    fn slice(&self, id: Key, _: Key, _: u64, len: u64) -> Result<()> {
        self.note(id, len, What::Slice);
        Ok(())
    }
}

/// A group to walk: its name, its roots, and whether chains are followed.
type Walked = (String, Vec<(Key, Node)>, bool);

/// The stats of `named` snapshots (keys, each its own group, chains not followed), or when
/// none are named, of every tag with its whole chain.
pub fn stats(repo: &Repo, named: &[(String, Key)]) -> Result<Stats> {
    let listed = every(repo, &[])?;
    let mut groups: Vec<Walked> = Vec::new();
    if named.is_empty() {
        for (tag, key) in repo.tags()? {
            groups.push((tag, vec![(key, Node::Snapshot)], true));
        }
    } else {
        // A snapshot named twice (`a` and its key) is counted once.
        let mut seen = std::collections::HashSet::new();
        for (name, key) in named {
            if seen.insert(*key) {
                let node = crate::core::reach::named_node(repo, *key);
                groups.push((name.clone(), vec![(*key, node)], false));
            }
        }
    }
    if groups.len() > u32::MAX as usize {
        return Err(Error::Usage("too many snapshots named".into()));
    }
    let owners = Mutex::new(HashMap::new());
    let mut reached = Vec::new();
    for (i, (_, roots, chains)) in groups.iter().enumerate() {
        let tally = Tally {
            group: i as u32,
            owners: &owners,
            reached: Mutex::default(),
        };
        let walk =
            |v: &dyn Visitor| reach::walk(repo, roots, &KeySet::new(), v, &Counts::default());
        match chains {
            true => walk(&tally)?,
            false => walk(&OneSnapshot(&tally))?,
        }
        reached.push(ore_util::sync::into_inner(tally.reached));
    }
    let owners = ore_util::sync::into_inner(owners);
    let heads: HashMap<String, crate::core::archival::Head> = match named.is_empty() {
        true => crate::core::objects::archive_heads(repo)?
            .into_iter()
            .collect(),
        false => HashMap::new(),
    };
    let mut out_groups: Vec<Group> = groups
        .iter()
        .map(|(name, roots, chains)| {
            let keys: Vec<Key> = roots.iter().map(|(k, _)| *k).collect();
            let snaps: Vec<&crate::core::chains::Listed> = listed
                .iter()
                .filter(|l| match chains {
                    true => l
                        .names
                        .iter()
                        .any(|n| n.rsplit_once('~').is_some_and(|(t, _)| t == name)),
                    false => keys.contains(&l.key),
                })
                .collect();
            Group {
                name: name.clone(),
                snapshots: snaps.len() as u64,
                restored_bytes: snaps.iter().map(|l| l.snapshot.stats.bytes).sum(),
                files: snaps.iter().map(|l| l.snapshot.stats.files).sum(),
                objects: heads.get(name).map(|h| ObjectCounts {
                    listed: h.objects,
                    current: h.current,
                }),
                reached: Sizes::default(),
                unique: Sizes::default(),
            }
        })
        .collect();
    let mut dedup = Sizes::default();
    for o in owners.values() {
        dedup.add(o.size, o.what);
        if !o.shared {
            out_groups[o.group as usize].unique.add(o.size, o.what);
        }
    }
    for (g, r) in out_groups.iter_mut().zip(reached) {
        g.reached = r;
    }
    let backend = repo.backend().stats()?;
    let (snapshots, files, restored_bytes) = match named.is_empty() {
        true => (
            listed.len() as u64,
            listed.iter().map(|l| l.snapshot.stats.files).sum(),
            listed.iter().map(|l| l.snapshot.stats.bytes).sum(),
        ),
        false => (
            out_groups.iter().map(|g| g.snapshots).sum(),
            out_groups.iter().map(|g| g.files).sum(),
            out_groups.iter().map(|g| g.restored_bytes).sum(),
        ),
    };
    Ok(Stats {
        by: if named.is_empty() { "tag" } else { "snapshot" },
        snapshots,
        files,
        restored_bytes,
        archive_tags: heads.len() as u64,
        objects: heads.values().map(|h| h.objects).sum(),
        deduplicated: dedup,
        archive_bytes: backend.bytes,
        archive_blocks: backend.blocks,
        groups: out_groups,
    })
}

/// A visitor that does not follow a snapshot's chain.
struct OneSnapshot<'a>(&'a dyn Visitor);

impl Visitor for OneSnapshot<'_> {
    fn chains(&self) -> bool {
        false
    }
    fn block(&self, k: Key, n: Node, s: &[u8], p: &crate::core::block::Plain) -> Result<()> {
        self.0.block(k, n, s, p)
    }
    fn chunk(&self, key: Key) -> Result<()> {
        self.0.chunk(key)
    }
    fn chunk_of(&self, key: Key, len: u64) -> Result<()> {
        self.0.chunk_of(key, len)
    }
    fn slices(&self) -> bool {
        self.0.slices()
    }
    fn slice(&self, id: Key, bundle: Key, start: u64, len: u64) -> Result<()> {
        self.0.slice(id, bundle, start, len)
    }
}
