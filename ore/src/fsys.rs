//! Reading directories and file status relative to an open directory.
//!
//! Statting `dir/name` by its full path makes the kernel walk every component again; with an
//! open descriptor of the directory, `fstatat` looks up only the last one. Over a tree of tens
//! of thousands of files that is a visible share of an unchanged re-snapshot.

use std::ffi::{CStr, CString};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::io::AsRawFd;
use std::path::Path;

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

/// Status of an open file.
pub fn fstat(f: &std::fs::File) -> io::Result<Stat> {
    // SAFETY: as above, on a valid descriptor.
    unsafe {
        let mut s: libc::stat64 = std::mem::zeroed();
        if libc::fstat64(f.as_raw_fd(), &mut s) == 0 {
            Ok(Stat::from_raw(&s))
        } else {
            Err(io::Error::last_os_error())
        }
    }
}

/// An open directory: read once with `readdir`, then used for `fstatat` of its entries.
#[derive(Debug)]
pub struct Dir {
    dir: *mut libc::DIR,
}

impl Drop for Dir {
    fn drop(&mut self) {
        // SAFETY: `dir` came from a successful opendir and is closed exactly once.
        unsafe { libc::closedir(self.dir) };
    }
}

impl Dir {
    /// Opens the directory `path` (not following a final symlink).
    pub fn open(path: &Path) -> io::Result<Dir> {
        let c = cstr(path.as_os_str().as_bytes())?;
        // SAFETY: valid C string; on success fdopendir owns the descriptor.
        unsafe {
            let fd = libc::open(
                c.as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC | libc::O_NOFOLLOW,
            );
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            let dir = libc::fdopendir(fd);
            if dir.is_null() {
                let e = io::Error::last_os_error();
                libc::close(fd);
                return Err(e);
            }
            Ok(Dir { dir })
        }
    }

    /// The names in the directory (without `.` and `..`), in no particular order. Call once.
    pub fn names(&self) -> io::Result<Vec<Vec<u8>>> {
        let mut out = Vec::new();
        // SAFETY: `dir` is a valid DIR stream; entries are read before the next readdir call.
        unsafe {
            loop {
                *libc::__errno_location() = 0;
                let ent = libc::readdir64(self.dir);
                if ent.is_null() {
                    let errno = *libc::__errno_location();
                    if errno != 0 {
                        return Err(io::Error::from_raw_os_error(errno));
                    }
                    return Ok(out);
                }
                let name = CStr::from_ptr((*ent).d_name.as_ptr()).to_bytes();
                if name != b"." && name != b".." {
                    out.push(name.to_vec());
                }
            }
        }
    }

    /// Status of `name` in this directory, not following a symlink.
    pub fn lstat(&self, name: &[u8]) -> io::Result<Stat> {
        let c = cstr(name)?;
        // SAFETY: stat64 is plain data; dirfd of a valid stream; valid C string.
        unsafe {
            let mut s: libc::stat64 = std::mem::zeroed();
            let fd = libc::dirfd(self.dir);
            if libc::fstatat64(fd, c.as_ptr(), &mut s, libc::AT_SYMLINK_NOFOLLOW) == 0 {
                Ok(Stat::from_raw(&s))
            } else {
                Err(io::Error::last_os_error())
            }
        }
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
        assert_eq!(stat_path(&d.path().join("l"), true).unwrap().ino, a.ino);
    }
}
