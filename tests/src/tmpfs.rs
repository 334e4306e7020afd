//! Small file systems that really fill up: tmpfs mounts of a few megabytes, for tests of what
//! happens when a disk is full. Mounting takes root (CI runs as root); a test that cannot mount
//! fails loudly rather than skipping.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A tmpfs mounted for the value's lifetime.
pub struct Tmpfs {
    _dir: Option<tempfile::TempDir>,
    /// Where it is mounted.
    pub at: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `mib` MiB in a new temporary directory.
    pub fn mount(mib: u32) -> Tmpfs {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let at = dir.path().join("mnt");
        std::fs::create_dir(&at).expect("the mount point");
        let mut t = Tmpfs::mount_at(&at, mib);
        t._dir = Some(dir);
        t
    }

    /// Mounts a tmpfs of `mib` MiB on the directory `at`, which must exist.
    pub fn mount_at(at: &Path, mib: u32) -> Tmpfs {
        let at = at.to_path_buf();
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(&at)
            .status()
            .expect("running mount");
        assert!(
            st.success(),
            "mounting a tmpfs at {} failed (root?)",
            at.display()
        );
        Tmpfs { _dir: None, at }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.at).status();
    }
}

/// Writes to `path` until the file system is full.
pub fn fill(path: &Path) {
    use std::io::Write;
    let mut f = std::fs::File::create(path).expect("creating the filler");
    let chunk = vec![0u8; 4096];
    loop {
        if let Err(e) = f.write_all(&chunk) {
            assert_eq!(e.raw_os_error(), Some(libc::ENOSPC), "{e}");
            return;
        }
    }
}
