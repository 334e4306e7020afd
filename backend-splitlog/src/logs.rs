//! The numbered log files of an archive, and the lock that gives one process the right to
//! write them.
//!
//! Logs are `DIR/log-000001`, `DIR/log-000002`, ...; only the newest is appended to. A log rolls
//! over before a record would take it past the maximum size, so no log ever exceeds it except by
//! a single record larger than the limit, alone in its log. Files are created 0600.
//!
//! When the archive is opened inside the one process that uses it ([`Logs::gather`]), small block
//! records (stored and removed blocks) are gathered in memory and written together ([`PENDING_MAX`]
//! bytes at a time): a snapshot of many small files appends tens of thousands of them, and one
//! system call each cost more than the copying. A tag change or a setting is written at once, with
//! everything gathered before it. A backend that serves other processes writes every record before
//! it answers, so that no acknowledged block is lost if it is killed. Gathered records are written
//! before anything reads the newest log, before it is synced, and before it rolls over, so nothing
//! outside this module sees the difference — except when that write fails: the records were already
//! accepted, so the logs refuse every later append and sync (see [`Logs::lost`]), and no flush can
//! ever claim them durable.

use crate::index::Location;
use crate::record::{Header, RecordType, HEADER_LEN};
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
    let payload = read_two_at(file, &mut h, loc.len as usize, loc.offset)
        .map_err(|e| unreadable(file, path, key, loc, &e))?;
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

/// The answer to a read of the block record at `loc` that failed: damage of that one block
/// (`Corrupt`), naming the block, the log and the offset, and for a log cut short where it ends
/// and how far the record reached — never a failure of the whole connection.
fn unreadable(file: &File, path: &Path, key: &Key, loc: Location, e: &std::io::Error) -> Error {
    let at = format!("block {key} in {} at offset {}", path.display(), loc.offset);
    let why = match (e.kind(), file.metadata()) {
        (std::io::ErrorKind::UnexpectedEof, Ok(m)) => format!(
            "the log ends at byte {}, and the record at offset {} needs {} bytes (to byte {}): \
             the log was cut short",
            m.len(),
            loc.offset,
            loc.record_len(),
            loc.offset + loc.record_len()
        ),
        _ => format!("reading it failed: {e}"),
    };
    Error::backend(ErrorCode::Corrupt, format!("{at} is damaged: {why}"))
}

/// Fills `a`, then reads the `len` bytes after it, from `offset` with `preadv`, finishing short
/// reads. The second buffer is not zeroed first: filling a fresh buffer with zeros before the
/// kernel overwrites it was 4% of a restore of a large file.
fn read_two_at(f: &File, a: &mut [u8], len: usize, offset: u64) -> std::io::Result<Vec<u8>> {
    use std::os::unix::io::AsRawFd;
    let mut b: Vec<u8> = Vec::with_capacity(len);
    let total = a.len() + len;
    let mut done = 0usize;
    while done < total {
        let (first, rest) = match done.checked_sub(a.len()) {
            None => (&mut a[done..], 0),
            Some(p) => (&mut [][..], p),
        };
        let iov = [
            libc::iovec {
                iov_base: first.as_mut_ptr().cast(),
                iov_len: first.len(),
            },
            libc::iovec {
                // SAFETY: `rest <= len`, so the pointer stays within `b`'s allocation.
                iov_base: unsafe { b.as_mut_ptr().add(rest) }.cast(),
                iov_len: len - rest,
            },
        ];
        let at = offset + done as u64;
        // SAFETY: the first iovec points into `a`, exclusively borrowed; the second into the
        // spare capacity of `b` (`len - rest` bytes from `rest`), which only the kernel writes.
        let n = unsafe { libc::preadv(f.as_raw_fd(), iov.as_ptr(), 2, at as libc::off_t) };
        let Some(n) = moved(n, std::io::ErrorKind::UnexpectedEof)? else {
            continue;
        };
        done += n;
    }
    // SAFETY: the loop ends only once the kernel has written all `len` bytes of `b`.
    unsafe { b.set_len(len) };
    Ok(b)
}

/// The bytes a vectored read or write moved, from what it returned (`n`): `None` when a
/// signal interrupted it (try again), the error `none` when it moved nothing.
fn moved(n: isize, none: std::io::ErrorKind) -> std::io::Result<Option<usize>> {
    match n {
        n if n < 0 => {
            let e = std::io::Error::last_os_error();
            match e.kind() {
                std::io::ErrorKind::Interrupted => Ok(None),
                _ => Err(e),
            }
        }
        0 => Err(none.into()),
        n => Ok(Some(n as usize)),
    }
}

/// How many bytes of small records are gathered before they are written.
pub const PENDING_MAX: usize = 1 << 20;

/// Records up to this size are gathered; larger ones are written at once (copying them would
/// cost more than the system call it saves).
const GATHER_MAX: usize = 64 * 1024;

