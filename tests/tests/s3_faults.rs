//! Faults of the store in the middle of a snapshot to an archive in SeaweedFS: a volume server
//! dies (the cluster keeps a copy of everything on a second rack), or the S3 gateway dies and
//! comes back. Either way the snapshot completes or fails with a message naming the archive and
//! its tag unmoved; a re-run completes; `ore check --read-data` is clean.

use connect::Client;
use ore_tests::ore::{scratch, Ore};
use ore_tests::seaweed::{Cluster, Role};
use ore_tests::trees::bytes;
use protocol::Backend;
use std::path::Path;
use std::time::{Duration, Instant};

/// Distinct files of 48 MiB in all, three packs' worth, so that the snapshot stores a pack
/// well before it ends.
fn tree(root: &Path) {
    std::fs::create_dir_all(root).expect("mkdir");
    for i in 0..48 {
        std::fs::write(root.join(format!("f{i:03}")), bytes(90_000 + i, 1 << 20)).expect("write");
    }
}

/// Starts `ore snapshot home SRC`, waits until the archive holds `blocks` blocks (a first
/// pack is stored: the snapshot is under way), runs `fault`, and returns how the snapshot ended.
fn snapshot_through(
    o: &Ore,
    c: &mut Cluster,
    src: &Path,
    blocks: usize,
    fault: impl FnOnce(&mut Cluster),
) -> ore_tests::ore::Run {
    let child = o
        .cmd(&["snapshot", "home", src.to_str().expect("utf-8")])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("ore snapshot starts");
    let watcher = Client::connect(&o.archive).expect("a watching connection");
    let deadline = Instant::now() + Duration::from_secs(120);
    // Polled: the store sends no notice of progress.
    while watcher.list(None, blocks as u32).expect("list").0.len() < blocks {
        assert!(
            Instant::now() < deadline,
            "the snapshot stored no {blocks} blocks"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(watcher);
    fault(c);
    ore_tests::ore::Run::of(child.wait_with_output().expect("ore snapshot ends"))
}

fn tag(o: &Ore) -> Option<Vec<u8>> {
    let b = Client::connect(&o.archive).expect("connect");
    b.get_tag("home").expect("get tag")
}

#[test]
fn a_volume_server_killed_mid_snapshot_leaves_the_archive_whole_and_a_rerun_completes() {
    let mut c = Cluster::start();
    let d = scratch();
    let src = d.path().join("src");
    tree(&src);
    let o = Ore::new(c.archive("volume-fault", ""));
    o.run(&["init"]).expect(0, "init");
    let r = snapshot_through(&o, &mut c, &src, 1, |c| c.kill(Role::Volume(1)));
    eprintln!(
        "snapshot while volume server 1 died: exit {}\n{}",
        r.code, r.stderr
    );
    if r.code != 0 {
        assert!(
            r.stderr.contains("s3://"),
            "the error names the archive: {}",
            r.stderr
        );
        assert_eq!(
            tag(&o),
            None,
            "a failed first snapshot leaves its tag unset"
        );
        let again = o.run(&["snapshot", "home", src.to_str().expect("utf-8")]);
        eprintln!("re-run: exit {}\n{}", again.code, again.stderr);
        again.expect(0, "the re-run completes on the two remaining racks");
    }
    assert!(tag(&o).is_some(), "the tag names the snapshot");
    o.run(&["check", "--read-data"])
        .expect(0, "check --read-data");
}

#[test]
fn a_gateway_killed_mid_snapshot_gives_a_clear_error_and_a_rerun_after_its_return_completes() {
    let mut c = Cluster::start();
    let d = scratch();
    let src = d.path().join("src");
    tree(&src);
    let o = Ore::new(c.archive("gateway-fault", ""));
    o.run(&["init"]).expect(0, "init");
    let r = snapshot_through(&o, &mut c, &src, 1, |c| c.kill(Role::Gateway));
    eprintln!(
        "snapshot while the gateway died: exit {}\n{}",
        r.code, r.stderr
    );
    assert_ne!(r.code, 0, "a snapshot cannot complete without its store");
    assert!(
        r.stderr.contains("s3://"),
        "the error names the archive: {}",
        r.stderr
    );
    c.restart(Role::Gateway);
    assert_eq!(tag(&o), None, "the failed snapshot left its tag unset");
    o.run(&["snapshot", "home", src.to_str().expect("utf-8")])
        .expect(0, "the re-run completes");
    assert!(tag(&o).is_some());
    o.run(&["check", "--read-data"])
        .expect(0, "check --read-data");
}

#[test]
fn a_gateway_killed_mid_restore_is_reported_as_the_store_unreachable_not_as_corrupt_blocks() {
    // Regression: a store that could no longer be reached was answered as a failed read of
    // each block (`io`), which the restore reported as that block being corrupt. Now each
    // file left says the store could not be reached, naming the archive (and since the
    // restore stops at the first such failure, it says so once: see the test below).
    let mut c = Cluster::start();
    let d = scratch();
    let src = d.path().join("src");
    tree(&src);
    // Without scratch files, every block is read from the store as the restore reaches it.
    let o = Ore::new(c.archive("restore-fault", "--spill 0"));
    o.run(&["init"]).expect(0, "init");
    o.snapshot("home", &src);
    let dest = d.path().join("dest");
    let child = o
        .cmd(&["restore", "home", dest.to_str().expect("utf-8")])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("ore restore starts");
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::fs::read_dir(&dest).map_or(0, |d| d.count()) == 0 {
        assert!(Instant::now() < deadline, "the restore wrote nothing");
        std::thread::sleep(Duration::from_millis(2));
    }
    c.kill(Role::Gateway);
    let r = ore_tests::ore::Run::of(child.wait_with_output().expect("ore restore ends"));
    eprintln!(
        "restore while the gateway died: exit {}\n{}",
        r.code, r.stderr
    );
    assert_ne!(r.code, 0, "a restore cannot complete without its store");
    assert!(
        r.stderr.contains("s3://"),
        "the error names the archive: {}",
        r.stderr
    );
    assert!(
        !r.stderr.contains("is corrupt"),
        "an unreachable store was reported as damage: {}",
        r.stderr
    );
}

/// Starts `ore restore home DEST`, waits until it has written its first file, kills the
/// gateway, and returns how the restore ended and how long after the kill it took.
fn restore_while_the_gateway_dies(
    o: &Ore,
    c: &mut Cluster,
    dest: &Path,
) -> (ore_tests::ore::Run, Duration) {
    let child = o
        .cmd(&["restore", "home", dest.to_str().expect("utf-8")])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("ore restore starts");
    let deadline = Instant::now() + Duration::from_secs(60);
    // Polled: a restore sends no notice of its first file.
    while std::fs::read_dir(dest).map_or(0, |d| d.count()) == 0 {
        assert!(Instant::now() < deadline, "the restore wrote nothing");
        std::thread::sleep(Duration::from_millis(2));
    }
    c.kill(Role::Gateway);
    let killed = Instant::now();
    let r = ore_tests::ore::Run::of(child.wait_with_output().expect("ore restore ends"));
    (r, killed.elapsed())
}

#[test]
fn a_restore_whose_store_stops_answering_fails_after_one_schedule_of_retries_not_one_per_block() {
    // Regression: each read left went through its own retries (five, backing off up to 5 s)
    // before failing: 15.3 s and 47 warnings after the gateway died. Now the first read that
    // gets no answer gives up the reads waiting in their retries, and later reads are sent
    // once (LAYOUT.md, "Reads when the store stops answering").
    let mut c = Cluster::start();
    let d = scratch();
    let src = d.path().join("src");
    // 128 MiB: more than a reader holds ahead (48 MiB), so most reads are still to come when
    // the gateway dies.
    std::fs::create_dir_all(&src).expect("mkdir");
    for i in 0..128 {
        std::fs::write(src.join(format!("f{i:03}")), bytes(70_000 + i, 1 << 20)).expect("write");
    }
    let o = Ore::new(c.archive("restore-down", "--spill 0"));
    o.run(&["init"]).expect(0, "init");
    o.snapshot("home", &src);
    let (r, took) = restore_while_the_gateway_dies(&o, &mut c, &d.path().join("dest"));
    eprintln!(
        "restore ended {took:?} after the gateway died: exit {}\n{}",
        r.code, r.stderr
    );
    assert_ne!(r.code, 0, "a restore cannot complete without its store");
    assert!(
        r.stderr.contains("s3://") && r.stderr.contains("Connection refused"),
        "the error names the archive and why: {}",
        r.stderr
    );
    assert!(
        took < Duration::from_secs(8),
        "one schedule of retries (about 3 s), not one per block: {took:?}"
    );
    // Regression: every file left gave its own warning (88 in one run). Now the restore
    // starts no file once a read got no answer, and says so once, with how many were left.
    let said = r.stderr.matches("Connection refused").count();
    assert!(
        said <= 2
            && r.stderr.contains("not restored")
            && r.stderr.contains("run the restore again"),
        "one message for the store that stopped answering, not one per file ({said}): {}",
        r.stderr
    );
}
