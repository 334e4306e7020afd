//! Damaged splitlog archives, driven through the real `ore`, `ore-admin` and `backend-splitlog`
//! programs (issue 22: findings 1, 3 and 6): a tag whose newest record is damaged is never
//! quietly rolled back by a reindex, a malformed index is rebuilt and kept aside, and a missing
//! or cut-short log is named and costs only the blocks it held.

use backend_splitlog::logs::{list_logs, log_path};
use backend_splitlog::record::{parse_named, RecordType, HEADER_LEN};
use backend_splitlog::scan::{Item, Scanner};
use ore_tests::ore::{Ore, Run};
use ore_tests::{bin, quote};
use std::path::{Path, PathBuf};
use std::process::Command;

/// An initialised archive whose logs roll over at 1 MiB, so each snapshot of a 900 kB file
/// fills a log of its own.
fn archive() -> (Ore, tempfile::TempDir, PathBuf) {
    let (o, d) = Ore::local();
    let dir = d.path().join("archive");
    admin(&dir, &["set-max-log-size", "1048576"]).expect(0, "set-max-log-size");
    (o, d, dir)
}

fn admin(dir: &Path, args: &[&str]) -> Run {
    Run::of(
        Command::new(bin("ore-admin"))
            .arg(dir)
            .args(args)
            .output()
            .expect("ore-admin runs"),
    )
}

/// Snapshots a tree holding one 900 kB file of its own to `tag`; returns the snapshot's key.
fn snapshot(o: &Ore, d: &Path, tag: &str, seed: u64) -> String {
    let src = d.join(format!("src-{seed}"));
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("file"), ore_tests::trees::bytes(seed, 900_000)).unwrap();
    o.snapshot(tag, &src)
}

/// [`snapshot`] on an archive whose reflog head was in the lost part of the logs, from a
/// machine without a copy of that block (a machine that has one carries the reflog on from it,
/// `tests/tests/local_copies.rs`): the snapshot is stored and its tag moves, but the move
/// cannot be recorded, and `ore` says so with exit status 3 (`tests/tests/reflog_unrecorded.rs`).
fn snapshot_with_the_reflog_lost(o: &Ore, d: &Path, tag: &str, seed: u64) -> String {
    let _ = std::fs::remove_dir_all(o.cache.join("ore/reflog"));
    let src = d.join(format!("src-{seed}"));
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("file"), ore_tests::trees::bytes(seed, 900_000)).unwrap();
    let r = o
        .run(&["snapshot", tag, src.to_str().unwrap()])
        .expect(3, "snapshot");
    assert!(
        r.stderr.contains("could not be added to the reflog"),
        "{r:?}"
    );
    r.stdout.trim().to_string()
}

/// Every tag-setting record: (log, offset, tag, value).
fn tag_records(dir: &Path) -> Vec<(u32, u64, String, String)> {
    let mut out = Vec::new();
    for n in list_logs(dir).unwrap() {
        let f = std::fs::File::open(log_path(dir, n)).unwrap();
        for item in Scanner::new(&f, 0, true).unwrap() {
            if let Item::Record {
                offset,
                header,
                payload,
            } = item.unwrap()
            {
                if header.kind == RecordType::TagSet {
                    let (name, value) = parse_named(&payload.unwrap()).unwrap();
                    out.push((n, offset, name, String::from_utf8_lossy(&value).into()));
                }
            }
        }
    }
    out
}

/// The last record that set `tag`.
fn last_set(dir: &Path, tag: &str) -> (u32, u64, String) {
    let (n, offset, _, value) = tag_records(dir)
        .into_iter()
        .rfind(|r| r.2 == tag)
        .expect("the tag was set");
    (n, offset, value)
}

/// Changes `bytes` bytes of the value in the payload of the tag record at `offset` of log `n`
/// (one wrong byte can be read back from the checksum; more cannot).
fn damage_tag_record(dir: &Path, n: u32, offset: u64, bytes: usize) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(log_path(dir, n))
        .unwrap();
    let at = offset + HEADER_LEN as u64 + 2 + 4;
    let mut b = vec![0u8; bytes];
    f.read_exact_at(&mut b, at).unwrap();
    let flipped: Vec<u8> = b.iter().map(|x| x ^ 0x01).collect();
    f.write_all_at(&flipped, at).unwrap();
}

