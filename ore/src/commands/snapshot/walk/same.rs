//! A directory's tree, and what the file cache remembers of it.
//!
//! A directory's tree is keyed by the archive's keys, and an encrypted archive's keys come
//! from the passphrase through argon2id: 35–45 ms here, a fifth of an unchanged re-snapshot
//! of /usr/share. The snapshot derives them beside the walk (`core::unlock`), so
//! the walk must not need them where nothing changed. Its files do not (the cache holds their
//! entries); its directories would, to key their trees again.
//!
//! So each directory's cache row also keeps a [`Mark`]: a plain BLAKE3 digest of the entries
//! its tree was built from, and the tree's key. When the entries digest the same again, the
//! tree is the same (it depends on nothing else: the cut points come from the names, and the
//! digest's domain names the format and the layout of this code), and its key is taken from
//! the mark. Only a directory whose entries differ builds its tree, waiting for the keys if
//! they are not yet derived. The digest is unkeyed: it is kept beside the entries it digests,
//! which tell more than it does. A mark is used only in the generation it was written in
//! (`core::filecache`): after blocks were removed from the archive, a directory's rows are
//! checked, its tree is built and checked as it is stored, and it is marked anew.
//!
//! The digest encodes a directory's entries once more than the tree itself does; where the
//! mark holds, that is all the tree costs, and no keyed hash is made.

use super::{DirStore, Done, Walk};
use crate::core::cpustat::{time, Stage};
use crate::core::entry::{encode, Entry, EntryKind};
use crate::core::error::Result;
use crate::core::filecache::{Cached, Mark, Stamp};
use crate::core::tree::{Builder, DirTree};
use ore_util::sync::lock;
use protocol::Key;
use std::collections::HashMap;

/// What the digest's domain says: change it with the tree's layout or its cut points.
const DOMAIN: &str = "ore 2026-12 directory entries";

/// The digest of a directory's entries in an archive of format `format`.
fn digest(format: u32, entries: &[u8]) -> [u8; 32] {
    let mut h = blake3::Hasher::new_derive_key(DOMAIN);
    h.update(&format.to_le_bytes());
    h.update(entries);
    *h.finalize().as_bytes()
}

impl Walk<'_, '_> {
    /// Finishes directory `abs_bytes` once its entries are `done` (in name order): updates the
    /// cache's rows of it (`rows`: what is left of the `cached_total` rows read, names not met
    /// again), and returns its tree's key: taken from `had` when the entries are those that
    /// mark was made from, and otherwise built and stored (`known`: the key the parent's row
    /// names, which needs no storing). The mark of that tree is recorded when it is new.
    pub(super) fn finish_dir(
        &self,
        abs_bytes: &[u8],
        done: Vec<Done>,
        (rows, cached_total): (&HashMap<Vec<u8>, Cached>, usize),
        had: Option<Mark>,
        known: Option<Key>,
    ) -> Result<Key> {
        let ctx = self.ctx;
        let digest = time(Stage::Index, || {
            let entries: Vec<&Entry> = done.iter().map(|d| &d.entry).collect();
            digest(ctx.repo.format().format, &encode(&entries))
        });
        time(Stage::Walk, || {
            self.update_rows(abs_bytes, &done, rows, cached_total)
        })?;
        let tree = match had.filter(|m| m.digest == digest) {
            Some(m) => m.tree,
            None => time(Stage::Index, || {
                let mut tree = Builder::<DirTree>::default();
                let mut store = DirStore { ctx, known };
                for d in done {
                    tree.push(d.entry, &mut store)?;
                }
                tree.finish(&mut store)
            })?,
        };
        let mark = Mark { digest, tree };
        if let (Some(w), false) = (&self.writer, had == Some(mark)) {
            lock(w).put_mark(abs_bytes, mark)?;
        }
        Ok(tree)
    }

    /// Updates the file cache's rows for the directory `abs_bytes` when its knowledge
    /// changed: an entry changed, or a row of `cached_total` was not met again (`rows` holds
    /// what is left of them: gone, and a directory's subtree forgotten with it).
    fn update_rows(
        &self,
        abs_bytes: &[u8],
        done: &[Done],
        rows: &HashMap<Vec<u8>, Cached>,
        cached_total: usize,
    ) -> Result<()> {
        let Some(w) = &self.writer else {
            return Ok(());
        };
        let kept: Vec<(&[u8], Stamp, &Entry)> = done
            .iter()
            .filter_map(|d| d.stamp.map(|s| (d.entry.name.as_slice(), s, &d.entry)))
            .collect();
        let dirty =
            done.iter().any(|d| d.changed) || !rows.is_empty() || kept.len() != cached_total;
        if dirty {
            let w = lock(w);
            w.put_dir(abs_bytes, &kept)?;
            for (name, gone) in rows {
                if matches!(gone.entry.kind, EntryKind::Dir { .. }) {
                    w.forget_tree(&crate::core::util::join_path(abs_bytes, name))?;
                }
            }
        }
        Ok(())
    }
}
