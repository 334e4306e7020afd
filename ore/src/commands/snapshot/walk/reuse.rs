//! Counting a directory taken whole from the file cache under `ore watch`.
//!
//! A directory the events say nothing changed in is not walked: its tree is the one the last
//! snapshot stored. Its files, directories and bytes must still count in the new snapshot's
//! totals, which `ore log`, `ore snapshots` and `ore stats` show; the file system was not
//! listed, so they are read from the tree's blocks instead (directory blocks only, a few per
//! directory, and from a local archive in microseconds each). A walk of the blocks keeps its own
//! stack and stops at the depth every walk of a snapshot stops at.

use super::Walk;
use crate::core::entry::EntryKind;
use crate::core::error::Result;
use crate::core::tree::{DirTree, Reader};
use protocol::Key;

impl Walk<'_, '_> {
    /// Adds what directory tree `tree` holds (not the directory itself) to the run's counters,
    /// if it may be taken as it is: `false` (nothing counted) when it holds a hard link, whose
    /// target may have changed or gone where no event of this tree said so — it is walked.
    pub(super) fn count_tree(&self, tree: Key) -> Result<bool> {
        let repo = self.ctx.repo;
        let mut open = vec![(Reader::<DirTree>::new(repo, tree), 0usize)];
        let (mut files, mut dirs, mut other, mut bytes) = (0u64, 0u64, 0u64, 0u64);
        while let Some((r, depth)) = open.last_mut() {
            let depth = *depth;
            let Some(e) = r.next_item()? else {
                open.pop();
                continue;
            };
            match e.kind {
                EntryKind::Dir { tree } => {
                    dirs += 1;
                    if depth + 1 >= crate::core::depth::MAX_DEPTH {
                        return Err(crate::core::depth::too_deep(
                            tree,
                            "(a directory of the cache)",
                        ));
                    }
                    open.push((Reader::new(repo, tree), depth + 1));
                }
                EntryKind::File { size, .. } => {
                    files += 1;
                    bytes += size;
                }
                EntryKind::Hardlink { .. } => return Ok(false),
                _ => other += 1,
            }
        }
        self.ctx.count(|s| {
            s.files += files;
            s.dirs += dirs;
            s.other += other;
            s.bytes += bytes;
        });
        self.ctx.progress.add_bytes(bytes);
        Ok(true)
    }
}
