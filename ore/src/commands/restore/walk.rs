//! The descent: a directory's entries read, then restored in parallel — each subdirectory
//! made (0700 and sticky until it is done, under a temporary name where it is new:
//! `place.rs`) and opened by name relative to its parent's descriptor, never through a
//! symlink, and walked in turn; each other entry made beside it.
//!
//! A directory's metadata is set through its descriptor when everything beneath it is done
//! (`finish_dir`), unless it holds hard links: then after them (`links.rs`). A directory that
//! was there before keeps its own with `--overwrite never`.

use super::place::{self, Place};
use super::{attrs, file, lock, Ctx, Link, AHEAD_ENTRIES, RUN};
use crate::core::entry::{Entry, EntryKind};
use crate::core::error::Result;
use crate::core::fsys::Dir;
use crate::core::tree::{DirTree, Reader};
use crate::core::util::{bytes_path, show};
use protocol::Key;
use rayon::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Mutex;

/// Restores the contents of directory tree `tree` into the open directory `dir` (shown as
/// `path`, `depth` directories below the restore's top), which is at `place`. True when the
/// directory's metadata must wait for its hard links.
///
/// The descent recurses, a level a directory (on worker threads with large stacks), and holds
/// a descriptor a level: it stops at the depth any walk of a snapshot goes (`crate::core::depth`),
/// which a crafted snapshot nested a hundred thousand deep would otherwise take past both.
pub(super) fn walk(
    ctx: &Ctx,
    tree: Key,
    dir: &Dir,
    path: &Path,
    place: Place,
    depth: usize,
) -> Result<bool> {
    let mut reader = Reader::<DirTree>::via(ctx.repo, ctx.fetcher(), tree);
    let mut entries = Vec::new();
    let mut whole = true;
    loop {
        match reader.next_item() {
            Ok(Some(e)) => entries.push(e),
            Ok(None) => break,
            Err(e) if crate::core::repo::is_damage(&e) => {
                ctx.damaged(path);
                ctx.warn(format!(
                    "{}: directory not fully restored: {e}",
                    path.display()
                ));
                whole = false;
                break;
            }
            Err(e) => return Err(e),
        }
    }
    // A stopped run's directory is cleared of all that `--delete` would remove and more; a
    // listing cut short by damage says nothing of what the snapshot holds past the damage:
    // elsewhere, what is here stays.
    if place.stopped {
        place::tidy(ctx, dir, path, &entries);
    } else if ctx.opts.delete && !place.empty && !whole {
        ctx.warn(format!(
            "{}: nothing removed in it: its listing in the archive is damaged",
            path.display()
        ));
    } else if ctx.opts.delete && !place.empty {
        remove_strays(ctx, dir, path, &entries);
    }
    entries.retain(|e| ctx.chosen(path, e));
    let wait = entries
        .iter()
        .any(|e| matches!(e.kind, EntryKind::Hardlink { .. }));
    // Entries named like a temporary file (a snapshot of a directory where a restore was
    // interrupted holds them) come after the rest: a file written under its temporary name
    // would otherwise remove the one restored there, taking it for a leftover.
    let (later, entries): (Vec<Entry>, Vec<Entry>) = entries
        .into_iter()
        .partition(|e| e.name.starts_with(file::PARTIAL));
    let made = Mutex::new(Vec::new());
    let each = |entry: Entry| restore_entry(ctx, (dir, path, depth), place, entry, &made);
    if ctx.prefetch.is_none() {
        entries
            .into_par_iter()
            .with_min_len(RUN)
            .try_for_each(each)?;
    } else {
        ahead(ctx, entries, each)?;
    }
    later.into_iter().try_for_each(each)?;
    let mut made = ore_util::sync::into_inner(made);
    if !made.is_empty() {
        // Kept compact (a name costs its length and nine bytes): sorted, each name ended by
        // NUL, which no name can hold, and followed by its inode number.
        made.sort_unstable();
        let mut joined = Vec::with_capacity(made.iter().map(|(n, _)| n.len() + 9).sum());
        for (name, ino) in made {
            joined.extend_from_slice(&name);
            joined.push(0);
            joined.extend_from_slice(&ino.to_le_bytes());
        }
        lock(&ctx.made).insert(path.to_path_buf(), joined);
    }
    Ok(wait)
}

