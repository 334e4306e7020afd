//! Blocks an archive implies but does not store: the directory around an object of one file.
//!
//! `ore import --each` makes an object of every file, and the object's tree is the file
//! itself (FORMAT.md, "Archive objects"). Every reader of a tree, though (restore, `ls`,
//! `cat`, mount, explore, diff), starts from a directory: so the object is shown as a
//! nameless directory holding the file, as a snapshot of one file is, and that directory's
//! one block is made here, in memory, when the object is read. Storing it cost the import a
//! sealed block, an `exists` and an index row per file: 0.8 CPU-s of an import of 46,000
//! files (docs/ARCHIVAL.md).
//!
//! An implied block is sealed with the archive's keys under the key its plaintext hashes to,
//! exactly as if it were stored, and read back through the same checks
//! ([`crate::core::tree::read_node_via`]): a hostile object's entry is refused there as any
//! directory's would be. Walks over every stored block (gc, check, sync, dump) read the object
//! itself and never meet an implied key.
//!
//! What is implied is kept for as long as the archive is open: a block of a few hundred bytes
//! for each object of one file read through its tree.

use crate::core::block::Kind;
use crate::core::error::Result;
use crate::core::repo::Repo;
use protocol::Key;
use std::collections::HashMap;
use std::sync::Mutex;

/// Implied blocks, sealed, by key.
#[derive(Default)]
pub struct Implied(Mutex<HashMap<Key, Vec<u8>>>);

impl Implied {
    /// The sealed implied block `key`, if one was made.
    pub fn get(&self, key: &Key) -> Option<Vec<u8>> {
        ore_util::sync::lock(&self.0).get(key).cloned()
    }
}

impl Repo {
    /// Makes `plain` an implied block of `kind` (sealed, kept, never stored); its key.
    pub fn imply(&self, kind: Kind, plain: &[u8]) -> Result<Key> {
        let key = self.try_keys()?.key_of(kind as u8, plain);
        let mut held = ore_util::sync::lock(&self.implied().0);
        if let std::collections::hash_map::Entry::Vacant(v) = held.entry(key) {
            v.insert(self.sealed(kind, &key, plain)?);
        }
        Ok(key)
    }
}
