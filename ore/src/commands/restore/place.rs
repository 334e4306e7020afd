//! Where a directory is restored: made under a temporary name, and put in place when done.
//!
//! A file must never show under its real name cut short (`file.rs`). Writing each file unnamed
//! and linking it in when whole keeps that promise, at a price: on a tree of a million small
//! files the unnamed file and its `linkat` were a quarter of the kernel's time making them
//! (`O_TMPFILE`, a second lookup of the name, a second dentry), 12.5–14.0 s against 10.5–11.7 s
//! written in place, three interleaved rounds on tmpfs.
//!
//! So a directory the restore makes is made under a temporary name beside its real one
//! (`.ore-partial-` and 16 hex digits of its name's hash, as for a file), owner only and
//! sticky ([`UNFINISHED`]); everything beneath it is made in place, files included, since
//! no name anyone looks for leads there; and once its last entry is restored it is renamed to
//! its real name (`renameat2` with `RENAME_NOREPLACE`). Nothing below it shows under its real
//! path before everything below it is done — whole directories appear at once, not only whole
//! files. (Its own metadata is set right after the rename, so that a run stopped in between
//! leaves it [`UNFINISHED`] for the next to finish; hard links into it are made once every
//! file of the restore exists, as anywhere.) Messages name what is beneath it by its real
//! path, where it will be.
//!
//! An interrupted run leaves the temporary directory. A re-run that finds one ours, still
//! unfinished (owned by the user it runs as, sticky, closed to others), takes it up
//! ([`Place::stopped`]): what is found in a directory of it that is still unfinished may be
//! cut short, so before anything is restored there, whatever the snapshot does not hold as
//! it is goes ([`tidy`]: a file whose size or time differ from the snapshot's — a file
//! written in place gets its times last — or a name it does not hold), and
//! `--overwrite never` keeps nothing there that is not as the snapshot says. Something else at the temporary
//! name — a directory of someone else's, planted, or a file — is left alone, and the
//! directory is made under its real name as before, its files written unnamed: a planted
//! name slows a restore down, never stops or misleads it.
//!
//! Someone who may write in the parent may rename the temporary directory, or put one of
//! their own at its name, as they could rename the finished one: no gain. The restore fills
//! and finishes its own directory through the descriptor it holds, whatever name it has by
//! then; the rename acts on a name in a directory they control anyway; and hard links and a
//! directory's metadata set after them reopen the directory by its path and check it is the
//! one restored (`links.rs`).
//!
//! A directory that was there before is restored into as it is, and so is the top the user
//! named: a restore into a new directory shows it at once, filling.

use super::Ctx;
use crate::core::entry::{Entry, EntryKind};
use crate::core::fsys::Dir;
use crate::core::util::bytes_path;
use std::collections::HashMap;
use std::io::ErrorKind;
use std::path::Path;

/// What the restore knows of a directory it restores into.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Place {
    /// Made by this restore, and nobody else can write in it: nothing is there to look at.
    pub empty: bool,
    /// Not reachable under its real path yet: it, or a directory above it, is under a
    /// temporary name until it is done.
    pub hidden: bool,
    /// Made beneath a temporary name by a restore that was stopped, and not finished: a file
    /// found in it may be cut short.
    pub stopped: bool,
}

impl Place {
    /// A directory that was there before (or is the top): looked at, and visible.
    pub const BEFORE: Place = Place {
        empty: false,
        hidden: false,
        stopped: false,
    };

    /// Whether a file is created at its own name here at once, with nothing to replace and
    /// nobody to see it before it is whole.
    pub fn in_place(self) -> bool {
        self.empty && self.hidden
    }

    /// The overwrite rule for what is found here: the user's, except that in a stopped
    /// restore's directory nothing is kept that is not as the snapshot says.
    pub fn overwrite(self, asked: super::Overwrite) -> super::Overwrite {
        match asked {
            super::Overwrite::Never if self.stopped => super::Overwrite::IfChanged,
            _ => asked,
        }
    }
}

