//! A tag move the reflog could not record must not end as a clean run.
//!
//! The reflog is what `ore check` compares tags with and what a rollback is repaired from, so
//! a run that moved a tag but could not append the move (the backend refused the reflog
//! block) used to print one warning and exit 0: a script saw success and the history had a
//! hole. The move stands (undoing it could lose the snapshot), and the run exits 3, naming the
//! tag and what it named before.

use ore_tests::ore::{scratch, Ore};

#[test]
fn a_snapshot_whose_move_the_reflog_could_not_record_exits_3_naming_the_tag() {
    let d = scratch();
    let fsdir = d.path().join("fs");
    let ore = Ore::fs(&fsdir);
    let src = d.path().join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("a"), b"first").unwrap();
    ore.snapshot("t", &src);
    // The backend answers every put from the n-th on with an error (PROTOCOL.md "Fault
    // injection"). For some n the snapshot's own blocks are stored and its tag moves, and only
    // the reflog's block is refused: that is the case under test.
    let mut unrecorded = 0;
    for n in 0..12 {
        std::fs::write(src.join("a"), format!("run {n}")).unwrap();
        let before = std::fs::read_to_string(fsdir.join("tags/t")).unwrap();
        let failing = Ore::new(format!(
            "env ORE_FAULT=error,op=put,after={n} {} {}",
            ore_tests::quote(&ore_tests::bin("backend-fs")),
            ore_tests::quote(&fsdir)
        ));
        let r = failing.run(&["snapshot", "t", src.to_str().unwrap()]);
        let after = std::fs::read_to_string(fsdir.join("tags/t")).unwrap();
        let reflog = ore.run(&["reflog", "t"]).expect(0, "reflog").stdout;
        // `ore reflog` shows keys by their first 12 digits.
        let recorded = reflog
            .lines()
            .next()
            .is_some_and(|l| l.contains(&after[..12]));
        if after == before {
            assert_ne!(r.code, 0, "put {n} refused, the tag unmoved: {}", r.stderr);
            continue;
        }
        if recorded {
            continue;
        }
        unrecorded += 1;
        assert_eq!(
            r.code, 3,
            "the tag moved to {after} unrecorded, yet the run said: {}",
            r.stderr
        );
        for what in [
            "tag t now names",
            after.as_str(),
            before.as_str(),
            "could not be added to the reflog",
            "1 tag move(s) could not be recorded",
        ] {
            assert!(r.stderr.contains(what), "{what:?} in: {}", r.stderr);
        }
        // The snapshot itself is sound and restores.
        ore.run(&["check", "--read-data"]).expect(0, "check after");
    }
    assert!(unrecorded >= 1, "some n refused only the reflog's block");
}
