//! `ore restore --dry-run`: what a restore would do, name by name, without writing anything.
//!
//! It walks the snapshot as the restore would (the same selection, the same depth bound) and
//! looks at the destination by path, read-only: a name that is missing would be made, one
//! that exists is left alone, replaced or (if-changed) kept for matching size and time, and
//! with `--delete` the names the snapshot does not hold would go. It cannot see what someone
//! changes in the destination between the preview and the restore, and it looks through a
//! symlinked directory where the restore refuses to (it reports such a name as blocked).

use super::{select, Overwrite, RestoreOptions};
use crate::core::entry::{Entry, EntryKind, Snapshot};
use crate::core::error::{Error, Result};
use crate::core::repo::Repo;
use crate::core::tree::{find, DirTree, Reader};
use crate::core::util::bytes_path;
use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// What a restore would do with one name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Nothing is there: it would be made.
    Create,
    /// Something is there and would stay as it is.
    Keep,
    /// Something is there and would be replaced.
    Replace,
    /// With `--delete`: the snapshot does not hold it, and it would be removed.
    Remove,
    /// Something else than a directory is where the snapshot has one (or the other way
    /// round), and without `--delete` it would stay: nothing is restored there.
    Blocked,
}

/// One name and what a restore would do with it.
#[derive(Debug, serde::Serialize)]
pub struct Planned {
    pub action: Action,
    /// As the restore would show it: the destination joined with names.
    pub path: PathBuf,
    pub is_dir: bool,
    /// Bytes a file would be written with (0 for anything else, and for what is kept).
    pub bytes: u64,
}

/// Calls `each` with what restoring `sub` of `snap` to `dest` with `opts` would do with each
/// name, each directory's names in the snapshot's order, then its strays; writes nothing.
pub fn plan(
    repo: &Repo,
    snap: &Snapshot,
    sub: &[u8],
    dest: &Path,
    opts: &RestoreOptions,
    mut each: impl FnMut(Planned) -> Result<()>,
) -> Result<()> {
    let target = find(repo, &snap.root, sub)?;
    let top = bytes_path(sub).to_path_buf();
    let sel = &opts.select;
    let EntryKind::Dir { tree } = target.kind else {
        if !sel.everything() && (sel.excluded(&top, false) || !sel.included(&top, false)) {
            return Ok(());
        }
        // The destination itself is followed through a symlink, as the restore follows it.
        let at = match std::fs::metadata(dest) {
            Ok(m) if m.is_dir() => dest.join(bytes_path(&target.name)),
            _ => dest.to_path_buf(),
        };
        return each(one(opts, &target, at));
    };
    let wanted = select::wanted(repo, sel, tree, &top)?;
    // Directories to look at: their tree, path in the snapshot, path shown, and whether the
    // destination has them (else everything below would be made).
    let there = match std::fs::metadata(dest) {
        Ok(m) if m.is_dir() => true,
        Ok(_) => {
            return Err(Error::Usage(format!(
                "{}: exists and is not a directory; a directory restores into a directory",
                dest.display()
            )))
        }
        Err(_) => false,
    };
    let mut open = vec![(tree, top, dest.to_path_buf(), there)];
    while let Some((tree, in_snap, shown, there)) = open.pop() {
        let mut entries = Vec::new();
        let mut r = Reader::<DirTree>::new(repo, tree);
        while let Some(e) = r.next_item()? {
            entries.push(e);
        }
        if opts.delete && there {
            strays(opts, &entries, &in_snap, &shown, &mut each)?;
        }
        let mut below = Vec::new();
        for e in entries {
            let path = in_snap.join(bytes_path(&e.name));
            let is_dir = matches!(e.kind, EntryKind::Dir { .. });
            if !sel.everything() && !sel.chosen(&path, is_dir, &wanted) {
                continue;
            }
            let at = shown.join(bytes_path(&e.name));
            let EntryKind::Dir { tree } = e.kind else {
                each(one(opts, &e, at))?;
                continue;
            };
            if path.components().count() >= crate::core::depth::MAX_DEPTH {
                return Err(crate::core::depth::too_deep(
                    tree,
                    &at.display().to_string(),
                ));
            }
            let found = there.then(|| std::fs::symlink_metadata(&at).ok()).flatten();
            let action = match found {
                None => Action::Create,
                Some(m) if m.is_dir() => Action::Keep,
                Some(_) if opts.delete => Action::Create,
                Some(_) => Action::Blocked,
            };
            if action != Action::Keep {
                each(Planned {
                    action,
                    path: at.clone(),
                    is_dir: true,
                    bytes: 0,
                })?;
            }
            if action != Action::Blocked {
                below.push((tree, path, at, action == Action::Keep));
            }
        }
        // Depth first, in the snapshot's order.
        open.extend(below.into_iter().rev());
    }
    Ok(())
}

/// What would happen to one entry that is not a directory, at `at`.
fn one(opts: &RestoreOptions, e: &Entry, at: PathBuf) -> Planned {
    let size = match e.kind {
        EntryKind::File { size, .. } => size,
        _ => 0,
    };
    let found = std::fs::symlink_metadata(&at).ok();
    let action = match found {
        None => Action::Create,
        Some(m) if m.is_dir() => match opts.delete {
            true => Action::Create,
            false => Action::Blocked,
        },
        Some(m) => match opts.overwrite {
            Overwrite::Never => Action::Keep,
            Overwrite::IfChanged
                if m.is_file()
                    && m.size() == size
                    && m.mtime() * 1_000_000_000 + m.mtime_nsec() == e.mtime =>
            {
                Action::Keep
            }
            _ => Action::Replace,
        },
    };
    let writes = matches!(action, Action::Create | Action::Replace);
    Planned {
        action,
        path: at,
        is_dir: false,
        bytes: if writes { size } else { 0 },
    }
}

/// With `--delete`: the names in the destination directory `shown` that the restore would
/// remove (see `walk::remove_strays`, whose rule this is).
fn strays(
    opts: &RestoreOptions,
    entries: &[Entry],
    in_snap: &Path,
    shown: &Path,
    each: &mut impl FnMut(Planned) -> Result<()>,
) -> Result<()> {
    let held: HashMap<&[u8], bool> = entries
        .iter()
        .map(|e| (&e.name[..], matches!(e.kind, EntryKind::Dir { .. })))
        .collect();
    let listing = std::fs::read_dir(shown).map_err(|e| Error::io(shown, e))?;
    let mut names = Vec::new();
    for d in listing {
        let d = d.map_err(|e| Error::io(shown, e))?;
        names.push(d.file_name());
    }
    names.sort();
    for name in names {
        let at = shown.join(&name);
        let Ok(m) = std::fs::symlink_metadata(&at) else {
            continue;
        };
        let bytes = std::os::unix::ffi::OsStrExt::as_bytes(name.as_os_str());
        if held.get(bytes).is_some_and(|&d| d == m.is_dir()) {
            continue;
        }
        let path = in_snap.join(&name);
        if opts.select.excluded(&path, m.is_dir()) || !opts.select.included(&path, m.is_dir()) {
            continue;
        }
        each(Planned {
            action: Action::Remove,
            path: at,
            is_dir: m.is_dir(),
            bytes: 0,
        })?;
    }
    Ok(())
}
