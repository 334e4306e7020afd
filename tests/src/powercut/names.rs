//! The operations that change directory entries (mkdir, mknod, symlink, link, rename,
//! unlink, rmdir): each notes the entries of the directories it changes in the [`Model`]
//! first, and keeps an inode that loses a name in the attic, so a cut can bring it back.
//!
//! [`Model`]: super::model::Model

use super::node::{cstr, Shared};
use fuser::FileAttr;
use std::ffi::OsStr;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

pub(super) fn mkdir(
    s: &mut Shared,
    parent: u64,
    name: &OsStr,
    mode: u32,
    umask: u32,
) -> io::Result<FileAttr> {
    let (path, dir) = s.child(parent, name)?;
    s.model.before_entries_change(dir, &s.path(parent)?)?;
    std::fs::create_dir(&path)?;
    let perm = std::fs::Permissions::from_mode(mode & !umask & 0o7777);
    std::fs::set_permissions(&path, perm)?;
    let a = s.entry(path)?;
    s.model.created_dir(s.backing(a.ino)?);
    Ok(a)
}

pub(super) fn mknod(
    s: &mut Shared,
    parent: u64,
    name: &OsStr,
    mode: u32,
    umask: u32,
    rdev: u32,
) -> io::Result<FileAttr> {
    let (path, dir) = s.child(parent, name)?;
    s.model.before_entries_change(dir, &s.path(parent)?)?;
    let c = cstr(&path)?;
    // SAFETY: a valid C string (a socket, a fifo, a device node, as asked).
    if unsafe { libc::mknod(c.as_ptr(), mode & !umask, rdev as libc::dev_t) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let a = s.entry(path)?;
    s.model.created_file(s.backing(a.ino)?);
    Ok(a)
}

pub(super) fn symlink(
    s: &mut Shared,
    parent: u64,
    name: &OsStr,
    target: &Path,
) -> io::Result<FileAttr> {
    let (path, dir) = s.child(parent, name)?;
    s.model.before_entries_change(dir, &s.path(parent)?)?;
    std::os::unix::fs::symlink(target, &path)?;
    s.entry(path)
}

pub(super) fn rename(
    s: &mut Shared,
    parent: u64,
    name: &OsStr,
    newparent: u64,
    newname: &OsStr,
    flags: u32,
) -> io::Result<()> {
    if flags & !libc::RENAME_NOREPLACE != 0 {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    let (from, dir) = s.child(parent, name)?;
    let (to, newdir) = s.child(newparent, newname)?;
    std::fs::symlink_metadata(&from)?;
    s.model.before_entries_change(dir, &s.path(parent)?)?;
    s.model.before_entries_change(newdir, &s.path(newparent)?)?;
    if let Ok(there) = std::fs::symlink_metadata(&to) {
        if flags & libc::RENAME_NOREPLACE != 0 {
            return Err(io::Error::from_raw_os_error(libc::EEXIST));
        }
        if there.is_dir() && std::fs::read_dir(&to)?.next().is_some() {
            return Err(io::Error::from_raw_os_error(libc::ENOTEMPTY));
        }
        let kept = s.model.keep(&to)?;
        s.moved(&to, &kept);
        if there.is_dir() {
            // Kept aside whole; the rename below then has nothing to replace.
        } else {
            std::fs::remove_file(&to)?;
        }
    }
    std::fs::rename(&from, &to)?;
    s.moved(&from, &to);
    Ok(())
}

pub(super) fn link(
    s: &mut Shared,
    ino: u64,
    newparent: u64,
    newname: &OsStr,
) -> io::Result<FileAttr> {
    let (to, dir) = s.child(newparent, newname)?;
    s.model.before_entries_change(dir, &s.path(newparent)?)?;
    std::fs::hard_link(s.path(ino)?, &to)?;
    s.entry(to)
}

pub(super) fn remove(s: &mut Shared, parent: u64, name: &OsStr, dir: bool) -> io::Result<()> {
    let (path, pdir) = s.child(parent, name)?;
    let meta = std::fs::symlink_metadata(&path)?;
    if dir != meta.is_dir() {
        let e = if dir { libc::ENOTDIR } else { libc::EISDIR };
        return Err(io::Error::from_raw_os_error(e));
    }
    if dir && std::fs::read_dir(&path)?.next().is_some() {
        return Err(io::Error::from_raw_os_error(libc::ENOTEMPTY));
    }
    s.model.before_entries_change(pdir, &s.path(parent)?)?;
    let kept = s.model.keep(&path)?;
    if !dir {
        std::fs::remove_file(&path)?;
    }
    s.moved(&path, &kept);
    Ok(())
}
