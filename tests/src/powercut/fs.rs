//! The FUSE side: every operation passes through to the live tree, and tells the
//! [`Model`] first what it is about to make non-durable. Once frozen (the cut has begun),
//! every operation fails with EIO and changes nothing.

use super::names;
use super::node::{cstr, errno, open_options, truncate, utime, Shared};
use fuser::{
    FileType, Filesystem, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty,
    ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow,
};
use ore_util::sync::lock;
use std::ffi::OsStr;
use std::fs::OpenOptions;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

const TTL: Duration = Duration::from_secs(1);

/// The file system; every operation takes the shared state's lock.
pub struct PowerCutFs(pub Arc<Mutex<Shared>>);

impl PowerCutFs {
    /// Runs `f` on the shared state unless the cut has begun (then EIO).
    fn with<T>(&self, f: impl FnOnce(&mut Shared) -> io::Result<T>) -> Result<T, i32> {
        let mut s = lock(&self.0);
        if s.frozen {
            return Err(libc::EIO);
        }
        f(&mut s).map_err(|e| errno(&e))
    }
}

impl Filesystem for PowerCutFs {
    fn lookup(&mut self, _r: &Request<'_>, parent: u64, name: &OsStr, reply: ReplyEntry) {
        match self.with(|s| {
            let (path, _) = s.child(parent, name)?;
            s.entry(path)
        }) {
            Ok(a) => reply.entry(&TTL, &a, 0),
            Err(e) => reply.error(e),
        }
    }

    fn getattr(&mut self, _r: &Request<'_>, ino: u64, _fh: Option<u64>, reply: ReplyAttr) {
        match self.with(|s| {
            let p = s.path(ino)?;
            s.entry(p)
        }) {
            Ok(a) => reply.attr(&TTL, &a),
            Err(e) => reply.error(e),
        }
    }

    fn setattr(
        &mut self,
        _r: &Request<'_>,
        ino: u64,
        mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<u64>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<u32>,
        reply: ReplyAttr,
    ) {
        match self.with(|s| {
            let path = s.path(ino)?;
            let backing = s.backing(ino)?;
            if let Some(len) = size {
                // A path of its own: the handle the kernel names may be read-only.
                let f = OpenOptions::new().read(true).write(true).open(&path)?;
                truncate(s, backing, &f, len)?;
            }
            if let Some(m) = mode {
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(m & 0o7777))?;
            }
            if atime.is_some() || mtime.is_some() {
                let times = [utime(atime), utime(mtime)];
                let c = cstr(&path)?;
                // SAFETY: a valid C string and two timespecs.
                let rc = unsafe {
                    libc::utimensat(
                        libc::AT_FDCWD,
                        c.as_ptr(),
                        times.as_ptr(),
                        libc::AT_SYMLINK_NOFOLLOW,
                    )
                };
                if rc != 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            s.entry(path)
        }) {
            Ok(a) => reply.attr(&TTL, &a),
            Err(e) => reply.error(e),
        }
    }

    fn readlink(&mut self, _r: &Request<'_>, ino: u64, reply: ReplyData) {
        match self.with(|s| std::fs::read_link(s.path(ino)?)) {
            Ok(t) => reply.data(t.as_os_str().as_bytes()),
            Err(e) => reply.error(e),
        }
    }

    fn mkdir(
        &mut self,
        _r: &Request<'_>,
        parent: u64,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        match self.with(|s| names::mkdir(s, parent, name, mode, umask)) {
            Ok(a) => reply.entry(&TTL, &a, 0),
            Err(e) => reply.error(e),
        }
    }

    fn mknod(
        &mut self,
        _r: &Request<'_>,
        parent: u64,
        name: &OsStr,
        mode: u32,
        umask: u32,
        rdev: u32,
        reply: ReplyEntry,
    ) {
        match self.with(|s| names::mknod(s, parent, name, mode, umask, rdev)) {
            Ok(a) => reply.entry(&TTL, &a, 0),
            Err(e) => reply.error(e),
        }
    }

