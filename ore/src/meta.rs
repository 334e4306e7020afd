//! File metadata the standard library does not reach: owner names, extended attributes,
//! sparse-file layout, and the calls that put metadata back on restore.

use crate::entry::Xattr;
use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::io::AsRawFd;
use std::path::Path;

fn cpath(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))
}

thread_local! {
    static USERS: RefCell<HashMap<u32, Option<String>>> = RefCell::new(HashMap::new());
    static GROUPS: RefCell<HashMap<u32, Option<String>>> = RefCell::new(HashMap::new());
    static UIDS: RefCell<HashMap<String, Option<u32>>> = RefCell::new(HashMap::new());
    static GIDS: RefCell<HashMap<String, Option<u32>>> = RefCell::new(HashMap::new());
}

/// The name of user `uid`, if it has one (cached per thread).
pub fn user_name(uid: u32) -> Option<String> {
    USERS.with(|c| {
        c.borrow_mut()
            .entry(uid)
            .or_insert_with(|| {
                let mut buf = vec![0u8; 4096];
                // SAFETY: passwd is plain data; getpwuid_r writes into pw and buf (of the given
                // length) and sets res to &pw on success.
                unsafe {
                    let mut pw: libc::passwd = std::mem::zeroed();
                    let mut res = std::ptr::null_mut();
                    let rc = libc::getpwuid_r(
                        uid,
                        &mut pw,
                        buf.as_mut_ptr().cast(),
                        buf.len(),
                        &mut res,
                    );
                    (rc == 0 && !res.is_null())
                        .then(|| CStr::from_ptr(pw.pw_name).to_string_lossy().into_owned())
                }
            })
            .clone()
    })
}

/// The name of group `gid`, if it has one (cached per thread).
pub fn group_name(gid: u32) -> Option<String> {
    GROUPS.with(|c| {
        c.borrow_mut()
            .entry(gid)
            .or_insert_with(|| {
                let mut buf = vec![0u8; 16384];
                // SAFETY: as for user_name, with group.
                unsafe {
                    let mut gr: libc::group = std::mem::zeroed();
                    let mut res = std::ptr::null_mut();
                    let rc = libc::getgrgid_r(
                        gid,
                        &mut gr,
                        buf.as_mut_ptr().cast(),
                        buf.len(),
                        &mut res,
                    );
                    (rc == 0 && !res.is_null())
                        .then(|| CStr::from_ptr(gr.gr_name).to_string_lossy().into_owned())
                }
            })
            .clone()
    })
}

/// The uid of user `name` on this machine.
pub fn uid_of(name: &str) -> Option<u32> {
    UIDS.with(|c| {
        *c.borrow_mut().entry(name.to_string()).or_insert_with(|| {
            let cname = CString::new(name).ok()?;
            let mut buf = vec![0u8; 4096];
            // SAFETY: as for user_name.
            unsafe {
                let mut pw: libc::passwd = std::mem::zeroed();
                let mut res = std::ptr::null_mut();
                let rc = libc::getpwnam_r(
                    cname.as_ptr(),
                    &mut pw,
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    &mut res,
                );
                (rc == 0 && !res.is_null()).then_some(pw.pw_uid)
            }
        })
    })
}

/// The gid of group `name` on this machine.
pub fn gid_of(name: &str) -> Option<u32> {
    GIDS.with(|c| {
        *c.borrow_mut().entry(name.to_string()).or_insert_with(|| {
            let cname = CString::new(name).ok()?;
            let mut buf = vec![0u8; 16384];
            // SAFETY: as for group_name.
            unsafe {
                let mut gr: libc::group = std::mem::zeroed();
                let mut res = std::ptr::null_mut();
                let rc = libc::getgrnam_r(
                    cname.as_ptr(),
                    &mut gr,
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    &mut res,
                );
                (rc == 0 && !res.is_null()).then_some(gr.gr_gid)
            }
        })
    })
}

