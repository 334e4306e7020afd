//! Issue 26, item 9: a snapshot's key, once printed, names that snapshot for as long as it is
//! stored. `forget` used to store every kept snapshot above a dropped one again (its
//! `previous` changed), under a new key, so keys that scripts, notes and monitoring kept
//! stopped naming anything. Format 2 keeps a tag's order in chain links beside the snapshots
//! (FORMAT.md §6, §12): forgetting writes links, never snapshots. Archives of format 1 are
//! read and written as before until `ore upgrade`, and keep their keys through it.

use ore_tests::ore::{scratch, Ore};
use serde_json::Value;
use std::path::Path;

/// `n` snapshots of `src` on `tag`, file `f` holding `version I` in the I-th; their keys,
/// oldest first.
fn snapshots(o: &Ore, tag: &str, src: &Path, from: usize, n: usize) -> Vec<String> {
    std::fs::create_dir_all(src).unwrap();
    (from..from + n)
        .map(|i| {
            std::fs::write(src.join("f"), format!("version {i}")).unwrap();
            o.snapshot(tag, src)
        })
        .collect()
}

/// The keys `ore log TAG` shows, newest first.
fn log(o: &Ore, tag: &str) -> Vec<String> {
    let r = o.run(&["--json", "log", tag]).expect(0, "log");
    r.stdout
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            v["key"].as_str().unwrap().to_string()
        })
        .collect()
}

