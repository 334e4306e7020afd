//! Creating and changing things beneath a directory held open: the `*at` system calls.
//!
//! Restore writes into a destination that other users may be able to write to as well. If it
//! named what it creates by full paths, a user who swaps a directory for a symlink while it
//! runs could make it write, chmod or chown anywhere (this happened: a root restore filled a
//! root-only directory and chowned it to the attacker). So every call here takes one name,
//! relative to a [`Dir`] held open, and never follows a symlink at that name:
//!
//! - files are created with `O_CREAT | O_EXCL | O_NOFOLLOW`, directories opened with
//!   `O_DIRECTORY | O_NOFOLLOW`: a symlink where a directory was is an error, not a detour;
//! - `mkdirat`, `symlinkat`, `mknodat`, `linkat` (without `AT_SYMLINK_FOLLOW`), `renameat2`
//!   and `unlinkat` act on the name itself;
//! - metadata goes on descriptors (`fchown`, `fchmod`, `futimens`, `fsetxattr`, in
//!   `meta.rs`); a symlink's owner and times with `fchownat`/`utimensat` and
//!   `AT_SYMLINK_NOFOLLOW`.
//!
//! Fifos and device nodes cannot be opened for their metadata without side effects (a fifo
//! blocks, a tape rewinds), and `fchmodat` has no working "do not follow" on Linux before
//! `fchmodat2`. So they are opened as a [`Node`] with `O_PATH | O_NOFOLLOW`, which reaches the
//! inode at that name without opening the device; the node is checked to be what was just made
//! (its type, and one link: not another file linked in), owned with `fchownat(fd, "",
//! AT_EMPTY_PATH)`, and its mode, times and attributes set through `/proc/self/fd/N`, a name
//! that resolves to exactly that inode and is not followed further (glibc's own `fchmodat`
//! works the same way).
//!
//! A file being restored is written unnamed (`O_TMPFILE`) and linked in under its name once
//! whole (`linkat` with `AT_EMPTY_PATH`, which root may do, and since Linux 6.10 the process
//! that opened the file): nothing of it is ever visible
//! under a name before it is complete, and an interrupted run leaves nothing behind. (In a
//! directory the restore is building under a temporary name, files are made at their own
//! names, `O_CREAT | O_EXCL`: no name anyone looks for leads there; `restore/place.rs`.)
//!
//! A hard link is made from such a node as well (`linkat` of `/proc/self/fd/N` with
//! `AT_SYMLINK_FOLLOW`, which needs no privilege, unlike `AT_EMPTY_PATH`): the inode opened and
//! checked is the one linked, not whatever has the name by the time of the call.
//!
//! A symlink in a directory that only the restore can write to yet (one it just made) has its
//! owner and times set by name, with `AT_SYMLINK_NOFOLLOW`, in the directory held open. In a
//! directory others may write to, it is treated like a fifo: a [`Node`], checked to be a
//! symlink with one link — not a hard link to someone else's file swapped in.
//!
//! `openat2` with `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS` is not needed: no lookup here has
//! more than one component, each relative to a descriptor held, so there is nothing beneath
//! to resolve — and it works the same on every kernel.
//!
//! This layer is the system-call boundary: it refuses a name that is empty, `.` or `..`, or
//! holds `/` or NUL, whatever the caller checked before.

use super::{cstr, Dir, Stat};
use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// `name` as a C string, if it is one name: not empty, `.` or `..`, and free of `/` and NUL.
/// The rule is the archive's own ([`crate::core::names::check_name`]), checked again here because
/// this is where a name meets the file system.
pub fn one_name(name: &[u8]) -> io::Result<CString> {
    if crate::core::names::check_name(name).is_err() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "`{}` is not a name in a directory",
                String::from_utf8_lossy(name)
            ),
        ));
    }
    cstr(name)
}

/// Ok when a system call returned 0, else the error it left in `errno`.
pub(crate) fn check(rc: libc::c_int) -> io::Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Access and modification times (ns since the epoch) as `utimensat`/`futimens` take them.
pub(crate) fn timespecs(atime: i64, mtime: i64) -> [libc::timespec; 2] {
    let ts = |ns: i64| libc::timespec {
        tv_sec: ns.div_euclid(1_000_000_000) as libc::time_t,
        tv_nsec: ns.rem_euclid(1_000_000_000) as _,
    };
    [ts(atime), ts(mtime)]
}

impl Dir {
    fn raw(&self) -> libc::c_int {
        self.as_fd().as_raw_fd()
    }

