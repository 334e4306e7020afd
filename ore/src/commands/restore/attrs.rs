//! Putting an entry's owner, mode, extended attributes and times back — on what was just
//! made, never by a path.
//!
//! Regular files and directories are changed through their open descriptors. A symlink is
//! changed with the `*at` calls and `AT_SYMLINK_NOFOLLOW` relative to its directory (it has no
//! mode). A fifo or device node (and a symlink in a directory others can write to) through an
//! `O_PATH` [`Node`], checked to be the node just made (see `core/fsys/at.rs` for why).
//!
//! Setuid and setgid: a file keeps them only when it ends up owned by the user and group the
//! snapshot names — always when root restores owners; otherwise only if the restoring user
//! (or its group) is that owner. A non-root restore of someone else's setuid program, or a
//! root restore with `--no-owner`, would otherwise make a program that runs as whoever
//! restored it, which nobody asked for (tar and rsync drop the bits the same way). A warning
//! names each file that loses them.

use super::Ctx;
use crate::core::entry::{Entry, EntryKind};
use crate::core::fsys::{Dir, Node};
use crate::core::util::show;
use std::fs::File;
use std::io;
use std::path::Path;

/// What to change.
pub(super) enum On<'a> {
    /// An open regular file.
    Fd(&'a File),
    /// An open directory.
    Dir(&'a Dir),
    /// A fifo or device node.
    Node(&'a Node),
    /// The symlink `name` in a directory.
    Symlink(&'a Dir, &'a [u8]),
}

/// The owner `e` names on this machine: by name first, then by id.
pub(super) fn owner(e: &Entry) -> (u32, u32) {
    let uid = e
        .user
        .as_deref()
        .and_then(crate::core::meta::uid_of)
        .unwrap_or(e.uid);
    let gid = e
        .group
        .as_deref()
        .and_then(crate::core::meta::gid_of)
        .unwrap_or(e.gid);
    (uid, gid)
}

/// Owner, mode, xattrs and times of `e` on `on` (`path` names it in warnings).
pub(super) fn set(ctx: &Ctx, on: On, e: &Entry, path: &Path) -> io::Result<()> {
    set_known(ctx, on, None, e, path)
}

/// [`set`], on something whose status `now` (when given) was just read: an owner or mode it
/// has already is not set again. A file this restore made has its owner and mode more often
/// than not, and the two calls saved were a quarter of the calls restoring a small file
/// costs.
pub(super) fn set_known(
    ctx: &Ctx,
    on: On,
    now: Option<&crate::core::fsys::Stat>,
    e: &Entry,
    path: &Path,
) -> io::Result<()> {
    let owned = ctx.root_owner;
    let mut chowned = false;
    if owned && now.is_none_or(|st| (st.uid, st.gid) != owner(e)) {
        let (uid, gid) = owner(e);
        chowned = true;
        match &on {
            On::Fd(f) => crate::core::meta::fchown(*f, uid, gid)?,
            On::Dir(d) => crate::core::meta::fchown(*d, uid, gid)?,
            On::Node(n) => n.chown(uid, gid)?,
            On::Symlink(d, name) => d.chown_at(name, uid, gid)?,
        }
    }
    if !matches!(e.kind, EntryKind::Symlink { .. }) {
        let mode = safe_mode(ctx, &on, e, owned, path)?;
        // (A chown may have cleared setuid and setgid: then the mode is set whatever it was.)
        let has = now.filter(|_| !chowned).map(|st| st.mode & 0o7777);
        match &on {
            _ if has == Some(mode) => {}
            On::Fd(f) => crate::core::meta::fchmod(*f, mode)?,
            On::Dir(d) => crate::core::meta::fchmod(*d, mode)?,
            On::Node(n) => n.chmod(mode)?,
            On::Symlink(..) => {}
        }
    }
    for x in &e.xattrs {
        let r = match &on {
            On::Fd(f) => crate::core::meta::fset_xattr(*f, x),
            On::Dir(d) => crate::core::meta::fset_xattr(*d, x),
            On::Node(n) => n.set_xattr(&x.name, &x.value),
            On::Symlink(d, name) => d.node(name).and_then(|n| n.set_xattr(&x.name, &x.value)),
        };
        if let Err(err) = r {
            // Trusted and security attributes need privileges; say so once per file.
            return Err(io::Error::new(
                err.kind(),
                format!("extended attribute {}: {err}", show(&x.name)),
            ));
        }
    }
    let atime = e.atime.unwrap_or(e.mtime);
    match &on {
        On::Fd(f) => crate::core::meta::set_fd_times(*f, atime, e.mtime),
        On::Dir(d) => crate::core::meta::set_fd_times(*d, atime, e.mtime),
        On::Node(n) => n.set_times(atime, e.mtime),
        On::Symlink(d, name) => d.set_times_at(name, atime, e.mtime),
    }
}

/// Whether a file found at `e`'s name (`st`) is owned as the restore would have made it: as
/// the snapshot says when root restores owners, else by the user the restore runs as. Only
/// such a file, kept, may be the target of a hard link: one someone else put there is not.
pub(super) fn owned_as_made(ctx: &Ctx, e: &Entry, st: &crate::core::fsys::Stat) -> bool {
    if ctx.root_owner {
        (st.uid, st.gid) == owner(e)
    } else {
        st.uid == crate::core::meta::euid()
    }
}

/// The mode to set: the snapshot's, less setuid/setgid where the owner is not the one the
/// snapshot names.
fn safe_mode(ctx: &Ctx, on: &On, e: &Entry, owned: bool, path: &Path) -> io::Result<u32> {
    let mode = e.mode & 0o7777;
    let special = mode & (libc::S_ISUID | libc::S_ISGID);
    if special == 0 || owned {
        return Ok(mode);
    }
    let st = match on {
        On::Fd(f) => crate::core::fsys::fstat(*f)?,
        On::Dir(d) => crate::core::fsys::fstat(*d)?,
        On::Node(n) => n.stat()?,
        On::Symlink(..) => return Ok(mode),
    };
    let (uid, gid) = owner(e);
    let mut keep = mode;
    if st.uid != uid {
        keep &= !libc::S_ISUID;
    }
    if st.gid != gid {
        keep &= !libc::S_ISGID;
    }
    if keep != mode {
        ctx.warn(format!(
            "{}: setuid/setgid bits not restored: it is not owned by the user and group \
             the snapshot names ({}:{})",
            path.display(),
            e.user.clone().unwrap_or_else(|| e.uid.to_string()),
            e.group.clone().unwrap_or_else(|| e.gid.to_string()),
        ));
    }
    Ok(keep)
}
