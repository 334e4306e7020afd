//! A power cut on a real file system: [`Disk`] mounts `powercut-fs`, a FUSE file system that
//! passes every operation through to a backing directory but, at a cut, loses everything a
//! pessimistic kernel may lose when the power goes.
//!
//! # The model
//!
//! The disk cache is modelled the way CrashMonkey and LazyFS model it, taking every loss
//! POSIX allows:
//!
//! - **File data** written (or truncated) since the file's last `fsync`/`fdatasync` is lost at
//!   a cut: the file comes back with the length and bytes it had at that sync (a new file
//!   comes back empty). Synced data is durable.
//! - **Directory entries** (create, mkdir, symlink, link, rename, unlink, rmdir) changed since
//!   the parent directory's last `fsync` are lost: the directory comes back with the entries it
//!   had at that sync. A renamed file whose old directory was not synced comes back under its
//!   old name; a new file named in a synced directory comes back with its synced data. An
//!   `fsync` of a file does not make its name durable (ext4's `data=ordered` journal would
//!   commit names with the next transaction; this model does not count on it).
//! - Unsynced changes to different files and directories are lost independently, all of them
//!   together: the cut takes the worst case, where nothing unsynced reached the disk.
//!   (Partially persisted writes and reordered sectors are not modelled: a write the
//!   program did not sync is lost whole.)
//! - Modes and times are kept as set (they are not what Ore's durability rests on).
//! - `syncfs(2)` makes everything durable. The kernel does not pass `syncfs` on to a FUSE
//!   file system (it sends `FUSE_SYNCFS` to virtiofs only), so the programs under test run
//!   with a preloaded shim ([`syncfs_shim`], `LD_PRELOAD`) that, after each successful
//!   `syncfs`, asks the same descriptor for the extended attribute [`SYNCFS_XATTR`]:
//!   `powercut-fs` takes that request as the `syncfs`, before the program goes on.
//!
//! # A cut
//!
//! [`Disk::cut`] freezes the file system (every operation fails with EIO from that instant, so
//! nothing changes after the cut), SIGKILLs every process using the mount (open files, working
//! directory, mappings), unmounts, and rebuilds the backing directory as the durable state.
//! [`Disk::mount`] then shows only what survived. The page cache of the real machine plays no
//! part: the kernel's FUSE cache goes with the unmount.

mod fs;
mod model;
mod names;
mod node;

pub use fs::PowerCutFs;
pub use model::Model;
pub use node::Shared;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

/// The extended attribute the shim asks for after a `syncfs`.
pub const SYNCFS_XATTR: &str = "user.powercut.syncfs";

const SHIM: &str = r#"
#define _GNU_SOURCE
#include <dlfcn.h>
#include <sys/xattr.h>
int syncfs(int fd) {
    int (*real)(int) = (int (*)(int))dlsym(RTLD_NEXT, "syncfs");
    int r = real(fd);
    if (r == 0) {
        char b[1];
        fgetxattr(fd, "user.powercut.syncfs", b, 0);
    }
    return r;
}
"#;

/// The `syncfs` shim, built once per test process with `cc` (which building the workspace
/// needs anyway): set it as `LD_PRELOAD` for the programs that run on a [`Disk`].
pub fn syncfs_shim() -> PathBuf {
    static SHIM_PATH: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    SHIM_PATH
        .get_or_init(|| {
            let dir = crate::ore::scratch().keep();
            let src = dir.join("syncfs-shim.c");
            let lib = dir.join("syncfs-shim.so");
            std::fs::write(&src, SHIM).expect("writing the shim's source");
            let status = Command::new("cc")
                .args(["-shared", "-fPIC", "-O2", "-o"])
                .arg(&lib)
                .arg(&src)
                .arg("-ldl")
                .status()
                .expect("the power-cut tests need `cc` to build their syncfs shim");
            assert!(status.success(), "building the syncfs shim: cc {status}");
            lib
        })
        .clone()
}

/// A power-cut file system mounted for a test, over its own scratch directory.
pub struct Disk {
    /// Where the file system is mounted.
    pub mnt: PathBuf,
    root: PathBuf,
    running: Option<(Child, ChildStdin, BufReader<ChildStdout>)>,
    _dir: tempfile::TempDir,
}

/// Fails loudly when FUSE is missing: the power-cut tests never skip.
fn require_fuse() {
    assert!(
        Path::new("/dev/fuse").exists(),
        "the power-cut tests need FUSE: /dev/fuse is missing (load the fuse module)"
    );
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join("fusermount3").is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "the power-cut tests need fusermount3 on PATH (install fuse3)"
    );
}