    /// Opens the subdirectory `name`; a symlink there is refused (`ELOOP`/`ENOTDIR`).
    pub fn open_dir(&self, name: &[u8]) -> io::Result<Dir> {
        let c = one_name(name)?;
        // SAFETY: a valid descriptor and C string.
        let fd = unsafe {
            libc::openat(
                self.raw(),
                c.as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            )
        };
        Dir::own(fd)
    }

    /// Makes the directory `name` with `mode` (less the umask).
    pub fn mkdir(&self, name: &[u8], mode: u32) -> io::Result<()> {
        let c = one_name(name)?;
        // SAFETY: as above.
        check(unsafe { libc::mkdirat(self.raw(), c.as_ptr(), mode as libc::mode_t) })
    }

    /// Creates the regular file `name`, which must not exist, for reading and writing.
    pub fn create(&self, name: &[u8], mode: u32) -> io::Result<File> {
        let c = one_name(name)?;
        // SAFETY: as above; the descriptor returned is owned by the File.
        unsafe {
            let fd = libc::openat(
                self.raw(),
                c.as_ptr(),
                libc::O_RDWR | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                mode as libc::c_uint,
            );
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(File::from_raw_fd(fd))
        }
    }

    /// Creates an unnamed regular file in this directory (`O_TMPFILE`), for reading and
    /// writing; [`Dir::link_unnamed`] gives it a name once whole. Where the file system has no
    /// `O_TMPFILE`, an error (the caller writes under a temporary name instead).
    pub fn create_unnamed(&self, mode: u32) -> io::Result<File> {
        // SAFETY: as above, with the directory itself ("."); the descriptor returned is owned
        // by the File.
        unsafe {
            let fd = libc::openat(
                self.raw(),
                c".".as_ptr(),
                libc::O_RDWR | libc::O_TMPFILE | libc::O_CLOEXEC,
                mode as libc::c_uint,
            );
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(File::from_raw_fd(fd))
        }
    }

    /// Gives the unnamed file `f` (from [`Dir::create_unnamed`] on this directory) the name
    /// `name`, which must not exist (`AlreadyExists` otherwise). Before Linux 6.10, `linkat`
    /// with `AT_EMPTY_PATH` needs `CAP_DAC_READ_SEARCH`: without it, `PermissionDenied` or
    /// `NotFound`.
    pub fn link_unnamed(&self, f: &File, name: &[u8]) -> io::Result<()> {
        let c = one_name(name)?;
        // SAFETY: as above; `f` is a descriptor we hold.
        check(unsafe {
            libc::linkat(
                f.as_raw_fd(),
                c"".as_ptr(),
                self.raw(),
                c.as_ptr(),
                libc::AT_EMPTY_PATH,
            )
        })
    }

    /// Makes the symlink `name` pointing at `target`.
    pub fn symlink(&self, target: &[u8], name: &[u8]) -> io::Result<()> {
        let c = one_name(name)?;
        let t = cstr(target)?;
        // SAFETY: as above.
        check(unsafe { libc::symlinkat(t.as_ptr(), self.raw(), c.as_ptr()) })
    }

    /// Makes the fifo or device node `name` (`mode` holds its type).
    pub fn mknod(&self, name: &[u8], mode: u32, rdev: u64) -> io::Result<()> {
        let c = one_name(name)?;
        // SAFETY: as above.
        check(unsafe {
            libc::mknodat(
                self.raw(),
                c.as_ptr(),
                mode as libc::mode_t,
                rdev as libc::dev_t,
            )
        })
    }

    /// Makes `name` here a hard link to `from_name` in `from` (a symlink there is linked as
    /// itself, never followed).
    pub fn hard_link(&self, name: &[u8], from: &Dir, from_name: &[u8]) -> io::Result<()> {
        let c = one_name(name)?;
        let f = one_name(from_name)?;
        // SAFETY: as above.
        check(unsafe { libc::linkat(from.raw(), f.as_ptr(), self.raw(), c.as_ptr(), 0) })
    }

    /// Makes `name` here a hard link to the file `node` holds open — that inode, whatever
    /// names it has now (through `/proc/self/fd/N`, which needs no privilege, unlike
    /// `AT_EMPTY_PATH`).
    pub fn hard_link_node(&self, name: &[u8], node: &Node) -> io::Result<()> {
        let c = one_name(name)?;
        let p = node.proc()?;
        // SAFETY: as above.
        check(unsafe {
            libc::linkat(
                libc::AT_FDCWD,
                p.as_ptr(),
                self.raw(),
                c.as_ptr(),
                libc::AT_SYMLINK_FOLLOW,
            )
        })
    }