/// Writes all of `bufs`, one after another, at `offset` (`pwritev`, finishing short writes).
fn write_all_vectored_at(f: &File, bufs: &[&[u8]], mut offset: u64) -> std::io::Result<()> {
    use std::os::unix::io::AsRawFd;
    let mut bufs: Vec<&[u8]> = bufs.iter().copied().filter(|b| !b.is_empty()).collect();
    while !bufs.is_empty() {
        let iov: Vec<libc::iovec> = bufs
            .iter()
            .map(|b| libc::iovec {
                iov_base: b.as_ptr() as *mut libc::c_void,
                iov_len: b.len(),
            })
            .collect();
        // SAFETY: every iovec points into a live buffer of the given length, only read.
        let n = unsafe {
            libc::pwritev(
                f.as_raw_fd(),
                iov.as_ptr(),
                iov.len() as libc::c_int,
                offset as libc::off_t,
            )
        };
        let Some(mut n) = moved(n, std::io::ErrorKind::WriteZero)? else {
            continue;
        };
        offset += n as u64;
        while n > 0 {
            if n >= bufs[0].len() {
                n -= bufs[0].len();
                bufs.remove(0);
            } else {
                bufs[0] = &bufs[0][n..];
                n = 0;
            }
        }
    }
    Ok(())
}

/// The log files: appending to the newest, reading any.
pub struct Logs {
    dir: PathBuf,
    current: u32,
    /// The newest log's size, counting the records still in `pending`.
    size: u64,
    /// Records appended to the newest log but not yet written to it; they end at `size`.
    pending: Vec<u8>,
    /// Why gathered records could not be written, once that happened: they were accepted and
    /// are lost, so every later append and sync fails with this.
    lost: Option<String>,
    /// Whether small records are gathered (see [`Logs::gather`]).
    gather: bool,
    files: HashMap<u32, Arc<File>>,
    /// Logs written since the last sync.
    dirty: BTreeSet<u32>,
    /// A log file was created or removed since the last sync (the directory needs syncing).
    dir_dirty: bool,
}

