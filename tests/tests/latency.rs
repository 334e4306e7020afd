//! Over a slow link, a snapshot and a restore must not wait one round trip per file.
//!
//! Regression test for the frontend asking `exists` and reading blocks one file at a time: a
//! snapshot of /usr/share over a link of 20 ms each way took 480 s instead of 4 s. Here 600
//! small files in 30 directories go through a link of 50 ms each way: one round trip per file
//! would take at least 60 s for each direction; pipelined, both together take a few seconds.

use ore_tests::ore::{scratch, Ore};
use ore_tests::trees::{assert_same, grid};
use ore_tests::{bin, quote};
use std::path::Path;
use std::time::{Duration, Instant};

/// A splitlog archive in `dir` behind a link of `ms` milliseconds each way.
fn distant(dir: &Path, ms: u32) -> String {
    format!(
        "{} {ms} backend-splitlog {}",
        bin("delay-link").display(),
        quote(dir)
    )
}

#[test]
fn snapshot_and_restore_over_a_slow_link_do_not_wait_a_round_trip_per_file() {
    let d = scratch();
    let src = d.path().join("src");
    grid(&src, 30, 20, 2000);
    let o = Ore::new(distant(&d.path().join("archive"), 50));
    o.run(&["init"]).expect(0, "init");
    let started = Instant::now();
    o.snapshot("t", &src);
    let snapshot = started.elapsed();
    let dest = d.path().join("dest");
    let started = Instant::now();
    o.restore("t", &dest).expect(0, "restore");
    let restore = started.elapsed();
    assert_same(&src, &dest);
    let bound = Duration::from_secs(20);
    assert!(
        snapshot < bound && restore < bound,
        "snapshot {snapshot:?}, restore {restore:?}: waiting a round trip per file?"
    );
}

/// Over a link with long round trips ore opens four connections (lanes) to the archive; with
/// splitlog, which admits one process, the later three attach to the first. Blocks are spread
/// over all four, and the archive they make is whole.
#[test]
fn a_distant_archive_is_used_through_four_lanes() {
    let d = scratch();
    let src = d.path().join("src");
    grid(&src, 8, 10, 300_000);
    let o = Ore::new(distant(&d.path().join("archive"), 20));
    o.run(&["init"]).expect(0, "init");
    let run = |args: &[&str]| {
        let out = o.cmd(args).env("ORE_DEBUG", "1").output().unwrap();
        ore_tests::ore::Run::of(out)
    };
    // Lanes join in the background; a run long enough sees them join.
    let r = run(&["snapshot", "t", src.to_str().unwrap()]).expect(0, "snapshot");
    assert!(
        r.stderr.contains("4 connection(s) of 4 asked for"),
        "{}",
        r.stderr
    );
    let dest = d.path().join("dest");
    run(&["restore", "t", dest.to_str().unwrap()]).expect(0, "restore");
    assert_same(&src, &dest);
    run(&["check", "--read-data"]).expect(0, "check");
    // Near by (no delay) one connection is enough.
    let near = Ore::new(format!(
        "backend-splitlog {}",
        quote(&d.path().join("archive"))
    ));
    let out = near.cmd(&["tags"]).env("ORE_DEBUG", "1").output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("asked for"), "{err}");
}
