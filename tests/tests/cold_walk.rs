//! A snapshot of a tree that is not in the page cache walks with more threads than cores
//! (`ore/src/commands/snapshot/threads.rs`); these tests pin what that must never cost.

use ore_tests::ore::Ore;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;

/// Regression: the extra threads reserve 256 MiB stacks each, and under `ulimit -v` the pool
/// could not start them: the snapshot of a cold tree failed with "could not start worker
/// threads" where the same tree, cached, was saved. It now walks with one thread per core.
#[test]
fn a_cold_tree_is_saved_under_a_limit_on_address_space() {
    let (ore, d) = Ore::local();
    // On the disk beside the sources (the scratch directory may be in memory, where nothing
    // is ever cold).
    let src = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).unwrap();
    for i in 0..40 {
        let path = src.path().join(format!("f{i}"));
        std::fs::write(&path, ore_tests::trees::bytes(i, 1 << 16)).unwrap();
        let f = std::fs::File::open(&path).unwrap();
        f.sync_all().unwrap();
        // SAFETY: a descriptor held open by `f`.
        unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    }
    let mut cmd = ore.cmd(&["snapshot", "t", src.path().to_str().unwrap()]);
    // SAFETY: only setrlimit, which is async-signal-safe, between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: 1_500_000 * 1024,
                rlim_max: libc::RLIM_INFINITY,
            };
            match libc::setrlimit(libc::RLIMIT_AS, &limit) {
                0 => Ok(()),
                _ => Err(std::io::Error::last_os_error()),
            }
        });
    }
    let out = cmd.output().expect("ore runs");
    assert!(
        out.status.success(),
        "snapshot under ulimit -v failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dest = d.path().join("dest");
    ore.restore("t", &dest).expect(0, "restore");
    for i in 0..40 {
        let name = format!("f{i}");
        assert_eq!(
            std::fs::read(dest.join(&name)).unwrap(),
            std::fs::read(src.path().join(&name)).unwrap(),
            "{name}"
        );
    }
}
