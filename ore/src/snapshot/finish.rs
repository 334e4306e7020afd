//! The finisher: turns walked directories into stored directory trees, in post-order.

use super::file::FileDone;
use super::Ctx;
use crate::block::Kind;
use crate::entry::{Entry, EntryKind};
use crate::error::{Error, Result};
use crate::filecache::{CacheWriter, Stamp};
use crate::slot::Slot;
use crate::tree::{Builder, DirTree, Store};
use protocol::Key;
use std::sync::mpsc::Receiver;
use std::sync::Arc;

/// An entry of a walked directory, possibly still being stored.
pub(crate) enum Pending {
    /// Complete (not a file to read, or found unchanged in the file cache).
    Ready(Entry),
    /// A file the pool is storing.
    File {
        entry: Entry,
        slot: Arc<Slot<FileDone>>,
        stamp: Stamp,
    },
    /// A subdirectory, finished earlier by this same thread.
    Dir {
        entry: Entry,
        slot: Arc<Slot<Result<Key>>>,
        stamp: Stamp,
        /// The tree key the file cache holds for it, when its own stamp is unchanged: if the
        /// tree comes out the same, its cache row needs no rewrite.
        cached: Option<Key>,
    },
}

/// A walked directory.
pub(crate) struct DirJob {
    /// Its absolute path (the file cache's key); empty for a made-up root.
    pub abs: Vec<u8>,
    /// Its path from the snapshot root, for warnings.
    pub rel: Vec<u8>,
    pub entries: Vec<Pending>,
    /// Where its tree's key goes.
    pub slot: Arc<Slot<Result<Key>>>,
    /// Its tree's key last time, if the file cache knows it (then it needs no storing).
    pub known: Option<Key>,
    /// Names the file cache had that are gone now.
    pub forget: Vec<Vec<u8>>,
}

struct DirStore<'a, 'r> {
    ctx: &'a Ctx<'r>,
    known: Option<Key>,
}

impl Store for DirStore<'_, '_> {
    fn store(&mut self, kind: Kind, plain: &[u8]) -> Result<Key> {
        self.ctx.writer.store(kind, plain, self.known)
    }
}

/// Finishes directories as they arrive until the walk is over.
pub(super) fn run(
    ctx: &Ctx,
    jobs: Receiver<DirJob>,
    cache: Option<CacheWriter>,
) -> Result<Option<CacheWriter>> {
    for job in jobs {
        let slot = job.slot.clone();
        match finish(ctx, job, cache.as_ref()) {
            Ok(key) => slot.set(Ok(key)),
            Err(e) => {
                slot.set(Err(Error::Archive("stopped".into())));
                ctx.fail(e);
                // Keep draining so the walk never blocks on a full channel.
            }
        }
    }
    Ok(cache)
}

fn join(rel: &[u8], name: &[u8]) -> Vec<u8> {
    let mut v = rel.to_vec();
    if !v.is_empty() {
        v.push(b'/');
    }
    v.extend_from_slice(name);
    v
}

fn finish(ctx: &Ctx, job: DirJob, cache: Option<&CacheWriter>) -> Result<Key> {
    if ctx.stopped() {
        // Still wait for the files, so nothing outlives the run.
        for p in job.entries {
            if let Pending::File { slot, .. } = p {
                slot.take();
            }
        }
        return Err(Error::Archive("stopped".into()));
    }
    let cache = cache.filter(|_| !job.abs.is_empty());
    let mut tree = Builder::<DirTree>::default();
    let mut store = DirStore {
        ctx,
        known: job.known,
    };
    let mut failed = None;
    for p in job.entries {
        let entry = match p {
            Pending::Ready(e) => e,
            Pending::File {
                mut entry,
                slot,
                stamp,
            } => match slot.take() {
                FileDone::Stored {
                    size,
                    content,
                    warning,
                } => {
                    entry.kind = EntryKind::File { size, content };
                    match warning {
                        Some(w) => ctx.warn(&join(&job.rel, &entry.name), w),
                        None => {
                            if let Some(c) = cache {
                                c.put(&job.abs, &entry.name, stamp, &entry)?;
                            }
                        }
                    }
                    entry
                }
                FileDone::Failed(msg) => {
                    ctx.warn(&join(&job.rel, &entry.name), msg);
                    continue;
                }
                FileDone::Fatal(e) => {
                    failed.get_or_insert(e);
                    continue;
                }
                FileDone::Skipped => continue,
            },
            Pending::Dir {
                mut entry,
                slot,
                stamp,
                cached,
            } => {
                let key = match slot.take() {
                    Ok(k) => k,
                    Err(e) => {
                        failed.get_or_insert(e);
                        continue;
                    }
                };
                entry.kind = EntryKind::Dir { tree: key };
                if let Some(c) = cache.filter(|_| cached != Some(key)) {
                    c.put(&job.abs, &entry.name, stamp, &entry)?;
                }
                entry
            }
        };
        if failed.is_none() {
            tree.push(entry, &mut store)?;
        }
    }
    if let Some(e) = failed {
        return Err(e);
    }
    if let Some(c) = cache {
        for name in &job.forget {
            c.forget(&job.abs, name)?;
        }
    }
    tree.finish(&mut store)
}
