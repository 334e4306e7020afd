//! Damage that gc's compaction meets is reported, and gc does not end as a clean run.
//!
//! gc compacts splitlog's logs after removing blocks. A log holding a damaged record is kept
//! as evidence and named in the backend's `problems`, but `ore gc` used to print only the
//! compaction's summary line and exit 0, so a nightly `ore gc` never told anyone.

use ore_tests::ore::{scratch, Ore};

#[test]
fn a_gc_whose_compaction_meets_a_damaged_record_names_it_and_exits_3() {
    let d = scratch();
    let dir = d.path().join("arch");
    let ore = Ore::new(format!(
        "{} {}",
        ore_tests::quote(&ore_tests::bin("backend-splitlog")),
        ore_tests::quote(&dir)
    ));
    ore.run(&["init"]).expect(0, "init");
    let src = d.path().join("src");
    std::fs::create_dir(&src).unwrap();
    // Bytes that do not compress (xorshift), so the log holds them as they are.
    let bytes = |seed: u64| -> Vec<u8> {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..1_000_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    };
    std::fs::write(src.join("old"), bytes(1)).unwrap();
    ore.snapshot("t", &src);
    std::fs::remove_file(src.join("old")).unwrap();
    std::fs::write(src.join("new"), bytes(2)).unwrap();
    ore.snapshot("t", &src);
    // The first snapshot's data is the first record's payload onwards: flip one of its bytes.
    let log = dir.join("log-000001");
    let mut all = std::fs::read(&log).unwrap();
    all[300_000] ^= 0x40;
    std::fs::write(&log, &all).unwrap();
    ore.run(&["forget", "t", "--keep-last", "1"])
        .expect(0, "forget");
    ore.run(&["reflog", "expire", "--older-than", "0s"])
        .expect(0, "reflog expire");
    let r = ore.run(&["gc", "--compact-threshold", "0.1"]);
    assert_eq!(r.code, 3, "gc meeting damage: {}\n{}", r.stdout, r.stderr);
    for what in [
        "compaction found damage",
        "log-000001",
        "ore check --read-data",
    ] {
        assert!(r.stderr.contains(what), "{what:?} in: {}", r.stderr);
    }
    assert!(log.exists(), "the damaged log is kept as evidence");
    let json = ore.run(&["--json", "gc"]);
    assert!(json.stdout.contains("\"problems\""), "{}", json.stdout);
    // What the tag reaches is intact.
    ore.restore("t", &d.path().join("out")).expect(0, "restore");
    assert_eq!(std::fs::read(d.path().join("out/new")).unwrap(), bytes(2));
}
