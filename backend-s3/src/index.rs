//! The index: which blocks lie where, kept in the store as index objects that any process
//! reads, and rebuilt from the packs themselves when one is missing (LAYOUT.md, "Index
//! objects").
//!
//! An index object holds the tables of one or more packs. A writer stores its packs as they
//! fill and writes one index object for all of them when it flushes (or after
//! [`PACKS_PER_OBJECT`] packs), so a first snapshot of /usr/share stores 15 packs and one index
//! object, not 15 of each: half the PUTs of the snapshot were index objects when each pack had
//! its own. Index objects are named by the hash of their bytes and never change; a repack that
//! deletes a pack first writes a replacement for every index object that named it (covering its
//! other packs), so a pack that no listed index object covers any more is gone, and a pack
//! that none ever covered (its writer died before flushing) is found by `reindex`.
//!
//! Objects of the first layout, one per pack (`index/<pack id>` holding that pack's table), are
//! still read: the magic at the start of an object says which kind it is.

use crate::packs::{corrupt, parse_table, Entries, Loc, Locs, PackId};
use crate::store::Store;
use protocol::{Error, Key, Result};
use std::collections::{BTreeMap, HashSet};

/// An index object of the current layout: this magic, then per pack its id (64 hex digits),
/// its table's length (u64 LE) and its table.
const OBJECT_MAGIC: &[u8; 8] = b"oreS3ox1";
/// A pack's table, which is also the whole of a first-layout index object.
const TABLE_MAGIC: &[u8; 8] = b"oreS3ix1";
/// Packs one index object covers at most: a writer that stores this many before it flushes
/// writes their index object then (a 256 MiB checkpoint is 16 packs).
pub(crate) const PACKS_PER_OBJECT: usize = 64;

/// The bytes and name (`index/<blake3 of the bytes>`) of the index object for these packs'
/// tables (each as [`crate::packs::table`] makes it).
pub(crate) fn object(packs: &[(String, Vec<u8>)]) -> (String, Vec<u8>) {
    let len = packs.iter().map(|(_, t)| 72 + t.len()).sum::<usize>();
    let mut out = Vec::with_capacity(8 + len);
    out.extend_from_slice(OBJECT_MAGIC);
    for (id, table) in packs {
        out.extend_from_slice(id.as_bytes());
        out.extend_from_slice(&(table.len() as u64).to_le_bytes());
        out.extend_from_slice(table);
    }
    (format!("index/{}", blake3::hash(&out).to_hex()), out)
}

/// The packs an index object named `name` (`index/...`) covers, with their tables.
pub(crate) fn parse_object(archive: &str, name: &str, data: &[u8]) -> Result<NewPacks> {
    if data.starts_with(TABLE_MAGIC) {
        let pack = name.trim_start_matches("index/").to_string();
        return Ok(vec![(pack, parse_table(archive, name, data)?)]);
    }
    let mut rest = data
        .strip_prefix(OBJECT_MAGIC)
        .ok_or_else(|| corrupt(archive, name, "does not start with an index magic"))?;
    let mut out = Vec::new();
    while !rest.is_empty() {
        let torn = || corrupt(archive, name, "ends inside a pack's entry");
        let (id, after) = rest.split_at_checked(64).ok_or_else(torn)?;
        let id = std::str::from_utf8(id)
            .ok()
            .filter(|i| i.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| corrupt(archive, name, "names a pack whose id is not hex"))?;
        let (len, after) = after.split_at_checked(8).ok_or_else(torn)?;
        let len = u64::from_le_bytes(len.try_into().map_err(|_| torn())?);
        let len = usize::try_from(len).map_err(|_| torn())?;
        let (table, after) = after.split_at_checked(len).ok_or_else(torn)?;
        out.push((
            id.to_string(),
            parse_table(archive, &format!("{name} (pack {id})"), table)?,
        ));
        rest = after;
    }
    Ok(out)
}

/// Whether a local copy of index object `name` can be the object: one of the current layout
/// is named by the hash of its bytes (a damaged or planted copy is read from the store again
/// instead); one of the first layout is named by its pack, which its bytes cannot show.
fn matches_name(name: &str, bytes: &[u8]) -> bool {
    !bytes.starts_with(OBJECT_MAGIC)
        || name.strip_prefix("index/") == Some(blake3::hash(bytes).to_hex().as_str())
}

/// Packs read from index objects: pack id and its entries.
pub(crate) type NewPacks = Vec<(String, Entries)>;
/// Deletion records read: object name and its (key, pack) pairs.
pub(crate) type NewDeletions = Vec<(String, Vec<(Key, String)>)>;

