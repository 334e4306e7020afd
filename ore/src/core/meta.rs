//! File metadata the standard library does not reach: owner names, extended attributes,
//! sparse-file layout, and the calls that put metadata back on restore — on open descriptors
//! only (restore's names are resolved in `fsys`, one component at a time).

use crate::core::entry::Xattr;
use crate::core::fsys::{check, timespecs};
use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::AsFd;
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

/// Runs a reentrant `getpw*_r`/`getgr*_r` lookup (given as `call`, with the record, buffer and
/// result pointers filled in) and extracts a value from the record while its buffer lives.
fn lookup<E, T>(
    buf_len: usize,
    call: impl FnOnce(&mut E, &mut [u8], &mut *mut E) -> libc::c_int,
    get: impl FnOnce(&E) -> T,
) -> Option<T> {
    let mut buf = vec![0u8; buf_len];
    // SAFETY: passwd and group are plain C structs for which all-zero is a valid value.
    let mut rec: E = unsafe { std::mem::zeroed() };
    let mut res = std::ptr::null_mut();
    let rc = call(&mut rec, &mut buf, &mut res);
    (rc == 0 && !res.is_null()).then(|| get(&rec))
}

fn by_id<E>(
    f: unsafe extern "C" fn(
        u32,
        *mut E,
        *mut libc::c_char,
        libc::size_t,
        *mut *mut E,
    ) -> libc::c_int,
    id: u32,
    rec: &mut E,
    buf: &mut [u8],
    res: &mut *mut E,
) -> libc::c_int {
    // SAFETY: every pointer is valid for the call; the buffer for its length.
    unsafe { f(id, rec, buf.as_mut_ptr().cast(), buf.len(), res) }
}

fn by_name<E>(
    f: Lookup2<E>,
    name: &CStr,
    rec: &mut E,
    buf: &mut [u8],
    res: &mut *mut E,
) -> libc::c_int {
    // SAFETY: as for by_id, with a NUL-terminated name.
    unsafe { f(name.as_ptr(), rec, buf.as_mut_ptr().cast(), buf.len(), res) }
}

type Lookup2<E> = unsafe extern "C" fn(
    *const libc::c_char,
    *mut E,
    *mut libc::c_char,
    libc::size_t,
    *mut *mut E,
) -> libc::c_int;

/// A per-thread memo of `look`.
fn cached<K: std::hash::Hash + Eq, V: Clone>(
    cache: &'static std::thread::LocalKey<RefCell<HashMap<K, V>>>,
    key: K,
    look: impl FnOnce() -> V,
) -> V {
    cache.with(|c| c.borrow_mut().entry(key).or_insert_with(look).clone())
}