/// The mode a restore makes a directory with, until its metadata is set: owner only, so that
/// nobody else can put anything in it meanwhile, and sticky — a mark no directory a user
/// makes is likely to carry — so that a re-run after an interruption tells a directory the
/// stopped run made (and never finished) from one that was there before, which
/// `--overwrite never` leaves as it is. (Sticky changes nothing for the restore, the owner of
/// the directory.)
pub(super) const UNFINISHED: u32 = 0o1700;

/// Whether the open directory `d` was made by a restore that did not finish it: owned by the
/// user this one runs as, sticky, and closed to others (see [`UNFINISHED`]).
pub(super) fn unfinished(d: &Dir) -> bool {
    crate::core::fsys::fstat(d).is_ok_and(|st| {
        st.is_dir() && st.uid == crate::core::meta::euid() && st.mode & 0o1077 == 0o1000
    })
}

/// Whether the open directory `d`, just made, is as this restore makes one: [`unfinished`]
/// (ours, closed to others) and empty. Someone who may write where it was made may have put
/// another in its place between the two lookups of its name — one of their own, or another
/// directory this restore is filling (which is ours and unfinished, but not empty).
fn made_here(d: &Dir) -> bool {
    unfinished(d) && d.is_empty().unwrap_or(false)
}

/// A subdirectory to restore into, open.
pub(super) struct Sub {
    pub dir: Dir,
    pub place: Place,
    /// This restore (or a stopped one, beneath a temporary name) made it: its metadata is
    /// set when it is done, whatever `--overwrite` says.
    pub made: bool,
    /// The temporary name it has until it is done.
    pub temp: Option<Vec<u8>>,
}

/// Makes (or finds) the subdirectory `name` of `parent`, a directory at `place`. An error is
/// the reason it cannot be restored into.
pub(super) fn subdir(parent: &Dir, place: Place, name: &[u8]) -> Result<Sub, String> {
    let free =
        place.empty || matches!(parent.lstat(name), Err(e) if e.kind() == ErrorKind::NotFound);
    if free && !place.hidden {
        if let Some(sub) = under_temporary_name(parent, name) {
            return Ok(sub);
        }
    }
    // Made here 0700, so that nobody else can put anything in it until it is done (and
    // sticky, to be known as unfinished); an existing one is used as it is — unless it is a
    // symlink, which is not followed.
    let made = match parent.mkdir(name, UNFINISHED) {
        Ok(()) => true,
        Err(e) if e.kind() == ErrorKind::AlreadyExists && !place.empty => false,
        Err(e) => {
            return Err(format!(
                "directory not created: {e}; nothing below it restored"
            ))
        }
    };
    let dir = parent.open_dir(name).map_err(|e| {
        let why = match e.raw_os_error() {
            Some(libc::ELOOP | libc::ENOTDIR) => {
                "something else than a directory is there (a symlink is never followed)".to_string()
            }
            _ => e.to_string(),
        };
        format!("directory not restored: {why}; nothing below it restored")
    })?;
    // What was made and what was opened are two lookups of the name: someone who can write
    // in `parent` may have put another directory there in between. Only one that is ours,
    // closed to others and empty is taken for the one made here (nobody else can write in
    // it: symlinks are changed by name there); any other is restored into like a directory
    // that was there before. (Not an error: on some file systems — vfat, NFS with root
    // squashed — a directory just made is not ours alone either.)
    let empty = made && made_here(&dir);
    let stopped = place.hidden && !made && unfinished(&dir);
    Ok(Sub {
        place: Place {
            empty,
            hidden: place.hidden,
            stopped,
        },
        made,
        temp: None,
        dir,
    })
}

/// `name`'s directory made, or a stopped restore's taken up, under its temporary name in
/// `parent`; none when that name is taken by anything else, or cannot be made.
fn under_temporary_name(parent: &Dir, name: &[u8]) -> Option<Sub> {
    let temp = super::file::partial_name(name);
    let made = match parent.mkdir(&temp, UNFINISHED) {
        Ok(()) => true,
        Err(e) if e.kind() == ErrorKind::AlreadyExists => false,
        Err(_) => return None,
    };
    let Ok(dir) = parent.open_dir(&temp) else {
        if made {
            // Moved away or replaced since: an empty directory of ours goes, anything else
            // stays (`rmdir` removes nothing else).
            let _ = parent.rmdir(&temp);
        }
        return None;
    };
    let place = if made && made_here(&dir) {
        Place {
            empty: true,
            hidden: true,
            stopped: false,
        }
    } else if made {
        // Not what was made (a directory put in its place), or a file system where what a
        // restore makes is not closed to others (vfat, NFS with root squashed): not used, and
        // not left behind either.
        let _ = parent.rmdir(&temp);
        return None;
    } else if unfinished(&dir) {
        Place {
            empty: false,
            hidden: true,
            stopped: true,
        }
    } else {
        // Someone else's (made between our mkdir and open, or there before), or a restore's
        // finished directory that was never renamed: not ours to fill.
        return None;
    };
    Some(Sub {
        dir,
        place,
        made: true,
        temp: Some(temp),
    })
}

