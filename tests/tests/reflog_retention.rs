//! Issue 26, item 8: `forget` then `gc` freed nothing and nothing said so, because the reflog
//! and the tags' kept history still held every forgotten snapshot. Now gc says how many
//! blocks only they hold and how to free them, applies the archive's reflog retention (14
//! days unless `ore reflog keep` sets another) when it has full access, and `forget --prune`
//! frees a forgotten snapshot's space in one step; an append-only key shortens nothing.

use ore_tests::bin;
use ore_tests::ore::{scratch, Ore};
use std::path::Path;

/// An archive with three snapshots of `t`, each of a different 1 MB file, and one of `u`.
fn archive(d: &Path) -> (Ore, std::path::PathBuf) {
    let arch = d.join("arch");
    let o = Ore::new(arch.display().to_string());
    o.run(&["init"]).expect(0, "init");
    let src = d.join("src");
    std::fs::create_dir(&src).expect("mkdir");
    for i in 0..3u8 {
        // Bytes that do not compress: each snapshot's file is new data.
        let mut x = 0x9e37_79b9_7f4a_7c15u64 + u64::from(i);
        let bytes: Vec<u8> = (0..1_000_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        std::fs::write(src.join("data"), bytes).expect("write");
        o.snapshot("t", &src);
    }
    o.snapshot("u", &src);
    (o, arch)
}

/// `(removed, blocks held only by the reflog)` from `ore --json gc ARGS`.
fn gc(o: &Ore, args: &[&str]) -> (u64, u64, serde_json::Value) {
    let mut all = vec!["--json", "gc"];
    all.extend_from_slice(args);
    let r = o.run(&all).expect(0, "gc");
    let v: serde_json::Value = serde_json::from_str(r.stdout.trim()).expect("JSON");
    (
        v["removed"].as_u64().expect("removed"),
        v["reflog"]["held_only_by_reflog"].as_u64().expect("held"),
        v,
    )
}

#[test]
fn after_forget_gc_says_what_only_the_reflog_holds_and_expire_reflog_frees_it() {
    let d = scratch();
    let (o, _) = archive(d.path());
    o.run(&["forget", "t", "--keep-last", "1"])
        .expect(0, "forget");
    let r = o.run(&["gc"]).expect(0, "gc");
    assert!(
        r.stdout.contains("are held only by the reflog")
            && r.stdout.contains("entries younger than 14d")
            && r.stdout.contains("`ore gc --expire-reflog` frees them"),
        "{}",
        r.stdout
    );
    let (_, held, _) = gc(&o, &[]);
    assert!(held >= 4, "two snapshots, their trees and data: {held}");
    let (would, _, v) = gc(&o, &["--expire-reflog", "--dry-run"]);
    assert!(would >= held, "{v}");
    assert!(
        v["freed"].as_u64().expect("freed") > 2_000_000,
        "two files: {v}"
    );
    let (removed, held, v) = gc(&o, &["--expire-reflog"]);
    assert!(removed >= would, "{v}");
    assert_eq!(held, 0, "{v}");
    o.run(&["check", "--read-data"]).expect(0, "check");
    let r = o.run(&["reflog", "t"]).expect(0, "reflog").stdout;
    assert!(r.is_empty(), "every entry expired: {r}");
}

#[test]
fn gc_applies_the_archives_reflog_retention_and_keeps_younger_entries() {
    let d = scratch();
    let (o, _) = archive(d.path());
    let r = o.run(&["reflog", "keep"]).expect(0, "keep");
    assert_eq!(r.stdout.trim(), "reflog retention: 14d (the default)");
    // The backend dates a tag's values to the second, and a value is expired only once the
    // move that replaced it is older than the retention: values first seen in the second of
    // a later value's replacement cannot be told apart from it, so the forget comes a second
    // after the snapshots.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    o.run(&["forget", "t", "--keep-last", "1"])
        .expect(0, "forget");
    let (_, held, v) = gc(&o, &[]);
    assert!(held > 0, "{v}");
    assert_eq!(v["reflog"]["expired"], 0, "younger than 14 days: {v}");
    o.run(&["reflog", "keep", "0d"]).expect(0, "set 0d");
    assert_eq!(
        o.run(&["reflog", "keep"]).expect(0, "keep").stdout.trim(),
        "reflog retention: 0d"
    );
    let (removed, held, v) = gc(&o, &[]);
    assert!(
        v["reflog"]["expired"].as_u64().expect("expired") >= 4,
        "{v}"
    );
    assert!(removed > 0, "{v}");
    assert_eq!(held, 0, "{v}");
    o.run(&["check", "--read-data"]).expect(0, "check");
    // `never` keeps everything; a bad value changes nothing.
    o.run(&["reflog", "keep", "never"]).expect(0, "never");
    let r = o.run(&["reflog", "keep", "soon"]).expect(1, "bad");
    assert!(r.stderr.contains("reflog retention `soon`"), "{}", r.stderr);
    assert_eq!(
        o.run(&["reflog", "keep"]).expect(0, "keep").stdout.trim(),
        "reflog retention: never"
    );
    o.run(&["reflog", "keep", "default"]).expect(0, "default");
    assert!(o
        .run(&["reflog", "keep"])
        .expect(0, "keep")
        .stdout
        .contains("14d (the default)"));
}

#[test]
fn forget_prune_frees_the_dropped_snapshots_at_once_and_keeps_other_tags_history() {
    let d = scratch();
    let (o, _) = archive(d.path());
    // Tag values are dated to the second; scheduled runs are hours apart.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let r = o
        .run(&["forget", "t", "--keep-last", "1", "--prune"])
        .expect(0, "forget --prune");
    assert!(
        r.stderr.contains(
            "--prune: tag t: 4 reflog entries and 3 earlier value(s) naming what forget dropped"
        ),
        "{}",
        r.stderr
    );
    assert!(r.stdout.contains("removed"), "{}", r.stdout);
    let (_, held, v) = gc(&o, &[]);
    assert_eq!(held, 0, "nothing left that only the reflog holds: {v}");
    assert!(o
        .run(&["reflog", "t"])
        .expect(0, "reflog")
        .stdout
        .is_empty());
    let u = o.run(&["reflog", "u"]).expect(0, "reflog").stdout;
    assert_eq!(u.lines().count(), 1, "u's entry stays: {u}");
    o.run(&["check", "--read-data"]).expect(0, "check");
    assert_eq!(
        o.run(&["log", "t"]).expect(0, "log").stdout.lines().count(),
        1
    );
}

#[test]
fn an_append_only_connection_never_shortens_history() {
    let d = scratch();
    let (owner, arch) = archive(d.path());
    let id = format!(
        "{} --append-only {}",
        bin("backend-splitlog").display(),
        arch.display()
    );
    let ao = Ore::new(id);
    let before = owner.run(&["reflog"]).expect(0, "reflog").stdout;
    let r = ao
        .run(&["forget", "t", "--keep-last", "1", "--prune"])
        .expect(1, "refused");
    assert!(
        r.stderr.contains("--prune needs full access"),
        "{}",
        r.stderr
    );
    assert_eq!(
        owner
            .run(&["log", "t"])
            .expect(0, "log")
            .stdout
            .lines()
            .count(),
        3,
        "nothing forgotten"
    );
    ao.run(&["gc"]).expect(1, "gc refused");
    ao.run(&["reflog", "expire", "--older-than", "0d"])
        .expect(1, "expire refused");
    assert_eq!(owner.run(&["reflog"]).expect(0, "reflog").stdout, before);
}

#[test]
fn a_reflog_pointed_back_by_an_append_only_key_stops_the_retention_from_expiring_anything() {
    let d = scratch();
    let (owner, arch) = archive(d.path());
    let heads = owner
        .run(&["--json", "tag-history", "ore:reflog"])
        .expect(0, "history")
        .stdout;
    let first: serde_json::Value =
        serde_json::from_str(heads.lines().next().expect("a head")).expect("JSON");
    let old_head = first["value"].as_str().expect("value").to_string();
    let id = format!(
        "{} --append-only {}",
        bin("backend-splitlog").display(),
        arch.display()
    );
    let ao = Ore::new(id);
    ao.run(&["reflog", "reset", &old_head])
        .expect(0, "an append-only key points the reflog back");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    owner.run(&["reflog", "keep", "0d"]).expect(0, "0d");
    let (_, _, v) = gc(&owner, &[]);
    let retention = v["reflog"]["retention"].as_str().expect("retention");
    assert!(
        retention.starts_with("not applied: an earlier reflog head"),
        "{v}"
    );
    assert_eq!(v["reflog"]["expired"], 0, "{v}");
    let kept = owner
        .run(&["tag-history", "ore:reflog"])
        .expect(0, "history")
        .stdout;
    assert!(
        kept.lines().count() >= heads.lines().count(),
        "no earlier head expired: {kept}"
    );
    owner
        .run(&["check", "--read-data"])
        .expect(0, "every snapshot still reads");
    // The owner puts the reflog back, and the retention applies again.
    let newest = heads.lines().last().expect("the newest head");
    let newest: serde_json::Value = serde_json::from_str(newest).expect("JSON");
    owner
        .run(&["reflog", "reset", newest["value"].as_str().expect("value")])
        .expect(0, "reset back");
    let (_, _, v) = gc(&owner, &[]);
    assert_eq!(v["reflog"]["retention"], "0d", "{v}");
}

/// Found by attacking `--prune`: it expired every reflog entry and earlier value of the tag,
/// so a mistaken `reset` made the day before lost its undo at the weekly `forget --prune` even
/// when forget dropped nothing.
#[test]
fn forget_prune_keeps_the_undo_of_moves_it_did_not_drop() {
    let d = scratch();
    let (o, _) = archive(d.path());
    let before = o.run(&["log", "t"]).expect(0, "log").stdout;
    let newest = before.lines().next().expect("a line")[..12].to_string();
    o.run(&["reset", "t", "t~2"])
        .expect(0, "a mistaken rollback");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    o.run(&["forget", "t", "--keep-daily", "7", "--prune"])
        .expect(0, "the weekly prune");
    // The rollback is undone from the history, as it could be before the prune.
    let h = o.run(&["tag-history", "t"]).expect(0, "tag-history").stdout;
    let line = h
        .lines()
        .find(|l| l.contains(&newest))
        .unwrap_or_else(|| panic!("{newest} kept in\n{h}"));
    let key = line.split_whitespace().nth(3).expect("the value");
    o.run(&["reset", "t", key]).expect(0, "undo the rollback");
    assert_eq!(
        o.run(&["log", "t"]).expect(0, "log").stdout.lines().count(),
        3
    );
    o.run(&["check", "--read-data"]).expect(0, "check");
}

/// Found by attacking `ore reflog expire`: after an append-only key moved a tag off a snapshot
/// and pointed the reflog back to hide the move, the owner's routine `reflog expire
/// --older-than D` dropped the earlier reflog heads and the tag's earlier value, and gc then
/// deleted the snapshot.
#[test]
fn reflog_expire_refuses_a_reflog_pointed_back_to_hide_recent_moves() {
    let d = scratch();
    let arch = d.path().join("arch");
    let owner = Ore::new(arch.display().to_string());
    owner.run(&["init"]).expect(0, "init");
    let photos = d.path().join("photos");
    std::fs::create_dir(&photos).expect("mkdir");
    std::fs::write(photos.join("p"), b"the photos").expect("write");
    let good = owner.snapshot("photos", &photos);
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let id = format!(
        "{} --append-only {}",
        bin("backend-splitlog").display(),
        arch.display()
    );
    let ao = Ore::new(id);
    let heads = ao
        .run(&["--json", "tag-history", "ore:reflog"])
        .expect(0, "history")
        .stdout;
    let last: serde_json::Value =
        serde_json::from_str(heads.lines().last().expect("a head")).expect("JSON");
    let head = last["value"].as_str().expect("value").to_string();
    let empty = d.path().join("empty");
    std::fs::create_dir(&empty).expect("mkdir");
    let junk = ao.snapshot("junk", &empty);
    ao.run(&["reset", "photos", &junk])
        .expect(0, "the attacker's move");
    ao.run(&["reflog", "reset", &head])
        .expect(0, "the move hidden");
    let r = owner
        .run(&["reflog", "expire", "--older-than", "1s"])
        .expect(1, "refused");
    assert!(r.stderr.contains("nothing expired"), "{}", r.stderr);
    owner.run(&["gc"]).expect(0, "gc");
    owner
        .restore(&good, &d.path().join("back"))
        .expect(0, "the photos are still there");
}
