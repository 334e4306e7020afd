//! Over a slow link, a snapshot and a restore must not wait one round trip per file.
//!
//! Regression test for the frontend asking `exists` and reading blocks one file at a time: a
//! snapshot of /usr/share over a link of 20 ms each way took 480 s instead of 4 s. Here 600
//! small files in 30 directories go through a link of 50 ms each way: one round trip per file
//! would take at least 60 s for each direction; pipelined, both together take a few seconds.

use ore_tests::ore::{scratch, Ore};
use ore_tests::trees::{assert_same, bytes};
use ore_tests::{bin, quote};
use std::time::{Duration, Instant};

#[test]
fn snapshot_and_restore_over_a_slow_link_do_not_wait_a_round_trip_per_file() {
    let d = scratch();
    let src = d.path().join("src");
    for dir in 0..30 {
        let sub = src.join(format!("d{dir:02}"));
        std::fs::create_dir_all(&sub).unwrap();
        for f in 0..20 {
            std::fs::write(sub.join(format!("f{f}")), bytes(dir * 100 + f, 2000)).unwrap();
        }
    }
    let slow = format!(
        "{} 50 backend-splitlog {}",
        bin("delay-link").display(),
        quote(&d.path().join("archive"))
    );
    let o = Ore::new(slow);
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
