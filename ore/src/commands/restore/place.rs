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
//! files.
//!
//! An interrupted run leaves the temporary directory. A re-run that finds one ours, still
//! unfinished (owned by the user it runs as, sticky, closed to others), takes it up
//! ([`Place::stopped`]): what is found in a directory of it that is still unfinished may be
//! cut short, so there `--overwrite never` keeps nothing whose size or time differ from the
//! snapshot's (a file written in place gets its times last). Something else at the temporary
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
use crate::core::fsys::Dir;
use crate::core::util::bytes_path;
use std::io::ErrorKind;
use std::path::Path;

/// What the restore knows of a directory it restores into.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
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

/// Whether the open directory `d` is as this restore makes one: owned by the user it runs as,
/// and nobody else may write in it (made 0700, less the umask).
fn ours_alone(d: &Dir) -> bool {
    crate::core::fsys::fstat(d)
        .is_ok_and(|st| st.is_dir() && st.uid == crate::core::meta::euid() && st.mode & 0o077 == 0)
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
    // in `parent` may have put a directory of their own there in between. Only one that is
    // ours and closed to others is taken for the empty one made here (nobody else can write
    // in it: symlinks are changed by name there); any other is restored into like a
    // directory that was there before. (Not an error: on some file systems — vfat, NFS with
    // root squashed — a directory just made is not ours alone either.)
    let empty = made && ours_alone(&dir);
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
    let dir = parent.open_dir(&temp).ok()?;
    let place = if made && ours_alone(&dir) {
        Place {
            empty: true,
            hidden: true,
            stopped: false,
        }
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
    if let Err(e) = parent.rename_dir(temp, name) {
        let left = path.with_file_name(bytes_path(temp));
        ctx.warn(format!(
            "{}: restored, but not put in place: {}; it is left as {}",
            path.display(),
            match e.kind() {
                ErrorKind::AlreadyExists =>
                    "something was put at its name while it was restored".to_string(),
                _ => e.to_string(),
            },
            left.display()
        ));
    }
}
