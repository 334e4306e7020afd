//! Gathered appends (an archive opened by its one user): what is gathered is readable at once,
//! written by a flush or a close, and when writing it fails nothing can claim it durable.
//!
//! A failing disk is real here: the next log is made a symlink to `/dev/full`, so its writes
//! fail with ENOSPC exactly as a full file system's would.

mod common;
use backend_splitlog::{SplitlogBackend, SplitlogOptions};
use common::copy_as_killed;
use protocol::Backend;
use std::path::Path;
use testkit::conformance::{run, test_data, test_key};

fn open(dir: &Path, private: bool) -> SplitlogBackend {
    SplitlogBackend::open(
        dir,
        SplitlogOptions {
            private,
            ..Default::default()
        },
    )
    .unwrap()
}

fn log_len(dir: &Path, n: u32) -> u64 {
    std::fs::metadata(dir.join(format!("log-{n:06}")))
        .unwrap()
        .len()
}

#[test]
fn conformance_with_gathered_appends() {
    let t = tempfile::tempdir().unwrap();
    run(&open(&t.path().join("a"), true));
}

#[test]
fn gathered_records_are_read_back_before_any_flush_and_written_on_close() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("a");
    let b = open(&dir, true);
    let before = log_len(&dir, 1);
    for i in 0..200u64 {
        b.put(test_key(i), &test_data(i, 500)).unwrap();
    }
    assert_eq!(
        log_len(&dir, 1),
        before,
        "200 small records are gathered, not written one by one"
    );
    // A read of a gathered record writes what is gathered first.
    assert_eq!(b.get(test_key(7)).unwrap(), Some(test_data(7, 500)));
    assert!(log_len(&dir, 1) > before + 200 * 500);
    // A large record goes out at once, with what was gathered before it.
    b.put(test_key(250), &test_data(250, 300_000)).unwrap();
    b.put(test_key(251), b"gathered after the large one")
        .unwrap();
    let written = log_len(&dir, 1);
    drop(b);
    assert!(
        log_len(&dir, 1) > written,
        "closing writes what is gathered"
    );
    let b = open(&dir, false);
    for i in 0..200u64 {
        assert_eq!(b.get(test_key(i)).unwrap(), Some(test_data(i, 500)), "{i}");
    }
    assert_eq!(b.get(test_key(250)).unwrap(), Some(test_data(250, 300_000)));
    assert_eq!(
        b.get(test_key(251)).unwrap().as_deref(),
        Some(&b"gathered after the large one"[..])
    );
}

/// Fills log 1 to within 10 KB of its 1 MiB limit, flushed, and makes log 2 (where a further
/// record of 10 KB goes) a symlink to /dev/full.
fn archive_whose_next_log_is_full(dir: &Path, private: bool) -> SplitlogBackend {
    let b = open(dir, private);
    b.admin("set-max-log-size", &["1048576".into()]).unwrap();
    b.put(test_key(1), &test_data(1, 1_040_000)).unwrap();
    b.flush().unwrap();
    std::os::unix::fs::symlink("/dev/full", dir.join("log-000002")).unwrap();
    b
}

/// Closes `b` and reopens its archive with the full log of
/// [`archive_whose_next_log_is_full`] gone.
fn with_room_again(b: SplitlogBackend, dir: &Path) -> SplitlogBackend {
    drop(b);
    std::fs::remove_file(dir.join("log-000002")).unwrap();
    open(dir, false)
}

#[test]
fn a_failed_write_of_gathered_records_fails_every_later_write_and_flush() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("a");
    let b = archive_whose_next_log_is_full(&dir, true);
    // Gathered: accepted now, written only when flushed.
    b.put(test_key(2), &test_data(2, 10_000)).unwrap();
    let e = b.flush().unwrap_err().to_string();
    assert!(e.contains("log-000002") && e.contains("lost"), "{e}");
    // Nothing after that can make it look durable.
    let again = b.flush().unwrap_err().to_string();
    assert!(again.contains("lost"), "{again}");
    assert!(b.put(test_key(3), &test_data(3, 10_000)).is_err());
    assert!(b.set_tag("t", None, b"v").is_err());
    let b = with_room_again(b, &dir);
    assert_eq!(b.get(test_key(1)).unwrap(), Some(test_data(1, 1_040_000)));
    assert_eq!(b.get(test_key(2)).unwrap(), None);
    assert_eq!(b.get_tag("t").unwrap(), None);
    b.put(test_key(2), b"stored this time").unwrap();
    b.flush().unwrap();
    assert_eq!(
        b.get(test_key(2)).unwrap().as_deref(),
        Some(&b"stored this time"[..])
    );
}

#[test]
fn a_put_whose_append_fails_leaves_no_index_row_behind() {
    // Regression: a put records its index row before the append (one statement instead of a
    // lookup and an insert); a failed append must take the row back, or the archive would
    // claim a block it does not have.
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("a");
    let b = archive_whose_next_log_is_full(&dir, false);
    let e = b
        .put(test_key(2), &test_data(2, 10_000))
        .unwrap_err()
        .to_string();
    assert!(e.contains("log-000002"), "{e}");
    assert_eq!(b.exists(&[test_key(2)]).unwrap(), vec![false]);
    assert_eq!(b.get(test_key(2)).unwrap(), None);
    let stats = b.stats().unwrap();
    let b = with_room_again(b, &dir);
    assert_eq!(b.exists(&[test_key(2)]).unwrap(), vec![false]);
    assert_eq!(b.stats().unwrap().blocks, stats.blocks);
    b.put(test_key(2), b"room now").unwrap();
    assert_eq!(
        b.get(test_key(2)).unwrap().as_deref(),
        Some(&b"room now"[..])
    );
}

#[test]
fn a_tag_move_is_written_when_it_is_made_with_the_blocks_before_it() {
    // Regression: tag records were gathered like blocks, so a run killed just after moving
    // its tag (and before it closed the archive) lost the move.
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("a");
    let b = open(&dir, true);
    for i in 0..50u64 {
        b.put(test_key(i), &test_data(i, 1000)).unwrap();
    }
    b.flush().unwrap();
    b.put(test_key(99), &test_data(99, 1000)).unwrap();
    b.set_tag("t", None, b"after the flush").unwrap();
    let killed = t.path().join("killed");
    copy_as_killed(&dir, &killed);
    drop(b);
    std::fs::remove_file(killed.join("lock")).ok();
    let b = open(&killed, false);
    assert_eq!(
        b.get_tag("t").unwrap().as_deref(),
        Some(&b"after the flush"[..])
    );
    assert_eq!(b.get(test_key(99)).unwrap(), Some(test_data(99, 1000)));
    assert_eq!(b.get(test_key(3)).unwrap(), Some(test_data(3, 1000)));
}