    /// Renames `from` to `to` in this directory. Unless `replace`, an existing `to` is left
    /// as it is and the rename fails with `AlreadyExists`.
    pub fn rename(&self, from: &[u8], to: &[u8], replace: bool) -> io::Result<()> {
        let f = one_name(from)?;
        let t = one_name(to)?;
        let flags = if replace { 0 } else { libc::RENAME_NOREPLACE };
        // SAFETY: as above.
        let rc = unsafe { libc::renameat2(self.raw(), f.as_ptr(), self.raw(), t.as_ptr(), flags) };
        match check(rc) {
            // A file system without RENAME_NOREPLACE: a link fails alike on an existing name.
            Err(e) if !replace && e.raw_os_error() == Some(libc::EINVAL) => {
                self.hard_link(to, self, from)?;
                self.unlink(from)
            }
            r => r,
        }
    }

    /// Renames the directory `from` here to `to`, which must not exist (`AlreadyExists`
    /// otherwise). Where the file system (or the kernel: `ENOSYS`) has no `RENAME_NOREPLACE`,
    /// `to` is looked up first
    /// and a plain rename follows: a directory is never a hard link, so there is no link to
    /// fall back on, and what the plain rename could replace in the moment between is only
    /// an empty directory (a file or a non-empty directory makes it fail).
    pub fn rename_dir(&self, from: &[u8], to: &[u8]) -> io::Result<()> {
        let f = one_name(from)?;
        let t = one_name(to)?;
        // SAFETY: as above.
        let rc = unsafe {
            libc::renameat2(
                self.raw(),
                f.as_ptr(),
                self.raw(),
                t.as_ptr(),
                libc::RENAME_NOREPLACE,
            )
        };
        match check(rc) {
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOSYS)) => {
                if self.lstat(to).is_ok() {
                    return Err(io::Error::from(io::ErrorKind::AlreadyExists));
                }
                // SAFETY: as above.
                check(unsafe { libc::renameat(self.raw(), f.as_ptr(), self.raw(), t.as_ptr()) })
            }
            r => r,
        }
    }

    /// Removes `name` (not a directory).
    pub fn unlink(&self, name: &[u8]) -> io::Result<()> {
        let c = one_name(name)?;
        // SAFETY: as above.
        check(unsafe { libc::unlinkat(self.raw(), c.as_ptr(), 0) })
    }

    /// Changes the owner of `name` itself (a symlink is not followed).
    pub fn chown_at(&self, name: &[u8], uid: u32, gid: u32) -> io::Result<()> {
        let c = one_name(name)?;
        // SAFETY: as above.
        check(unsafe {
            libc::fchownat(self.raw(), c.as_ptr(), uid, gid, libc::AT_SYMLINK_NOFOLLOW)
        })
    }

    /// Sets the times (ns since the epoch) of `name` itself (a symlink is not followed).
    pub fn set_times_at(&self, name: &[u8], atime: i64, mtime: i64) -> io::Result<()> {
        let c = one_name(name)?;
        let times = timespecs(atime, mtime);
        // SAFETY: as above, and a two-element timespec array.
        check(unsafe {
            libc::utimensat(
                self.raw(),
                c.as_ptr(),
                times.as_ptr(),
                libc::AT_SYMLINK_NOFOLLOW,
            )
        })
    }

    /// A handle on the inode at `name`, opened without following it or opening a device.
    pub fn node(&self, name: &[u8]) -> io::Result<Node> {
        let c = one_name(name)?;
        // SAFETY: as above; the descriptor returned is owned by the Node.
        unsafe {
            let fd = libc::openat(
                self.raw(),
                c.as_ptr(),
                libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            );
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(Node {
                fd: OwnedFd::from_raw_fd(fd),
            })
        }
    }
}

/// An `O_PATH` handle on one inode: a fifo, device or symlink whose metadata is to be set.
#[derive(Debug)]
pub struct Node {
    fd: OwnedFd,
}

impl AsFd for Node {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Node {
    pub fn stat(&self) -> io::Result<Stat> {
        super::fstat(self)
    }

    /// `/proc/self/fd/N`: resolves to this inode and is not followed further.
    fn proc(&self) -> io::Result<CString> {
        cstr(format!("/proc/self/fd/{}", self.fd.as_raw_fd()).as_bytes())
    }