impl Logs {
    /// Opens the logs of `dir`, creating the first one if there is none. Records are appended
    /// to a log numbered at least `floor`: when the newest log the index names is gone or was
    /// cut short, the next record starts a log after it, so no new record ever lands where the
    /// index (or a later reindex, or the user told of the damage) places a lost one.
    pub fn open(dir: &Path, floor: u32) -> Result<Logs> {
        let existing = list_logs(dir)?;
        let current = existing.last().copied().unwrap_or(1).max(floor);
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
            pending: Vec::new(),
            lost: None,
            gather: false,
            files,
            dirty: BTreeSet::new(),
            dir_dirty: existing.last() != Some(&current),
        })
    }

    /// The end of the newest log: everything before it has been written.
    pub fn end(&self) -> (u32, u64) {
        (self.current, self.size)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A log's file, opened on first use, with every record appended to it written.
    pub fn file(&mut self, n: u32) -> Result<&Arc<File>> {
        if n == self.current {
            self.write_pending()?;
        }
        self.opened(n)
    }

    /// A log's file, opened on first use, as it is (gathered records not written).
    fn opened(&mut self, n: u32) -> Result<&Arc<File>> {
        if !self.files.contains_key(&n) {
            let path = log_path(&self.dir, n);
            let f = match OpenOptions::new().read(true).write(true).open(&path) {
                Ok(f) => f,
                // A log the index names that is gone is damage, answered as such (see
                // `crate::damage`), not a failure of the archive.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(Error::backend(
                        ErrorCode::Corrupt,
                        format!("{} is missing", path.display()),
                    ))
                }
                Err(e) => return Err(Error::io(format!("opening {}", path.display()), e)),
            };
            self.files.insert(n, Arc::new(f));
        }
        self.files
            .get(&n)
            .ok_or_else(|| Error::backend(ErrorCode::Internal, format!("log {n} is not open")))
    }

    /// Where the next [`Logs::append`] of a record of `len` bytes will land: the start of a new
    /// log when it would take the newest past `max_log_size`. Nothing is written or created
    /// (a put of a block already stored asks, and appends nothing).
    pub fn place(&self, len: u64, max_log_size: u64) -> Result<(u32, u64)> {
        self.check_not_lost()?;
        if self.size > 0 && self.size + len > max_log_size {
            Ok((self.current + 1, 0))
        } else {
            Ok((self.current, self.size))
        }
    }

    /// Appends a record, rolling over to a new log first when it would pass `max_log_size`.
    pub fn append(
        &mut self,
        header: &Header,
        payload: &[u8],
        max_log_size: u64,
    ) -> Result<Location> {
        let len = header.record_len();
        if self.place(len, max_log_size)?.0 != self.current {
            self.roll()?;
        }
        let n = self.current;
        let offset = self.size;
        let record = HEADER_LEN + payload.len();
        // Tag moves and settings are written when they are made: a run killed after moving
        // its tag must not lose the move (nor the blocks before it, which go out with it).
        let gatherable = matches!(
            header.kind,
            RecordType::Block
                | RecordType::BlockRemoved
                | RecordType::Unvouched
                | RecordType::Vouched
        );
        if self.gather && gatherable && record <= GATHER_MAX {
            if self.pending.len() + record > PENDING_MAX {
                self.write_pending()?;
            }
            self.pending.extend_from_slice(&header.encode());
            self.pending.extend_from_slice(payload);
        } else {
            // What is gathered, the header and the payload go out in one call.
            let gathered = self.pending.len();
            let written = offset - gathered as u64;
            let f = self.opened(self.current)?.clone();
            let r = write_all_vectored_at(&f, &[&self.pending, &header.encode(), payload], written);
            self.pending.clear();
            match r {
                Ok(()) => {}
                // Only this record failed, and it was never accepted: the next append may
                // succeed (once there is room) and overwrites whatever part of it got written.
                Err(e) if gathered == 0 => {
                    let path = log_path(&self.dir, n);
                    return Err(Error::io(format!("appending to {}", path.display()), e));
                }
                Err(e) => return Err(self.lose(written, e)),
            }
        }
        self.size += len;
        self.dirty.insert(n);
        Ok(Location {
            log: n,
            offset,
            len: header.len,
        })
    }

    /// Gathers small records from now on. Only for logs opened by the process that is their
    /// one user: records it gathered die with it, as its unflushed work does anyway, while a
    /// process that answers others must write a record before its put is acknowledged.
    pub fn gather(&mut self) {
        self.gather = true;
    }

    /// Writes the gathered records to the newest log.
    fn write_pending(&mut self) -> Result<()> {
        self.check_not_lost()?;
        if self.pending.is_empty() {
            return Ok(());
        }
        let written = self.size - self.pending.len() as u64;
        let f = self.opened(self.current)?.clone();
        let r = f.write_all_at(&self.pending, written);
        self.pending.clear();
        r.map_err(|e| self.lose(written, e))
    }

    /// Records that the records from `written` on could not be written, and the error to
    /// return. Nothing past `written` is trusted again: a torn tail there is cut off when the
    /// archive is next opened.
    fn lose(&mut self, written: u64, e: std::io::Error) -> Error {
        self.size = written;
        let why = format!(
            "writing to {} failed ({e}): blocks stored since the last flush are lost, so \
             nothing more is accepted until the archive is opened again",
            log_path(&self.dir, self.current).display()
        );
        self.lost = Some(why.clone());
        Error::backend(ErrorCode::Io, why)
    }

    /// Fails once gathered records were lost (see [`Logs::lost`]).
    fn check_not_lost(&self) -> Result<()> {
        match &self.lost {
            Some(why) => Err(Error::backend(ErrorCode::Io, why.clone())),
            None => Ok(()),
        }
    }

    /// Why gathered records could not be written, if that happened.
    pub fn lost(&self) -> Option<&str> {
        self.lost.as_deref()
    }

    /// Starts the next log.
    pub fn roll(&mut self) -> Result<()> {
        self.write_pending()?;
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
        self.write_pending()?;
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
        if n == self.current {
            self.write_pending()?;
        }
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
        // A lock released a moment ago may still be held for a moment by a child process of
        // the last holder, forked by another of its threads and not yet exec'd (the descriptor
        // is close-on-exec, but shared until then): a holder that dropped the archive and
        // opened it again was refused, rarely, while another thread started a program. So
        // the lock is tried for up to 200 ms before the archive is called in use.
        let try_lock = || {
            // SAFETY: flock on a descriptor we own.
            unsafe {
                libc::flock(
                    std::os::fd::AsRawFd::as_raw_fd(&file),
                    libc::LOCK_EX | libc::LOCK_NB,
                )
            }
        };
        let mut r = try_lock();
        for _ in 0..40 {
            if r == 0 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
            r = try_lock();
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression: a failed append lost the logs for good (every later append and sync
    /// failed) even when nothing gathered went with it, so one full disk left a running
    /// `backend-splitlog` unusable until restarted, though it had lost nothing it acknowledged.
    #[test]
    fn a_failed_append_that_loses_nothing_gathered_leaves_the_logs_usable() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path();
        let mut logs = Logs::open(dir, 0).unwrap();
        // The next log is a full disk.
        std::os::unix::fs::symlink("/dev/full", dir.join("log-000002")).unwrap();
        logs.roll().unwrap();
        let header = Header::new(RecordType::Block, [7; 32], b"payload");
        let e = logs.append(&header, b"payload", u64::MAX).unwrap_err();
        assert!(e.to_string().contains("log-000002"), "{e}");
        assert_eq!(logs.lost(), None);
        // Room again: the same log, now a real file, takes the record at the same place.
        logs.files.remove(&2);
        std::fs::remove_file(dir.join("log-000002")).unwrap();
        std::fs::write(dir.join("log-000002"), b"").unwrap();
        let at = logs.append(&header, b"payload", u64::MAX).unwrap();
        assert_eq!((at.log, at.offset), (2, 0));
        logs.sync().unwrap();
        let file = logs.file(2).unwrap().clone();
        let read = read_record(&file, &dir.join("log-000002"), &Key([7; 32]), at).unwrap();
        assert_eq!(read, b"payload");
    }
}