fn remove_index(dir: &Path) {
    for name in ["metadata.db", "metadata.db-wal", "metadata.db-shm"] {
        let _ = std::fs::remove_file(dir.join(name));
    }
}

/// The newest snapshot `ore log TAG` lists (its short key).
fn newest(o: &Ore, tag: &str) -> String {
    let r = o.run(&["log", tag]).expect(0, "log");
    r.stdout
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// The start of what `tag` holds (its newest chain link), as the backend's records hold it.
fn value(o: &Ore, tag: &str) -> String {
    let r = o.run(&["tags", "--json"]).expect(0, "tags");
    r.stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|v| v["tag"] == tag)
        .map(|v| v["node"].as_str().unwrap()[..12].to_string())
        .unwrap_or_default()
}

fn json(r: &Run) -> serde_json::Value {
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {}", r.stdout))
}

#[test]
fn a_reindex_that_cannot_read_the_newest_tag_record_keeps_the_value_the_old_index_proves() {
    let (o, d, dir) = archive();
    for seed in 1..=3 {
        snapshot(&o, d.path(), "t", seed);
    }
    let (n, offset, third) = last_set(&dir, "t");
    damage_tag_record(&dir, n, offset, 8);
    let r = admin(&dir, &["reindex"]);
    // It names the damaged record it skipped, so it exits 1 (PROTOCOL.md §6, admin).
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stdout.contains("tag t:"),
        "the settled tag is named: {r:?}"
    );
    assert_eq!(value(&o, "t"), third[..12], "t is not rolled back");
    // The value was written again: the logs alone now prove it.
    remove_index(&dir);
    assert_eq!(value(&o, "t"), third[..12]);
    o.run(&["check"]).expect(0, "check");
}

#[test]
fn a_reindex_that_cannot_prove_the_newest_tag_value_refuses_naming_the_tag_and_its_candidates() {
    let (o, d, dir) = archive();
    for seed in 1..=3 {
        snapshot(&o, d.path(), "t", seed);
    }
    let (n, offset, third) = last_set(&dir, "t");
    let second = tag_records(&dir)
        .into_iter()
        .filter(|r| r.2 == "t")
        .nth(1)
        .unwrap()
        .3;
    damage_tag_record(&dir, n, offset, 8);
    // No index to vouch for the newest value: the logs show only the second.
    remove_index(&dir);
    let r = o.run(&["log", "t"]);
    assert_ne!(r.code, 0, "t is not answered with an older value: {r:?}");
    assert!(
        r.stderr.contains("tag t:") && r.stderr.contains(&second),
        "{r:?}"
    );
    let r = admin(&dir, &["reindex"]);
    assert_ne!(r.code, 0, "{r:?}");
    assert!(r.stderr.contains("tag t:"), "{r:?}");
    assert!(r.stderr.contains(&second), "the candidate is named: {r:?}");
    assert!(
        r.stderr.contains(&format!("log-{n:06} offset {offset}")),
        "{r:?}"
    );
    // The command it names keeps the older values; the reflog still knows the newest, and a
    // reset moves the tag there.
    let suggested = r
        .stderr
        .split('`')
        .find(|c| c.contains("reindex --accept-older"))
        .expect("the way out is named")
        .to_string();
    assert!(suggested.contains("--accept-older t"), "{suggested}");
    let words: Vec<&str> = suggested.split_whitespace().skip(2).collect();
    let r = admin(&dir, &words);
    assert_eq!(r.code, 1, "the damage is still named: {r:?}");
    assert_eq!(value(&o, "t"), second[..12]);
    let reflog = o.run(&["reflog", "t", "--json"]);
    assert!(reflog.stdout.contains(&third), "{reflog:?}");
    o.run(&["reset", "t", &third]).expect(0, "reset");
    assert_eq!(value(&o, "t"), third[..12]);
    // A later reindex has nothing in doubt; it still names the damaged record (exit 1).
    let r = admin(&dir, &["reindex"]).expect(1, "a later reindex");
    assert!(!r.stdout.contains("may have changed it"), "{r:?}");
    assert_eq!(value(&o, "t"), third[..12]);
}