impl Disk {
    /// A new, empty disk, mounted.
    pub fn new() -> Disk {
        require_fuse();
        let dir = crate::ore::scratch();
        let mnt = dir.path().join("mnt");
        let root = dir.path().join("disk");
        std::fs::create_dir_all(&mnt).expect("mount point");
        std::fs::create_dir_all(&root).expect("backing directory");
        let mut d = Disk {
            mnt,
            root,
            running: None,
            _dir: dir,
        };
        d.mount();
        d
    }

    /// Mounts the file system (after [`Disk::cut`] or [`Disk::unmount`]): all it shows is
    /// durable until something changes it.
    pub fn mount(&mut self) {
        assert!(self.running.is_none(), "the disk is already mounted");
        let mut child = Command::new(crate::bin("powercut-fs"))
            .arg(&self.root)
            .arg(&self.mnt)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("powercut-fs starts");
        let stdin = child.stdin.take().expect("its input");
        let mut out = BufReader::new(child.stdout.take().expect("its output"));
        expect_line(&mut out, "mounted");
        assert!(crate::fuse::mounted(&self.mnt), "powercut-fs said mounted");
        self.running = Some((child, stdin, out));
    }

    /// The power cut: nothing changes from this instant; every process using the mount is
    /// SIGKILLed; then only the durable state is left, unmounted.
    pub fn cut(&mut self) {
        let (child, mut stdin, mut out) = self.running.take().expect("the disk is mounted");
        writeln!(stdin, "cut").expect("powercut-fs reads its input");
        expect_line(&mut out, "frozen");
        kill_users(&self.mnt);
        self.stop(child, stdin, out);
    }

    /// A clean shutdown: everything written is kept.
    pub fn unmount(&mut self) {
        let (child, stdin, out) = self.running.take().expect("the disk is mounted");
        kill_users(&self.mnt);
        self.stop(child, stdin, out);
    }

    fn stop(&self, mut child: Child, mut stdin: ChildStdin, mut out: BufReader<ChildStdout>) {
        writeln!(stdin, "unmount").expect("powercut-fs reads its input");
        expect_line(&mut out, "down");
        let status = child.wait().expect("powercut-fs ends");
        assert!(status.success(), "powercut-fs ended with {status}");
        assert!(!crate::fuse::mounted(&self.mnt), "unmounted");
    }
}

impl Default for Disk {
    fn default() -> Disk {
        Disk::new()
    }
}

impl Drop for Disk {
    fn drop(&mut self) {
        if let Some((mut child, _, _)) = self.running.take() {
            kill_users(&self.mnt);
            let _ = Command::new("fusermount3")
                .arg("-uz")
                .arg(&self.mnt)
                .status();
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn expect_line(out: &mut BufReader<ChildStdout>, want: &str) {
    let mut line = String::new();
    out.read_line(&mut line).expect("powercut-fs answers");
    assert_eq!(
        line.trim(),
        want,
        "powercut-fs answered {line:?}, not {want:?}"
    );
}

/// Whether process `pid` has `mnt` as its working directory or root, or a file under it open
/// or mapped.
fn uses(pid: u32, mnt: &Path) -> bool {
    let proc = PathBuf::from(format!("/proc/{pid}"));
    let under = |p: &Path| p.starts_with(mnt);
    for link in ["cwd", "root", "exe"] {
        if std::fs::read_link(proc.join(link)).is_ok_and(|p| under(&p)) {
            return true;
        }
    }
    if let Ok(fds) = std::fs::read_dir(proc.join("fd")) {
        for fd in fds.flatten() {
            if std::fs::read_link(fd.path()).is_ok_and(|p| under(&p)) {
                return true;
            }
        }
    }
    let mnt_text = format!(" {}/", mnt.display());
    std::fs::read_to_string(proc.join("maps")).is_ok_and(|m| m.contains(&mnt_text))
}

/// SIGKILLs every process using `mnt`, until none is left (at most 20 s).
pub fn kill_users(mnt: &Path) {
    let me = std::process::id();
    let started = Instant::now();
    loop {
        let users: Vec<u32> = std::fs::read_dir("/proc")
            .expect("/proc")
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
            .filter(|&pid| pid != me && uses(pid, mnt))
            .collect();
        if users.is_empty() {
            return;
        }
        for pid in &users {
            // SAFETY: kill(2); the processes use this test's private mount.
            unsafe { libc::kill(*pid as i32, libc::SIGKILL) };
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "processes {users:?} still use {} after SIGKILL",
            mnt.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}
