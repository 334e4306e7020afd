//! A snapshot stopped in the middle of a large file stops reading it at the next read
//! window. The stop flag (set by SIGINT and SIGTERM, or by another thread's failure) used to be
//! looked at between files only: a 6 GiB file went on being read for 3 s after SIGTERM, and
//! the run ended when the whole snapshot would have.
//!
//! The file's read is made slow by the archive, not by the machine: it is reached through
//! `delay-link --serial`, a backend that answers one request at a time, each after 40 ms, so
//! every window of the file waits for its blocks to be stored, and the 128 MiB file takes
//! seconds to read whatever the machine.

use ore_tests::ore::{scratch, Ore};
use ore_tests::trees::bytes;
use std::path::Path;
use std::time::{Duration, Instant};

/// Whether process `pid` holds `file` open.
fn reading(pid: u32, file: &Path) -> bool {
    std::fs::read_dir(format!("/proc/{pid}/fd")).is_ok_and(|rd| {
        rd.flatten()
            .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|l| l == file))
    })
}

#[test]
fn a_snapshot_stopped_by_sigterm_mid_file_ends_within_a_window_not_at_the_files_end() {
    let d = scratch();
    let store = d.path().join("store");
    let ore = Ore::fs(&store);
    let src = d.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    let big = src.join("big");
    std::fs::write(&big, bytes(11, 128 << 20)).unwrap();
    let mut slow = Ore::new(format!(
        "{} --serial 40 {} {}",
        ore_tests::quote(&ore_tests::bin("delay-link")),
        ore_tests::quote(&ore_tests::bin("backend-fs")),
        ore_tests::quote(&store)
    ));
    slow.passphrase = ore.passphrase.clone();
    let mut cmd = slow.cmd(&["snapshot", "t", src.to_str().unwrap()]);
    cmd.stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let started = Instant::now();
    while !reading(child.id(), &big) {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the snapshot ended before it read the file"
        );
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "never read the file"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    // Well into the file: a window or two stored, most of it still to read.
    std::thread::sleep(Duration::from_millis(700));
    assert!(
        reading(child.id(), &big),
        "the file was read whole in 0.7 s: the backend is not slow enough for this test"
    );
    let signalled = Instant::now();
    // SAFETY: a plain kill of our own child.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let o = child.wait_with_output().unwrap();
    let after = signalled.elapsed();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "the snapshot was stopped: {stderr}");
    // The rest of the file is at least 100 MiB, about a hundred blocks of 40 ms each: read
    // to its end, it took more than 4 s. One window's blocks take well under a second.
    assert!(
        after < Duration::from_millis(2500),
        "the snapshot ended {after:?} after SIGTERM: it read on to the file's end ({stderr})"
    );
    // Nothing half made is named: the tag was not moved.
    let tags = ore.run(&["tags"]).expect(0, "tags").stdout;
    assert!(!tags.lines().any(|l| l.starts_with("t\t")), "{tags}");
}