#[test]
fn a_tag_record_with_one_wrong_byte_is_read_back_even_without_an_index() {
    let (o, d, dir) = archive();
    for seed in 1..=2 {
        snapshot(&o, d.path(), "t", seed);
    }
    let (n, offset, second) = last_set(&dir, "t");
    damage_tag_record(&dir, n, offset, 1);
    remove_index(&dir);
    assert_eq!(value(&o, "t"), second[..12]);
    let r = admin(&dir, &["reindex", "--json"]);
    assert_eq!(r.code, 1, "the damage is still named: {r:?}");
    let problems = json(&r)["problems"].to_string();
    assert!(
        problems.contains(&format!("log-{n:06} offset {offset}")) && problems.contains("read back"),
        "the damage is still reported: {r:?}"
    );
    assert_eq!(value(&o, "t"), second[..12]);
}

#[test]
fn reindex_rebuilds_a_malformed_index_and_keeps_the_damaged_file_aside() {
    let (o, d, dir) = archive();
    let key = snapshot(&o, d.path(), "t", 1);
    // Garbage over every page but the first: sqlite opens the file, then finds it malformed.
    let db = dir.join("metadata.db");
    let len = std::fs::metadata(&db).unwrap().len();
    let mut bytes = std::fs::read(&db).unwrap();
    for b in &mut bytes[4096..len as usize] {
        *b = 0x5a;
    }
    std::fs::write(&db, &bytes).unwrap();
    let r = o.run(&["log", "t"]);
    assert_ne!(r.code, 0);
    assert!(
        r.stderr.contains("reindex") && r.stderr.contains("damaged"),
        "{r:?}"
    );
    let r = admin(&dir, &["reindex"]);
    // It names the damaged record it skipped, so it exits 1 (PROTOCOL.md §6, admin).
    assert_eq!(r.code, 1, "{r:?}");
    let aside: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("metadata.db.damaged-"))
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert!(r.stdout.contains(&aside[0]), "it says where: {r:?}");
    assert_eq!(newest(&o, "t"), key[..12]);
    o.run(&["check", "--read-data"]).expect(0, "check");
}

/// Three tags, each of one snapshot whose data fills a log of its own; returns each tag's
/// value (its chain link) and the log its record is in.
fn three_logs(o: &Ore, d: &Path, dir: &Path) -> Vec<(String, u32)> {
    ["a", "b", "c"]
        .iter()
        .zip(1..)
        .map(|(tag, seed)| {
            snapshot(o, d, tag, seed);
            let (log, _, value) = last_set(dir, tag);
            (value, log)
        })
        .collect()
}

#[test]
fn an_archive_with_a_missing_log_opens_names_it_and_restores_what_other_logs_hold() {
    let (o, d, dir) = archive();
    let tags = three_logs(&o, d.path(), &dir);
    let gone = tags[1].1;
    assert!(tags[0].1 < gone && gone < tags[2].1, "{tags:?}");
    std::fs::remove_file(log_path(&dir, gone)).unwrap();
    let name = format!("log-{gone:06}");
    // The other snapshots restore, in process and through the backend program.
    for archive in [
        dir.display().to_string(),
        format!("backend-splitlog {}", quote(&dir)),
    ] {
        let o = Ore::new(archive);
        for tag in ["a", "c"] {
            let out = d.path().join(format!("out-{tag}-{}", o.archive.len()));
            let r = o.restore(tag, &out);
            assert_eq!(r.code, 0, "{r:?}");
        }
        // The lost one fails naming its block and its log, and nothing else goes with it.
        let r = o.restore("b", &d.path().join(format!("out-b-{}", o.archive.len())));
        assert_ne!(r.code, 0);
        assert!(r.stderr.contains(&format!("{name} is missing")), "{r:?}");
        let r = o.run(&["check"]);
        assert_ne!(r.code, 0);
        assert!(
            r.stdout.contains(&name) || r.stderr.contains(&name),
            "{r:?}"
        );
    }
    for (command, key) in [("info", "damage"), ("verify", "problems")] {
        let r = admin(&dir, &[command, "--json"]);
        let problems = json(&r)[key].to_string();
        assert!(problems.contains(&name), "{command}: {r:?}");
        assert!(problems.contains("block(s)"), "{command}: {r:?}");
    }
    // The same data snapshotted again is stored again, not deduplicated against the lost copy.
    let again = d.path().join("again");
    std::fs::create_dir_all(&again).unwrap();
    std::fs::write(again.join("file"), ore_tests::trees::bytes(2, 900_000)).unwrap();
    o.snapshot("b2", &again);
    let r = o.restore("b2", &d.path().join("out-b2"));
    assert_eq!(r.code, 0, "{r:?}");
    // A reindex knows from the old index that the log is gone, and what b named before it.
    let r = admin(&dir, &["reindex", "--json"]);
    let v = json(&r);
    assert!(v["problems"].to_string().contains(&name), "{r:?}");
    assert!(v["settled"].to_string().contains("tag b:"), "{r:?}");
    assert!(
        v["settled"].to_string().contains(&tags[1].0),
        "b keeps the value it had: {r:?}"
    );
}