    fn unlink(&mut self, _r: &Request<'_>, parent: u64, name: &OsStr, reply: ReplyEmpty) {
        self.remove(parent, name, false, reply)
    }

    fn rmdir(&mut self, _r: &Request<'_>, parent: u64, name: &OsStr, reply: ReplyEmpty) {
        self.remove(parent, name, true, reply)
    }

    fn symlink(
        &mut self,
        _r: &Request<'_>,
        parent: u64,
        name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        match self.with(|s| names::symlink(s, parent, name, target)) {
            Ok(a) => reply.entry(&TTL, &a, 0),
            Err(e) => reply.error(e),
        }
    }

    fn rename(
        &mut self,
        _r: &Request<'_>,
        parent: u64,
        name: &OsStr,
        newparent: u64,
        newname: &OsStr,
        flags: u32,
        reply: ReplyEmpty,
    ) {
        match self.with(|s| names::rename(s, parent, name, newparent, newname, flags)) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn link(
        &mut self,
        _r: &Request<'_>,
        ino: u64,
        newparent: u64,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        match self.with(|s| names::link(s, ino, newparent, newname)) {
            Ok(a) => reply.entry(&TTL, &a, 0),
            Err(e) => reply.error(e),
        }
    }

    fn open(&mut self, _r: &Request<'_>, ino: u64, flags: i32, reply: ReplyOpen) {
        match self.with(|s| {
            let f = open_options(flags).open(s.path(ino)?)?;
            let backing = s.backing(ino)?;
            if flags & libc::O_TRUNC != 0 {
                truncate(s, backing, &f, 0)?;
            }
            Ok(s.handle(f, backing))
        }) {
            Ok(fh) => reply.opened(fh, 0),
            Err(e) => reply.error(e),
        }
    }

    fn create(
        &mut self,
        _r: &Request<'_>,
        parent: u64,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        match self.with(|s| {
            let (path, dir) = s.child(parent, name)?;
            if std::fs::symlink_metadata(&path).is_ok() {
                if flags & libc::O_EXCL != 0 {
                    return Err(io::Error::from_raw_os_error(libc::EEXIST));
                }
            } else {
                s.model.before_entries_change(dir, &s.path(parent)?)?;
                let f = open_options(libc::O_WRONLY)
                    .create_new(true)
                    .mode(mode & !umask & 0o7777)
                    .open(&path)?;
                s.model.created_file(f.metadata()?.ino());
            }
            let f = open_options(flags).open(&path)?;
            let a = s.entry(path)?;
            let backing = s.backing(a.ino)?;
            if flags & libc::O_TRUNC != 0 {
                truncate(s, backing, &f, 0)?;
            }
            Ok((a, s.handle(f, backing)))
        }) {
            Ok((a, fh)) => reply.created(&TTL, &a, 0, fh, 0),
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &mut self,
        _r: &Request<'_>,
        _ino: u64,
        fh: u64,
        offset: i64,
        size: u32,
        _flags: i32,
        _lock: Option<u64>,
        reply: ReplyData,
    ) {
        match self.with(|s| {
            let (f, _) = s
                .files
                .get(&fh)
                .ok_or_else(|| io::Error::from_raw_os_error(libc::EBADF))?;
            let mut buf = vec![0; size as usize];
            let mut got = 0;
            while got < buf.len() {
                match f.read_at(&mut buf[got..], offset as u64 + got as u64)? {
                    0 => break,
                    n => got += n,
                }
            }
            buf.truncate(got);
            Ok(buf)
        }) {
            Ok(b) => reply.data(&b),
            Err(e) => reply.error(e),
        }
    }

    fn write(
        &mut self,
        _r: &Request<'_>,
        _ino: u64,
        fh: u64,
        offset: i64,
        data: &[u8],
        _wflags: u32,
        _flags: i32,
        _lock: Option<u64>,
        reply: ReplyWrite,
    ) {
        match self.with(|s| {
            let (f, backing) = s
                .files
                .get(&fh)
                .ok_or_else(|| io::Error::from_raw_os_error(libc::EBADF))?;
            let f = f.try_clone()?;
            s.model
                .before_write(*backing, &f, offset as u64, data.len() as u64)?;
            f.write_all_at(data, offset as u64)
        }) {
            Ok(()) => reply.written(data.len() as u32),
            Err(e) => reply.error(e),
        }
    }

    fn release(
        &mut self,
        _r: &Request<'_>,
        _ino: u64,
        fh: u64,
        _flags: i32,
        _lock: Option<u64>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        lock(&self.0).files.remove(&fh);
        reply.ok();
    }

    fn fsync(&mut self, _r: &Request<'_>, ino: u64, _fh: u64, _data: bool, reply: ReplyEmpty) {
        match self.with(|s| {
            let b = s.backing(ino)?;
            s.model.synced_file(b);
            Ok(())
        }) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn opendir(&mut self, _r: &Request<'_>, ino: u64, _flags: i32, reply: ReplyOpen) {
        match self.with(|s| {
            let path = s.path(ino)?;
            let mut list = vec![(ino, FileType::Directory, ".".into())];
            list.push((1, FileType::Directory, "..".into()));
            for e in std::fs::read_dir(&path)? {
                let e = e?;
                let a = s.entry(e.path())?;
                list.push((a.ino, a.kind, e.file_name()));
            }
            let fh = s.next_fh;
            s.next_fh += 1;
            s.dirs.insert(fh, list);
            Ok(fh)
        }) {
            Ok(fh) => reply.opened(fh, 0),
            Err(e) => reply.error(e),
        }
    }

    fn readdir(
        &mut self,
        _r: &Request<'_>,
        _ino: u64,
        fh: u64,
        offset: i64,
        mut reply: ReplyDirectory,
    ) {
        match self.with(|s| Ok(s.dirs.get(&fh).cloned().unwrap_or_default())) {
            Ok(list) => {
                for (i, (ino, kind, name)) in list.iter().enumerate().skip(offset as usize) {
                    if reply.add(*ino, i as i64 + 1, *kind, name) {
                        break;
                    }
                }
                reply.ok()
            }
            Err(e) => reply.error(e),
        }
    }

    fn releasedir(&mut self, _r: &Request<'_>, _ino: u64, fh: u64, _f: i32, reply: ReplyEmpty) {
        lock(&self.0).dirs.remove(&fh);
        reply.ok();
    }

    fn fsyncdir(&mut self, _r: &Request<'_>, ino: u64, _fh: u64, _d: bool, reply: ReplyEmpty) {
        match self.with(|s| {
            let b = s.backing(ino)?;
            s.model.synced_dir(b);
            Ok(())
        }) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    /// The shim's signal after a successful `syncfs` (see [`super::SYNCFS_XATTR`]): every
    /// file and directory is durable. Other names: no extended attributes here.
    fn getxattr(
        &mut self,
        _r: &Request<'_>,
        _ino: u64,
        name: &OsStr,
        _size: u32,
        reply: fuser::ReplyXattr,
    ) {
        match self.with(|s| {
            if name.as_bytes() == super::SYNCFS_XATTR.as_bytes() {
                s.model.synced_all();
            }
            Ok(())
        }) {
            Ok(()) => reply.error(libc::ENODATA),
            Err(e) => reply.error(e),
        }
    }

    fn statfs(&mut self, _r: &Request<'_>, _ino: u64, reply: ReplyStatfs) {
        match self.with(|s| {
            let c = cstr(&s.model.data)?;
            // SAFETY: a valid C string and an out-parameter.
            let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
            // SAFETY: as above.
            if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(st)
        }) {
            Ok(st) => reply.statfs(
                st.f_blocks,
                st.f_bfree,
                st.f_bavail,
                st.f_files,
                st.f_ffree,
                st.f_bsize as u32,
                st.f_namemax as u32,
                st.f_frsize as u32,
            ),
            Err(e) => reply.error(e),
        }
    }
}

impl PowerCutFs {
    fn remove(&self, parent: u64, name: &OsStr, dir: bool, reply: ReplyEmpty) {
        match self.with(|s| names::remove(s, parent, name, dir)) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }
}
