//! How many threads a snapshot walks with: one per core while the source is in memory, four
//! per core while it must come from the device.
//!
//! A walk thread does both kinds of work: it waits for the file system (directory listings,
//! `fstatat`, reads) and it spends CPU on the bytes (FastCDC, BLAKE3, zstd, AES-GCM). When the
//! tree is in the page cache (tmpfs, or a disk read recently), nothing waits, the work is all
//! CPU, and one thread per core is best: on /usr/share, warm, four threads on two cores were no
//! faster (3.16–3.63 s against 3.19–3.34 s) and each extra thread keeps its own 8 MiB read
//! window, so the peak went from 58 to 76–79 MiB, and with eight threads to about 100 MiB and
//! 15% slower. When the tree is cold on a disk, most threads wait for the device, and it
//! serves more the more requests it has queued at once: a first snapshot of /usr/share (600 MB,
//! 48,069 files) from the ext4 disk of this machine, with the page cache dropped, took 8.8 s
//! with two threads, 6.6 s with four, 5.5 s with eight, and 5.5–6.1 s with sixteen or
//! thirty-two (docs/BENCHMARKS.md). The extra threads do not keep a read window between files
//! (`file.rs`), so a cold walk's peak is 70–80 MiB rather than 94.
//!
//! Which case holds is asked of the kernel before the walk starts: a read of the first byte of
//! a sample of the source's files that may not wait for the device (`RWF_NOWAIT`). The walk's
//! pool cannot grow once started, so a tree that is partly cached is judged by its sample: a
//! quarter of the sample not cached is enough to call it cold. (Such a read of a file that is
//! not cached starts the kernel's read-ahead of it, which the walk would soon ask for anyway.)
//! The sample opens up to 32 files before the walk does, which a watcher of the tree
//! (inotify's `IN_OPEN`) sees; a tree too small to judge (fewer than 16 files among its first
//! 256 entries) is not sampled at all. The sample stays on the file system of each path given:
//! it never reads a directory or a file of another one mounted below (a network mount that
//! may hang, /proc, /sys), which the walk may be told to leave out.

use crate::core::fsys;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Walk threads per core when the source is cold.
const COLD_PER_CORE: usize = 4;
/// Files sampled at most.
const SAMPLE: usize = 32;
/// Fewer files found than this: no sample is taken.
const TOO_FEW: usize = 16;
/// Directory entries looked at, at most, to find them (a wide directory of subdirectories
/// must not make the sample a walk of its own).
const LOOKED_AT: usize = 256;

/// The walk's threads for a snapshot of `paths` on `cores` cores.
pub(super) fn walk_threads(paths: &[PathBuf], cores: usize) -> usize {
    match cold(paths) {
        true => cores * COLD_PER_CORE,
        false => cores,
    }
}

/// Whether a quarter or more of a sample of the regular files under `paths` (breadth first)
/// have their first byte outside the page cache. A tree that shows fewer than [`TOO_FEW`]
/// files among the first entries looked at is not sampled (and not cold): too small a sample
/// to judge by, and too few files to need the threads. Its files are then not opened before
/// the walk reads them.
fn cold(paths: &[PathBuf]) -> bool {
    let mut files = Vec::new();
    let mut looked = 0usize;
    // Each path with the device its sample started on: another file system met under it (a
    // network mount that may hang, /proc, /sys) is not sampled.
    let mut queue: std::collections::VecDeque<(PathBuf, Option<u64>)> =
        paths.iter().map(|p| (p.clone(), None)).collect();
    while let Some((path, dev)) = queue.pop_front() {
        if files.len() >= SAMPLE || looked >= LOOKED_AT {
            break;
        }
        looked += 1;
        let Ok(md) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if dev.is_some_and(|d| d != md.dev()) {
            continue;
        }
        if md.is_file() && md.len() > 0 {
            files.push(path);
        } else if md.is_dir() {
            let Ok(entries) = std::fs::read_dir(&path) else {
                continue;
            };
            let here = Some(md.dev());
            queue.extend(entries.flatten().take(LOOKED_AT).map(|e| (e.path(), here)));
        }
    }
    if files.len() < TOO_FEW {
        return false;
    }
    let (mut cached, mut not) = (0usize, 0usize);
    for f in &files {
        match probe(f) {
            Some(true) => cached += 1,
            Some(false) => not += 1,
            None => {}
        }
    }
    not > 0 && not * 4 >= cached + not
}

