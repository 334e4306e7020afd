//! Reading directories and file status relative to an open directory.
//!
//! Statting `dir/name` by its full path makes the kernel walk every component again; with an
//! open descriptor of the directory, `fstatat` looks up only the last one. Over a tree of tens
//! of thousands of files that is a visible share of an unchanged re-snapshot.
//!
//! The same [`Dir`] is what restore works from (`at.rs`): every name it creates, opens or
//! changes beneath the destination is looked up as one component in a directory it holds open,
//! never as a path from the root, so a directory swapped for a symlink while it runs cannot
//! send it elsewhere.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::io::AsRawFd;
use std::path::Path;

mod at;
mod remove;
pub(crate) use at::{check, timespecs};
pub use at::{one_name, raise_fd_limit, Node};
pub use remove::Partial;

/// The status of a file, as `lstat` gives it (times in ns since the epoch).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stat {
    pub dev: u64,
    pub ino: u64,
    pub mode: u32,
    pub nlink: u64,
    pub uid: u32,
    pub gid: u32,
    pub rdev: u64,
    pub size: u64,
    pub blocks: u64,
    pub atime: i64,
    pub mtime: i64,
    pub ctime: i64,
}

impl Stat {
    fn from_raw(s: &libc::stat64) -> Stat {
        Stat {
            dev: s.st_dev,
            ino: s.st_ino,
            mode: s.st_mode,
            nlink: s.st_nlink,
            uid: s.st_uid,
            gid: s.st_gid,
            rdev: s.st_rdev,
            size: s.st_size as u64,
            blocks: s.st_blocks as u64,
            atime: s.st_atime * 1_000_000_000 + s.st_atime_nsec,
            mtime: s.st_mtime * 1_000_000_000 + s.st_mtime_nsec,
            ctime: s.st_ctime * 1_000_000_000 + s.st_ctime_nsec,
        }
    }

    fn fmt(&self) -> u32 {
        self.mode & libc::S_IFMT
    }
    pub fn is_dir(&self) -> bool {
        self.fmt() == libc::S_IFDIR
    }
    pub fn is_file(&self) -> bool {
        self.fmt() == libc::S_IFREG
    }
    pub fn is_symlink(&self) -> bool {
        self.fmt() == libc::S_IFLNK
    }
    pub fn is_fifo(&self) -> bool {
        self.fmt() == libc::S_IFIFO
    }
    pub fn is_socket(&self) -> bool {
        self.fmt() == libc::S_IFSOCK
    }
    pub fn is_char_device(&self) -> bool {
        self.fmt() == libc::S_IFCHR
    }
    pub fn is_block_device(&self) -> bool {
        self.fmt() == libc::S_IFBLK
    }
}

fn cstr(b: &[u8]) -> io::Result<CString> {
    CString::new(b).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "name contains NUL"))
}

/// Status of `path`, following symlinks when `follow`.
pub fn stat_path(path: &Path, follow: bool) -> io::Result<Stat> {
    let c = cstr(path.as_os_str().as_bytes())?;
    let flags = if follow { 0 } else { libc::AT_SYMLINK_NOFOLLOW };
    // SAFETY: stat64 is plain data, written by the call.
    unsafe {
        let mut s: libc::stat64 = std::mem::zeroed();
        if libc::fstatat64(libc::AT_FDCWD, c.as_ptr(), &mut s, flags) == 0 {
            Ok(Stat::from_raw(&s))
        } else {
            Err(io::Error::last_os_error())
        }
    }
}

/// Status of an open file (or directory, or `O_PATH` handle).
pub fn fstat(f: &impl AsFd) -> io::Result<Stat> {
    // SAFETY: as above, on a valid descriptor.
    unsafe {
        let mut s: libc::stat64 = std::mem::zeroed();
        if libc::fstat64(f.as_fd().as_raw_fd(), &mut s) == 0 {
            Ok(Stat::from_raw(&s))
        } else {
            Err(io::Error::last_os_error())
        }
    }
}

