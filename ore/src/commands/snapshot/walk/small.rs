//! Resolving a directory's entries on the pool: small files in bundles
//! ([`crate::commands::snapshot::bundle`]), everything else one by one.
//!
//! The small files of a directory are taken out of its entries in name order and cut into
//! bundles; each bundle is one task, read and stored by one thread, and the rest are tasks of
//! their own as before. The finished entries are put back in name order, which the directory's
//! tree needs, whatever order the tasks ended in.

use super::{rel_of, Done, Item, Walk, RUN};
use crate::commands::snapshot::bundle;
use crate::commands::snapshot::file::FileDone;
use crate::core::entry::{Entry, EntryKind};
use crate::core::error::Result;
use crate::core::filecache::Stamp;
use ignore::gitignore::Gitignore;
use rayon::prelude::*;
use std::path::PathBuf;
use std::sync::Arc;

/// One task of a directory's resolution.
enum Task {
    One(Box<Item>),
    Bundle(Vec<(Entry, PathBuf, Stamp)>),
}

impl Walk<'_, '_> {
    /// Resolves every entry of a directory (`items` in name order): the finished entries, in
    /// name order.
    pub(super) fn resolve_all(
        &self,
        items: Vec<Item>,
        ignores: &Arc<Vec<Gitignore>>,
    ) -> Result<Vec<Done>> {
        let ctx = self.ctx;
        // Entries already finished (the cache vouched for them, or they hold no data) are
        // taken as they are: an unchanged directory needs no pool, and no task per entry.
        let mut done = Vec::with_capacity(items.len());
        let mut rest = Vec::new();
        for item in items {
            match item.finished() {
                Ok(d) => done.push(d),
                Err(other) => rest.push(other),
            }
        }
        if rest.is_empty() {
            return Ok(done);
        }
        // A catalogue stores no contents, so nothing is bundled.
        let bundles = ctx.repo.format().format >= crate::core::format::SLICES_FROM;
        let tasks = if bundles && !ctx.opts.catalogue {
            tasks(rest)
        } else {
            rest.into_iter().map(|i| Task::One(Box::new(i))).collect()
        };
        // Tasks go several to a thread, except where they are too few to be split that way
        // and one of them is a subdirectory, which may hold a whole tree: with the finished
        // entries gone from the list, three subdirectories alone would otherwise be walked
        // one after another. (Splitting every list finely cost 5% more CPU on an unchanged
        // /usr/share.)
        let few = tasks.len() < 2 * RUN
            && tasks
                .iter()
                .any(|t| matches!(t, Task::One(i) if matches!(**i, Item::Dir { .. })));
        let resolved: Vec<Vec<Done>> = tasks
            .into_par_iter()
            .with_min_len(if few { 1 } else { RUN })
            .map(|task| match task {
                Task::One(item) => Ok(self.resolve(*item, ignores)?.into_iter().collect()),
                Task::Bundle(files) => self.bundle(files),
            })
            .map(|r| r.map_err(|e| ctx.fail(e)))
            .collect::<Result<_>>()?;
        done.extend(resolved.into_iter().flatten());
        done.sort_unstable_by(|a, b| a.entry.name.cmp(&b.entry.name));
        Ok(done)
    }

    /// Reads and stores one bundle of small files.
    fn bundle(&self, files: Vec<(Entry, PathBuf, Stamp)>) -> Result<Vec<Done>> {
        let ctx = self.ctx;
        if ctx.stopped() {
            return Err(crate::core::error::Error::Stopped);
        }
        let Some(dir) = files.first().and_then(|(_, p, _)| p.parent()) else {
            return Ok(Vec::new());
        };
        let names: Vec<(&[u8], Stamp)> = files.iter().map(|(e, _, s)| (&e.name[..], *s)).collect();
        let results = bundle::store(ctx, dir, &names);
        let mut out = Vec::with_capacity(files.len());
        for ((entry, abs, stamp), result) in files.into_iter().zip(results) {
            out.extend(self.file_done(entry, &abs, stamp, result)?);
        }
        Ok(out)
    }

    /// The entry of a file read and stored (`None` when it was not, with a warning), or the
    /// error that stops the snapshot.
    pub(super) fn file_done(
        &self,
        mut entry: Entry,
        abs: &std::path::Path,
        stamp: Stamp,
        result: FileDone,
    ) -> Result<Option<Done>> {
        let ctx = self.ctx;
        match result {
            FileDone::Stored {
                size,
                content,
                xattrs,
                warning,
                seen,
            } => {
                if let (Some(c), Some(s)) = (&ctx.seen, seen) {
                    c.add(rel_of(ctx, abs), s);
                }
                entry.kind = EntryKind::File { size, content };
                entry.xattrs = match xattrs {
                    Ok(x) => x,
                    // The path from the root only when needed: making it for every file
                    // cost almost 1% of a snapshot of many small files.
                    Err(e) => self.xattrs_or_warn(Err(e), &rel_of(ctx, abs)),
                };
                // What was read may not match the stamp: then not for the cache.
                let stamp = match warning {
                    Some(w) => {
                        ctx.warn(&rel_of(ctx, abs), w);
                        None
                    }
                    None => Some(stamp),
                };
                Ok(Some(Done {
                    entry,
                    stamp,
                    changed: true,
                }))
            }
            FileDone::Failed(msg) => {
                ctx.warn(&rel_of(ctx, abs), msg);
                Ok(None)
            }
            FileDone::Fatal(e) => Err(e),
        }
    }
}

/// The tasks for a directory's entries: its small files (in name order) in bundles, the rest
/// one by one.
fn tasks(items: Vec<Item>) -> Vec<Task> {
    let mut out = Vec::with_capacity(items.len());
    let mut small = Vec::new();
    for item in items {
        match item {
            Item::File {
                entry,
                abs,
                stamp,
                blocks,
            } if bundle::bundled(stamp.size, blocks) => small.push((entry, abs, stamp)),
            other => out.push(Task::One(Box::new(other))),
        }
    }
    let sizes = bundle::groups(small.iter().map(|(e, _, s)| (e.name.as_slice(), s.size)));
    let mut small = small.into_iter();
    for n in sizes {
        out.push(Task::Bundle(small.by_ref().take(n).collect()));
    }
    out
}