/// What a refresh found: new index objects (each with the packs it covers), new deletion
/// records, and index objects read before that are gone (a repack replaced them).
pub(crate) struct Found {
    pub objects: Vec<(String, NewPacks)>,
    pub dels: NewDeletions,
    pub vanished: Vec<String>,
}

/// Which blocks are where, as far as this process has read the store.
#[derive(Default)]
pub(crate) struct Index {
    pub blocks: BTreeMap<Key, Locs>,
    /// The whole table of every pack read (removed blocks included): what a repack weighs.
    pub packs: BTreeMap<PackId, Entries>,
    /// Each index object read, and the packs it covers: a pack no object covers is gone.
    pub objects: BTreeMap<String, Vec<String>>,
    /// Each deletion record read, and the packs it names (a repack deletes records whose
    /// packs are all gone).
    pub records: BTreeMap<String, HashSet<String>>,
    /// Index and deletion objects already applied.
    seen: HashSet<String>,
    /// Removed (key, pack) pairs: applied to index objects read later too.
    deleted: HashSet<(Key, String)>,
}

impl Index {
    /// Adds a pack's table (from an index object, or a pack this process just stored).
    pub fn add(&mut self, pack: &str, entries: &[(Key, u64, u32)]) {
        let id: PackId = match self.packs.get_key_value(pack) {
            Some((id, _)) => id.clone(),
            None => pack.into(),
        };
        self.packs.insert(id.clone(), entries.to_vec());
        let (deleted, blocks) = (&self.deleted, &mut self.blocks);
        for &(key, offset, len) in entries {
            if !deleted.is_empty() && deleted.contains(&(key, pack.to_string())) {
                continue;
            }
            let locs = blocks.entry(key).or_default();
            if !locs.iter().any(|l| &*l.pack == pack) {
                locs.push(Loc {
                    pack: id.clone(),
                    offset,
                    len,
                });
            }
        }
    }

    /// Records an index object read or written, covering `packs` (already added).
    pub fn add_object(&mut self, object: String, packs: Vec<String>) {
        self.seen.insert(object.clone());
        self.objects.insert(object, packs);
    }

    pub fn delete(&mut self, pairs: &[(Key, String)]) {
        for (key, pack) in pairs {
            if let Some(locs) = self.blocks.get_mut(key) {
                locs.retain(|l| *l.pack != **pack);
                if locs.is_empty() {
                    self.blocks.remove(key);
                }
            }
            self.deleted.insert((*key, pack.clone()));
        }
    }

    /// Whether a removal record named this copy.
    pub fn is_deleted(&self, key: &Key, pack: &str) -> bool {
        self.deleted.contains(&(*key, pack.to_string()))
    }

    /// Forgets an index object that is gone from the store, and every pack it covered that no
    /// other object covers: those were repacked (their blocks' other copies stay).
    pub fn forget_object(&mut self, object: &str) {
        self.seen.remove(object);
        let Some(packs) = self.objects.remove(object) else {
            return;
        };
        let still: HashSet<&String> = self.objects.values().flatten().collect();
        let gone: Vec<String> = packs.into_iter().filter(|p| !still.contains(p)).collect();
        for pack in gone {
            self.forget_pack(&pack);
        }
    }

    /// Forgets a pack that is gone from the store (repacked): its blocks' other copies stay.
    pub fn forget_pack(&mut self, pack: &str) {
        let Some(entries) = self.packs.remove(pack) else {
            return;
        };
        for (key, _, _) in entries {
            if let Some(locs) = self.blocks.get_mut(&key) {
                locs.retain(|l| &*l.pack != pack);
                if locs.is_empty() {
                    self.blocks.remove(&key);
                }
            }
        }
    }

    /// The packs some index object read here covers (not those of this process still waiting
    /// for theirs: a repack leaves those alone).
    pub fn covered(&self) -> HashSet<&str> {
        self.objects
            .values()
            .flatten()
            .map(String::as_str)
            .collect()
    }

    /// The copy of `key` that counts: the one in the pack with the smallest id. Every process
    /// and every repack picks the same one from the same copies, so a repack that drops the
    /// other copies keeps exactly this one.
    pub fn canonical(&self, key: &Key) -> Option<&Loc> {
        self.blocks
            .get(key)?
            .iter()
            .min_by(|a, b| a.pack.cmp(&b.pack))
    }

    pub fn mark_seen(&mut self, object: String) {
        self.seen.insert(object);
    }

    pub fn seen(&self) -> &HashSet<String> {
        &self.seen
    }
}