/// An open directory: its names read once, then used for `fstatat` of its entries, and by
/// restore for everything it creates beneath it (`at.rs`).
/// Opens `path` (relative to the directory `at`, or absolute) for reading, as a snapshot reads
/// a file the walk found regular: never through a symlink (`ELOOP`) and never waiting — a
/// file swapped for a fifo meanwhile would otherwise block the open until someone writes to
/// it, and the snapshot with it, signals or not (`O_NONBLOCK`, then anything but a regular
/// file is refused). Without changing its access time where the process may (`O_NOATIME`:
/// the owner, or root).
pub fn open_regular(at: libc::c_int, path: &std::ffi::CStr) -> io::Result<std::fs::File> {
    let flags = libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC;
    // SAFETY: a valid descriptor (or AT_FDCWD) and C string.
    let open = |extra| unsafe { libc::openat(at, path.as_ptr(), flags | extra) };
    let mut fd = open(libc::O_NOATIME);
    if fd < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EPERM) {
        fd = open(0);
    }
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor from a successful open, owned by nobody else.
    let file = unsafe { std::fs::File::from_raw_fd(fd) };
    if !fstat(&file)?.is_file() {
        return Err(io::Error::other(
            "no longer a regular file (it was replaced during the snapshot)",
        ));
    }
    Ok(file)
}

/// Whether the start of `file` is in the page cache: a one-byte read that may not wait for
/// the device (`RWF_NOWAIT`). `None` when the file system cannot tell (it refuses the flag)
/// or the file is empty.
pub fn start_is_cached(file: &std::fs::File) -> Option<bool> {
    let mut byte = 0u8;
    let iov = libc::iovec {
        iov_base: (&raw mut byte).cast(),
        iov_len: 1,
    };
    // SAFETY: one iovec over a live one-byte buffer, on a descriptor the caller holds open.
    let n = unsafe { libc::preadv2(file.as_raw_fd(), &iov, 1, 0, libc::RWF_NOWAIT) };
    match n {
        1 => Some(true),
        n if n < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EAGAIN) => {
            Some(false)
        }
        _ => None,
    }
}

/// [`open_regular`] by a path (the final component not followed).
pub fn open_regular_path(path: &Path) -> io::Result<std::fs::File> {
    open_regular(libc::AT_FDCWD, &cstr(path.as_os_str().as_bytes())?)
}

#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
}

impl Dir {
    /// Opens the directory `path` (not following a final symlink).
    pub fn open(path: &Path) -> io::Result<Dir> {
        Dir::open_path(path, libc::O_NOFOLLOW)
    }

    /// Opens the directory `path`, following symlinks all the way: for a path the user gave
    /// (a restore's destination), resolved once.
    pub fn open_following(path: &Path) -> io::Result<Dir> {
        Dir::open_path(path, 0)
    }

    fn open_path(path: &Path, flags: libc::c_int) -> io::Result<Dir> {
        let c = cstr(path.as_os_str().as_bytes())?;
        // SAFETY: valid C string; a descriptor returned is owned by nobody else.
        let fd = unsafe {
            libc::open(
                c.as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC | flags,
            )
        };
        Dir::own(fd)
    }

