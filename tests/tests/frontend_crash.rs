//! Snapshots interrupted at many points — the backend killed after N operations, the frontend
//! killed at random moments — must leave every tag restorable, and a re-run must complete.
//! Also: two snapshots racing for one tag both end up on its chain.

use ore_tests::ore::{scratch, Ore, Run};
use ore_tests::trees::{assert_same, bytes};
use std::path::Path;
use std::time::Duration;

fn source(dir: &Path) {
    seeded(dir, 0)
}

fn seeded(dir: &Path, seed: u64) {
    for d in 0..8 {
        let sub = dir.join(format!("d{d}"));
        std::fs::create_dir_all(&sub).unwrap();
        for f in 0..25 {
            // Above the size below which files share bundles: a block each.
            let len = if f % 10 == 0 {
                400_000
            } else {
                17_000 + f * 100
            };
            std::fs::write(
                sub.join(format!("f{f}")),
                bytes(seed * 10_000 + (d * 100 + f) as u64, len),
            )
            .unwrap();
        }
    }
}

#[test]
fn backend_killed_at_many_points_leaves_tags_restorable() {
    let d = scratch();
    let src = d.path().join("src");
    source(&src);
    let ore = Ore::fs(&d.path().join("fs"));
    ore.snapshot("base", &src);
    // Change the tree's contents for the runs that get killed, then put it back: each killed
    // run tries to store new blocks.
    let work = d.path().join("work");
    source(&work);
    let mut killed = 0;
    let mut round = 0;
    // Each fault, and whether the snapshot must fail: a fault before the tag moves fails it;
    // one after (at the tag move's answer, or the reflog's flush) may leave it done.
    for (fault, fails) in [
        ("kill,after=1", true),
        ("kill,after=3", true),
        ("kill,after=10,op=put", true),
        ("kill,after=40,op=put", true),
        ("kill,after=120,op=put", true),
        // The snapshot block's flush, the last step before the tag moves.
        ("kill,after=0,op=flush", true),
        // The reflog's flush, after the tag moved.
        ("kill,after=1,op=flush", false),
        ("kill,after=0,op=set-tag", false),
        ("kill,after=0,op=set-tag,point=before", true),
        ("error,after=30,op=put", true),
        ("error,after=0,op=flush", true),
    ] {
        round += 1;
        // New contents each round, so every run has blocks to store.
        seeded(&work, round as u64);
        // The fault counts requests of one backend process: one connection, no lanes.
        let out = ore
            .cmd(&["snapshot", "work", work.to_str().unwrap()])
            .env("ORE_FAULT", fault)
            .env("ORE_LANES", "1")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        if fails {
            assert_eq!(
                out.status.code(),
                Some(1),
                "{fault}: the snapshot fails: {err}"
            );
            assert!(
                err.contains("backend-fs"),
                "{fault}: the error names the archive: {err}"
            );
            killed += 1;
        }
        // Whatever happened, every tag restores completely.
        all_tags_restore(&ore, &src, d.path(), round);
    }
    assert_eq!(killed, 9);
    // A clean re-run completes and stores the tree.
    ore.snapshot("work", &work);
    let dest = d.path().join("final");
    ore.restore("work", &dest).expect(0, "final restore");
    assert_same(&work, &dest);
}

#[test]
fn frontend_killed_at_random_moments_leaves_tags_restorable() {
    let (ore, d) = Ore::local();
    let src = d.path().join("src");
    source(&src);
    ore.snapshot("base", &src);
    let work = d.path().join("work");
    source(&work);
    let mut seed = 0x5eed_u64;
    for round in 0..12 {
        std::fs::write(
            work.join(format!("d{}/new-{round}", round % 8)),
            bytes(round, 200_000),
        )
        .unwrap();
        let mut child = ore
            .cmd(&["snapshot", "work", work.to_str().unwrap()])
            .spawn()
            .unwrap();
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_millis(5 + seed % 250));
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
        let _ = child.wait();
        all_tags_restore(&ore, &src, d.path(), round as usize);
    }
    // The re-run completes and holds everything.
    ore.snapshot("work", &work);
    let dest = d.path().join("final");
    ore.restore("work", &dest).expect(0, "final restore");
    assert_same(&work, &dest);
    let base = d.path().join("base");
    ore.restore("base", &base).expect(0, "base restore");
    assert_same(&src, &base);
}