#[test]
fn a_missing_newest_log_is_never_reused_for_new_records() {
    let (o, d, dir) = archive();
    let tags = three_logs(&o, d.path(), &dir);
    let newest_log = *list_logs(&dir).unwrap().last().unwrap();
    assert_eq!(newest_log, tags[2].1);
    std::fs::remove_file(log_path(&dir, newest_log)).unwrap();
    let key = snapshot_with_the_reflog_lost(&o, d.path(), "d", 9);
    assert!(
        !log_path(&dir, newest_log).exists(),
        "the new records went to a log after the missing one"
    );
    let r = o.restore("d", &d.path().join("out-d"));
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(newest(&o, "d"), key[..12]);
    let r = o.restore("c", &d.path().join("out-c"));
    assert!(
        r.stderr
            .contains(&format!("log-{newest_log:06} is missing")),
        "{r:?}"
    );
}

#[test]
fn a_truncated_log_reports_each_damaged_block_with_its_log_and_offset() {
    let (o, d, dir) = archive();
    let tags = three_logs(&o, d.path(), &dir);
    let cut = tags[1].1;
    let path = log_path(&dir, cut);
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(500_000).unwrap();
    drop(f);
    let name = format!("log-{cut:06}");
    for archive in [
        dir.display().to_string(),
        format!("backend-splitlog {}", quote(&dir)),
    ] {
        let o = Ore::new(archive);
        let r = o.run(&["check", "--read-data"]);
        assert_ne!(r.code, 0);
        let all = format!("{}{}", r.stdout, r.stderr);
        assert!(all.contains(&name), "{r:?}");
        assert!(all.contains("ends at byte 500000"), "{r:?}");
        for tag in ["a", "c"] {
            let out = d.path().join(format!("out-{tag}-{}", o.archive.len()));
            let r = o.restore(tag, &out);
            assert_eq!(r.code, 0, "{r:?}");
        }
    }
    let r = admin(&dir, &["verify", "--json"]);
    let problems = json(&r)["problems"].to_string();
    assert!(problems.contains(&name), "{r:?}");
    let r = admin(&dir, &["reindex", "--json"]);
    let problems = json(&r)["problems"].to_string();
    assert!(problems.contains("cut short"), "{r:?}");
}

#[test]
fn compaction_keeps_a_log_with_damaged_records_instead_of_deleting_the_evidence() {
    let (o, d, dir) = archive();
    let tags = three_logs(&o, d.path(), &dir);
    let (n, offset, _) = last_set(&dir, "b");
    assert_eq!(n, tags[1].1);
    damage_tag_record(&dir, n, offset, 8);
    let r = admin(&dir, &["compact", "0", "--json"]);
    let problems = json(&r)["problems"].to_string();
    assert!(
        problems.contains(&format!("log-{n:06} not compacted")),
        "{r:?}"
    );
    assert!(log_path(&dir, n).exists(), "the damaged log is kept");
    let r = admin(&dir, &["verify", "--json"]);
    let problems = json(&r)["problems"].to_string();
    assert!(
        problems.contains(&format!("log-{n:06} offset {offset}")),
        "{r:?}"
    );
    for tag in ["a", "b", "c"] {
        let r = o.restore(tag, &d.path().join(format!("out-{tag}")));
        assert_eq!(r.code, 0, "{r:?}");
    }
}

