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

/// Regression test: a run that ended while its extra connections were still opening left their
/// backend processes running (and over ssh, whose master carries every lane, it waited for them
/// to open before it could end). Here every connection after the first takes a minute to
/// start; `ore cat` of a small file with four lanes asked for returns at once, and none of the
/// three slow starters is left behind.
#[test]
fn a_run_that_ends_before_its_lanes_are_up_stops_them() {
    use std::os::unix::fs::PermissionsExt;
    let d = scratch();
    let src = d.path().join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("small"), b"a few bytes").unwrap();
    // The first connection of each ore process serves the archive, 30 ms away (so that the
    // run lasts long enough for the lanes to have started even on a busy machine); later ones
    // record their process id and sleep in its place (exec, so killing that process ends the
    // sleep).
    let script = d.path().join("slow-lanes");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n\
             mark={dir}/first.$PPID\n\
             if [ -e \"$mark\" ]; then echo $$ > {dir}/lane.$$; exec sleep 60; fi\n\
             touch \"$mark\"\n\
             exec {delay} 30 {backend} {archive}\n",
            dir = quote(d.path()),
            delay = quote(&bin("delay-link")),
            backend = quote(&bin("backend-splitlog")),
            archive = quote(&d.path().join("archive")),
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let o = Ore::new(quote(&script));
    o.run(&["init"]).expect(0, "init");
    o.snapshot("t", &src);
    let started = Instant::now();
    let out = o
        .cmd(&["cat", "t:small"])
        .env("ORE_LANES", "4")
        .output()
        .unwrap();
    let took = started.elapsed();
    let r = ore_tests::ore::Run::of(out).expect(0, "cat");
    assert_eq!(r.stdout, "a few bytes");
    assert!(took < Duration::from_secs(30), "cat took {took:?}");
    // Every lane that got as far as starting was killed (given a moment to be reaped). Each
    // one left a file named after its process id.
    let lane_pids = || -> Vec<u32> {
        std::fs::read_dir(d.path())
            .unwrap()
            .filter_map(|e| {
                let name = e.unwrap().file_name().into_string().unwrap();
                name.strip_prefix("lane.")?.parse().ok()
            })
            .collect()
    };
    let lanes = lane_pids();
    let alive = |pid: u32| {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| {
                !s.rsplit(')')
                    .next()
                    .unwrap_or("")
                    .trim_start()
                    .starts_with('Z')
            })
            .unwrap_or(false)
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while lanes.iter().any(|&p| alive(p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let left: Vec<u32> = lanes.iter().copied().filter(|&p| alive(p)).collect();
    assert!(left.is_empty(), "lane processes left running: {left:?}");
    assert!(!lanes.is_empty(), "cat asked for lanes and started none");
    // Commands that exchange a few small blocks start no lanes at all, even when asked to.
    let before = lane_pids().len();
    for args in [&["tags"][..], &["log", "t"], &["ls", "t"]] {
        let out = o.cmd(args).env("ORE_LANES", "4").output().unwrap();
        ore_tests::ore::Run::of(out).expect(0, "a brief command");
    }
    assert_eq!(
        lane_pids().len(),
        before,
        "a brief command started extra connections"
    );
}

/// Regression: a request stayed in the client's buffer until someone waited for its own answer.
/// A snapshot's walk asks `exists` of each file and resolver threads wait for the answers later,
/// in order, over several lanes: a question asked while a resolver waited on another lane left
/// only when a resolver reached it, a round trip after the answers before it. A snapshot of
/// /usr/share without a file cache (every block already stored) over a link of 20 ms each way
/// took 6.0 s instead of 2.6 s. Now a request left in the buffer is sent a moment later, waited
/// for or not: asked, then waited for after three round trips, its answer is already there.
#[test]
fn a_request_is_sent_without_anyone_waiting_for_it() {
    use protocol::Backend;
    let c = connect::Client::connect(&format!(
        "{} 100 {}",
        bin("delay-link").display(),
        bin("backend-memory").display()
    ))
    .unwrap();
    // The connection is up; each round trip now takes 200 ms.
    c.put(testkit::conformance::test_key(1), b"x").unwrap();
    let asked = c.start_exists(vec![testkit::conformance::test_key(1)]);
    std::thread::sleep(Duration::from_millis(600));
    let started = Instant::now();
    assert_eq!(asked.wait().unwrap(), [true]);
    let waited = started.elapsed();
    assert!(
        waited < Duration::from_millis(150),
        "the answer took {waited:?} after the wait began: the request left only then"
    );
    c.close().unwrap();
}
