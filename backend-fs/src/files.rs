//! Small file-system helpers with the durability and permission rules of backend-fs.
//!
//! Every file is created 0600 and every directory 0700 regardless of the umask, because an
//! archive holds a user's data even when it is encrypted. New content is written to a temporary
//! name and fsynced before it gets its real name, so a crash leaves either the whole block under
//! its key or nothing.

use protocol::{Error, Result};
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Creates `dir` and missing parents with mode 0700.
pub fn create_dir_all(dir: &Path) -> Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| Error::io(format!("creating directory {}", dir.display()), e))
}

/// Writes `data` to a new file `path` (which must not exist), mode 0600, and fsyncs it.
pub fn write_new_synced(path: &Path, data: &[u8]) -> Result<()> {
    let ctx = || format!("writing {}", path.display());
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| Error::io(ctx(), e))?;
    // The mode above is filtered by the umask; make sure it is exactly 0600.
    f.set_permissions(fs::Permissions::from_mode(0o600))
        .map_err(|e| Error::io(ctx(), e))?;
    f.write_all(data).map_err(|e| Error::io(ctx(), e))?;
    f.sync_data().map_err(|e| Error::io(ctx(), e))?;
    Ok(())
}

/// Fsyncs a directory, making the names created or removed in it durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(format!("syncing directory {}", dir.display()), e))
}

/// Reads a file, `Ok(None)` when it does not exist.
pub fn read_optional(path: &Path) -> Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(d) => Ok(Some(d)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(format!("reading {}", path.display()), e)),
    }
}

/// Removes a file; a file that is already gone is fine.
pub fn remove_optional(path: &Path) -> Result<bool> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::io(format!("removing {}", path.display()), e)),
    }
}

/// Sorted names of the entries of `dir` (empty when it does not exist).
pub fn sorted_names(dir: &Path) -> Result<Vec<String>> {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(format!("listing {}", dir.display()), e)),
    };
    let mut names = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|e| Error::io(format!("listing {}", dir.display()), e))?;
        if let Ok(name) = entry.file_name().into_string() {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

/// An exclusive `flock` on a file, released when dropped. Guards tag compare-and-swap against
/// other processes writing the same archive.
pub struct FileLock(File);

impl FileLock {
    pub fn acquire(path: &Path) -> Result<FileLock> {
        let ctx = || format!("locking {}", path.display());
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(|e| Error::io(ctx(), e))?;
        loop {
            // SAFETY: flock on a valid, owned descriptor.
            let r = unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&f), libc::LOCK_EX) };
            if r == 0 {
                return Ok(FileLock(f));
            }
            let e = std::io::Error::last_os_error();
            if e.kind() != ErrorKind::Interrupted {
                return Err(Error::io(ctx(), e));
            }
        }
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        // SAFETY: unlocking a descriptor we own; closing it would release the lock anyway.
        unsafe {
            libc::flock(std::os::fd::AsRawFd::as_raw_fd(&self.0), libc::LOCK_UN);
        }
    }
}

/// Whether a process with this id exists.
pub fn process_alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks for existence and permission.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}