/// The extended attributes of `path` (not following a symlink), sorted by name.
pub fn read_xattrs(path: &Path) -> io::Result<Vec<Xattr>> {
    let c = cpath(path)?;
    let mut names = vec![0u8; 1024];
    let len = loop {
        // SAFETY: the buffer is valid for its length.
        let n = unsafe { libc::llistxattr(c.as_ptr(), names.as_mut_ptr().cast(), names.len()) };
        if n >= 0 {
            break n as usize;
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::ERANGE) => names.resize(names.len() * 4, 0),
            Some(libc::ENOTSUP) => return Ok(Vec::new()),
            _ => return Err(e),
        }
    };
    if len == 0 {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for name in names[..len].split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let cn = CString::new(name)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "xattr name"))?;
        let mut value = vec![0u8; 256];
        loop {
            // SAFETY: the buffer is valid for its length.
            let n = unsafe {
                libc::lgetxattr(
                    c.as_ptr(),
                    cn.as_ptr(),
                    value.as_mut_ptr().cast(),
                    value.len(),
                )
            };
            if n >= 0 {
                value.truncate(n as usize);
                break;
            }
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::ERANGE) => value.resize(value.len() * 4, 0),
                // Removed between list and get.
                Some(libc::ENODATA) => {
                    value.clear();
                    break;
                }
                _ => return Err(e),
            }
        }
        out.push(Xattr {
            name: name.to_vec(),
            value,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Sets one extended attribute on `path` (not following a symlink).
pub fn set_xattr(path: &Path, x: &Xattr) -> io::Result<()> {
    let c = cpath(path)?;
    let n = CString::new(x.name.clone())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "xattr name contains NUL"))?;
    // SAFETY: pointers are valid for the lengths given.
    let rc = unsafe {
        libc::lsetxattr(
            c.as_ptr(),
            n.as_ptr(),
            x.value.as_ptr().cast(),
            x.value.len(),
            0,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The data regions of a file that may have holes: `(offset, len)` pairs in order.
pub fn data_regions(f: &std::fs::File, size: u64) -> io::Result<Vec<(u64, u64)>> {
    let fd = f.as_raw_fd();
    let mut out = Vec::new();
    let mut pos: i64 = 0;
    while (pos as u64) < size {
        // SAFETY: lseek on a valid descriptor.
        let data = unsafe { libc::lseek(fd, pos, libc::SEEK_DATA) };
        if data < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::ENXIO) {
                break;
            }
            return Err(e);
        }
        // SAFETY: as above.
        let hole = unsafe { libc::lseek(fd, data, libc::SEEK_HOLE) };
        if hole < 0 {
            return Err(io::Error::last_os_error());
        }
        let end = (hole as u64).min(size);
        if end > data as u64 {
            out.push((data as u64, end - data as u64));
        }
        pos = hole;
    }
    // SAFETY: as above; back to the start for reading.
    unsafe { libc::lseek(fd, 0, libc::SEEK_SET) };
    Ok(out)
}

/// Changes the owner of `path` without following a symlink.
pub fn lchown(path: &Path, uid: u32, gid: u32) -> io::Result<()> {
    let c = cpath(path)?;
    // SAFETY: valid C string.
    if unsafe { libc::lchown(c.as_ptr(), uid, gid) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Sets access and modification times (ns since the epoch) without following a symlink.
pub fn set_times(path: &Path, atime: i64, mtime: i64) -> io::Result<()> {
    let c = cpath(path)?;
    let ts = |ns: i64| libc::timespec {
        tv_sec: ns.div_euclid(1_000_000_000) as libc::time_t,
        tv_nsec: ns.rem_euclid(1_000_000_000) as _,
    };
    let times = [ts(atime), ts(mtime)];
    // SAFETY: valid C string and a two-element timespec array.
    let rc = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Sets times on an open file.
pub fn set_fd_times(f: &std::fs::File, atime: i64, mtime: i64) -> io::Result<()> {
    let ts = |ns: i64| libc::timespec {
        tv_sec: ns.div_euclid(1_000_000_000) as libc::time_t,
        tv_nsec: ns.rem_euclid(1_000_000_000) as _,
    };
    let times = [ts(atime), ts(mtime)];
    // SAFETY: valid descriptor and a two-element timespec array.
    if unsafe { libc::futimens(f.as_raw_fd(), times.as_ptr()) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Creates a device node or fifo.
pub fn mknod(path: &Path, mode: u32, rdev: u64) -> io::Result<()> {
    let c = cpath(path)?;
    // SAFETY: valid C string.
    if unsafe { libc::mknod(c.as_ptr(), mode as libc::mode_t, rdev as libc::dev_t) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Whether this process runs as root (and so can restore owners).
pub fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}
