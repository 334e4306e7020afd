//! Issue 22, finding 1 (the frontend's half) and finding 6 (a lost reflog): `ore check`
//! compares every tag with its own history.
//!
//! A tag that silently names an older snapshot than its reflog's newest move (a repair that
//! lost the record that set it; here, backend-fs's tag file put back by hand, which is what
//! such a repair leaves) has only sound blocks below it: a check of blocks alone said "no
//! problems". Legitimate moves — a reset back, a forget's rewrite, a forget killed before it
//! recorded its move — must not be reported.

use ore_tests::ore::{scratch, Ore};
use std::path::Path;

/// A backend-fs archive with two snapshots of tag `t`: (archive dir, ore, older key, newer key).
fn two_snapshots(d: &Path) -> (std::path::PathBuf, Ore, String, String) {
    let fsdir = d.join("fs");
    let ore = Ore::fs(&fsdir);
    let src = d.join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("a"), b"first").unwrap();
    let older = ore.snapshot("t", &src);
    std::fs::write(src.join("a"), b"second").unwrap();
    let newer = ore.snapshot("t", &src);
    (fsdir, ore, older, newer)
}

#[test]
fn a_tag_rolled_back_behind_its_reflog_is_reported_with_both_keys_and_the_repair() {
    let d = scratch();
    let (fsdir, ore, older, newer) = two_snapshots(d.path());
    ore.run(&["check"]).expect(0, "check before");
    // What a repair that lost the newest tag record leaves: the tag names the older snapshot's
    // place on the chain (the link `t~1` names).
    let older_node = ore
        .run(&["reflog", "t", "--json"])
        .expect(0, "reflog")
        .stdout;
    let older_node: serde_json::Value =
        serde_json::from_str(older_node.lines().nth(1).unwrap()).unwrap();
    std::fs::write(
        fsdir.join("tags/t"),
        older_node["new_node"].as_str().unwrap(),
    )
    .unwrap();
    assert_eq!(
        ore.run(&["log", "t"])
            .expect(0, "log")
            .stdout
            .lines()
            .count(),
        1,
        "the tag shows the older snapshot as its newest"
    );
    let r = ore.run(&["check"]).expect(1, "check of a rolled-back tag");
    for what in [
        "tag t",
        older.as_str(),
        newer.as_str(),
        "behind its own history",
        &format!("ore reset t {newer}"),
    ] {
        assert!(r.stdout.contains(what), "{what:?} in: {}", r.stdout);
    }
    // The reflog entry's time is named (as `ore reflog` shows it).
    let time = ore.run(&["reflog", "t"]).expect(0, "reflog").stdout[..19].to_string();
    assert!(r.stdout.contains(&time), "{time} in: {}", r.stdout);
    let json = ore.run(&["--json", "check"]).expect(1, "check --json");
    assert!(
        json.stdout.contains("\"history\"") && json.stdout.contains(&newer),
        "{}",
        json.stdout
    );
    // The repair it names puts it right.
    ore.run(&["reset", "t", &newer]).expect(0, "reset");
    ore.run(&["check"]).expect(0, "check after the repair");
}

#[test]
fn a_lost_tag_is_reported_with_the_value_its_reflog_gave_it() {
    let d = scratch();
    let (fsdir, ore, _, newer) = two_snapshots(d.path());
    std::fs::remove_file(fsdir.join("tags/t")).unwrap();
    let r = ore.run(&["check"]).expect(1, "check of a lost tag");
    assert!(
        r.stdout.contains("tag t does not exist") && r.stdout.contains(&newer),
        "{}",
        r.stdout
    );
}

#[test]
fn legitimate_moves_of_a_tag_are_not_reported_as_rollbacks() {
    let d = scratch();
    let (fsdir, ore, older, newer) = two_snapshots(d.path());
    // A reset back is recorded, and so is the reset forward again.
    ore.run(&["reset", "t", &older]).expect(0, "reset back");
    ore.run(&["check"]).expect(0, "check after a reset back");
    ore.run(&["reset", "t", &newer]).expect(0, "reset forward");
    // A forget rewrites the chain: the tag names a new key that descends from nothing it had.
    ore.run(&["forget", "t", "--keep-last", "1"])
        .expect(0, "forget");
    ore.run(&["check"]).expect(0, "check after forget");
    // A forget killed after moving the tag and before recording the move: the reflog is one
    // entry short (its head put back to the one before), and the backend's tag history saw the
    // move. Not a rollback.
    let heads = ore
        .run(&["--json", "tag-history", "ore:reflog"])
        .expect(0, "tag-history");
    let values: Vec<String> = heads
        .stdout
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["value"].as_str().unwrap().to_string()
        })
        .collect();
    let before_last = &values[values.len() - 2];
    std::fs::write(fsdir.join("tags/ore:reflog"), before_last).unwrap();
    let r = ore.run(&["reflog", "t"]).expect(0, "reflog");
    assert!(
        !r.stdout.lines().next().unwrap_or("").contains("forget"),
        "the forget's entry is gone: {}",
        r.stdout
    );
    ore.run(&["check"])
        .expect(0, "check after a forget killed before recording its move");
}