/// Reads the index and deletion objects this process has not applied yet; the caller applies
/// what was found under its lock ([`apply`]).
pub(crate) async fn read_new(store: &Store, seen: &HashSet<String>) -> Result<Found> {
    // Layout 2 keeps removal records among the index objects (`index/r-...`): one listing
    // finds both. Layout 1 keeps them in `deleted/`.
    let (listed, deleted, removals) = if store.layout == 1 {
        let (i, d) = futures::try_join!(store.list_all("index/"), store.list_all("deleted/"))?;
        store
            .local
            .prune("index", &i.iter().map(String::as_str).collect());
        store
            .local
            .prune("deleted", &d.iter().map(String::as_str).collect());
        (i, d, "deleted/")
    } else {
        let both = store.list_all("index/").await?;
        store
            .local
            .prune("index", &both.iter().map(String::as_str).collect());
        let (d, i) = both
            .into_iter()
            .partition(|n| n.starts_with(crate::packs::REMOVAL_MARK));
        (i, d, "index/")
    };
    let now: HashSet<&str> = listed.iter().map(String::as_str).collect();
    let vanished = seen
        .iter()
        .filter(|o| {
            o.strip_prefix("index/")
                .is_some_and(|n| !n.starts_with(crate::packs::REMOVAL_MARK) && !now.contains(n))
        })
        .cloned()
        .collect();
    let fresh = |names: Vec<String>, dir: &str| -> Vec<String> {
        names
            .into_iter()
            .map(|n| format!("{dir}{n}"))
            .filter(|n| !seen.contains(n))
            .collect()
    };
    let indexes = fresh(listed, "index/");
    let deletions = fresh(deleted, removals);
    // Owned names and store handles: these futures run inside spawned tasks, which must not
    // borrow from an iterator.
    let reads = indexes.into_iter().map(|o| {
        let store = store.clone();
        async move {
            if let Some(t) = store.local.read(&o).filter(|t| matches_name(&o, t)) {
                if let Ok(packs) = parse_object(&store.archive, &o, &t) {
                    return Ok(Some((o, packs)));
                }
            }
            // Gone since the listing: a repack replaced it.
            let Some(t) = store.get(&o).await? else {
                return Ok(None);
            };
            let packs = parse_object(&store.archive, &o, &t)?;
            store.local.write(&o, &t);
            Ok::<_, Error>(Some((o, packs)))
        }
    });
    let objects = crate::store::at_most(reads)
        .await?
        .into_iter()
        .flatten()
        .collect();
    let reads = deletions.into_iter().map(|o| {
        let store = store.clone();
        async move { read_deletion(&store, o).await }
    });
    let dels = crate::store::at_most(reads).await?;
    Ok(Found {
        objects,
        dels,
        vanished,
    })
}

/// A removal record's (key, pack) pairs: key (32 bytes) then pack id (64 hex), each.
async fn read_deletion(store: &Store, o: String) -> Result<(String, Vec<(Key, String)>)> {
    let t = match store.local.read(&o).filter(|t| t.len() % 96 == 0) {
        Some(t) => t,
        None => {
            let t = store.get(&o).await?.unwrap_or_default();
            if t.len() % 96 == 0 && !t.is_empty() {
                store.local.write(&o, &t);
            }
            t
        }
    };
    if t.len() % 96 != 0 {
        return Err(corrupt(&store.archive, &o, "has a torn entry"));
    }
    let pairs = t
        .chunks_exact(96)
        .map(|e| {
            let mut k = [0u8; 32];
            k.copy_from_slice(&e[..32]);
            (Key(k), String::from_utf8_lossy(&e[32..]).into_owned())
        })
        .collect();
    Ok((o, pairs))
}

/// Applies what [`read_new`] found.
pub(crate) fn apply(index: &mut Index, found: Found) {
    // New objects first: a replacement read in the same refresh keeps its packs.
    for (object, packs) in found.objects {
        let ids = packs.iter().map(|(p, _)| p.clone()).collect();
        for (pack, entries) in packs {
            if !index.packs.contains_key(pack.as_str()) {
                index.add(&pack, &entries);
            }
        }
        index.add_object(object, ids);
    }
    for object in found.vanished {
        index.forget_object(&object);
    }
    for (object, pairs) in found.dels {
        index.delete(&pairs);
        let packs = pairs.iter().map(|(_, p)| p.clone()).collect();
        index.records.insert(object.clone(), packs);
        index.mark_seen(object);
    }
}

/// Stores one index object for these packs (id, table) and records it in `index`, with a
/// local copy. The packs' tables must already be in `index`.
pub(crate) async fn store_object(
    store: &Store,
    index: &std::sync::RwLock<Index>,
    packs: &[(String, Vec<u8>)],
) -> Result<()> {
    for chunk in packs.chunks(PACKS_PER_OBJECT) {
        let (name, bytes) = object(chunk);
        store.put_new(&name, bytes.clone()).await?;
        store.local.write(&name, &bytes);
        let ids = chunk.iter().map(|(p, _)| p.clone()).collect();
        ore_util::sync::write(index).add_object(name, ids);
    }
    Ok(())
}

