//! The proxies end to end with the frontend: a cache in front of a distant archive, and a
//! replicated archive over three splitlog members that loses a member's process mid-snapshot,
//! loses a member's directory, drains a member, and has a damaged copy.

use ore_tests::ore::{scratch, Ore};
use ore_tests::trees::{assert_same, bytes, every_kind};
use ore_tests::{bin, quote};
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;

/// `ore-admin ARCHIVE COMMAND... --json`, which must succeed.
fn admin(archive: &str, words: &[&str]) -> serde_json::Value {
    admin_exiting(archive, words, 0)
}

/// `ore-admin ARCHIVE WORDS --json`, which must exit with `code` (1: it reported damage).
fn admin_exiting(archive: &str, words: &[&str], code: i32) -> serde_json::Value {
    let out = Command::new(bin("ore-admin"))
        .arg(archive)
        .args(words)
        .arg("--json")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(code),
        "ore-admin {words:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A tree with many distinct small files (each its own chunk), plus every kind of entry.
fn tree(root: &Path, files: u64) {
    every_kind(root);
    let many = root.join("many");
    std::fs::create_dir_all(&many).unwrap();
    // Above the size below which files share bundles: a block each.
    for i in 0..files {
        std::fs::write(many.join(format!("f{i:04}")), bytes(1000 + i, 20_000)).unwrap();
    }
}

/// The keys a splitlog member holds (read from its directory, with no backend running).
fn keys_in(dir: &Path) -> BTreeSet<String> {
    // Scan the log records (no backend needs to run): blocks stored, minus blocks removed.
    let mut keys = BTreeSet::new();
    let mut logs: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("log-"))
        .collect();
    logs.sort();
    for log in logs {
        let b = std::fs::read(&log).unwrap();
        let mut at = 0;
        while at + 49 <= b.len() && b[at..at + 4] == *b"OSL\x02" {
            let len = u32::from_le_bytes(b[at + 5..at + 9].try_into().unwrap()) as usize;
            let key: String = b[at + 13..at + 45]
                .iter()
                .map(|x| format!("{x:02x}"))
                .collect();
            match b[at + 4] {
                1 => {
                    keys.insert(key);
                }
                4 => {
                    keys.remove(&key);
                }
                _ => {}
            }
            at += 49 + len;
        }
    }
    keys
}

fn splitlog_id(dir: &Path) -> String {
    format!("backend-splitlog {}", quote(dir))
}

#[test]
fn a_cache_in_front_of_a_distant_archive_answers_exists_itself() {
    let d = scratch();
    let src = d.path().join("src");
    tree(&src, 60);
    let distant = format!(
        "{} 10 backend-splitlog {}",
        bin("delay-link").display(),
        quote(&d.path().join("archive"))
    );
    let id = format!(
        "backend-cache {} {}",
        quote(&d.path().join("cache.db")),
        ore_tests::shell_quote(&distant)
    );
    let o = Ore::new(id.clone());
    o.run(&["init"]).expect(0, "init");
    o.snapshot("t", &src);
    let dest = d.path().join("dest");
    o.restore("t", &dest).expect(0, "restore");
    assert_same(&src, &dest);

    let before = admin(&id, &["stats"]);
    assert!(before["keys"].as_u64().unwrap() > 60, "{before}");
    // Reading every file again: every chunk is asked about, and the cache knows them all.
    o.run(&["snapshot", "t", src.to_str().unwrap(), "--no-cache"])
        .expect(0, "second snapshot");
    let after = admin(&id, &["stats"]);
    let hits = after["hits"].as_u64().unwrap() - before["hits"].as_u64().unwrap();
    let misses = after["misses"].as_u64().unwrap() - before["misses"].as_u64().unwrap();
    assert!(hits >= 60, "hits {hits}");
    // Only the new snapshot block is unknown.
    assert!(misses <= 2, "misses {misses}");
    // Commands the cache does not have reach splitlog behind it.
    let verify = admin(&id, &["verify"]);
    assert_eq!(verify["problems"], serde_json::json!([]), "{verify}");
}

/// A replicated archive's identifier, with members added as `(identifier, trust)`.
fn replicated(state: &Path, members: &[(String, u32)]) -> String {
    let id = format!("backend-replicated {}", quote(state));
    for (m, trust) in members {
        admin(&id, &["add", m, "--trust", &trust.to_string()]);
    }
    id
}

#[test]
fn a_member_killed_mid_snapshot_leaves_every_block_at_full_trust_on_the_survivors() {
    let d = scratch();
    let dirs: Vec<PathBuf> = (0..3).map(|i| d.path().join(format!("m{i}"))).collect();
    let state = d.path().join("state.db");
    // Two members first: the archive's first blocks are on both.
    let id = replicated(
        &state,
        &[(splitlog_id(&dirs[0]), 50), (splitlog_id(&dirs[1]), 50)],
    );
    let o = Ore::new(id.clone());
    o.run(&["init"]).expect(0, "init");
    // The third member's process is killed at its 20th put.
    let dying = format!(
        "env ORE_FAULT=kill,op=put,after=20 {} {}",
        bin("backend-splitlog").display(),
        quote(&dirs[2])
    );
    admin(&id, &["add", &dying, "--trust", "50"]);
    let src = d.path().join("src");
    tree(&src, 150);
    let r = o
        .run(&["snapshot", "t", src.to_str().unwrap()])
        .expect(0, "snapshot");
    assert!(r.stderr.contains("member 3"), "{}", r.stderr);
    // A new session reconnects it (its fault fires only on puts); the failure is remembered.
    let members = admin(&id, &["members"]);
    let last = members[2]["last_error"].as_str().unwrap_or_default();
    assert!(last.contains("killed by signal 9"), "{members}");
    // Every block is on both survivors (50% + 50%)...
    let (a, b) = (keys_in(&dirs[0]), keys_in(&dirs[1]));
    assert!(a.len() > 150);
    assert_eq!(a, b);
    // ...so either survivor alone is a complete archive, tags included.
    let alone = Ore::new(dirs[1].display().to_string());
    let dest = d.path().join("dest");
    alone
        .restore("t", &dest)
        .expect(0, "restore from one survivor");
    assert_same(&src, &dest);
}

