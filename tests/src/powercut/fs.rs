//! The FUSE side: every operation passes through to the live tree, and tells the
//! [`Model`] first what it is about to make non-durable. Once frozen (the cut has begun),
//! every operation fails with EIO and changes nothing.

use super::model::Model;
use fuser::{
    FileAttr, FileType, Filesystem, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty,
    ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow,
};
use std::collections::HashMap;
use std::ffi::{CString, OsStr};
use std::fs::{File, Metadata, OpenOptions};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const TTL: Duration = Duration::from_secs(1);

/// Everything the file system and the cut share.
#[derive(Debug)]
pub struct Shared {
    pub model: Model,
    /// Set when the cut begins: nothing changes any more.
    pub frozen: bool,
    /// FUSE inode → (backing inode, one present path).
    nodes: HashMap<u64, (u64, PathBuf)>,
    by_backing: HashMap<u64, u64>,
    next_ino: u64,
    files: HashMap<u64, (File, u64)>,
    dirs: HashMap<u64, Vec<(u64, FileType, std::ffi::OsString)>>,
    next_fh: u64,
}

impl Shared {
    pub fn new(model: Model) -> io::Result<Shared> {
        let root = std::fs::metadata(&model.data)?.ino();
        let mut s = Shared {
            nodes: HashMap::new(),
            by_backing: HashMap::new(),
            next_ino: 2,
            files: HashMap::new(),
            dirs: HashMap::new(),
            next_fh: 1,
            frozen: false,
            model,
        };
        s.nodes.insert(1, (root, s.model.data.clone()));
        s.by_backing.insert(root, 1);
        Ok(s)
    }

    fn path(&self, ino: u64) -> io::Result<PathBuf> {
        self.nodes
            .get(&ino)
            .map(|(_, p)| p.clone())
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ESTALE))
    }

    fn backing(&self, ino: u64) -> io::Result<u64> {
        self.nodes
            .get(&ino)
            .map(|(b, _)| *b)
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ESTALE))
    }

    /// Registers `path` (with `meta`) and returns its attributes under its FUSE inode.
    fn node(&mut self, path: PathBuf, meta: &Metadata) -> FileAttr {
        let ino = match self.by_backing.get(&meta.ino()) {
            Some(&i) => i,
            None => {
                let i = self.next_ino;
                self.next_ino += 1;
                self.by_backing.insert(meta.ino(), i);
                i
            }
        };
        self.nodes.insert(ino, (meta.ino(), path));
        attr(ino, meta)
    }

    /// After `from` was renamed to `to`: every path at or under it follows.
    fn moved(&mut self, from: &Path, to: &Path) {
        for (_, p) in self.nodes.values_mut() {
            if let Ok(rest) = p.strip_prefix(from) {
                *p = if rest.as_os_str().is_empty() {
                    to.to_path_buf()
                } else {
                    to.join(rest)
                };
            }
        }
    }

    fn child(&self, parent: u64, name: &OsStr) -> io::Result<(PathBuf, u64)> {
        Ok((self.path(parent)?.join(name), self.backing(parent)?))
    }

    fn entry(&mut self, path: PathBuf) -> io::Result<FileAttr> {
        let meta = std::fs::symlink_metadata(&path)?;
        Ok(self.node(path, &meta))
    }

    fn handle(&mut self, file: File, backing: u64) -> u64 {
        let fh = self.next_fh;
        self.next_fh += 1;
        self.files.insert(fh, (file, backing));
        fh
    }
}

fn time(secs: i64, nsecs: i64) -> SystemTime {
    if secs >= 0 {
        UNIX_EPOCH + Duration::new(secs as u64, nsecs as u32)
    } else {
        UNIX_EPOCH
    }
}

fn kind(meta: &Metadata) -> FileType {
    let t = meta.file_type();
    use std::os::unix::fs::FileTypeExt;
    if t.is_dir() {
        FileType::Directory
    } else if t.is_symlink() {
        FileType::Symlink
    } else if t.is_fifo() {
        FileType::NamedPipe
    } else if t.is_socket() {
        FileType::Socket
    } else if t.is_char_device() {
        FileType::CharDevice
    } else if t.is_block_device() {
        FileType::BlockDevice
    } else {
        FileType::RegularFile
    }
}

