//! The destination: the one path a restore resolves by name, and how.
//!
//! Everything below the destination is reached one name at a time from descriptors held open
//! (`walk.rs`); the destination itself is the user's to name, and the path up to its last name
//! is resolved as written. The last name is where someone else may have been first: a restore
//! into `/shared/restore` (a directory others may write to) finds what they put there. So:
//!
//! - **missing**: it is made, then opened without following a symlink — not a symlink
//!   swapped in between;
//! - **a symlink**: followed only if it belongs to the user the restore runs as, or to root;
//!   one that someone else planted is refused, naming its owner (the kernel's
//!   `protected_symlinks` makes the same rule for sticky directories such as `/tmp`; here it
//!   holds everywhere). The symlink is held open (`O_PATH`) while it is checked and followed,
//!   so the one checked is the one followed;
//! - **a directory**: opened as it is (restoring into a directory someone else owns is the
//!   user's choice).

use super::EntryKind;
use crate::core::entry::Entry;
use crate::core::error::{Error, Result};
use crate::core::fsys::Dir;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// What the destination's last name is.
enum Found {
    Missing,
    /// A directory, or a trusted symlink to one: open.
    Dir(Dir),
    /// Something else (a file, a trusted symlink to no directory).
    Other,
}

/// Opens the directory the restore works in, and says how it is shown: `dest` for a directory
/// (made if missing); for a file, `dest` if it is a directory, else the directory `dest` is in
/// (the file then takes the name `dest` ends with, returned); and whether this restore made
/// the directory (one that was there before keeps its metadata with `--overwrite never`).
pub(super) fn open_top(
    target: &Entry,
    dest: &Path,
) -> Result<(Dir, PathBuf, Option<Vec<u8>>, bool)> {
    let Some(last) = dest.file_name() else {
        // `/`, `.`, `..`: the user's own, resolved as written.
        let d = Dir::open_following(dest).map_err(|e| Error::io(dest, e))?;
        return Ok((d, dest.to_path_buf(), None, false));
    };
    let last = last.as_bytes();
    let at = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let is_dir = matches!(target.kind, EntryKind::Dir { .. });
    if is_dir {
        std::fs::create_dir_all(&at).map_err(|e| Error::io(&at, e))?;
    }
    let parent = Dir::open_following(&at).map_err(|e| Error::io(&at, e))?;
    match (find(&parent, &at, last, dest)?, is_dir) {
        (Found::Dir(d), _) => Ok((d, dest.to_path_buf(), None, false)),
        (Found::Other, true) => Err(Error::Usage(format!(
            "{}: exists and is not a directory; a directory restores into a directory",
            dest.display()
        ))),
        (Found::Missing, true) => {
            // Marked unfinished until its metadata is set, like every directory a restore
            // makes (`place::UNFINISHED`).
            let made = match parent.mkdir(last, super::place::UNFINISHED) {
                Ok(()) => true,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => false,
                Err(e) => return Err(Error::io(dest, e)),
            };
            // Not through a symlink swapped in since; a directory swapped in is restored
            // into like one that was there (the top is never taken for empty).
            let d = parent.open_dir(last).map_err(|e| match e.raw_os_error() {
                Some(libc::ELOOP | libc::ENOTDIR | libc::ENOENT) => Error::Usage(format!(
                    "{}: moved away, or something else than a directory (a symlink, not \
                     followed) put in its place, as the restore made it; nothing restored",
                    dest.display()
                )),
                _ => Error::io(dest, e),
            })?;
            Ok((d, dest.to_path_buf(), None, made))
        }
        (Found::Missing | Found::Other, false) => Ok((parent, at, Some(last.to_vec()), false)),
    }
}

/// What `name` in `parent` (the directory `at`; the name shown as `dest`) is, following a
/// symlink there only if it belongs to this user or root.
fn find(parent: &Dir, at: &Path, name: &[u8], dest: &Path) -> Result<Found> {
    let node = match parent.node(name) {
        Ok(n) => n,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Found::Missing),
        Err(e) => return Err(Error::io(dest, e)),
    };
    let st = node.stat().map_err(|e| Error::io(dest, e))?;
    if !st.is_dir() && !st.is_symlink() {
        return Ok(Found::Other);
    }
    if st.is_symlink() && st.uid != crate::core::meta::euid() && st.uid != 0 {
        return Err(Error::Usage(format!(
            "{}: is a symlink that belongs to user {}, not to you or root: not followed \
             (name the directory it points at, if that is where you want the restore)",
            dest.display(),
            st.uid
        )));
    }
    let opened = if st.is_dir() {
        node.open_dir()
    } else {
        // Trusted: what it points at is resolved as written, from the directory it is in.
        node.read_link()
            .and_then(|to| Dir::open_following(&at.join(crate::core::util::bytes_path(&to))))
    };
    match opened {
        Ok(d) => Ok(Found::Dir(d)),
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOTDIR | libc::ENOENT)) => {
            Ok(Found::Other)
        }
        Err(e) => Err(Error::io(dest, e)),
    }
}