/// How many members hold each block.
fn copies(dirs: &[PathBuf]) -> HashMap<String, usize> {
    let mut count = HashMap::new();
    for dir in dirs.iter().filter(|d| d.exists()) {
        for k in keys_in(dir) {
            *count.entry(k).or_insert(0) += 1;
        }
    }
    count
}

#[test]
fn a_lost_member_directory_is_survived_and_rereplicate_restores_full_trust() {
    let d = scratch();
    let mut dirs: Vec<PathBuf> = (0..3).map(|i| d.path().join(format!("m{i}"))).collect();
    let members: Vec<_> = dirs.iter().map(|p| (splitlog_id(p), 50)).collect();
    let id = replicated(&d.path().join("state.db"), &members);
    let o = Ore::new(id.clone());
    o.run(&["init"]).expect(0, "init");
    let src = d.path().join("src");
    tree(&src, 40);
    o.snapshot("t", &src);

    std::fs::remove_dir_all(&dirs[0]).unwrap();
    let dest = d.path().join("dest");
    o.restore("t", &dest)
        .expect(0, "restore without one member");
    assert_same(&src, &dest);

    let fresh = d.path().join("fresh");
    admin(&id, &["add", &splitlog_id(&fresh), "--trust", "50"]);
    // It found the lost copies (and made new ones): damage reported, exit 1.
    let r = admin_exiting(&id, &["rereplicate"], 1);
    assert_eq!(r["short"], serde_json::json!([]), "{r}");
    assert_eq!(r["unreadable"], serde_json::json!([]), "{r}");
    assert_eq!(admin(&id, &["stats"])["short"], 0);
    dirs.push(fresh);
    let count = copies(&dirs);
    assert!(count.len() > 40);
    assert!(count.values().all(|&n| n >= 2), "{count:?}");
}

#[test]
fn a_drained_member_can_be_deleted_without_losing_anything() {
    let d = scratch();
    let dirs: Vec<PathBuf> = (0..3).map(|i| d.path().join(format!("m{i}"))).collect();
    let members: Vec<_> = dirs.iter().map(|p| (splitlog_id(p), 50)).collect();
    let id = replicated(&d.path().join("state.db"), &members);
    let o = Ore::new(id.clone());
    o.run(&["init"]).expect(0, "init");
    let src = d.path().join("src");
    tree(&src, 40);
    o.snapshot("t", &src);
    admin(&id, &["drain", "1"]);
    assert_eq!(admin(&id, &["members"]).as_array().unwrap().len(), 2);
    std::fs::remove_dir_all(&dirs[0]).unwrap();
    let count = copies(&dirs[1..]);
    assert!(count.values().all(|&n| n == 2), "{count:?}");
    let dest = d.path().join("dest");
    o.restore("t", &dest).expect(0, "restore after the drain");
    assert_same(&src, &dest);
}

#[test]
fn a_damaged_copy_on_one_member_is_read_from_another_and_reported() {
    let d = scratch();
    let dirs: Vec<PathBuf> = (0..2).map(|i| d.path().join(format!("m{i}"))).collect();
    let members: Vec<_> = dirs.iter().map(|p| (splitlog_id(p), 50)).collect();
    let id = replicated(&d.path().join("state.db"), &members);
    let o = Ore::new(id.clone());
    o.run(&["init"]).expect(0, "init");
    let src = d.path().join("src");
    tree(&src, 10);
    o.snapshot("t", &src);
    // Member 1 is read first; damage the payload of its largest block.
    admin(&id, &["set", "1", "--read-weight", "10"]);
    let log = std::fs::read_dir(&dirs[0])
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with("log-"))
        .unwrap();
    let mut b = std::fs::read(&log).unwrap();
    let (mut at, mut best) = (0, (0, 0));
    while at + 49 <= b.len() && b[at..at + 4] == *b"OSL\x02" {
        let len = u32::from_le_bytes(b[at + 5..at + 9].try_into().unwrap()) as usize;
        if b[at + 4] == 1 && len > best.1 {
            best = (at, len);
        }
        at += 49 + len;
    }
    assert!(best.1 > 1000, "a block record to damage");
    b[best.0 + 49 + best.1 / 2] ^= 0xff;
    std::fs::write(&log, b).unwrap();

    let dest = d.path().join("dest");
    let r = o
        .restore("t", &dest)
        .expect(0, "restore with a damaged copy");
    assert_same(&src, &dest);
    assert!(r.stderr.contains("damaged on member 1"), "{}", r.stderr);
    let stats = admin(&id, &["stats"]);
    assert_eq!(stats["damaged"].as_array().unwrap().len(), 1, "{stats}");
    let scrub = admin_exiting(&id, &["scrub", "--read"], 1);
    assert_eq!(scrub["repaired"], 1, "{scrub}");
}
