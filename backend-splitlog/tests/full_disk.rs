//! A full disk, for real: tmpfs file systems mounted with a megabyte or a few. Puts that fill
//! the disk fail naming the log, and what was flushed stays readable; an archive whose index
//! cannot record what the opening replay found still opens, for reading (regression: it did
//! not open at all, so not even `ore tags` or a restore worked until space was freed).
//!
//! Needs root (to mount); CI runs as root. Fails loudly when it cannot mount.

mod common;
use backend_splitlog::{SplitlogBackend, SplitlogOptions};
use common::copy_as_killed;
use ore_tests::tmpfs::{fill, Tmpfs};
use protocol::{Backend, ErrorCode};
use std::path::Path;
use testkit::conformance::{test_data, test_key};

fn open(dir: &Path, metadata: Option<&Path>, private: bool) -> protocol::Result<SplitlogBackend> {
    SplitlogBackend::open(
        dir,
        SplitlogOptions {
            private,
            metadata: metadata.map(Path::to_path_buf),
        },
    )
}

/// One test, the two cases in turn: a `mount` started by a test on another thread would hold
/// a copy of an archive's lock between its fork and exec, and the next open would find the
/// archive busy.
#[test]
fn a_full_disk() {
    puts_that_fill_the_disk_fail_naming_the_log_and_what_was_flushed_stays();
    an_archive_whose_index_cannot_record_the_replay_opens_for_reading();
}

fn puts_that_fill_the_disk_fail_naming_the_log_and_what_was_flushed_stays() {
    for private in [false, true] {
        let fs = Tmpfs::mount(4);
        let dir = fs.at.join("archive");
        let b = open(&dir, None, private).unwrap();
        for i in 0..20u64 {
            b.put(test_key(i), &test_data(i, 50_000)).unwrap();
        }
        b.set_tag("t", None, b"flushed").unwrap();
        b.flush().unwrap();
        let mut i = 100u64;
        let e = loop {
            // Gathered records meet the disk at a flush.
            let r = b.put(test_key(i), &test_data(i, 50_000)).and_then(|()| {
                if private {
                    b.flush()
                } else {
                    Ok(())
                }
            });
            match r {
                Ok(()) => i += 1,
                Err(e) => break e,
            }
            assert!(i < 1000, "a 4 MiB disk took 50 MB");
        };
        assert!(e.to_string().contains("log-000001"), "{e}");
        drop(b);
        fill(&fs.at.join("filler"));
        let b = open(&dir, None, private).unwrap();
        assert_eq!(b.get_tag("t").unwrap().as_deref(), Some(&b"flushed"[..]));
        assert_holds(&b, 20, 50_000);
    }
}

fn an_archive_whose_index_cannot_record_the_replay_opens_for_reading() {
    for private in [false, true] {
        // An archive as a process killed after unflushed puts leaves it.
        let t = tempfile::tempdir().unwrap();
        let first = t.path().join("first");
        let b = open(&first, None, false).unwrap();
        for i in 0..20u64 {
            b.put(test_key(i), &test_data(i, 5_000)).unwrap();
        }
        b.set_tag("t", None, b"flushed").unwrap();
        b.flush().unwrap();
        for i in 100..2100u64 {
            b.put(test_key(i), &test_data(i, 100)).unwrap();
        }
        let killed = t.path().join("killed");
        copy_as_killed(&first, &killed);
        drop(b);
        std::fs::remove_file(killed.join("lock")).unwrap();
        // Its index alone on a disk that is full.
        let fs = Tmpfs::mount(1);
        let index = fs.at.join("index");
        std::fs::create_dir(&index).unwrap();
        for name in ["metadata.db", "metadata.db-wal", "metadata.db-shm"] {
            if killed.join(name).exists() {
                std::fs::copy(killed.join(name), index.join(name)).unwrap();
                std::fs::remove_file(killed.join(name)).unwrap();
            }
        }
        fill(&fs.at.join("filler"));
        let metadata = index.join("metadata.db");

        // Reading works, writing is refused and says why.
        let b = open(&killed, Some(&metadata), private).unwrap();
        assert!(!b.info().writable);
        assert_eq!(b.get_tag("t").unwrap().as_deref(), Some(&b"flushed"[..]));
        assert_holds(&b, 20, 5_000);
        let refused = b.put(test_key(5000), b"x").unwrap_err();
        assert_eq!(refused.code(), ErrorCode::ReadOnly, "{refused}");
        assert!(refused.to_string().contains("free space"), "{refused}");
        assert!(b.set_tag("t", Some(b"flushed"), b"no").is_err());
        for command in ["reindex", "compact", "write-protect"] {
            let e = b.admin(command, &[]).unwrap_err();
            assert_eq!(e.code(), ErrorCode::ReadOnly, "{command}: {e}");
        }
        b.flush().unwrap();
        drop(b);

        // Room again: the next open records the replay, and writes.
        std::fs::remove_file(fs.at.join("filler")).unwrap();
        let b = open(&killed, Some(&metadata), private).unwrap();
        assert!(b.info().writable);
        assert_eq!(b.get(test_key(2099)).unwrap(), Some(test_data(2099, 100)));
        b.put(test_key(5000), b"room now").unwrap();
        b.set_tag("t", Some(b"flushed"), b"moved").unwrap();
        b.flush().unwrap();
        drop(b);
        let b = open(&killed, Some(&metadata), private).unwrap();
        assert_eq!(b.get_tag("t").unwrap().as_deref(), Some(&b"moved"[..]));
        assert_eq!(
            b.get(test_key(5000)).unwrap().as_deref(),
            Some(&b"room now"[..])
        );
    }
}

/// Asserts that `b` holds the test blocks 0..`n`, each of `size` bytes.
fn assert_holds(b: &SplitlogBackend, n: u64, size: usize) {
    for k in 0..n {
        assert_eq!(b.get(test_key(k)).unwrap(), Some(test_data(k, size)), "{k}");
    }
}
