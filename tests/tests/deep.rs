//! Crafted snapshots nested far deeper than any file system: a hundred thousand directories,
//! one inside the next, cost a few megabytes of blocks. Every walk of an archive's tree once
//! recursed a level a directory and overflowed its stack on them (an abort, not an error).
//! Now each stops at the 4096 levels `ore load` accepts, with an error naming the snapshot and
//! the path; below that depth every command works as before.

use ore::core::entry::{Content, EntryKind};
use ore_tests::crafted::{dir, entry, nested, open, snapshot};
use ore_tests::fuse::{mount, tool, Unmount};
use ore_tests::ore::{Ore, Run};
use std::io::Write;
use std::path::Path;
use std::process::Stdio;

/// Levels a crafted snapshot nests to overflow any stack.
const DEEP: usize = 100_000;
/// Levels a real tree may have: every command must still work on it.
const DEEP_ENOUGH: usize = 4000;

/// An archive holding `deep` and `deep2` (nested [`DEEP`], differing in their leaf) and
/// `fine` and `fine2` (nested [`DEEP_ENOUGH`], likewise).
fn archive() -> (Ore, tempfile::TempDir) {
    let (ore, d) = Ore::local();
    let repo = open(&ore);
    snapshot(&repo, "deep", nested(&repo, DEEP, b"x\n"));
    snapshot(&repo, "deep2", nested(&repo, DEEP, b"y\n"));
    snapshot(&repo, "fine", nested(&repo, DEEP_ENOUGH, b"x\n"));
    snapshot(&repo, "fine2", nested(&repo, DEEP_ENOUGH, b"y\n"));
    snapshot(&repo, "shallow", dir(&repo, b"home", Vec::new()));
    (ore, d)
}

/// Asserts that `r` ended with an error (exit `code`), not a crash, saying how deep.
fn refused(r: &Run, code: i32, what: &str) {
    assert_eq!(
        r.code,
        code,
        "{what}: an error, not a crash: {}",
        tail(&r.stderr)
    );
    assert!(
        r.stderr.contains("nested more than 4096 directories deep"),
        "{what}: {}",
        tail(&r.stderr)
    );
    assert!(
        r.stderr.len() < 4096,
        "{what}: the path is shortened: {}",
        r.stderr.len()
    );
}

fn tail(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    chars[chars.len().saturating_sub(2000)..].iter().collect()
}

/// Removes a tree too deep for a recursive removal (the test's own stack).
fn remove(p: &Path) {
    let ok = std::process::Command::new("rm")
        .arg("-rf")
        .arg(p)
        .status()
        .unwrap();
    assert!(ok.success(), "rm -rf {}", p.display());
}

#[test]
fn a_crafted_snapshot_nested_a_hundred_thousand_deep_is_refused_by_ls_recursive_not_a_crash() {
    let (ore, _d) = archive();
    let r = ore.run(&["ls", "-R", "deep"]);
    refused(&r, 1, "ls -R");
    assert!(
        r.stderr.contains("listing deep"),
        "names the snapshot: {}",
        r.stderr
    );
    assert!(r.stderr.contains("`d/d/d/"), "names the path: {}", r.stderr);
    assert_eq!(r.stdout.lines().count(), 4096, "listed down to the limit");
    let r = ore
        .run(&["ls", "-R", "fine"])
        .expect(0, "ls -R at 4000 deep");
    let leaf = format!("{}leaf", "d/".repeat(DEEP_ENOUGH));
    assert_eq!(r.stdout.lines().last(), Some(leaf.as_str()));
}

#[test]
fn a_crafted_snapshot_nested_a_hundred_thousand_deep_is_refused_by_diff_not_a_crash() {
    let (ore, _d) = archive();
    // Both nested: compared level by level.
    refused(&ore.run(&["diff", "deep", "deep2"]), 1, "diff");
    // Only one: everything below is added (or removed).
    refused(&ore.run(&["diff", "shallow", "deep"]), 1, "diff, all added");
    refused(
        &ore.run(&["diff", "deep", "shallow"]),
        1,
        "diff, all removed",
    );
    let r = ore
        .run(&["diff", "fine", "fine2"])
        .expect(0, "diff at 4000 deep");
    assert!(
        r.stdout
            .contains(&format!("{}leaf", "d/".repeat(DEEP_ENOUGH))),
        "{}",
        r.stdout
    );
    let r = ore
        .run(&["diff", "shallow", "fine"])
        .expect(0, "diff, all added");
    assert_eq!(
        r.stdout.lines().count(),
        DEEP_ENOUGH + 1,
        "{}",
        tail(&r.stdout)
    );
}