/// Gives the directory restored under its temporary name (`sub.temp`) its real name `name`
/// in `parent` (shown as `path`); a warning when something took the name meanwhile, which
/// is left as it is.
pub(super) fn put_in_place(ctx: &Ctx, parent: &Dir, sub: &Sub, name: &[u8], path: &Path) {
    let Some(temp) = &sub.temp else { return };
    let left = path.with_file_name(bytes_path(temp));
    // The name is checked to hold the directory restored: one put in its place is not
    // renamed for it (what the restore filled stays where it was moved, under a name it no
    // longer knows).
    let ours = parent
        .open_dir(temp)
        .is_ok_and(|d| super::walk::id(&d) == super::walk::id(&sub.dir));
    let why = if !ours {
        format!(
            "something else was put at its temporary name {} while it was restored, and the \
             directory restored was moved away",
            left.display()
        )
    } else {
        match parent.rename_dir(temp, name) {
            Ok(()) => return,
            Err(e) if e.kind() == ErrorKind::AlreadyExists => format!(
                "something was put at its name while it was restored; it is left as {}",
                left.display()
            ),
            Err(e) => format!("{e}; it is left as {}", left.display()),
        }
    };
    ctx.warn(format!(
        "{}: restored, but not put in place: {why}",
        path.display()
    ));
}

/// Clears a stopped restore's directory `dir` (shown as `path`; the snapshot holds `entries`
/// there) before anything is restored into it: whatever is not as the snapshot says goes — a
/// file whose size or time differ from the snapshot's (cut short: a file made in place gets
/// its times last), a directory where it holds none, anything else it does not hold, and
/// symlinks and nodes (made again). All of it is the stopped run's own, beneath a name
/// nobody looks at, and would otherwise be put in place with the directory wherever this run
/// does not write the name again: a selection that skips it, a file that cannot be written
/// (damage, a full disk), a listing cut short, a restore of another snapshot.
pub(super) fn tidy(ctx: &Ctx, dir: &Dir, path: &Path, entries: &[Entry]) {
    let names = match dir.names() {
        Ok(n) => n,
        Err(e) => {
            ctx.warn(format!(
                "{}: a stopped restore's directory could not be listed: {e}",
                path.display()
            ));
            return;
        }
    };
    let held: HashMap<&[u8], &Entry> = entries.iter().map(|e| (&e.name[..], e)).collect();
    let Ok(dev) = crate::core::fsys::fstat(dir).map(|st| st.dev) else {
        return;
    };
    for name in names {
        let Ok(st) = dir.lstat(&name) else { continue };
        let keep = held.get(&name[..]).is_some_and(|e| match &e.kind {
            EntryKind::Dir { .. } => st.is_dir(),
            EntryKind::File { size, .. } => st.is_file() && st.size == *size && st.mtime == e.mtime,
            _ => false,
        });
        if keep {
            continue;
        }
        if st.dev != dev {
            // Something mounted there since: not the stopped run's, and never emptied.
            ctx.warn(format!(
                "{}: another file system is mounted there; not removed",
                path.join(bytes_path(&name)).display()
            ));
            continue;
        }
        if let Err(p) = dir.remove_all(&name) {
            ctx.warn(format!(
                "{}: left by a stopped restore and not as the snapshot says, but not removed: \
                 {}: {}",
                path.join(bytes_path(&name)).display(),
                path.join(bytes_path(&name))
                    .join(bytes_path(&p.at))
                    .display(),
                p.error
            ));
        }
    }
}