/// Index objects that cover any of `packs`: what a repack that deletes them must replace.
pub(crate) fn objects_covering(index: &Index, packs: &HashSet<&str>) -> Vec<String> {
    index
        .objects
        .iter()
        .filter(|(_, covers)| covers.iter().any(|p| packs.contains(p.as_str())))
        .map(|(o, _)| o.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packs::table;

    fn pack(n: u8) -> (String, Entries) {
        let id = format!("{n:02x}").repeat(32);
        (
            id,
            vec![(Key([n; 32]), 28, 10), (Key([n + 100; 32]), 38, 5)],
        )
    }

    #[test]
    fn an_index_object_covering_several_packs_reads_back_as_their_tables() {
        let (a, b) = (pack(1), pack(2));
        let (name, bytes) = object(&[(a.0.clone(), table(&a.1)), (b.0.clone(), table(&b.1))]);
        assert_eq!(name, format!("index/{}", blake3::hash(&bytes).to_hex()));
        let read = parse_object("s3://b/p/", &name, &bytes).expect("parses");
        assert_eq!(read, vec![a, b]);
    }

    #[test]
    fn a_local_copy_that_does_not_hash_to_its_name_is_not_used() {
        let a = pack(7);
        let (name, bytes) = object(&[(a.0.clone(), table(&a.1))]);
        assert!(matches_name(&name, &bytes));
        let mut planted = bytes.clone();
        planted[80] ^= 1;
        assert!(!matches_name(&name, &planted));
    }

    #[test]
    fn a_first_layout_index_object_is_the_table_of_the_pack_it_is_named_after() {
        let a = pack(3);
        let name = format!("index/{}", a.0);
        let read = parse_object("s3://b/p/", &name, &table(&a.1)).expect("parses");
        assert_eq!(read, vec![a]);
    }

    #[test]
    fn a_torn_or_foreign_index_object_is_corrupt_naming_it() {
        let a = pack(4);
        let (name, bytes) = object(&[(a.0.clone(), table(&a.1))]);
        for cut in [9, 70, 80, bytes.len() - 1] {
            let e = parse_object("s3://b/p/", &name, &bytes[..cut]).expect_err("torn");
            assert!(e.to_string().contains(&name), "{e}");
        }
        let e = parse_object("s3://b/p/", "index/x", b"something else").expect_err("foreign");
        assert!(e.to_string().contains("index/x"), "{e}");
    }

    #[test]
    fn a_pack_is_forgotten_only_when_no_index_object_covers_it_any_more() {
        let (a, b) = (pack(5), pack(6));
        let mut index = Index::default();
        index.add(&a.0, &a.1);
        index.add(&b.0, &b.1);
        index.add_object("index/old".into(), vec![a.0.clone(), b.0.clone()]);
        // A repack replaced it by an object covering b alone, then deleted pack a.
        index.add_object("index/new".into(), vec![b.0.clone()]);
        index.forget_object("index/old");
        assert!(!index.packs.contains_key(a.0.as_str()), "a is gone");
        assert!(!index.blocks.contains_key(&Key([5; 32])));
        assert!(index.packs.contains_key(b.0.as_str()), "b is still covered");
        assert_eq!(index.blocks[&Key([6; 32])][0].pack, b.0.as_str().into());
        assert!(!index.seen().contains("index/old"));
    }
}

/// A measurement, not a check (run it alone: it reads the process's resident set): the memory
/// one block takes in the index. `cargo test --release -p backend-s3 --lib
/// measure_index_bytes_per_block -- --ignored --nocapture`; figures in LAYOUT.md ("Memory").
#[cfg(test)]
mod measure {
    fn resident() -> u64 {
        std::fs::read_to_string("/proc/self/statm")
            .ok()
            .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
            .map_or(0, |pages| pages * 4096)
    }

    #[test]
    #[ignore]
    fn measure_index_bytes_per_block() {
        let before = resident();
        let mut index = super::Index::default();
        let mut n = 0u64;
        for p in 0..250u128 {
            let entries: Vec<_> = (0..4000u64)
                .map(|i| {
                    n += 1;
                    let key = protocol::Key(*blake3::hash(&n.to_le_bytes()).as_bytes());
                    (key, i * 5000, 5000u32)
                })
                .collect();
            index.add(&format!("{:064x}", p * 7919), &entries);
        }
        assert_eq!(index.blocks.len() as u64, n);
        println!(
            "{n} blocks in 250 packs: {} bytes of resident memory each",
            resident().saturating_sub(before) / n
        );
    }
}
