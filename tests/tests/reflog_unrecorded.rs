//! A tag move the reflog could not record must not end as a clean run.
//!
//! The reflog is what `ore check` compares tags with and what a rollback is repaired from, so
//! a run that moved a tag but could not append the move used to print one warning and exit 0:
//! a script saw success and the history had a hole. The move stands (undoing it could lose
//! the snapshot), and the run exits 3, naming the tag and what it named before.
//!
//! A snapshot stores the reflog block that records its move together with its own blocks,
//! under one flush, before the tag moves: a refused put now stops the run with the tag
//! unmoved, and only a refused move of `ore:reflog` itself can leave a move unrecorded.

use ore_tests::ore::{scratch, Ore, Run};
use std::path::Path;

/// What one snapshot through a backend whose `op` fails from its `n`-th call on did: the
/// tag's value before and after, whether the reflog's newest entry names the new value, and
/// the run.
struct Outcome {
    before: String,
    after: String,
    recorded: bool,
    run: Run,
}

fn snapshot_failing(ore: &Ore, fsdir: &Path, src: &Path, op: &str, n: usize) -> Outcome {
    std::fs::write(src.join("a"), format!("run {op} {n}")).unwrap();
    let before = std::fs::read_to_string(fsdir.join("tags/t")).unwrap();
    let failing = Ore::new(format!(
        "env ORE_FAULT=error,op={op},after={n} {} {}",
        ore_tests::quote(&ore_tests::bin("backend-fs")),
        ore_tests::quote(fsdir)
    ));
    let run = failing.run(&["snapshot", "t", src.to_str().unwrap()]);
    let after = std::fs::read_to_string(fsdir.join("tags/t")).unwrap();
    let reflog = ore
        .run(&["reflog", "t", "--json"])
        .expect(0, "reflog")
        .stdout;
    // The tag holds the newest link of its chain (`new_node`; `new` is its snapshot's key).
    let recorded = reflog.lines().next().is_some_and(|l| {
        serde_json::from_str::<serde_json::Value>(l).unwrap()["new_node"] == after.trim()
    });
    Outcome {
        before,
        after,
        recorded,
        run,
    }
}

#[test]
fn a_snapshot_whose_move_the_reflog_could_not_record_exits_3_naming_the_tag() {
    let d = scratch();
    let (ore, fsdir, src) = ore_tests::ore::fs_with_one_snapshot(d.path());
    // The backend answers every tag move from the n-th on with an error (PROTOCOL.md "Fault
    // injection"). For some n the snapshot's tag moves and only `ore:reflog`'s move (and the
    // retry's) is refused: that is the case under test.
    let mut unrecorded = 0;
    for n in 0..6 {
        let o = snapshot_failing(&ore, &fsdir, &src, "set-tag", n);
        if o.after == o.before {
            assert_ne!(
                o.run.code, 0,
                "move {n} refused, the tag unmoved: {}",
                o.run.stderr
            );
            continue;
        }
        if o.recorded {
            continue;
        }
        unrecorded += 1;
        let r = &o.run;
        assert_eq!(
            r.code, 3,
            "the tag moved to {} unrecorded, yet the run said: {}",
            o.after, r.stderr
        );
        for what in [
            "tag t now names",
            o.after.as_str(),
            o.before.as_str(),
            "could not be added to the reflog",
            "1 tag move(s) could not be recorded",
        ] {
            assert!(r.stderr.contains(what), "{what:?} in: {}", r.stderr);
        }
        // The snapshot itself is sound and restores.
        ore.run(&["check", "--read-data"]).expect(0, "check after");
    }
    assert!(unrecorded >= 1, "some n refused only the reflog's move");
}

#[test]
fn a_refused_put_never_leaves_a_moved_tag_unrecorded() {
    let d = scratch();
    let (ore, fsdir, src) = ore_tests::ore::fs_with_one_snapshot(d.path());
    // Before the reflog's block went out with the snapshot's, a put refused after the tag
    // moved (the reflog's own block) left the move unrecorded.
    let mut moved = 0;
    for n in 0..12 {
        let o = snapshot_failing(&ore, &fsdir, &src, "put", n);
        if o.after == o.before {
            assert_ne!(
                o.run.code, 0,
                "put {n} refused, the tag unmoved: {}",
                o.run.stderr
            );
            continue;
        }
        moved += 1;
        assert!(
            o.recorded,
            "put {n} refused: the tag moved to {} but the reflog does not say so; the run said: {}",
            o.after, o.run.stderr
        );
        assert_eq!(o.run.code, 0, "{}", o.run.stderr);
    }
    assert!(
        moved >= 1,
        "for some n every put the snapshot needed went through"
    );
    ore.run(&["check", "--read-data"]).expect(0, "check after");
}
