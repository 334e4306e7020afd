//! File operations relative to the open archive directory (`openat`, `fstatat`, `renameat2`).
//!
//! A block operation names a path six components deep (`blocks/ab/cd/<key>` under the archive
//! directory, itself under any number of parents). Resolving that from `/` on every request was
//! a large share of what a small `exists` or `put` cost; holding the archive directory open and
//! naming paths relative to it resolves only the last few components, and builds the name on the
//! stack instead of allocating a `PathBuf` per request.

use protocol::Key;
use std::ffi::CStr;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

/// The longest relative name built here: `tmp/<pid>-<counter>-b` or `blocks/ab/cd/<64 hex>`.
const NAME_MAX: usize = 96;

/// A relative path as a NUL-terminated string on the stack.
pub struct Name {
    buf: [u8; NAME_MAX],
    len: usize,
}

impl Name {
    /// `parts` joined together; panics only if the caller exceeds [`NAME_MAX`], which the fixed
    /// shapes above never do.
    pub fn new(parts: &[&[u8]]) -> Name {
        let mut n = Name {
            buf: [0; NAME_MAX],
            len: 0,
        };
        for p in parts {
            n.buf[n.len..n.len + p.len()].copy_from_slice(p);
            n.len += p.len();
        }
        n
    }

    fn c(&self) -> &CStr {
        // The buffer is zeroed past `len` and the parts hold no NUL (hex digits, numbers, `/`).
        CStr::from_bytes_until_nul(&self.buf[..=self.len]).unwrap_or(c"")
    }

    /// The name as text, for error messages.
    pub fn show(&self) -> &str {
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or("?")
    }
}

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// An open directory and the operations on names relative to it.
pub struct Dir {
    fd: OwnedFd,
    path: PathBuf,
    /// Whether the umask takes bits from 0600, so that new files need an explicit chmod.
    chmod_needed: bool,
}

impl Dir {
    pub fn open(path: &Path) -> io::Result<Dir> {
        let f = File::open(path)?;
        let chmod_needed = umask().is_none_or(|m| m & 0o600 != 0);
        Ok(Dir {
            fd: OwnedFd::from(f),
            path: path.to_path_buf(),
            chmod_needed,
        })
    }

    /// The full path of a relative name, for messages.
    pub fn full(&self, name: &Name) -> PathBuf {
        self.path.join(name.show())
    }

    /// Whether the name exists (as anything; a symbolic link is not followed).
    pub fn exists(&self, name: &Name) -> io::Result<bool> {
        let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
        // SAFETY: a valid directory descriptor, a NUL-terminated name and a stat buffer.
        let r = unsafe {
            libc::fstatat(
                self.fd.as_raw_fd(),
                name.c().as_ptr(),
                st.as_mut_ptr(),
                libc::AT_SYMLINK_NOFOLLOW,
            )
        };
        match cvt(r) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn open_at(&self, name: &Name, flags: libc::c_int) -> io::Result<File> {
        // SAFETY: as above; the mode argument is read only with O_CREAT.
        let fd = cvt(unsafe {
            libc::openat(
                self.fd.as_raw_fd(),
                name.c().as_ptr(),
                flags | libc::O_CLOEXEC,
                0o600 as libc::c_uint,
            )
        })?;
        // SAFETY: openat returned a new descriptor that nothing else owns.
        Ok(File::from(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Creates a new file (which must not exist) with mode 0600 and writes `data` to it. The
    /// data is not synced here: see [`Dir::sync_fs`].
    pub fn write_new(&self, name: &Name, data: &[u8]) -> io::Result<()> {
        let mut f = self.open_at(name, libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL)?;
        if self.chmod_needed {
            // SAFETY: fchmod on a descriptor we own.
            cvt(unsafe { libc::fchmod(f.as_raw_fd(), 0o600) })?;
        }
        f.write_all(data)
    }

    /// The whole content of a file, `None` when it does not exist.
    pub fn read(&self, name: &Name) -> io::Result<Option<Vec<u8>>> {
        let mut f = match self.open_at(name, libc::O_RDONLY) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let len = f.metadata().map(|m| m.len() as usize).unwrap_or(0);
        let mut out = Vec::with_capacity(len);
        f.read_to_end(&mut out)?;
        Ok(Some(out))
    }

    /// Creates a directory with mode 0700; one that exists already is fine.
    pub fn mkdir(&self, name: &Name) -> io::Result<()> {
        // SAFETY: as above.
        let r = unsafe { libc::mkdirat(self.fd.as_raw_fd(), name.c().as_ptr(), 0o700) };
        match cvt(r) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(()),
            Err(e) => return Err(e),
        }
        if self.chmod_needed {
            // SAFETY: as above; fchmodat follows no link here (a directory we just made).
            cvt(unsafe { libc::fchmodat(self.fd.as_raw_fd(), name.c().as_ptr(), 0o700, 0) })?;
        }
        Ok(())
    }

    /// Removes a file; `false` when it was not there.
    pub fn unlink(&self, name: &Name) -> io::Result<bool> {
        // SAFETY: as above.
        match cvt(unsafe { libc::unlinkat(self.fd.as_raw_fd(), name.c().as_ptr(), 0) }) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Gives `from` the name `to` unless `to` exists: `Ok(false)` then, and `from` is left in
    /// place. Never replaces an existing name, even against another process doing the same
    /// (`renameat2(RENAME_NOREPLACE)`, or `link` + `unlink` where the file system lacks it).
    pub fn rename_new(&self, from: &Name, to: &Name) -> io::Result<bool> {
        let fd = self.fd.as_raw_fd();
        // SAFETY: as above.
        let r = unsafe {
            libc::renameat2(
                fd,
                from.c().as_ptr(),
                fd,
                to.c().as_ptr(),
                libc::RENAME_NOREPLACE,
            )
        };
        match cvt(r) {
            Ok(_) => return Ok(true),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(false),
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOSYS)) => {}
            Err(e) => return Err(e),
        }
        // SAFETY: as above.
        match cvt(unsafe { libc::linkat(fd, from.c().as_ptr(), fd, to.c().as_ptr(), 0) }) {
            Ok(_) => {
                self.unlink(from)?;
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Makes every file written on this file system durable (`syncfs`): one call for any number
    /// of new blocks, where an `fsync` per block would wait for the disk once per block.
    pub fn sync_fs(&self) -> io::Result<()> {
        // SAFETY: syncfs on a valid descriptor.
        cvt(unsafe { libc::syncfs(self.fd.as_raw_fd()) }).map(|_| ())
    }
}

/// The process's umask, read from /proc (reading it with umask(2) would change it meanwhile).
fn umask() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Umask:"))?;
    u32::from_str_radix(line["Umask:".len()..].trim(), 8).ok()
}

/// The key's 64 hex digits, on the stack.
pub fn hex64(key: &Key) -> [u8; 64] {
    let mut out = [0u8; 64];
    // 32 bytes always fill 64 digits: encoding fails only on a length mismatch.
    let encoded = hex::encode_to_slice(key.0, &mut out);
    debug_assert!(encoded.is_ok());
    out
}
