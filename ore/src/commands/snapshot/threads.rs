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

use super::rules::{ignores_in, Rules};
use crate::core::fsys::{self, Dir};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::Arc;

/// Walk threads per core when the source is cold.
const COLD_PER_CORE: usize = 4;
/// Files sampled at most.
const SAMPLE: usize = 32;
/// Fewer files found than this: no sample is taken.
const TOO_FEW: usize = 16;
/// Directory entries looked at, at most, to find them (a wide directory of subdirectories
/// must not make the sample a walk of its own).
const LOOKED_AT: usize = 256;

/// The walk's threads for a snapshot of `paths` on `cores` cores, leaving out what `rules`
/// leave out.
pub(super) fn walk_threads(paths: &[PathBuf], rules: &Rules, cores: usize) -> usize {
    match cold(paths, rules) {
        true => cores * COLD_PER_CORE,
        false => cores,
    }
}

/// `threads`, or `cores` when the stacks of that many threads (`stack` bytes each) would take
/// more than half of the process's limit on address space (`ulimit -v`): a pool that cannot
/// start its threads fails the snapshot, and the extra threads only speed it up.
pub(super) fn within_address_space(threads: usize, cores: usize, stack: usize) -> usize {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: a valid rlimit for the call to fill in.
    let known = unsafe { libc::getrlimit(libc::RLIMIT_AS, &mut limit) } == 0;
    let room = match known && limit.rlim_cur != libc::RLIM_INFINITY {
        true => limit.rlim_cur / 2,
        false => return threads,
    };
    match (threads as u64).saturating_mul(stack as u64) <= room {
        true => threads,
        false => threads.min(cores),
    }
}

/// Whether a quarter or more of a sample of the regular files under `paths` (breadth first)
/// have their first byte outside the page cache. A tree that shows fewer than [`TOO_FEW`]
/// files among the first entries looked at is not sampled (and not cold): too small a sample
/// to judge by, and too few files to need the threads. Its files are then not opened before
/// the walk reads them.
fn cold(paths: &[PathBuf], rules: &Rules) -> bool {
    let mut files: Vec<(Arc<Dir>, Vec<u8>)> = Vec::new();
    let mut roots = Vec::new();
    let mut looked = 0usize;
    // Directories to look into, with the ignore lists in force there and their device.
    let mut queue = std::collections::VecDeque::new();
    for root in paths.iter().take(LOOKED_AT) {
        let Ok(st) = fsys::stat_path(root, false) else {
            continue;
        };
        if st.is_file() && st.size > 0 {
            roots.push(root);
        } else if let (true, Ok(first)) = (st.is_dir(), rules.root_ignore(root)) {
            queue.push_back((root.clone(), Arc::new(vec![first]), st.dev));
        }
    }
    while let Some((path, ignores, dev)) = queue.pop_front() {
        if roots.len() + files.len() >= SAMPLE || looked >= LOOKED_AT {
            break;
        }
        let Ok(dir) = Dir::open(&path) else {
            continue;
        };
        let Ok(names) = dir.names() else {
            continue;
        };
        let dir = Arc::new(dir);
        let (ignores, _) = ignores_in(&path, &names, &ignores);
        for name in names.into_iter().take(LOOKED_AT) {
            looked += 1;
            let Ok(st) = dir.lstat(&name) else {
                continue;
            };
            let child = path.join(OsStr::from_bytes(&name));
            // What the walk leaves out, and other file systems (a network mount that may
            // hang, /proc, /sys), are not sampled.
            if st.dev != dev || rules.excludes(&ignores, &child, &st) {
                continue;
            }
            if st.is_file() && st.size > 0 {
                files.push((dir.clone(), name));
            } else if st.is_dir() {
                queue.push_back((child, ignores.clone(), dev));
            }
        }
    }
    if roots.len() + files.len() < TOO_FEW {
        return false;
    }
    let (mut cached, mut not) = (0usize, 0usize);
    let opened = roots
        .iter()
        .map(|r| fsys::open_regular_path(r))
        .chain(files.iter().map(|(d, n)| d.open_file(n)));
    for f in opened.take(SAMPLE) {
        match f.ok().and_then(|f| fsys::start_is_cached(&f)) {
            Some(true) => cached += 1,
            Some(false) => not += 1,
            None => {}
        }
    }
    not > 0 && not * 4 >= cached + not
}

#[cfg(test)]
mod tests {
    use super::*;

    fn none() -> Rules {
        Rules::new(&[], &[]).unwrap()
    }

    #[test]
    fn a_tree_just_written_is_walked_with_one_thread_per_core() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..40 {
            std::fs::write(dir.path().join(format!("f{i}")), b"warm bytes").unwrap();
        }
        assert_eq!(walk_threads(&[dir.path().to_path_buf()], &none(), 2), 2);
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
        // (Asking whether they are cached would read them in again: a read that may not wait
        // still starts the read-ahead.)
        cold_files(dir.path(), 20);
        assert_eq!(walk_threads(&[dir.path().to_path_buf()], &none(), 2), 8);
        // Fifteen of them alone are too few to sample, cold or not (and none is opened).
        for i in 15..20 {
            std::fs::remove_file(dir.path().join(format!("f{i}"))).unwrap();
        }
        assert_eq!(walk_threads(&[dir.path().to_path_buf()], &none(), 2), 2);
    }

    /// `n` files of 64 KiB in `dir`, written back and dropped from the page cache.
    fn cold_files(dir: &std::path::Path, n: usize) {
        std::fs::create_dir_all(dir).unwrap();
        for i in 0..n {
            let path = dir.join(format!("f{i}"));
            std::fs::write(&path, vec![7u8; 1 << 16]).unwrap();
            let f = std::fs::File::open(&path).unwrap();
            f.sync_all().unwrap();
            // SAFETY: a descriptor held open by `f`.
            unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        }
    }

    #[test]
    fn what_the_snapshot_excludes_is_not_sampled() {
        let dir = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).unwrap();
        cold_files(&dir.path().join("skipped"), 20);
        let root = [dir.path().to_path_buf()];
        let rules = Rules::new(&["skipped".to_string()], &[]).unwrap();
        assert_eq!(
            walk_threads(&root, &rules, 2),
            2,
            "an excluded directory was sampled"
        );
        assert_eq!(walk_threads(&root, &none(), 2), 8);
    }

    #[test]
    fn the_sample_does_not_cross_into_another_file_system() {
        // A directory in memory with a directory of the disk bound below it, holding cold
        // files: they are another file system's, and must not make the walk think the tree
        // is cold. (Mounting takes root, as the suite's full-disk tests do.)
        let disk = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).unwrap();
        cold_files(disk.path(), 20);
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
        let threads = walk_threads(&[mem.path().to_path_buf()], &none(), 2);
        let unmounted = std::process::Command::new("umount").arg(&below).status();
        assert!(unmounted.is_ok_and(|s| s.success()), "umount failed");
        assert_eq!(
            threads, 2,
            "the sample read the files of the disk bound below"
        );
        // The same files, given as the path itself, are sampled.
        assert_eq!(walk_threads(&[disk.path().to_path_buf()], &none(), 2), 8);
    }

    use std::os::fd::AsRawFd;
}
