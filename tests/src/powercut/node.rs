//! The state the FUSE side keeps: the FUSE inode of each backing inode and a present path
//! to it (kept up to date across renames and unlinks), the open handles, and the conversions
//! between the backing file system's answers and FUSE's.

use super::model::Model;
use fuser::{FileAttr, FileType, TimeOrNow};
use std::collections::HashMap;
use std::ffi::{CString, OsStr};
use std::fs::{File, Metadata, OpenOptions};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Everything the file system and the cut share.
#[derive(Debug)]
pub struct Shared {
    pub model: Model,
    /// Set when the cut begins: nothing changes any more.
    pub frozen: bool,
    /// FUSE inode → (backing inode, one present path).
    pub(super) nodes: HashMap<u64, (u64, PathBuf)>,
    pub(super) by_backing: HashMap<u64, u64>,
    pub(super) next_ino: u64,
    pub(super) files: HashMap<u64, (File, u64)>,
    pub(super) dirs: HashMap<u64, Vec<(u64, FileType, std::ffi::OsString)>>,
    pub(super) next_fh: u64,
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

    pub(super) fn path(&self, ino: u64) -> io::Result<PathBuf> {
        self.nodes
            .get(&ino)
            .map(|(_, p)| p.clone())
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ESTALE))
    }

    pub(super) fn backing(&self, ino: u64) -> io::Result<u64> {
        self.nodes
            .get(&ino)
            .map(|(b, _)| *b)
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ESTALE))
    }

    /// Registers `path` (with `meta`) and returns its attributes under its FUSE inode.
    pub(super) fn node(&mut self, path: PathBuf, meta: &Metadata) -> FileAttr {
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
    pub(super) fn moved(&mut self, from: &Path, to: &Path) {
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

    pub(super) fn child(&self, parent: u64, name: &OsStr) -> io::Result<(PathBuf, u64)> {
        Ok((self.path(parent)?.join(name), self.backing(parent)?))
    }

    pub(super) fn entry(&mut self, path: PathBuf) -> io::Result<FileAttr> {
        let meta = std::fs::symlink_metadata(&path)?;
        Ok(self.node(path, &meta))
    }

    pub(super) fn handle(&mut self, file: File, backing: u64) -> u64 {
        let fh = self.next_fh;
        self.next_fh += 1;
        self.files.insert(fh, (file, backing));
        fh
    }
}

pub(super) fn time(secs: i64, nsecs: i64) -> SystemTime {
    if secs >= 0 {
        UNIX_EPOCH + Duration::new(secs as u64, nsecs as u32)
    } else {
        UNIX_EPOCH
    }
}

pub(super) fn kind(meta: &Metadata) -> FileType {
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

pub(super) fn attr(ino: u64, m: &Metadata) -> FileAttr {
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

pub(super) fn errno(e: &io::Error) -> i32 {
    e.raw_os_error().unwrap_or(libc::EIO)
}

pub(super) fn cstr(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

pub(super) fn utime(t: Option<TimeOrNow>) -> libc::timespec {
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

pub(super) fn open_options(flags: i32) -> OpenOptions {
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

pub(super) fn truncate(s: &mut Shared, backing: u64, f: &File, len: u64) -> io::Result<()> {
    s.model.before_write(backing, f, len, u64::MAX)?;
    f.set_len(len)
}