#[test]
fn a_log_cut_short_before_the_newest_does_not_stop_an_opening_that_replays_everything() {
    let (o, d, dir) = archive();
    let tags = three_logs(&o, d.path(), &dir);
    let cut = tags[1].1;
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(log_path(&dir, cut))
        .unwrap();
    f.set_len(500_000).unwrap();
    drop(f);
    remove_index(&dir);
    // The opening replays every log, meets the cut, and opens for reading: what it cannot
    // settle it names, with the way out.
    let r = admin(&dir, &["info", "--json"]);
    let problems = json(&r)["damage"].to_string();
    assert!(problems.contains("cannot show the newest value"), "{r:?}");
    assert!(problems.contains(&format!("log-{cut:06} offset")), "{r:?}");
    let r = o.run(&["log", "c"]);
    assert_ne!(r.code, 0);
    let suggested = r
        .stderr
        .split('`')
        .find(|c| c.contains("reindex --accept-older"))
        .unwrap_or_else(|| panic!("the way out is named: {r:?}"))
        .to_string();
    let words: Vec<&str> = suggested.split_whitespace().skip(2).collect();
    admin(&dir, &words).expect(1, "reindex accepting the older values (naming the cut)");
    for tag in ["a", "c"] {
        let r = o.restore(tag, &d.path().join(format!("out-{tag}")));
        assert_eq!(r.code, 0, "{r:?}");
    }
}

#[test]
fn a_newest_log_cut_short_below_what_the_index_reflects_is_not_appended_to() {
    let (o, d, dir) = archive();
    three_logs(&o, d.path(), &dir);
    let newest_log = *list_logs(&dir).unwrap().last().unwrap();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(log_path(&dir, newest_log))
        .unwrap();
    f.set_len(500_000).unwrap();
    drop(f);
    let r = admin(&dir, &["info", "--json"]);
    let problems = json(&r)["damage"].to_string();
    assert!(
        problems.contains(&format!("log-{newest_log:06} is 500000 bytes")),
        "{r:?}"
    );
    let key = snapshot_with_the_reflog_lost(&o, d.path(), "d", 9);
    assert_eq!(
        std::fs::metadata(log_path(&dir, newest_log)).unwrap().len(),
        500_000,
        "nothing new lands where the index places the lost records"
    );
    assert_eq!(newest(&o, "d"), key[..12]);
    let r = o.restore("d", &d.path().join("out-d"));
    assert_eq!(r.code, 0, "{r:?}");
    // With the index damaged too, verify still reads the logs and lists both.
    std::fs::write(
        dir.join("metadata.db"),
        b"not a database at all, not even close",
    )
    .unwrap();
    let r = admin(&dir, &["verify", "--json"]);
    let problems = json(&r)["problems"].to_string();
    assert!(problems.contains("metadata.db"), "{r:?}");
}

/// Garbage a machine crash may leave past the last commit (a header-sized run of zeros, so it
/// could have been a tag record), then a sound record setting `after`.
fn crash_garbage_then_a_tag(dir: &Path, after: &str) {
    use backend_splitlog::record::{named_payload, Header};
    use std::io::Write;
    let newest = *list_logs(dir).unwrap().last().unwrap();
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(log_path(dir, newest))
        .unwrap();
    f.write_all(&[0u8; 2 * HEADER_LEN]).unwrap();
    let payload = named_payload(after, b"v2");
    f.write_all(&Header::new(RecordType::TagSet, [0; 32], &payload).encode())
        .unwrap();
    f.write_all(&payload).unwrap();
}

#[test]
fn damage_past_the_last_commit_is_passed_over_and_leaves_no_doubt_for_a_later_full_replay() {
    use backend_splitlog::{SplitlogBackend, SplitlogOptions};
    use protocol::Backend;
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("a");
    {
        let b = SplitlogBackend::open(&dir, SplitlogOptions::default()).unwrap();
        b.set_tag("before", None, b"v1").unwrap();
        b.flush().unwrap();
    }
    crash_garbage_then_a_tag(&dir, "after");
    let id = format!("{} {}", env!("CARGO_BIN_EXE_backend-splitlog"), quote(&dir));
    let read = |what: &str| {
        let c = connect::Client::connect(&id).unwrap();
        let tags = (c.get_tag("before"), c.get_tag("after"));
        c.close().unwrap();
        match tags {
            (Ok(Some(b)), Ok(Some(a))) => (b, a),
            other => panic!("{what}: {other:?}"),
        }
    };
    // The opening replays past the garbage (never flushed: reported, not doubted) ...
    assert_eq!(read("first opening"), (b"v1".to_vec(), b"v2".to_vec()));
    // ... and a replay of every log later finds the values proven after it.
    remove_index(&dir);
    assert_eq!(
        read("after the index was deleted"),
        (b"v1".to_vec(), b"v2".to_vec())
    );
}