fn probe(path: &Path) -> Option<bool> {
    let file = fsys::open_regular_path(path).ok()?;
    fsys::start_is_cached(&file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tree_just_written_is_walked_with_one_thread_per_core() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..40 {
            std::fs::write(dir.path().join(format!("f{i}")), b"warm bytes").unwrap();
        }
        assert_eq!(walk_threads(&[dir.path().to_path_buf()], 2), 2);
    }

    #[test]
    fn files_whose_pages_were_dropped_make_the_walk_use_more_threads() {
        // Beside the sources, which are on a disk (`/tmp` may be in memory).
        let dir = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).unwrap();
        // SAFETY: a zeroed statfs filled in by the call, over a valid C path.
        let mut fs: libc::statfs = unsafe { std::mem::zeroed() };
        let path = std::ffi::CString::new(dir.path().as_os_str().as_encoded_bytes()).unwrap();
        assert_eq!(unsafe { libc::statfs(path.as_ptr(), &mut fs) }, 0);
        assert_ne!(
            fs.f_type,
            libc::TMPFS_MAGIC,
            "{} is in memory: this test needs a disk",
            dir.path().display()
        );
        for i in 0..20 {
            let path = dir.path().join(format!("f{i}"));
            std::fs::write(&path, vec![7u8; 1 << 16]).unwrap();
            let f = std::fs::File::open(&path).unwrap();
            // Written back, then dropped from the page cache. (Asking whether they are cached
            // would read them in again: a read that may not wait still starts the read-ahead.)
            f.sync_all().unwrap();
            // SAFETY: a descriptor held open by `f`.
            unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        }
        assert_eq!(walk_threads(&[dir.path().to_path_buf()], 2), 8);
        // Fifteen of them alone are too few to sample, cold or not (and none is opened).
        for i in 15..20 {
            std::fs::remove_file(dir.path().join(format!("f{i}"))).unwrap();
        }
        assert_eq!(walk_threads(&[dir.path().to_path_buf()], 2), 2);
    }

    #[test]
    fn the_sample_does_not_cross_into_another_file_system() {
        // A directory in memory with a directory of the disk bound below it, holding cold
        // files: they are another file system's, and must not make the walk think the tree
        // is cold. (Mounting takes root, as the suite's full-disk tests do.)
        let disk = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).unwrap();
        for i in 0..20 {
            let path = disk.path().join(format!("f{i}"));
            std::fs::write(&path, vec![7u8; 1 << 16]).unwrap();
            let f = std::fs::File::open(&path).unwrap();
            f.sync_all().unwrap();
            // SAFETY: a descriptor held open by `f`.
            unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        }
        let mem = tempfile::tempdir_in("/dev/shm").unwrap();
        let below = mem.path().join("bound");
        std::fs::create_dir(&below).unwrap();
        let status = std::process::Command::new("mount")
            .arg("--bind")
            .args([disk.path(), &below])
            .status()
            .expect("mount runs");
        assert!(
            status.success(),
            "mount --bind failed (this test needs root)"
        );
        let threads = walk_threads(&[mem.path().to_path_buf()], 2);
        let unmounted = std::process::Command::new("umount").arg(&below).status();
        assert!(unmounted.is_ok_and(|s| s.success()), "umount failed");
        assert_eq!(
            threads, 2,
            "the sample read the files of the disk bound below"
        );
        // The same files, given as the path itself, are sampled.
        assert_eq!(walk_threads(&[disk.path().to_path_buf()], 2), 8);
    }

    use std::os::fd::AsRawFd;
}
