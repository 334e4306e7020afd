//! The numbered log files of an archive, and the lock that gives one process the right to
//! write them.
//!
//! Logs are `DIR/log-000001`, `DIR/log-000002`, ...; only the newest is appended to. A log rolls
//! over before a record would take it past the maximum size, so no log ever exceeds it except by
//! a single record larger than the limit, alone in its log. Files are created 0600.

use crate::index::Location;
use crate::record::{Header, HEADER_LEN};
use protocol::{Error, ErrorCode, Key, Result};
use std::collections::{BTreeSet, HashMap};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The path of log number `n`.
pub fn log_path(dir: &Path, n: u32) -> PathBuf {
    dir.join(format!("log-{n:06}"))
}

/// The numbers of the logs in `dir`, ascending.
pub fn list_logs(dir: &Path) -> Result<Vec<u32>> {
    let rd =
        std::fs::read_dir(dir).map_err(|e| Error::io(format!("listing {}", dir.display()), e))?;
    let mut logs = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|e| Error::io(format!("listing {}", dir.display()), e))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if let Some(n) = name
            .strip_prefix("log-")
            .and_then(|n| n.parse::<u32>().ok())
        {
            if name.len() == 10 {
                logs.push(n);
            }
        }
    }
    logs.sort_unstable();
    Ok(logs)
}

fn open_log(dir: &Path, n: u32, create: bool) -> Result<File> {
    let path = log_path(dir, n);
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(create)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .map_err(|e| Error::io(format!("opening {}", path.display()), e))
}

/// Reads and checks the block record at `loc` of the log `file` (at `path`, for messages):
/// header and payload in one system call.
pub fn read_record(file: &File, path: &Path, key: &Key, loc: Location) -> Result<Vec<u8>> {
    let mut h = [0u8; HEADER_LEN];
    let mut payload = vec![0u8; loc.len as usize];
    read_two_at(file, &mut h, &mut payload, loc.offset).map_err(|e| {
        Error::io(
            format!(
                "reading block {key} at {} offset {}",
                path.display(),
                loc.offset
            ),
            e,
        )
    })?;
    let corrupt = |why: &str| {
        Error::backend(
            ErrorCode::Corrupt,
            format!(
                "block {key} in {} at offset {} is damaged: {why}",
                path.display(),
                loc.offset
            ),
        )
    };
    let header = Header::decode(&h).ok_or_else(|| corrupt("its record header is not sound"))?;
    if header.key != key.0 || header.len != loc.len {
        return Err(corrupt("the record there belongs to another block"));
    }
    if !header.payload_ok(&payload) {
        return Err(corrupt("its checksum does not match"));
    }
    Ok(payload)
}

/// Fills `a` then `b` from `offset` with `preadv`, finishing short reads one buffer at a time.
fn read_two_at(f: &File, a: &mut [u8], b: &mut [u8], offset: u64) -> std::io::Result<()> {
    use std::os::unix::io::AsRawFd;
    let iov = [
        libc::iovec {
            iov_base: a.as_mut_ptr().cast(),
            iov_len: a.len(),
        },
        libc::iovec {
            iov_base: b.as_mut_ptr().cast(),
            iov_len: b.len(),
        },
    ];
    // SAFETY: both iovecs point into live, exclusively borrowed buffers of the given lengths.
    let n = unsafe { libc::preadv(f.as_raw_fd(), iov.as_ptr(), 2, offset as libc::off_t) };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let n = n as usize;
    if n < a.len() {
        f.read_exact_at(&mut a[n..], offset + n as u64)?;
        f.read_exact_at(b, offset + a.len() as u64)
    } else if n - a.len() < b.len() {
        let done = n - a.len();
        f.read_exact_at(&mut b[done..], offset + n as u64)
    } else {
        Ok(())
    }
}

/// The log files: appending to the newest, reading any.
pub struct Logs {
    dir: PathBuf,
    current: u32,
    size: u64,
    files: HashMap<u32, Arc<File>>,
    /// Logs written since the last sync.
    dirty: BTreeSet<u32>,
    /// A log file was created or removed since the last sync (the directory needs syncing).
    dir_dirty: bool,
}

impl Logs {
    /// Opens the logs of `dir`, creating the first one if there is none.
    pub fn open(dir: &Path) -> Result<Logs> {
        let existing = list_logs(dir)?;
        let current = existing.last().copied().unwrap_or(1);
        let file = open_log(dir, current, true)?;
        let size = file
            .metadata()
            .map_err(|e| Error::io(format!("reading {}", log_path(dir, current).display()), e))?
            .len();
        let mut files = HashMap::new();
        files.insert(current, Arc::new(file));
        Ok(Logs {
            dir: dir.to_path_buf(),
            current,
            size,
            files,
            dirty: BTreeSet::new(),
            dir_dirty: existing.is_empty(),
        })
    }