    /// Opens the directory this node is (through the node, not its name again).
    pub fn open_dir(&self) -> io::Result<Dir> {
        let p = self.proc()?;
        // SAFETY: a valid C string; a descriptor returned is owned by nobody else.
        Dir::own(unsafe {
            libc::open(
                p.as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        })
    }

    /// What this node, a symlink, points at: the symlink held, not one put at its name since.
    pub fn read_link(&self) -> io::Result<Vec<u8>> {
        let mut buf = vec![0u8; libc::PATH_MAX as usize + 1];
        // SAFETY: a valid descriptor, an empty C string, a buffer valid for its length.
        let n = unsafe {
            libc::readlinkat(
                self.fd.as_raw_fd(),
                c"".as_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        buf.truncate(n as usize);
        Ok(buf)
    }

    pub fn chown(&self, uid: u32, gid: u32) -> io::Result<()> {
        // SAFETY: a valid descriptor and an empty C string.
        check(unsafe {
            libc::fchownat(
                self.fd.as_raw_fd(),
                c"".as_ptr(),
                uid,
                gid,
                libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW,
            )
        })
    }

    pub fn chmod(&self, mode: u32) -> io::Result<()> {
        let p = self.proc()?;
        // SAFETY: a valid C string.
        check(unsafe { libc::chmod(p.as_ptr(), mode as libc::mode_t) })
    }

    pub fn set_times(&self, atime: i64, mtime: i64) -> io::Result<()> {
        let p = self.proc()?;
        let times = timespecs(atime, mtime);
        // SAFETY: a valid C string and a two-element timespec array.
        check(unsafe { libc::utimensat(libc::AT_FDCWD, p.as_ptr(), times.as_ptr(), 0) })
    }

    pub fn set_xattr(&self, name: &[u8], value: &[u8]) -> io::Result<()> {
        let p = self.proc()?;
        let n = cstr(name)?;
        // SAFETY: valid C strings; the value is valid for its length.
        check(unsafe {
            libc::setxattr(
                p.as_ptr(),
                n.as_ptr(),
                value.as_ptr().cast(),
                value.len(),
                0,
            )
        })
    }
}

/// Raises this process's soft limit on open descriptors to its hard limit: restore keeps one
/// open for each directory being restored, and many are restored at once.
pub fn raise_fd_limit() {
    // SAFETY: rlimit is plain data, read and written by the calls.
    unsafe {
        let mut r: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) == 0 && r.rlim_cur < r.rlim_max {
            r.rlim_cur = r.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &r);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_are_not_one_component_are_refused_at_the_boundary() {
        let d = tempfile::tempdir().unwrap();
        let dir = Dir::open(d.path()).unwrap();
        for bad in [&b""[..], b".", b"..", b"a/b", b"../x", b"a\0b"] {
            assert!(dir.mkdir(bad, 0o700).is_err(), "{bad:?}");
            assert!(dir.create(bad, 0o600).is_err(), "{bad:?}");
        }
        dir.mkdir(b"ok", 0o700).unwrap();
        assert!(dir.open_dir(b"ok").is_ok());
    }

    #[test]
    fn a_symlink_is_never_followed_where_a_directory_or_file_is_expected() {
        let d = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), d.path().join("l")).unwrap();
        let dir = Dir::open(d.path()).unwrap();
        assert!(dir.open_dir(b"l").is_err());
        assert!(dir.create(b"l", 0o600).is_err());
        dir.chown_at(b"l", crate::core::meta::euid(), u32::MAX)
            .unwrap();
        dir.set_times_at(b"l", 0, 0).unwrap();
        assert_ne!(std::fs::metadata(outside.path()).unwrap().mtime(), 0);
        let n = dir.node(b"l").unwrap();
        assert!(n.stat().unwrap().is_symlink());
    }

    #[test]
    fn a_fifo_gets_its_mode_and_times_through_its_node() {
        let d = tempfile::tempdir().unwrap();
        let dir = Dir::open(d.path()).unwrap();
        dir.mknod(b"f", libc::S_IFIFO | 0o600, 0).unwrap();
        let n = dir.node(b"f").unwrap();
        n.chmod(0o640).unwrap();
        n.set_times(5_000_000_000, 7_000_000_000).unwrap();
        let st = dir.lstat(b"f").unwrap();
        assert!(st.is_fifo());
        assert_eq!(st.mode & 0o7777, 0o640);
        assert_eq!(st.mtime, 7_000_000_000);
    }

    use std::os::unix::fs::MetadataExt;
}