/// After a crash, `base` restores to exactly `src`, and `work` (if it exists: it may name any
/// earlier round's tree) restores without errors.
fn all_tags_restore(ore: &Ore, src: &Path, dir: &Path, round: usize) {
    let dest = dir.join(format!("b-{round}"));
    ore.restore("base", &dest).expect(0, "base after a crash");
    assert_same(src, &dest);
    std::fs::remove_dir_all(&dest).unwrap();
    if ore.run(&["tags"]).expect(0, "tags").stdout.contains("work") {
        let dest = dir.join(format!("w-{round}"));
        ore.restore("work", &dest).expect(0, "work after a kill");
        std::fs::remove_dir_all(&dest).unwrap();
    }
}

#[test]
fn racing_snapshots_to_one_tag_are_both_kept() {
    let d = scratch();
    let src = d.path().join("src");
    source(&src);
    let ore = Ore::fs(&d.path().join("fs"));
    ore.snapshot("t", &src);
    let a = ore
        .cmd(&["snapshot", "t", src.to_str().unwrap(), "--no-cache"])
        .spawn()
        .unwrap();
    let b = ore
        .cmd(&["snapshot", "t", src.to_str().unwrap(), "--no-cache"])
        .spawn()
        .unwrap();
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert!(a.status.success() && b.status.success());
    let log = ore.run(&["log", "t"]).expect(0, "log");
    assert_eq!(
        log.stdout.lines().count(),
        3,
        "no snapshot was lost: {}",
        log.stdout
    );
}

/// Checkpoints: a backend keeps the blocks it accepted only once a flush made them durable, so
/// a long snapshot flushes every `ORE_CHECKPOINT` bytes, and a run interrupted by a dying backend
/// is resumed without storing again what it had sent before its last checkpoint.
#[test]
fn a_snapshot_cut_off_by_its_backend_resumes_from_its_last_checkpoint() {
    let d = scratch();
    let src = d.path().join("src");
    source(&src);
    let ore = Ore::fs(&d.path().join("fs"));
    let stored = |fault: Option<&str>| {
        let mut c = ore.cmd(&["snapshot", "--json", "t", src.to_str().unwrap()]);
        c.env("ORE_CHECKPOINT", "1");
        // The fault counts the puts of one backend process: one connection, no lanes.
        c.env("ORE_LANES", "1");
        if let Some(f) = fault {
            c.env("ORE_FAULT", f);
        }
        ore_tests::ore::Run::of(c.output().unwrap())
    };
    // The 41st put kills the backend; the puts before it were flushed at checkpoints.
    let r = stored(Some("kill,after=40,op=put"));
    assert_eq!(r.code, 1, "{}", r.stderr);
    let r = stored(None).expect(0, "the re-run");
    let v: serde_json::Value = serde_json::from_str(r.stdout.trim()).unwrap();
    let again = v["stats"]["new_blocks"].as_u64().unwrap();
    // A clean run on a fresh archive stores the same tree: the re-run stored 40 fewer blocks.
    let fresh = Ore::fs(&d.path().join("fresh"));
    let r = Run::of(
        fresh
            .cmd(&["snapshot", "--json", "t", src.to_str().unwrap()])
            .output()
            .unwrap(),
    )
    .expect(0, "a clean run");
    let v: serde_json::Value = serde_json::from_str(r.stdout.trim()).unwrap();
    let all = v["stats"]["new_blocks"].as_u64().unwrap();
    // Puts come from parallel threads: a put sent by one thread may be accepted after
    // another thread's put was, before its own checkpoint is answered, so the last few of the
    // 40 may be lost with the backend. Without checkpoints all 40 would be (again == all).
    // There is no lower bound: the count of puts is not exact from run to run (a clean run in
    // CI once counted 255 where it counts 253 here, and failed `again >= all - 40`), and a
    // re-run that stored too little is caught by the restore below.
    assert!(again <= all - 30, "re-run {again} blocks, clean run {all}");
    let dest = d.path().join("out");
    ore.restore("t", &dest).expect(0, "restore");
    assert_same(&src, &dest);
}