    /// The end of the newest log: everything before it has been written.
    pub fn end(&self) -> (u32, u64) {
        (self.current, self.size)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A log's file, opened on first use.
    pub fn file(&mut self, n: u32) -> Result<&Arc<File>> {
        if !self.files.contains_key(&n) {
            let f = open_log(&self.dir, n, false)?;
            self.files.insert(n, Arc::new(f));
        }
        self.files
            .get(&n)
            .ok_or_else(|| Error::backend(ErrorCode::Internal, format!("log {n} is not open")))
    }

    /// Appends a record, rolling over to a new log first when it would pass `max_log_size`.
    pub fn append(
        &mut self,
        header: &Header,
        payload: &[u8],
        max_log_size: u64,
    ) -> Result<Location> {
        let len = header.record_len();
        if self.size > 0 && self.size + len > max_log_size {
            self.roll()?;
        }
        let n = self.current;
        let offset = self.size;
        let path = log_path(&self.dir, n);
        let f = self.file(n)?;
        // Small records go out in one write; large ones are not copied just to join them.
        let written = if payload.len() <= 64 * 1024 {
            let mut rec = Vec::with_capacity(HEADER_LEN + payload.len());
            rec.extend_from_slice(&header.encode());
            rec.extend_from_slice(payload);
            f.write_all_at(&rec, offset)
        } else {
            f.write_all_at(&header.encode(), offset)
                .and_then(|()| f.write_all_at(payload, offset + HEADER_LEN as u64))
        };
        written.map_err(|e| Error::io(format!("appending to {}", path.display()), e))?;
        self.size += len;
        self.dirty.insert(n);
        Ok(Location {
            log: n,
            offset,
            len: header.len,
        })
    }

    /// Starts the next log.
    pub fn roll(&mut self) -> Result<()> {
        let next = self.current + 1;
        let f = open_log(&self.dir, next, true)?;
        self.files.insert(next, Arc::new(f));
        self.current = next;
        self.size = 0;
        self.dir_dirty = true;
        Ok(())
    }

    /// Makes everything appended so far durable.
    pub fn sync(&mut self) -> Result<()> {
        let dirty: Vec<u32> = self.dirty.iter().copied().collect();
        for n in dirty {
            let path = log_path(&self.dir, n);
            self.file(n)?
                .sync_data()
                .map_err(|e| Error::io(format!("syncing {}", path.display()), e))?;
            self.dirty.remove(&n);
        }
        if self.dir_dirty {
            File::open(&self.dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| Error::io(format!("syncing {}", self.dir.display()), e))?;
            self.dir_dirty = false;
        }
        Ok(())
    }

    /// What [`read_record`] needs, so the read itself can happen without holding the lock
    /// that guards `self` (records never change once written, and an open descriptor keeps a
    /// compacted-away log readable).
    pub fn reader(&mut self, n: u32) -> Result<(Arc<File>, PathBuf)> {
        Ok((self.file(n)?.clone(), log_path(&self.dir, n)))
    }

    /// Cuts a log back to `len` bytes (a torn tail after a crash).
    pub fn truncate(&mut self, n: u32, len: u64) -> Result<()> {
        let path = log_path(&self.dir, n);
        let f = self.file(n)?;
        f.set_len(len)
            .and_then(|()| f.sync_all())
            .map_err(|e| Error::io(format!("cutting the torn tail of {}", path.display()), e))?;
        if n == self.current {
            self.size = len;
        }
        Ok(())
    }

    /// Deletes a log that no longer holds anything live (after compaction).
    pub fn delete(&mut self, n: u32) -> Result<()> {
        self.files.remove(&n);
        self.dirty.remove(&n);
        let path = log_path(&self.dir, n);
        std::fs::remove_file(&path)
            .map_err(|e| Error::io(format!("removing {}", path.display()), e))?;
        self.dir_dirty = true;
        Ok(())
    }

    /// The current size of a log file.
    pub fn size_of(&mut self, n: u32) -> Result<u64> {
        let path = log_path(&self.dir, n);
        Ok(self
            .file(n)?
            .metadata()
            .map_err(|e| Error::io(format!("reading {}", path.display()), e))?
            .len())
    }
}

/// An exclusive lock on an archive, held for as long as the process writes it. The kernel
/// releases it when the process ends however it ends, so a crash never leaves a stale lock; the
/// file records the holder's pid only to name it in the error another process gets.
pub struct ArchiveLock {
    _file: File,
}

/// The lock file's name in the archive directory; it holds the pid of the process holding it.
pub const LOCK_FILE: &str = "lock";

impl ArchiveLock {
    pub fn acquire(dir: &Path) -> Result<ArchiveLock> {
        let path = dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
        // SAFETY: flock on a descriptor we own.
        let r = unsafe {
            libc::flock(
                std::os::fd::AsRawFd::as_raw_fd(&file),
                libc::LOCK_EX | libc::LOCK_NB,
            )
        };
        if r != 0 {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            return Err(Error::backend(
                ErrorCode::Locked,
                format!(
                    "the archive {} is in use by another process{} (lock {}); wait for it to finish",
                    dir.display(),
                    if holder.is_empty() { String::new() } else { format!(", pid {holder}") },
                    path.display()
                ),
            ));
        }
        let _ = file.set_len(0);
        let _ = file.write_all_at(format!("{}\n", std::process::id()).as_bytes(), 0);
        let _ = file.flush();
        Ok(ArchiveLock { _file: file })
    }
}