/// With `--delete`: removes from `dir` (shown as `path`) the names the snapshot does not hold
/// there, and those where it holds a directory and `dir` has something else or the other way
/// round, among the names the selection takes: an excluded name, or one no include takes, is
/// left alone. Done before anything is restored into `dir`, so nothing this restore makes is
/// among the names listed. Each removal is said as it happens.
fn remove_strays(ctx: &Ctx, dir: &Dir, path: &Path, entries: &[Entry]) {
    let names = match dir.names() {
        Ok(n) => n,
        Err(e) => {
            ctx.warn(format!(
                "{}: not listed, so nothing in it was removed: {e}",
                path.display()
            ));
            return;
        }
    };
    let held: std::collections::HashMap<&[u8], bool> = entries
        .iter()
        .map(|e| (&e.name[..], matches!(e.kind, EntryKind::Dir { .. })))
        .collect();
    let sel = &ctx.opts.select;
    let Ok(dev) = crate::core::fsys::fstat(dir).map(|st| st.dev) else {
        return;
    };
    for name in names {
        let Ok(there) = dir.lstat(&name) else {
            continue;
        };
        let why = match held.get(&name[..]) {
            None => "not in the snapshot",
            Some(&d) if d == there.is_dir() => continue,
            Some(true) => "the snapshot has a directory there",
            Some(false) => "the snapshot has no directory there",
        };
        let in_snapshot = ctx.in_snapshot(path, &name);
        if sel.excluded(&in_snapshot, there.is_dir()) || !sel.included(&in_snapshot, there.is_dir())
        {
            continue;
        }
        let shown = path.join(bytes_path(&name));
        if let Some(keep) = super::guard::keep_reason(ctx, dir, &name, dev, (&shown, &in_snapshot))
        {
            ctx.warn(format!(
                "{}: not removed ({why}): {keep}",
                crate::core::util::one_line(&shown)
            ));
            continue;
        }
        let held = |n: u64| match n {
            0 | 1 => String::new(),
            2 => " and the 1 entry it held".to_string(),
            n => format!(" and the {} entries it held", n - 1),
        };
        match dir.remove_all(&name) {
            Ok(n) => {
                ctx.removed.fetch_add(n, Relaxed);
                protocol::log::info(&format!(
                    "removed {}{} ({why})",
                    crate::core::util::one_line(&shown),
                    held(n)
                ));
            }
            Err(partial) => {
                ctx.removed.fetch_add(partial.removed, Relaxed);
                ctx.warn(format!(
                    "{}: not removed ({why}): {}: {}; {} entr{} below it removed before that",
                    crate::core::util::one_line(&shown),
                    crate::core::util::one_line(&shown.join(bytes_path(&partial.at))),
                    partial.error,
                    partial.removed,
                    if partial.removed == 1 { "y" } else { "ies" }
                ));
            }
        }
    }
}

/// Over a slow link: workers take the entries in order, and whoever takes entry i asks for
/// the blocks of entry i + AHEAD_ENTRIES, so the questions stay a fixed distance ahead of the
/// restoring and no worker waits for the others (an earlier version restored groups of 256
/// entries one after the other: each group waited for its slowest file, and a large directory
/// of small files restored at a third of the speed).
fn ahead(ctx: &Ctx, entries: Vec<Entry>, each: impl Fn(Entry) -> Result<()> + Sync) -> Result<()> {
    let n = entries.len();
    ctx.ask_ahead(&entries[..n.min(AHEAD_ENTRIES)]);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let workers = n.min(rayon::current_num_threads());
    (0..workers)
        .into_par_iter()
        .try_for_each(|_| -> Result<()> {
            loop {
                let i = next.fetch_add(1, Relaxed);
                if i >= n || failed.load(Relaxed) {
                    return Ok(());
                }
                if let Some(e) = entries.get(i + AHEAD_ENTRIES) {
                    ctx.ask_ahead(std::slice::from_ref(e));
                }
                if let Err(e) = each(entries[i].clone()) {
                    failed.store(true, Relaxed);
                    return Err(e);
                }
            }
        })
}

/// Restores one entry of the directory `dir` (shown as `path`); the name and inode of a
/// regular file that is there afterwards go into `made`.
fn restore_entry(
    ctx: &Ctx,
    (dir, path, depth): (&Dir, &Path, usize),
    place: Place,
    entry: Entry,
    made: &Mutex<Vec<(Vec<u8>, u64)>>,
) -> Result<()> {
    if crate::core::names::check_name(&entry.name).is_err() {
        ctx.warn(format!(
            "{}: skipped an entry with an unsafe name {:?}",
            path.display(),
            show(&entry.name)
        ));
        return Ok(());
    }
    let EntryKind::Dir { tree } = entry.kind else {
        let name = entry.name.clone();
        if let Some(ino) = one(ctx, dir, path, place, entry) {
            lock(made).push((name, ino));
        }
        return Ok(());
    };
    let sub_path = path.join(bytes_path(&entry.name));
    if depth >= crate::core::depth::MAX_DEPTH {
        ctx.not_restored.fetch_add(1, Relaxed);
        ctx.warn(format!(
            "{}: directory nested more than {} directories deep in the snapshot (crafted or \
             damaged; no file system holds that): not restored, nor anything below it",
            crate::core::depth::shortened(&sub_path.display().to_string()),
            crate::core::depth::MAX_DEPTH
        ));
        return Ok(());
    }
    let sub = match place::subdir(dir, place, &entry.name) {
        Ok(sub) => sub,
        Err(why) => {
            ctx.not_restored.fetch_add(1, Relaxed);
            ctx.warn(format!("{}: {why}", sub_path.display()));
            return Ok(());
        }
    };
    ctx.dirs.fetch_add(1, Relaxed);
    if sub.made || ctx.finishes_existing(&sub.dir) {
        let wait = walk(ctx, tree, &sub.dir, &sub_path, sub.place, depth + 1)?;
        place::put_in_place(ctx, dir, &sub, &entry.name, &sub_path);
        finish_dir(ctx, &sub.dir, sub_path, entry, wait);
    } else {
        // There before, and left alone: its mode, owner and times stay as they were.
        let found = crate::core::fsys::fstat(&sub.dir).ok();
        walk(ctx, tree, &sub.dir, &sub_path, sub.place, depth + 1)?;
        ctx.keep_times(&sub.dir, &sub_path, found);
    }
    Ok(())
}