fn name_of(p: *const libc::c_char) -> String {
    // SAFETY: the pointer is a NUL-terminated name inside a live lookup buffer.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

/// The name of user `uid`, if it has one (cached per thread).
pub fn user_name(uid: u32) -> Option<String> {
    cached(&USERS, uid, || {
        lookup(
            4096,
            |r, b, res| by_id(libc::getpwuid_r, uid, r, b, res),
            |pw: &libc::passwd| name_of(pw.pw_name),
        )
    })
}

/// The current user's name.
pub fn username() -> String {
    // SAFETY: geteuid cannot fail.
    let uid = unsafe { libc::geteuid() };
    user_name(uid).unwrap_or_else(|| uid.to_string())
}

/// The name of group `gid`, if it has one (cached per thread).
pub fn group_name(gid: u32) -> Option<String> {
    cached(&GROUPS, gid, || {
        lookup(
            16384,
            |r, b, res| by_id(libc::getgrgid_r, gid, r, b, res),
            |gr: &libc::group| name_of(gr.gr_name),
        )
    })
}

/// The uid of user `name` on this machine.
pub fn uid_of(name: &str) -> Option<u32> {
    cached(&UIDS, name.to_string(), || {
        let c = CString::new(name).ok()?;
        lookup(
            4096,
            |r, b, res| by_name(libc::getpwnam_r, &c, r, b, res),
            |pw: &libc::passwd| pw.pw_uid,
        )
    })
}

/// The gid of group `name` on this machine.
pub fn gid_of(name: &str) -> Option<u32> {
    cached(&GIDS, name.to_string(), || {
        let c = CString::new(name).ok()?;
        lookup(
            16384,
            |r, b, res| by_name(libc::getgrnam_r, &c, r, b, res),
            |gr: &libc::group| gr.gr_gid,
        )
    })
}

/// Where extended attributes are read from.
#[derive(Clone, Copy)]
enum XattrSource<'a> {
    /// A path, not following a symlink.
    Path(&'a std::ffi::CStr),
    /// An open file (no path to look up again).
    Fd(std::os::fd::RawFd),
}

impl XattrSource<'_> {
    fn list(self, buf: &mut [u8]) -> isize {
        // SAFETY: the buffer is valid for its length; the path is NUL-terminated.
        unsafe {
            match self {
                XattrSource::Path(p) => {
                    libc::llistxattr(p.as_ptr(), buf.as_mut_ptr().cast(), buf.len())
                }
                XattrSource::Fd(fd) => libc::flistxattr(fd, buf.as_mut_ptr().cast(), buf.len()),
            }
        }
    }

    fn get(self, name: &std::ffi::CStr, buf: &mut [u8]) -> isize {
        // SAFETY: as for `list`; the name is NUL-terminated.
        unsafe {
            match self {
                XattrSource::Path(p) => libc::lgetxattr(
                    p.as_ptr(),
                    name.as_ptr(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                ),
                XattrSource::Fd(fd) => {
                    libc::fgetxattr(fd, name.as_ptr(), buf.as_mut_ptr().cast(), buf.len())
                }
            }
        }
    }
}

/// The extended attributes of `path` (not following a symlink), sorted by name.
pub fn read_xattrs(path: &Path) -> io::Result<Vec<Xattr>> {
    let c = cpath(path)?;
    read_xattrs_from(XattrSource::Path(&c))
}

/// The extended attributes of an open file, sorted by name: what [`read_xattrs`] gives for
/// its path, without looking the path up again.
pub fn read_xattrs_of(file: &std::fs::File) -> io::Result<Vec<Xattr>> {
    read_xattrs_from(XattrSource::Fd(std::os::fd::AsRawFd::as_raw_fd(file)))
}

fn read_xattrs_from(src: XattrSource) -> io::Result<Vec<Xattr>> {
    let mut names = vec![0u8; 1024];
    let len = loop {
        let n = src.list(&mut names);
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
            let n = src.get(&cn, &mut value);
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

/// Sets one extended attribute on an open file or directory.
pub fn fset_xattr(f: &impl AsFd, x: &Xattr) -> io::Result<()> {
    let n = CString::new(x.name.clone())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "xattr name contains NUL"))?;
    // SAFETY: a valid descriptor; pointers are valid for the lengths given.
    let rc = unsafe {
        libc::fsetxattr(
            f.as_fd().as_raw_fd(),
            n.as_ptr(),
            x.value.as_ptr().cast(),
            x.value.len(),
            0,
        )
    };
    check(rc)
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

/// Changes the owner of an open file or directory.
pub fn fchown(f: &impl AsFd, uid: u32, gid: u32) -> io::Result<()> {
    // SAFETY: a valid descriptor.
    check(unsafe { libc::fchown(f.as_fd().as_raw_fd(), uid, gid) })
}

/// Changes the mode of an open file or directory.
pub fn fchmod(f: &impl AsFd, mode: u32) -> io::Result<()> {
    // SAFETY: a valid descriptor.
    check(unsafe { libc::fchmod(f.as_fd().as_raw_fd(), mode as libc::mode_t) })
}

/// Sets access and modification times (ns since the epoch) of an open file or directory.
pub fn set_fd_times(f: &impl AsFd, atime: i64, mtime: i64) -> io::Result<()> {
    let times = timespecs(atime, mtime);
    // SAFETY: valid descriptor and a two-element timespec array.
    check(unsafe { libc::futimens(f.as_fd().as_raw_fd(), times.as_ptr()) })
}

/// This process's effective user id.
pub fn euid() -> u32 {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() }
}

/// Whether this process runs as root (and so can restore owners).
pub fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_ids_round_trip_through_the_system_databases() {
        assert_eq!(user_name(0).as_deref(), Some("root"));
        assert_eq!(uid_of("root"), Some(0));
        assert_eq!(gid_of(&group_name(0).expect("group 0 has a name")), Some(0));
        assert_eq!(uid_of("no such user \u{1}"), None);
    }
}