    /// Takes ownership of `fd`, the result of an open call (an error when negative).
    fn own(fd: libc::c_int) -> io::Result<Dir> {
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh descriptor from a successful open, owned by nobody else.
        Ok(Dir {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// Whether the directory holds nothing but `.` and `..`. Reads its listing from the start
    /// and rewinds it after, so [`Dir::names`] still lists everything.
    pub fn is_empty(&self) -> io::Result<bool> {
        let fd = self.fd.as_raw_fd();
        let rewind = || {
            // SAFETY: a descriptor we hold; rewinding a directory restarts its listing.
            match unsafe { libc::lseek(fd, 0, libc::SEEK_SET) } {
                0 => Ok(()),
                _ => Err(io::Error::last_os_error()),
            }
        };
        rewind()?;
        let mut buf = [0u8; 1024];
        let mut empty = true;
        loop {
            // SAFETY: the buffer is valid for its length; the kernel fills in whole records.
            let n = unsafe { libc::syscall(libc::SYS_getdents64, fd, buf.as_mut_ptr(), buf.len()) };
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            if n == 0 || !empty {
                break;
            }
            each_name(&buf[..n as usize], |_| empty = false);
        }
        rewind()?;
        Ok(empty)
    }

    /// The names in the directory (without `.` and `..`), in no particular order. Call once.
    pub fn names(&self) -> io::Result<Vec<Vec<u8>>> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; 32 << 10];
        loop {
            // SAFETY: the buffer is valid for its length; the kernel fills in whole records.
            let n = unsafe {
                libc::syscall(
                    libc::SYS_getdents64,
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr(),
                    buf.len(),
                )
            };
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            if n == 0 {
                return Ok(out);
            }
            each_name(&buf[..n as usize], |name| out.push(name.to_vec()));
        }
    }

    /// Opens the regular file `name` in this directory for reading: see [`open_regular`].
    pub fn open_file(&self, name: &[u8]) -> io::Result<std::fs::File> {
        open_regular(self.fd.as_raw_fd(), &cstr(name)?)
    }

    /// Status of `name` in this directory, not following a symlink.
    pub fn lstat(&self, name: &[u8]) -> io::Result<Stat> {
        let c = cstr(name)?;
        // SAFETY: stat64 is plain data; a valid descriptor; valid C string.
        unsafe {
            let mut s: libc::stat64 = std::mem::zeroed();
            if libc::fstatat64(
                self.fd.as_raw_fd(),
                c.as_ptr(),
                &mut s,
                libc::AT_SYMLINK_NOFOLLOW,
            ) == 0
            {
                Ok(Stat::from_raw(&s))
            } else {
                Err(io::Error::last_os_error())
            }
        }
    }
}

impl AsFd for Dir {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Calls `f` with each name (but `.` and `..`) in `buf`, what one `getdents64` returned.
fn each_name(buf: &[u8], mut f: impl FnMut(&[u8])) {
    // Each record: d_ino u64, d_off i64, d_reclen u16, d_type u8, d_name NUL-ended.
    let mut at = 0usize;
    while at + 19 < buf.len() {
        let reclen = u16::from_ne_bytes([buf[at + 16], buf[at + 17]]) as usize;
        if reclen == 0 {
            break;
        }
        let rec = &buf[at + 19..(at + reclen).min(buf.len())];
        let name = &rec[..rec.iter().position(|&b| b == 0).unwrap_or(rec.len())];
        if name != b"." && name != b".." {
            f(name);
        }
        at += reclen;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_and_stats_relative_to_the_directory() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("a"), b"hello").unwrap();
        std::fs::create_dir(d.path().join("sub")).unwrap();
        std::os::unix::fs::symlink("a", d.path().join("l")).unwrap();
        let dir = Dir::open(d.path()).unwrap();
        let mut names = dir.names().unwrap();
        names.sort();
        assert_eq!(names, vec![b"a".to_vec(), b"l".to_vec(), b"sub".to_vec()]);
        let a = dir.lstat(b"a").unwrap();
        assert!(a.is_file() && a.size == 5);
        assert!(dir.lstat(b"sub").unwrap().is_dir());
        assert!(dir.lstat(b"l").unwrap().is_symlink());
        assert!(dir.lstat(b"missing").is_err());
        assert!(!dir.is_empty().unwrap());
        let mut again = dir.names().unwrap();
        again.sort();
        assert_eq!(again, names, "listed again after the emptiness check");
        assert!(Dir::open(&d.path().join("sub"))
            .unwrap()
            .is_empty()
            .unwrap());
        assert_eq!(stat_path(&d.path().join("l"), true).unwrap().ino, a.ino);
    }
}