fn attr(ino: u64, m: &Metadata) -> FileAttr {
    FileAttr {
        ino,
        size: m.size(),
        blocks: m.blocks(),
        atime: time(m.atime(), m.atime_nsec()),
        mtime: time(m.mtime(), m.mtime_nsec()),
        ctime: time(m.ctime(), m.ctime_nsec()),
        crtime: UNIX_EPOCH,
        kind: kind(m),
        perm: (m.mode() & 0o7777) as u16,
        nlink: m.nlink() as u32,
        uid: m.uid(),
        gid: m.gid(),
        rdev: m.rdev() as u32,
        blksize: 4096,
        flags: 0,
    }
}

fn errno(e: &io::Error) -> i32 {
    e.raw_os_error().unwrap_or(libc::EIO)
}

fn cstr(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

fn utime(t: Option<TimeOrNow>) -> libc::timespec {
    match t {
        None => libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_OMIT,
        },
        Some(TimeOrNow::Now) => libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_NOW,
        },
        Some(TimeOrNow::SpecificTime(t)) => {
            let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
            libc::timespec {
                tv_sec: d.as_secs() as libc::time_t,
                tv_nsec: d.subsec_nanos() as libc::c_long,
            }
        }
    }
}

/// The file system; every operation takes the shared state's lock.
pub struct PowerCutFs(pub Arc<Mutex<Shared>>);

impl PowerCutFs {
    /// Runs `f` on the shared state unless the cut has begun (then EIO).
    fn with<T>(&self, f: impl FnOnce(&mut Shared) -> io::Result<T>) -> Result<T, i32> {
        let mut s = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if s.frozen {
            return Err(libc::EIO);
        }
        f(&mut s).map_err(|e| errno(&e))
    }
}

fn open_options(flags: i32) -> OpenOptions {
    let mut o = OpenOptions::new();
    match flags & libc::O_ACCMODE {
        // Readable too: the model saves the bytes a write is about to overwrite.
        libc::O_WRONLY | libc::O_RDWR => o.read(true).write(true),
        _ => o.read(true),
    };
    // The offsets the kernel sends are absolute: O_APPEND would make pwrite ignore them.
    let strip = libc::O_ACCMODE
        | libc::O_APPEND
        | libc::O_TRUNC
        | libc::O_CREAT
        | libc::O_EXCL
        | libc::O_DIRECT;
    o.custom_flags(flags & !strip);
    o
}

fn truncate(s: &mut Shared, backing: u64, f: &File, len: u64) -> io::Result<()> {
    s.model.before_write(backing, f, len, u64::MAX)?;
    f.set_len(len)
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
        match self.with(|s| {
            let (path, dir) = s.child(parent, name)?;
            s.model.before_entries_change(dir, &s.path(parent)?)?;
            std::fs::create_dir(&path)?;
            let perm = std::fs::Permissions::from_mode(mode & !umask & 0o7777);
            std::fs::set_permissions(&path, perm)?;
            let a = s.entry(path)?;
            s.model.created_dir(s.backing(a.ino)?);
            Ok(a)
        }) {
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
        match self.with(|s| {
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
        }) {
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
        match self.with(|s| {
            let (path, dir) = s.child(parent, name)?;
            s.model.before_entries_change(dir, &s.path(parent)?)?;
            std::os::unix::fs::symlink(target, &path)?;
            s.entry(path)
        }) {
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
        match self.with(|s| {
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
        }) {
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
        match self.with(|s| {
            let (to, dir) = s.child(newparent, newname)?;
            s.model.before_entries_change(dir, &s.path(newparent)?)?;
            std::fs::hard_link(s.path(ino)?, &to)?;
            s.entry(to)
        }) {
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
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .files
            .remove(&fh);
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
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .dirs
            .remove(&fh);
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
        match self.with(|s| {
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
        }) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }
}
