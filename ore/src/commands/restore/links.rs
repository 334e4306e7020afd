//! Hard links, made once every file exists, and then the metadata of the directories that
//! waited for them.
//!
//! A hard link may only point at a regular file this restore made (or found there and kept,
//! owned as the restore would have made it: a re-run makes the links an interrupted run did
//! not; a file someone else left there is not linked to): the snapshot's target path is looked
//! up in the record of those files, never resolved in the destination. And it must still be
//! that file: the record holds its inode number, the name is opened (`O_PATH`, not followed)
//! and checked against it, and the link is made from that open handle, not by the name again.
//! A user who owns a directory the restore made earlier (their home, restored to them) could
//! otherwise rename a file of their own over the one made there, and have a root-owned name
//! elsewhere become a link to it. A target with `..` in
//! it, or one that lies through a symlink the restore made (`a/victim` where `a` is a symlink
//! to somewhere else), is not such a file, and the link is refused with an error naming both
//! (a crafted snapshot once made hard links in the destination to files outside it this way).
//!
//! Directories are reached again from the top directory one name at a time, with
//! `O_NOFOLLOW | O_DIRECTORY`, through a [`Chain`] that keeps the last path open, so that links
//! sorted by directory open each directory once. What is reached must be the directory the
//! walk was in (its device and inode numbers, recorded then): a directory someone renamed into
//! its place since gets neither the links nor the metadata.
//!
//! A link whose target lies outside what was restored gets the target's contents instead, and
//! the other links to that target become links to it: the names that were one file inside
//! the subtree are one file again.

use super::place::Place;
use super::{attrs, lock, one, Ctx, Link};
use crate::core::entry::{EntryKind, Snapshot};
use crate::core::error::Result;
use crate::core::fsys::Dir;
use crate::core::tree::find;
use crate::core::util::show;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;

/// Directories open along one path from the top, reused while the next path shares it.
struct Chain<'a> {
    top: &'a Dir,
    open: Vec<(Vec<u8>, Dir)>,
}

impl<'a> Chain<'a> {
    fn new(top: &'a Dir) -> Chain<'a> {
        Chain {
            top,
            open: Vec::new(),
        }
    }

    /// The directory reached from the top by `steps`, none of them a symlink, if it is still
    /// the one whose device and inode numbers are `id`.
    fn open_as(&mut self, steps: &[Vec<u8>], id: (u64, u64)) -> std::io::Result<&Dir> {
        let d = self.open(steps)?;
        if super::walk::id(d) != id {
            return Err(std::io::Error::other(
                "another directory was put in its place while the restore ran",
            ));
        }
        Ok(d)
    }

    /// The directory reached from the top by `steps`, none of them a symlink.
    fn open(&mut self, steps: &[Vec<u8>]) -> std::io::Result<&Dir> {
        let common = self
            .open
            .iter()
            .zip(steps)
            .take_while(|((have, _), want)| have == *want)
            .count();
        self.open.truncate(common);
        for step in &steps[common..] {
            let next = self.last().open_dir(step)?;
            self.open.push((step.clone(), next));
        }
        Ok(self.last())
    }

    fn last(&self) -> &Dir {
        self.open.last().map_or(self.top, |(_, d)| d)
    }
}

/// Makes the hard links, then sets the metadata of the directories that waited for them.
pub(super) fn make(ctx: &Ctx, top: &Dir, snap: &Snapshot, sub: &[u8]) -> Result<()> {
    let mut links = std::mem::take(&mut *lock(&ctx.links));
    links.sort_by(|a, b| a.dir.cmp(&b.dir));
    let made = std::mem::take(&mut *lock(&ctx.made));
    let mut made = Made {
        joined: &made,
        split: HashMap::new(),
    };
    let mut to = Chain::new(top);
    let mut from = Chain::new(top);
    // Snapshot path of a target outside the subtree → the stand-in made for it.
    let mut stand_ins: HashMap<Vec<u8>, Source> = HashMap::new();
    for Link { dir, id, entry } in links {
        let EntryKind::Hardlink { target } = &entry.kind else {
            continue;
        };
        let path = dir.join(crate::core::util::bytes_path(&entry.name));
        let not_made = |why: String| {
            ctx.not_restored.fetch_add(1, Relaxed);
            ctx.warn(format!(
                "{}: hard link to {} not made: {why}",
                path.display(),
                show(target)
            ));
        };
        let there = match to.open_as(&ctx.steps(&dir), id) {
            Ok(d) => d,
            Err(e) => {
                not_made(format!("{}: {e}", dir.display()));
                continue;
            }
        };
        let inside = if sub.is_empty() {
            Some(&target[..])
        } else {
            target.strip_prefix(sub).and_then(|t| t.strip_prefix(b"/"))
        };
        let source = match inside {
            Some(t) => match made.file(ctx, t) {
                Some(s) => s,
                None => {
                    not_made(format!("{} is not a file this restore made", show(target)));
                    continue;
                }
            },
            None => match stand_ins.get(target) {
                Some(s) => s.clone(),
                None => {
                    stand_in(ctx, snap, there, &dir, &entry, target, &mut stand_ins);
                    continue;
                }
            },
        };
        if !ctx.clear_way(there, &entry.name, &path, Place::BEFORE) {
            continue;
        }
        let linked = from
            .open(&ctx.steps(&source.0))
            .and_then(|src| link_checked(there, &entry.name, src, &source));
        match linked {
            Ok(()) => {
                ctx.other.fetch_add(1, Relaxed);
            }
            // The name is missing from what was restored, like a file not written.
            Err(e) => not_made(e.to_string()),
        }
    }
    drop(from);
    late_dirs(ctx, &mut to);
    Ok(())
}

/// A file a link may point at: its directory (as shown), its name there, its inode number.
type Source = (PathBuf, Vec<u8>, u64);

/// Links `name` in `there` to the file `source.1` in `src`, if that is still the inode this
/// restore made (`source.2`).
fn link_checked(there: &Dir, name: &[u8], src: &Dir, source: &Source) -> std::io::Result<()> {
    let node = src.node(&source.1)?;
    let st = node.stat()?;
    if !st.is_file() || st.ino != source.2 || st.dev != crate::core::fsys::fstat(src)?.dev {
        return Err(std::io::Error::other(format!(
            "{} was replaced after this restore made it; not linked to what is there now",
            source
                .0
                .join(crate::core::util::bytes_path(&source.1))
                .display()
        )));
    }
    there.hard_link_node(name, &node)
}

/// The files this restore made, by directory: the record the walk left, each directory's
/// names (sorted) and inode numbers split out the first time a link points into it.
struct Made<'m> {
    joined: &'m HashMap<PathBuf, Vec<u8>>,
    split: HashMap<&'m Path, Vec<(&'m [u8], u64)>>,
}