#[test]
fn a_crafted_snapshot_nested_a_hundred_thousand_deep_is_refused_by_sync_not_a_crash() {
    let (ore, d) = archive();
    let dst = Ore::new(d.path().join("dst").display().to_string());
    dst.run(&["init"]).expect(0, "init");
    let r = ore.run(&["sync", "--to", &dst.archive, "deep"]);
    refused(&r, 1, "sync, re-encrypted");
    assert!(
        r.stderr.contains("(tag deep)"),
        "names the snapshot: {}",
        r.stderr
    );
    ore.run(&["sync", "--to", &dst.archive, "fine"])
        .expect(0, "sync at 4000 deep");
    let r = dst.run(&["ls", "-R", "fine"]).expect(0, "ls the copy");
    assert!(r.stdout.ends_with("d/d/leaf\n"), "{}", tail(&r.stdout));
}

#[test]
fn a_crafted_snapshot_nested_a_hundred_thousand_deep_is_refused_by_explore_find_not_a_crash() {
    let (ore, _d) = archive();
    let explore = |tag: &str| {
        let mut c = ore
            .cmd(&["explore", "--tag", tag])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut input = c.stdin.take().unwrap();
        input.write_all(b"find leaf\n").unwrap();
        drop(input);
        Run::of(c.wait_with_output().unwrap())
    };
    let r = explore("deep");
    refused(&r, 3, "explore find");
    assert!(
        r.stderr.contains("`deep/20"),
        "names the snapshot: {}",
        r.stderr
    );
    let r = explore("fine").expect(0, "find at 4000 deep");
    assert_eq!(
        r.stdout.lines().count(),
        1,
        "the snapshot's leaf: {}",
        tail(&r.stdout)
    );
}

#[test]
fn a_crafted_snapshot_nested_a_hundred_thousand_deep_is_restored_down_to_the_limit_then_refused() {
    let (ore, d) = archive();
    let out = d.path().join("out");
    let r = ore.restore("deep", &out);
    refused(&r, 1, "restore");
    assert!(
        r.stderr.contains("restore incomplete"),
        "{}",
        tail(&r.stderr)
    );
    remove(&out);
    ore.restore("fine", &out).expect(0, "restore at 4000 deep");
    remove(&out);
}

#[test]
fn a_tree_four_thousand_deep_is_compared_with_its_snapshot_not_a_crash() {
    let (ore, d) = archive();
    let out = d.path().join("out");
    ore.restore("fine", &out).expect(0, "restore at 4000 deep");
    // Compared level by level, as far as paths reach (about 2000 levels of `d/`).
    let r = ore.run(&["check", "fine", "--compare", out.to_str().unwrap()]);
    assert!(
        r.code == 0 || r.code == 1,
        "an answer, not a crash: {}",
        tail(&r.stderr)
    );
    assert!(
        r.stdout.contains("cannot stat") || r.stdout.contains("cannot list"),
        "{}",
        tail(&r.stdout)
    );
    remove(&out);
}

#[test]
fn a_crafted_snapshot_nested_a_hundred_thousand_deep_is_refused_by_the_mount_not_a_crash() {
    let (ore, d) = archive();
    let mnt = d.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let child = mount(&ore, &mnt, &["--tag", "deep"]);
    let guard = Unmount(&mnt);
    // find walks by descriptor, so no path length stops it before the mount does.
    let r = tool(&["find", "-H", mnt.join("deep/current").to_str().unwrap()]);
    assert_ne!(r.code, 0, "find meets an error");
    assert!(
        r.stderr.contains("Input/output error"),
        "{}",
        tail(&r.stderr)
    );
    assert_eq!(r.stdout.lines().count(), 4097, "listed down to the limit");
    drop(guard);
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("nested more than 4096"), "{}", tail(&err));
}

#[test]
fn a_hundred_thousand_deep_snapshot_with_a_missing_block_is_checked_not_a_crash() {
    let (ore, _d) = Ore::local();
    let repo = open(&ore);
    // A chunk key nothing was ever stored under.
    let gone = protocol::Key([0x5a; 32]);
    let mut e = entry(
        b"leaf",
        EntryKind::File {
            size: 12,
            content: Content::Chunk(gone),
        },
    );
    for _ in 0..DEEP {
        e = dir(&repo, b"d", vec![e]);
    }
    snapshot(&repo, "deep", dir(&repo, b"home", vec![e]));
    drop(repo);
    let r = ore.run(&["check"]);
    assert_eq!(r.code, 1, "damage found, not a crash: {}", tail(&r.stderr));
    let r = ore.run(&["gc", "--dry-run"]);
    assert!(
        r.code == 0 || r.code == 1,
        "not a crash: {}",
        tail(&r.stderr)
    );
}