/// The device and inode numbers of `d` (to know it again when it is reopened by name; none
/// that a directory has, if it cannot be read).
pub(super) fn id(d: &Dir) -> (u64, u64) {
    crate::core::fsys::fstat(d).map_or((u64::MAX, u64::MAX), |st| (st.dev, st.ino))
}

/// Sets a directory's metadata through its descriptor, now that everything beneath it is done
/// — or, when it holds hard links still to be made (`wait`), after them.
pub(super) fn finish_dir(ctx: &Ctx, dir: &Dir, path: PathBuf, entry: Entry, wait: bool) {
    if wait {
        lock(&ctx.late).push((path, id(dir), entry));
    } else if let Err(e) = attrs::set(ctx, attrs::On::Dir(dir), &entry, &path) {
        ctx.warn(format!("{}: metadata not restored: {e}", path.display()));
    }
}

/// Restores one non-directory entry in `dir` (shown as `dir_path`). The inode number of the
/// regular file that is there afterwards (made, or kept as it was), if it is one.
pub(super) fn one(
    ctx: &Ctx,
    dir: &Dir,
    dir_path: &Path,
    place: Place,
    entry: Entry,
) -> Option<u64> {
    let kind = match &entry.kind {
        EntryKind::File { .. } => {
            if ctx.archive_lost() {
                ctx.not_restored(String::new(), true);
                return None;
            }
            return match file::restore_file(ctx, dir, dir_path, place, &entry) {
                Ok(ino) => ino,
                Err(msg) => {
                    ctx.not_restored(msg, ctx.archive_lost());
                    None
                }
            };
        }
        EntryKind::Hardlink { .. } => {
            lock(&ctx.links).push(Link {
                dir: dir_path.to_path_buf(),
                id: id(dir),
                entry,
            });
            return None;
        }
        EntryKind::Dir { .. } => unreachable!("directories are walked"),
        // A socket is only meaningful while its server runs; nothing to recreate.
        EntryKind::Socket => {
            ctx.other.fetch_add(1, Relaxed);
            return None;
        }
        EntryKind::Symlink { .. } => libc::S_IFLNK,
        EntryKind::Fifo => libc::S_IFIFO,
        EntryKind::CharDevice { .. } => libc::S_IFCHR,
        EntryKind::BlockDevice { .. } => libc::S_IFBLK,
    };
    let path = dir_path.join(bytes_path(&entry.name));
    if !ctx.clear_way(dir, &entry.name, &path, place) {
        return None;
    }
    let made = match &entry.kind {
        EntryKind::Symlink { target } => dir.symlink(target, &entry.name),
        EntryKind::CharDevice { rdev } | EntryKind::BlockDevice { rdev } => {
            dir.mknod(&entry.name, kind | 0o600, *rdev)
        }
        _ => dir.mknod(&entry.name, kind | 0o600, 0),
    };
    if let Err(e) = made {
        ctx.warn(format!("{}: not created: {e}", path.display()));
        return None;
    }
    ctx.other.fetch_add(1, Relaxed);
    if let Err(e) = special_meta(ctx, dir, &entry, kind, place, &path) {
        ctx.warn(format!("{}: metadata not restored: {e}", path.display()));
    }
    None
}

/// Metadata of a symlink, fifo or device node just made as `entry.name` in `dir`. A symlink
/// in a directory this restore made (`place.empty`: nobody else can write there yet) is
/// changed by name; anything else through a node checked to be the one just made.
fn special_meta(
    ctx: &Ctx,
    dir: &Dir,
    entry: &Entry,
    kind: u32,
    place: Place,
    path: &Path,
) -> std::io::Result<()> {
    if kind == libc::S_IFLNK && place.empty {
        return attrs::set(ctx, attrs::On::Symlink(dir, &entry.name), entry, path);
    }
    let node = dir.node(&entry.name)?;
    let st = node.stat()?;
    // Only the node just made: not something put in its place, nor a file linked in.
    if st.mode & libc::S_IFMT != kind || st.nlink != 1 {
        return Err(std::io::Error::other(
            "it was replaced while the restore ran; left as it is",
        ));
    }
    attrs::set(ctx, attrs::On::Node(&node), entry, path)
}