/// A directory's record (names each ended by NUL and followed by 8 bytes of inode number),
/// split.
fn split(mut joined: &[u8]) -> Vec<(&[u8], u64)> {
    let mut out = Vec::new();
    while let Some(end) = joined.iter().position(|&b| b == 0) {
        let Some(ino) = joined.get(end + 1..end + 9) else {
            break;
        };
        let mut b = [0u8; 8];
        b.copy_from_slice(ino);
        out.push((&joined[..end], u64::from_le_bytes(b)));
        joined = &joined[end + 9..];
    }
    out
}

impl Made<'_> {
    /// Where the file at `target` (a snapshot path below what was restored) was made, if this
    /// restore made (or kept) a regular file there.
    fn file(&mut self, ctx: &Ctx, target: &[u8]) -> Option<Source> {
        let steps: Vec<&[u8]> = target.split(|&b| b == b'/').collect();
        if steps
            .iter()
            .any(|s| s.is_empty() || *s == b"." || *s == b"..")
        {
            return None;
        }
        let (name, dirs) = steps.split_last()?;
        let mut dir = ctx.top.clone();
        for d in dirs {
            dir.push(crate::core::util::bytes_path(d));
        }
        let (key, joined) = self.joined.get_key_value(&dir)?;
        let names = self
            .split
            .entry(key.as_path())
            .or_insert_with(|| split(joined));
        let at = names.binary_search_by(|(n, _)| (*n).cmp(*name)).ok()?;
        Some((dir, name.to_vec(), names[at].1))
    }
}

/// A link whose target lies outside what was restored: the target's contents, made here.
fn stand_in(
    ctx: &Ctx,
    snap: &Snapshot,
    there: &Dir,
    dir: &Path,
    entry: &crate::core::entry::Entry,
    target: &[u8],
    stand_ins: &mut HashMap<Vec<u8>, Source>,
) {
    match find(ctx.repo, &snap.root, target) {
        Ok(mut t) if matches!(t.kind, EntryKind::File { .. }) => {
            t.name = entry.name.clone();
            if let Some(ino) = one(ctx, there, dir, Place::BEFORE, t) {
                let made = (dir.to_path_buf(), entry.name.clone(), ino);
                stand_ins.insert(target.to_vec(), made);
            }
        }
        Ok(_) => {
            ctx.not_restored.fetch_add(1, Relaxed);
            ctx.warn(format!(
                "{}: hard link to {} not made: not a regular file in the snapshot",
                dir.join(crate::core::util::bytes_path(&entry.name))
                    .display(),
                show(target)
            ));
        }
        // The snapshot names a target it does not hold: the archive is at fault.
        Err(e) => {
            let path = dir.join(crate::core::util::bytes_path(&entry.name));
            ctx.damaged(&path);
            ctx.warn(format!(
                "{}: hard link target {} not found: {e}",
                path.display(),
                show(target)
            ))
        }
    }
}

/// The metadata of directories that held hard links, deepest first.
fn late_dirs(ctx: &Ctx, chain: &mut Chain) {
    let mut late = std::mem::take(&mut *lock(&ctx.late));
    late.sort_by_key(|(p, _, _)| std::cmp::Reverse(p.components().count()));
    for (path, id, entry) in &late {
        let r = chain
            .open_as(&ctx.steps(path), *id)
            .and_then(|d| attrs::set(ctx, attrs::On::Dir(d), entry, path));
        if let Err(e) = r {
            ctx.warn(format!("{}: metadata not restored: {e}", path.display()));
        }
    }
}