/// Restores snapshot `what` and returns what its file `f` holds (`None` when it fails).
fn version(o: &Ore, what: &str, out: &Path) -> Option<String> {
    let dest = out.join(format!("{}-{}", &what[..what.len().min(16)], rand_suffix()));
    let r = o.restore(what, &dest);
    (r.code == 0).then(|| std::fs::read_to_string(dest.join("f")).unwrap())
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// A pause past the next second: the backend keeps and expires tag values by the second, and
/// scheduled runs are that far apart at least.
fn pause() {
    std::thread::sleep(std::time::Duration::from_millis(1100));
}

/// [`snapshots`], each after a [`pause`], then a pause.
fn spaced(o: &Ore, tag: &str, src: &Path, n: usize) -> Vec<String> {
    let keys = (0..n)
        .flat_map(|i| {
            pause();
            snapshots(o, tag, src, i, 1)
        })
        .collect();
    pause();
    keys
}

fn newest_first(keys: &[String]) -> Vec<String> {
    keys.iter().rev().cloned().collect()
}

#[test]
fn forget_keeps_the_key_of_every_snapshot_it_keeps() {
    let (o, d) = Ore::local();
    let (src, out) = (d.path().join("src"), d.path().join("out"));
    let keys = snapshots(&o, "home", &src, 0, 5);
    let node = o.node("home");
    let r = o
        .run(&["forget", "home", "--keep-last", "3"])
        .expect(0, "forget");
    assert!(!r.stdout.contains("now"), "no kept snapshot changed: {r:?}");
    assert!(!r.stderr.contains("format 1"), "{r:?}");
    // The chain below the kept snapshots changed (the tag names a new link); they did not.
    assert_ne!(o.node("home"), node, "the chain was linked anew");
    assert_eq!(log(&o, "home"), newest_first(&keys[2..]));
    for (i, k) in keys.iter().enumerate().skip(2) {
        assert_eq!(
            version(&o, k, &out).as_deref(),
            Some(&*format!("version {i}"))
        );
        o.run(&["ls", &k[..12]]).expect(0, "ls by a short key");
    }
    // `--prune` expires the reflog entries that hold what it dropped, and every kept key
    // still names its snapshot. The backend's kept values of the tag expire oldest first,
    // and the oldest (before the first forget) hold none of what this one dropped: they
    // stay, and say so, until the retention or `gc --expire-reflog` lets them go.
    let r = o
        .run(&["forget", "home", "--keep-last", "2", "--prune"])
        .expect(0, "forget --prune");
    assert!(!r.stdout.contains("now"), "{r:?}");
    assert!(
        r.stderr
            .contains("earlier value(s) of the tag still hold some"),
        "{r:?}"
    );
    assert_eq!(log(&o, "home"), newest_first(&keys[3..]));
    for (i, k) in keys.iter().enumerate() {
        assert_eq!(
            version(&o, k, &out).as_deref(),
            Some(&*format!("version {i}")),
            "{k}"
        );
    }
    o.run(&["gc", "--expire-reflog"]).expect(0, "gc");
    for (i, k) in keys.iter().enumerate() {
        let kept = version(&o, k, &out).is_some();
        assert_eq!(kept, i >= 3, "snapshot {i}");
    }
    o.run(&["check", "--read-data"]).expect(0, "check");
}

/// The way back from a forget: the reflog names the chain link the tag had before (its
/// snapshot is the same), and `ore reset` with it brings back every snapshot under its key.
#[test]
fn a_forget_is_undone_with_the_chain_link_the_reflog_names() {
    let (o, d) = Ore::local();
    let keys = snapshots(&o, "home", &d.path().join("src"), 0, 4);
    o.run(&["forget", "home", "--keep-last", "1"])
        .expect(0, "forget");
    assert_eq!(log(&o, "home"), vec![keys[3].clone()]);
    let r = o.run(&["reflog", "home"]).expect(0, "reflog");
    let line = r.stdout.lines().next().unwrap();
    assert!(line.contains("forget"), "{line}");
    assert_eq!(
        line.matches(&keys[3][..12]).count(),
        2,
        "the same snapshot on both sides: {line}"
    );
    let before = line
        .split("chain link ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .unwrap_or_else(|| panic!("the link before is named: {line}"));
    o.run(&["reset", "home", before]).expect(0, "reset");
    assert_eq!(log(&o, "home"), newest_first(&keys));
    // A dropped snapshot's own key still names it while the reflog holds it.
    o.run(&["ls", &keys[0]])
        .expect(0, "ls of a snapshot only the reflog holds");
    o.run(&["check"]).expect(0, "check");
}

/// A snapshot written again because another run moved the tag meanwhile keeps the key it had
/// on the first try: only its link changes. In format 1 the key depended on the snapshot
/// before it.
#[test]
fn a_snapshot_put_after_another_node_keeps_its_key_and_gets_a_new_link() {
    for (format, same_key) in [("2", true), ("1", false)] {
        let d = scratch();
        let o = Ore::new(d.path().join("a").display().to_string());
        o.run(&["init", "--format-version", format])
            .expect(0, "init");
        snapshots(&o, "home", &d.path().join("src"), 0, 2);
        let backend = ore::core::archive::open_existing(&o.archive).unwrap();
        let pass = o.passphrase.clone();
        let repo = ore::Repo::open(backend, &o.archive, &|_| Ok(pass.as_bytes().to_vec())).unwrap();
        let head = repo.tag("home").unwrap().unwrap();
        let node = repo.node(head).unwrap();
        let below = node.below().unwrap();
        let first = repo.chained(&node.snapshot, vec![below]);
        let raced = repo.chained(&node.snapshot, vec![head]);
        assert_ne!(first.node, raced.node, "format {format}");
        assert_eq!(first.key == raced.key, same_key, "format {format}");
        assert_eq!(first.node == first.key, format == "1");
    }
}

#[test]
fn a_format_1_archive_is_written_as_format_1_until_upgraded_and_keeps_its_keys_after() {
    let d = scratch();
    let (src, out) = (d.path().join("src"), d.path().join("out"));
    let o = Ore::new(d.path().join("a").display().to_string());
    o.run(&["init", "--format-version", "1"])
        .expect(0, "init of format 1");
    let keys = snapshots(&o, "home", &src, 0, 4);
    // In format 1 a tag names its snapshot itself.
    assert_eq!(o.node("home"), keys[3]);
    let r = o
        .run(&["forget", "home", "--keep-last", "3"])
        .expect(0, "forget in format 1");
    assert!(r.stdout.contains("(now "), "{r:?}");
    assert!(
        r.stderr.contains("format 1") && r.stderr.contains("ore upgrade"),
        "{r:?}"
    );
    let after = log(&o, "home");
    assert_eq!(after.len(), 3);
    assert!(
        after.iter().all(|k| !keys.contains(k)),
        "format 1 re-keys: {after:?}"
    );

    let r = o.run(&["upgrade"]).expect(0, "upgrade");
    assert!(r.stderr.contains("now of format 6"), "{r:?}");
    let r = o.run(&["upgrade"]).expect(0, "upgrade again");
    assert!(r.stderr.contains("format 6 already"), "{r:?}");
    assert_eq!(log(&o, "home"), after, "the upgrade keeps every key");

    // New snapshots get links; a forget that drops format-1 snapshots links the kept
    // format-1 ones anew, under their own keys.
    let more = snapshots(&o, "home", &src, 4, 2);
    assert_ne!(o.node("home"), more[1], "a tag names a link now");
    let mut all = newest_first(&more);
    all.extend(after.iter().cloned());
    assert_eq!(log(&o, "home"), all);
    let r = o
        .run(&["forget", "home", "--keep-last", "3"])
        .expect(0, "forget after the upgrade");
    assert!(!r.stdout.contains("now"), "{r:?}");
    assert!(!r.stderr.contains("format 1"), "{r:?}");
    assert_eq!(log(&o, "home"), all[..3].to_vec());
    let versions = ["version 5", "version 4", "version 3"];
    for (k, v) in all[..3].iter().zip(versions) {
        assert_eq!(version(&o, k, &out).as_deref(), Some(v), "{k}");
    }
    o.run(&["check", "--read-data"]).expect(0, "check");
    o.run(&["gc", "--expire-reflog"]).expect(0, "gc");
    o.run(&["check", "--read-data"]).expect(0, "check after gc");
    for (k, v) in all[..3].iter().zip(versions) {
        assert_eq!(version(&o, k, &out).as_deref(), Some(v), "{k}");
    }
    assert_eq!(version(&o, &all[3], &out), None, "dropped and collected");
}

/// A format-1 snapshot that a forget after the upgrade linked anew is two things at once: the
/// snapshot a link names (its own `previous` not part of that chain) and, for a tag forked
/// from it before, a place on a chain whose older snapshots hang from its `previous`. gc
/// must follow that chain however its walk met the block first; it walks many threads in an
/// order it does not choose, so the case is built several times.
#[test]
fn gc_keeps_the_chain_below_a_format_1_snapshot_another_tag_names_after_a_forget_links_it() {
    for round in 0..6 {
        let d = scratch();
        let (src, out) = (d.path().join("src"), d.path().join("out"));
        let o = Ore::new(d.path().join("a").display().to_string());
        o.run(&["init", "--format-version", "1"]).expect(0, "init");
        let keys = snapshots(&o, "home", &src, 0, 4);
        o.run(&["fork", "home~1", "old"]).expect(0, "fork");
        // Only the tags hold anything from here on.
        o.run(&["gc", "--expire-reflog"]).expect(0, "gc");
        o.run(&["upgrade"]).expect(0, "upgrade");
        o.run(&["forget", "home", "--keep-last", "2", "--prune"])
            .expect(0, "forget --prune");
        assert_eq!(log(&o, "home"), newest_first(&keys[2..]));
        assert_eq!(log(&o, "old"), newest_first(&keys[..3]), "round {round}");
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(
                version(&o, k, &out).as_deref(),
                Some(&*format!("version {i}")),
                "round {round}: snapshot {i}, still on tag old"
            );
        }
        o.run(&["check", "--read-data"])
            .expect(0, &format!("round {round}: check"));
    }
}

#[test]
fn sync_between_archives_sharing_keys_keeps_snapshot_keys_and_follows_a_forget() {
    let (src, d) = Ore::local();
    let keys = snapshots(&src, "home", &d.path().join("data"), 0, 4);
    let dst = Ore::new(d.path().join("dst").display().to_string());
    dst.run(&["init", "--from", &src.archive])
        .expect(0, "init --from");
    src.run(&["sync", "--to", &dst.archive]).expect(0, "sync");
    assert_eq!(log(&dst, "home"), newest_first(&keys));
    src.run(&["forget", "home", "--keep-last", "2"])
        .expect(0, "forget");
    src.run(&["sync", "--to", &dst.archive])
        .expect(0, "sync after forget");
    assert_eq!(log(&dst, "home"), newest_first(&keys[2..]));
    assert_eq!(dst.node("home"), src.node("home"));
    dst.run(&["check", "--read-data"]).expect(0, "check");

    // A destination of format 1 sharing the keys cannot hold the links: refused before
    // anything is copied, saying what to do.
    let old = Ore::new(d.path().join("old").display().to_string());
    old.run(&["init", "--from", &src.archive, "--format-version", "1"])
        .expect(0, "init --from, format 1");
    let r = src.run(&["sync", "--to", &old.archive]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("format 1") && r.stderr.contains("upgrade"),
        "{r:?}"
    );
    assert_eq!(old.node("home"), "", "nothing was copied");
    old.run(&["upgrade"]).expect(0, "upgrade");
    src.run(&["sync", "--to", &old.archive])
        .expect(0, "sync after the upgrade");
    assert_eq!(log(&old, "home"), newest_first(&keys[2..]));

    // Between archives with other keys, a format-1 destination gets format-1 chains.
    let other = Ore::new(d.path().join("other").display().to_string());
    other
        .run(&["init", "--format-version", "1"])
        .expect(0, "init of format 1");
    src.run(&["sync", "--to", &other.archive])
        .expect(0, "sync, re-encrypted");
    let there = log(&other, "home");
    assert_eq!(there.len(), 2);
    assert_eq!(other.node("home"), there[0], "a format-1 chain");
    other.run(&["check", "--read-data"]).expect(0, "check");
}

/// Found by attacking `forget --prune`: after a rollback (`reset h h~1`), a prune that
/// dropped only the oldest snapshot expired the reset's reflog entry and the tag's kept
/// values with it (the entry's new side reached the dropped snapshot), and gc deleted the
/// snapshot the reset had moved away from, which forget had never listed.
#[test]
fn forget_prune_never_deletes_what_a_reset_moved_away_from() {
    let (o, d) = Ore::local();
    let out = d.path().join("out");
    let keys = spaced(&o, "h", &d.path().join("src"), 4);
    o.run(&["reset", "h", "h~1"]).expect(0, "a rollback");
    pause();
    let r = o
        .run(&["forget", "h", "--keep-last", "2", "--prune"])
        .expect(0, "forget --prune");
    assert!(!r.stdout.contains(&keys[3][..12]), "never listed: {r:?}");
    assert_eq!(log(&o, "h"), vec![keys[2].clone(), keys[1].clone()]);
    assert_eq!(
        version(&o, &keys[3], &out).as_deref(),
        Some("version 3"),
        "the snapshot the reset moved away from is kept"
    );
    o.run(&["reset", "h", &keys[3]])
        .expect(0, "the undo of the reset");
    assert_eq!(log(&o, "h")[0], keys[3]);
    o.run(&["check", "--read-data"]).expect(0, "check");
}

/// Found by attacking `reset` and `fork` by key: a format-1 snapshot that a forget after the
/// upgrade linked anew still names its old chain itself; its full key was taken as that place
/// (its own `previous`), so `fork KEY` and `reset TAG KEY` made tags whose chain ran into a
/// snapshot gc had collected.
#[test]
fn reset_and_fork_by_the_key_of_a_relinked_format_1_snapshot_take_its_current_place() {
    let d = scratch();
    let o = Ore::new(d.path().join("a").display().to_string());
    o.run(&["init", "--format-version", "1"]).expect(0, "init");
    let keys = snapshots(&o, "home", &d.path().join("src"), 0, 3);
    o.run(&["upgrade"]).expect(0, "upgrade");
    o.run(&["forget", "home", "--keep-last", "2"])
        .expect(0, "forget");
    o.run(&["gc", "--expire-reflog"]).expect(0, "gc");
    o.run(&["fork", &keys[2], "copy"]).expect(0, "fork by key");
    assert_eq!(log(&o, "copy"), newest_first(&keys[1..]));
    o.run(&["reset", "home", &keys[2]])
        .expect(0, "reset by key");
    assert_eq!(log(&o, "home"), newest_first(&keys[1..]));
    o.run(&["check"]).expect(0, "check");
}

/// Found by attacking `reset`: a snapshot on two chains (a fork, relinked by a forget on the
/// fork) was found on whichever tag came first by name, so rolling `zz` back to its own
/// `zz~1` by key gave it the fork's one-snapshot chain and zz's older snapshots fell off it.
#[test]
fn reset_by_key_takes_the_place_on_the_tags_own_chain() {
    let (o, d) = Ore::local();
    let src = d.path().join("src");
    let keys = snapshots(&o, "zz", &src, 0, 3);
    o.run(&["fork", "zz", "aa"]).expect(0, "fork");
    o.run(&["forget", "aa", "--keep-last", "1"])
        .expect(0, "forget on the fork");
    let newer = snapshots(&o, "zz", &src, 3, 1);
    o.run(&["reset", "zz", &keys[2]])
        .expect(0, "a rollback by key");
    assert_eq!(log(&o, "zz"), newest_first(&keys), "zz keeps its own chain");
    o.run(&["reset", "zz", &newer[0][..12]])
        .expect(0, "and forward by a short key");
    assert_eq!(log(&o, "zz").len(), 4);
    assert_eq!(log(&o, "aa"), vec![keys[2].clone()]);
}

/// Found by attacking `check`: a link whose snapshot is a block of another kind (here the other
/// tag's own link) was reported clean when that block had been visited before as a chain node:
/// the walk skipped every key it had seen, whatever it was met as. Which it meets first is up
/// to its threads, so the case is built several times.
#[test]
fn check_reports_a_link_that_names_no_snapshot_as_its_snapshot() {
    for _ in 0..5 {
        a_link_naming_a_link_as_its_snapshot_is_reported();
    }
}

fn a_link_naming_a_link_as_its_snapshot_is_reported() {
    use ore::core::block::Kind;
    let (o, d) = Ore::local();
    snapshots(&o, "h", &d.path().join("h"), 0, 2);
    snapshots(&o, "o", &d.path().join("o"), 0, 2);
    o.run(&["check"]).expect(0, "check before");
    let repo = ore_tests::crafted::open(&o);
    let (h, other) = (
        repo.tag("h").unwrap().unwrap(),
        repo.tag("o").unwrap().unwrap(),
    );
    let link = ore::core::link::Link {
        snapshot: other,
        previous: vec![h],
    };
    let (crafted, _) = repo
        .put_block(Kind::Link, &ore::core::entry::encode(&link))
        .unwrap();
    repo.backend().flush().unwrap();
    assert!(repo.move_tag("h", Some(h), crafted, "crafted").unwrap());
    // The archive is one process's at a time.
    drop(repo);
    let r = o.run(&["check"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stdout.contains(&other.to_hex()) && r.stdout.contains("chain link"),
        "the block is named, as what it is: {r:?}"
    );
}

/// Found by attacking gc: the marks the walk keeps for the roles snapshot blocks are met in
/// were counted as reachable blocks ("12 reachable of 11 blocks").
#[test]
fn gc_counts_only_blocks_as_reachable() {
    let (o, d) = Ore::local();
    snapshots(&o, "h", &d.path().join("src"), 0, 5);
    o.run(&["forget", "h", "--keep-last", "2"])
        .expect(0, "forget");
    let r = o.run(&["gc", "--dry-run", "--json"]).expect(0, "gc");
    let v: Value = serde_json::from_str(r.stdout.lines().last().unwrap()).unwrap();
    let (reachable, listed) = (
        v["reachable"].as_u64().unwrap(),
        v["listed"].as_u64().unwrap(),
    );
    assert!(reachable <= listed, "{v}");
    assert_eq!(
        reachable, listed,
        "nothing expired: everything is reachable: {v}"
    );
}

/// Found by attacking `sync`: a node naming a second node before it (`ore` makes none, a
/// crafted or merged chain may) was re-encrypted with that second key as it was, which the
/// destination does not have: its check found a missing block and its gc stopped for good.
#[test]
fn a_re_encrypted_sync_never_names_a_source_key_in_the_destination() {
    use ore::core::block::Kind;
    let (src, d) = Ore::local();
    snapshots(&src, "h", &d.path().join("h"), 0, 2);
    snapshots(&src, "o", &d.path().join("o"), 0, 2);
    let repo = ore_tests::crafted::open(&src);
    let (h, other) = (
        repo.tag("h").unwrap().unwrap(),
        repo.tag("o").unwrap().unwrap(),
    );
    let link = ore::core::link::Link {
        snapshot: repo.snapshot_key(h).unwrap(),
        previous: vec![h, other],
    };
    let (merged, _) = repo
        .put_block(Kind::Link, &ore::core::entry::encode(&link))
        .unwrap();
    repo.backend().flush().unwrap();
    assert!(repo.move_tag("h", Some(h), merged, "crafted").unwrap());
    drop(repo);
    src.run(&["check"]).expect(0, "the source is sound");
    let dst = Ore::new(d.path().join("dst").display().to_string());
    dst.run(&["init"]).expect(0, "init");
    src.run(&["sync", "--to", &dst.archive, "h"])
        .expect(0, "sync");
    dst.run(&["check", "--read-data"]).expect(0, "check there");
    dst.run(&["gc"]).expect(0, "gc there");
    assert_eq!(log(&dst, "h").len(), 3);
}

/// Found by attacking `forget --prune` again: after a rollback and a newer snapshot, a prune
/// expired every entry newer than the rollback's (which stays: it holds a snapshot the forget
/// did not decide on), so the rollback became the tag's newest move, `check` reported the tag
/// as behind its history and named a repair that moved it onto the dropped snapshot.
#[test]
fn after_forget_prune_the_tags_newest_reflog_entry_names_its_value() {
    let (o, d) = Ore::local();
    let src = d.path().join("src");
    snapshots(&o, "h", &src, 0, 1);
    pause();
    snapshots(&o, "h", &src, 1, 1);
    pause();
    o.run(&["reset", "h", "h~1"]).expect(0, "a rollback");
    pause();
    let newest = snapshots(&o, "h", &src, 2, 1);
    pause();
    o.run(&["forget", "h", "--keep-last", "1", "--prune"])
        .expect(0, "forget --prune");
    o.run(&["check"]).expect(0, "check after the prune");
    assert_eq!(log(&o, "h"), newest);
}

/// Found by the same attack: in an archive of format 1 the kept snapshots get new keys, which
/// the prune did not count as decided on, so the forget's own entry (whose old side holds
/// every dropped snapshot) was never expired and nothing was freed.
#[test]
fn forget_prune_frees_what_it_dropped_in_a_format_1_archive() {
    let d = scratch();
    let out = d.path().join("out");
    let o = Ore::new(d.path().join("a").display().to_string());
    o.run(&["init", "--format-version", "1"]).expect(0, "init");
    let keys = spaced(&o, "h", &d.path().join("src"), 4);
    o.run(&["forget", "h", "--keep-last", "2", "--prune"])
        .expect(0, "forget --prune");
    for (i, k) in keys.iter().enumerate().take(2) {
        assert_eq!(version(&o, k, &out), None, "snapshot {i} was freed");
    }
    o.run(&["check", "--read-data"]).expect(0, "check");
}