#[test]
fn a_deleted_reflog_is_reported_with_the_head_that_puts_it_back() {
    let d = scratch();
    let (fsdir, ore, _, _) = two_snapshots(d.path());
    let head = std::fs::read_to_string(fsdir.join("tags/ore:reflog")).unwrap();
    std::fs::remove_file(fsdir.join("tags/ore:reflog")).unwrap();
    let r = ore
        .run(&["check"])
        .expect(1, "check of an archive without its reflog");
    assert!(
        r.stdout.contains("the reflog is missing")
            && r.stdout.contains(&format!("ore reflog reset {head}")),
        "{}",
        r.stdout
    );
    ore.run(&["reflog", "reset", &head])
        .expect(0, "reflog reset");
    ore.run(&["check"]).expect(0, "check with the reflog back");
}

#[test]
fn a_fresh_archive_without_moves_has_no_reflog_and_checks_clean() {
    let d = scratch();
    let ore = Ore::fs(&d.path().join("fs"));
    ore.run(&["check"]).expect(0, "check of an empty archive");
}

#[test]
fn an_unreadable_reflog_is_reported_as_such_besides_its_damaged_block() {
    let d = scratch();
    let (fsdir, ore, _, _) = two_snapshots(d.path());
    let head = std::fs::read_to_string(fsdir.join("tags/ore:reflog")).unwrap();
    let block = fsdir
        .join("blocks")
        .join(&head[..2])
        .join(&head[2..4])
        .join(&head);
    let mut bytes = std::fs::read(&block).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x55;
    std::fs::write(&block, bytes).unwrap();
    let r = ore.run(&["check"]).expect(1, "check with a damaged reflog");
    assert!(
        r.stdout.contains(&format!("block {head} (reflog)")),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("the reflog cannot be read")
            && r.stdout
                .contains("no tag could be compared with its history"),
        "{}",
        r.stdout
    );
}

/// The real crash: the backend killed right after it moved the tag, before `ore` could record
/// the move (`ORE_FAULT`, PROTOCOL.md "Fault injection"), during a forget and a snapshot. The
/// tag is then ahead of its reflog, not behind it: check stays clean.
#[test]
fn a_run_killed_between_moving_a_tag_and_recording_it_is_not_reported() {
    let d = scratch();
    let (fsdir, ore, _, _) = two_snapshots(d.path());
    let src = d.path().join("src");
    let mut unrecorded = 0;
    for (i, args) in [
        vec!["forget", "t", "--keep-last", "1"],
        vec!["snapshot", "t", src.to_str().unwrap()],
    ]
    .into_iter()
    .enumerate()
    {
        for n in 0..4 {
            std::fs::write(src.join("a"), format!("run {i} {n}")).unwrap();
            let before = std::fs::read_to_string(fsdir.join("tags/t")).unwrap();
            let dying = Ore::new(format!(
                "env ORE_FAULT=kill,op=set-tag,after={n},point=after {} {}",
                ore_tests::quote(&ore_tests::bin("backend-fs")),
                ore_tests::quote(&fsdir)
            ));
            let r = dying.run(&args);
            let after = std::fs::read_to_string(fsdir.join("tags/t")).unwrap();
            let newest = ore
                .run(&["--json", "reflog", "t"])
                .expect(0, "reflog")
                .stdout;
            if r.code != 0 && after != before && !newest.lines().next().unwrap().contains(&after) {
                unrecorded += 1;
            }
            let c = ore.run(&["check"]);
            assert_eq!(
                c.code, 0,
                "{args:?} killed after set-tag {n}: {}\n{}",
                c.stdout, c.stderr
            );
        }
    }
    assert!(unrecorded >= 2, "both runs were killed in the window once");
}

/// Found by attacking `check` after format 2: a tag put back to the place its snapshot had
/// before a forget linked it anew was reported with one snapshot key on both sides, and the
/// repair it named (`ore reset TAG KEY`) answered "already names" and changed nothing. The
/// places are what differ: the report names both links, and its repair works.
#[test]
fn a_tag_rolled_back_to_an_earlier_place_of_its_snapshot_is_reported_by_its_links() {
    let d = scratch();
    let (fsdir, ore, _, _) = two_snapshots(d.path());
    std::fs::write(d.path().join("src/a"), b"third").unwrap();
    ore.snapshot("t", &d.path().join("src"));
    ore.run(&["forget", "t", "--keep-last", "2"])
        .expect(0, "forget");
    let reflog = ore
        .run(&["reflog", "t", "--json"])
        .expect(0, "reflog")
        .stdout;
    let entry: serde_json::Value = serde_json::from_str(reflog.lines().next().unwrap()).unwrap();
    assert_eq!(entry["action"], "forget");
    assert_eq!(entry["old"], entry["new"], "the same snapshot");
    let before = entry["old_node"].as_str().unwrap();
    std::fs::write(fsdir.join("tags/t"), before).unwrap();
    let r = ore
        .run(&["check"])
        .expect(1, "check of the rolled-back tag");
    assert!(
        r.stdout.contains("chain link") && r.stdout.contains(before),
        "{}",
        r.stdout
    );
    let repair = r
        .stdout
        .lines()
        .find_map(|l| l.split("ore reset ").nth(1))
        .unwrap_or_else(|| panic!("a repair is named: {}", r.stdout));
    let args: Vec<&str> = std::iter::once("reset")
        .chain(repair.split_whitespace())
        .collect();
    ore.run(&args).expect(0, "the repair");
    ore.run(&["check"]).expect(0, "check after the repair");
}
