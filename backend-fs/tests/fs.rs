//! backend-fs against the conformance suite (in process and through its binary), and its own
//! promises: permissions, no half-written blocks, two writers at once, read-only access.

use backend_fs::{FsBackend, FsOptions};
use connect::Client;
use protocol::{Backend, CasOutcome, ErrorCode};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use testkit::conformance::{run, test_data, test_key};

fn id(dir: &Path) -> String {
    format!("{} '{}'", env!("CARGO_BIN_EXE_backend-fs"), dir.display())
}

#[test]
fn conformance_in_process() {
    let t = tempfile::tempdir().unwrap();
    let b = FsBackend::open(t.path().join("a"), FsOptions::default()).unwrap();
    run(&b);
}

#[test]
fn conformance_through_the_binary() {
    let t = tempfile::tempdir().unwrap();
    let c = Client::connect(&id(&t.path().join("archive with space"))).unwrap();
    run(&c);
    c.close().unwrap();
}

#[test]
fn files_are_0600_and_directories_0700() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("a");
    let b = FsBackend::open(&dir, FsOptions::default()).unwrap();
    b.put(test_key(1), b"data").unwrap();
    b.set_tag("t", None, b"v").unwrap();
    b.flush().unwrap();
    let mut seen = 0;
    let mut stack = vec![dir.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let mode = e.metadata().unwrap().permissions().mode() & 0o777;
            if e.file_type().unwrap().is_dir() {
                assert_eq!(mode, 0o700, "{}", e.path().display());
                stack.push(e.path());
            } else {
                assert_eq!(mode, 0o600, "{}", e.path().display());
            }
            seen += 1;
        }
    }
    assert!(seen >= 6);
    assert_eq!(
        std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
        0o700
    );
}

#[test]
fn reopening_keeps_blocks_and_tags_and_settings() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("a");
    {
        let opts = FsOptions {
            max_block_size: Some(1000),
            ..Default::default()
        };
        let b = FsBackend::open(&dir, opts).unwrap();
        b.put(test_key(1), &test_data(1, 1000)).unwrap();
        b.set_tag("t", None, b"v").unwrap();
        b.flush().unwrap();
    }
    let b = FsBackend::open(&dir, FsOptions::default()).unwrap();
    assert_eq!(b.info().max_block_size, 1000);
    assert_eq!(b.get(test_key(1)).unwrap(), Some(test_data(1, 1000)));
    assert_eq!(b.get_tag("t").unwrap().as_deref(), Some(&b"v"[..]));
}

#[test]
fn refuses_a_directory_that_is_not_an_archive() {
    let t = tempfile::tempdir().unwrap();
    std::fs::write(t.path().join("precious.txt"), b"keep me").unwrap();
    let e = FsBackend::open(t.path(), FsOptions::default())
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("is not empty and is not a backend-fs archive"),
        "{e}"
    );
    assert_eq!(
        std::fs::read(t.path().join("precious.txt")).unwrap(),
        b"keep me"
    );
    // Through the binary: the client reports the exit and the backend's stderr says why.
    let e = Client::connect(&id(t.path())).err().unwrap().to_string();
    assert!(e.contains("exited with status 1"), "{e}");
}

#[test]
fn crash_leftovers_in_tmp_never_appear_as_blocks() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("a");
    drop(FsBackend::open(&dir, FsOptions::default()).unwrap());
    // A writer killed between write and link leaves only a temporary file of a dead process.
    let key = test_key(5);
    let stale = dir
        .join("tmp")
        .join(format!("999999999-0-{}", key.to_hex()));
    std::fs::write(&stale, b"half a blo").unwrap();
    let b = FsBackend::open(&dir, FsOptions::default()).unwrap();
    assert_eq!(b.get(key).unwrap(), None);
    assert!(
        !stale.exists(),
        "temporary files of dead processes are cleaned on open"
    );
    assert_eq!(b.list(None, 10).unwrap().0, vec![]);
}

#[test]
fn two_processes_writing_one_archive() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("a");
    let a = Client::connect(&id(&dir)).unwrap();
    let b = Client::connect(&id(&dir)).unwrap();
    std::thread::scope(|s| {
        for (who, c) in [(0u64, &a), (1, &b)] {
            s.spawn(move || {
                // Both store the same keys (same content) and race on one tag.
                let tickets: Vec<_> = (0..500)
                    .map(|i| c.start_put(test_key(i), test_data(i, 2000)))
                    .collect();
                for t in tickets {
                    t.wait().unwrap();
                }
                let mut wins = 0;
                while wins < 30 {
                    let cur = c.get_tag("counter").unwrap();
                    let n: u64 = cur
                        .as_deref()
                        .map(|v| String::from_utf8_lossy(v).parse().unwrap())
                        .unwrap_or(0);
                    let next = (n + 1).to_string();
                    if c.set_tag("counter", cur.as_deref(), next.as_bytes())
                        .unwrap()
                        == CasOutcome::Done
                    {
                        wins += 1;
                    }
                }
                let _ = who;
            });
        }
    });
    a.flush().unwrap();
    b.flush().unwrap();
    assert_eq!(a.get_tag("counter").unwrap().as_deref(), Some(&b"60"[..]));
    for i in 0..500 {
        assert_eq!(b.get(test_key(i)).unwrap(), Some(test_data(i, 2000)));
    }
    assert_eq!(a.stats().unwrap().blocks, Some(500));
}

#[test]
fn read_only_serves_reads_and_refuses_writes() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("a");
    {
        let b = FsBackend::open(&dir, FsOptions::default()).unwrap();
        b.put(test_key(1), b"x").unwrap();
        b.set_tag("t", None, b"v").unwrap();
        b.flush().unwrap();
    }
    let c = Client::connect(&format!("{} --read-only", id(&dir))).unwrap();
    assert!(!c.info().writable && !c.info().can_remove);
    assert_eq!(c.get(test_key(1)).unwrap().as_deref(), Some(&b"x"[..]));
    assert_eq!(
        c.put(test_key(2), b"y").unwrap_err().code(),
        ErrorCode::ReadOnly
    );
    assert_eq!(
        c.remove(&[test_key(1)]).unwrap_err().code(),
        ErrorCode::ReadOnly
    );
    let e = c.set_tag("t", Some(b"v"), b"w").unwrap_err();
    assert_eq!(e.code(), ErrorCode::ReadOnly);
    assert!(e.to_string().contains("read-only"), "{e}");
    assert_eq!(c.get_tag("t").unwrap().as_deref(), Some(&b"v"[..]));
}

#[test]
fn admin_commands() {
    let t = tempfile::tempdir().unwrap();
    let c = Client::connect(&id(&t.path().join("a"))).unwrap();
    c.put(test_key(1), b"12345").unwrap();
    let stats = c.admin("stats", &[]).unwrap();
    assert!(
        stats.text.contains("blocks: 1") && stats.text.contains("bytes:  5"),
        "{}",
        stats.text
    );
    let json: serde_json::Value = serde_json::from_str(&stats.json).unwrap();
    assert_eq!(json["blocks"], 1);
    let info = c.admin("info", &[]).unwrap();
    assert!(info
        .text
        .contains(&t.path().join("a").display().to_string()));
    assert_eq!(
        c.admin("compact", &[]).unwrap_err().code(),
        ErrorCode::Admin
    );
}

#[test]
fn every_value_of_a_tag_stays_in_its_history() {
    let t = tempfile::tempdir().unwrap();
    let b = FsBackend::open(t.path().join("a"), FsOptions::default()).unwrap();
    b.set_tag("home", None, b"v1").unwrap();
    b.set_tag("home", Some(b"v1"), b"v2").unwrap();
    b.remove_tag("home", None).unwrap();
    let out = b.admin("tag-history", &["home".into()]).unwrap();
    let rows: serde_json::Value = serde_json::from_str(&out.json).unwrap();
    let values: Vec<serde_json::Value> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["value"].clone())
        .collect();
    assert_eq!(
        values,
        // The kept values (a removal names nothing to keep).
        vec![serde_json::json!("v1"), serde_json::json!("v2")]
    );
    assert!(out.text.contains("home v2"), "{}", out.text);
}

/// Files directly under `dir/sub`.
fn names_in(dir: &Path, sub: &str) -> Vec<String> {
    std::fs::read_dir(dir.join(sub))
        .map(|rd| {
            rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Every file under `dir/blocks`, at any depth.
fn block_files(dir: &Path) -> usize {
    let mut n = 0;
    let mut stack = vec![dir.join("blocks")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                n += 1;
            }
        }
    }
    n
}

#[test]
fn unflushed_blocks_are_served_from_tmp_and_named_in_batches() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("a");
    let b = FsBackend::open(&dir, FsOptions::default()).unwrap();
    for i in 0..10 {
        b.put(test_key(i), &test_data(i, 100)).unwrap();
    }
    // Accepted, not yet named: seen by get, exists and a repeated put all the same.
    assert_eq!(block_files(&dir), 0);
    assert_eq!(names_in(&dir, "tmp").len(), 10);
    assert_eq!(b.get(test_key(3)).unwrap(), Some(test_data(3, 100)));
    assert_eq!(
        b.exists(&[test_key(3), test_key(99)]).unwrap(),
        [true, false]
    );
    b.put(test_key(3), b"other bytes").unwrap();
    // A removal of a waiting block removes it.
    b.remove(&[test_key(4)]).unwrap();
    assert_eq!(b.get(test_key(4)).unwrap(), None);
    b.flush().unwrap();
    assert_eq!(block_files(&dir), 9);
    assert!(
        names_in(&dir, "tmp").is_empty(),
        "{:?}",
        names_in(&dir, "tmp")
    );
    assert_eq!(b.get(test_key(3)).unwrap(), Some(test_data(3, 100)));
    // A long run of puts is named in batches of 4,096 without waiting for a flush.
    for i in 100..4200 {
        b.put(test_key(i), &test_data(i, 16)).unwrap();
    }
    assert!(block_files(&dir) >= 9 + 4096, "{}", block_files(&dir));
    assert!(names_in(&dir, "tmp").len() < 4096);
    b.flush().unwrap();
    assert_eq!(block_files(&dir), 9 + 4100);
    assert_eq!(b.stats().unwrap().blocks, Some(9 + 4100));
}

#[test]
fn a_backend_killed_before_a_flush_leaves_only_whole_flushed_blocks() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("a");
    // The 15th put kills the backend (as kill -9): 5 blocks were flushed, 9 were accepted only.
    let c = Client::connect(&format!("env ORE_FAULT=kill,after=14,op=put {}", id(&dir))).unwrap();
    for i in 0..5 {
        c.put(test_key(i), &test_data(i, 3000)).unwrap();
    }
    c.flush().unwrap();
    let mut failed = None;
    for i in 5..20 {
        if let Err(e) = c.put(test_key(i), &test_data(i, 3000)) {
            failed = Some((i, e.to_string()));
            break;
        }
    }
    let (at, e) = failed.expect("the fault fires");
    assert_eq!(at, 14, "{e}");
    assert!(e.contains("killed by signal 9"), "{e}");
    assert_eq!(
        names_in(&dir, "tmp").len(),
        9,
        "the accepted blocks are temporary files"
    );
    // The next opener keeps the flushed blocks, and removes the dead writer's files.
    let b = FsBackend::open(&dir, FsOptions::default()).unwrap();
    assert!(names_in(&dir, "tmp").is_empty());
    for i in 0..5 {
        assert_eq!(b.get(test_key(i)).unwrap(), Some(test_data(i, 3000)));
    }
    assert_eq!(b.list(None, 100).unwrap().0.len(), 5);
    assert_eq!(block_files(&dir), 5);
}

#[test]
fn a_connection_closed_without_a_flush_still_names_its_blocks() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("a");
    {
        let b = FsBackend::open(&dir, FsOptions::default()).unwrap();
        b.put(test_key(1), b"kept").unwrap();
    }
    assert!(names_in(&dir, "tmp").is_empty());
    let b = FsBackend::open(&dir, FsOptions::default()).unwrap();
    assert_eq!(b.get(test_key(1)).unwrap().as_deref(), Some(&b"kept"[..]));
}

#[test]
fn conformance_through_lanes_of_separate_processes() {
    let t = tempfile::tempdir().unwrap();
    testkit::conformance::run_through_lanes(&id(&t.path().join("a")), 3);
}

/// Lanes that join later: what the first connection accepted before they joined must be seen
/// through them, though each is a process of its own that sees only named blocks (the switch
/// flushes the first connection).
#[test]
fn blocks_stored_before_lanes_join_are_seen_through_them() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("a");
    let (tx, rx) = std::sync::mpsc::channel();
    let lanes = connect::Lanes::joining(Client::connect(&id(&dir)).unwrap(), rx);
    for i in 0..64 {
        lanes.put(test_key(i), &test_data(i, 500)).unwrap();
    }
    assert_eq!(lanes.count(), 1);
    tx.send(vec![
        Client::connect(&id(&dir)).unwrap(),
        Client::connect(&id(&dir)).unwrap(),
    ])
    .unwrap();
    let keys: Vec<_> = (0..64).map(test_key).collect();
    assert!(lanes.exists(&keys).unwrap().iter().all(|&p| p));
    assert_eq!(lanes.count(), 3);
    for i in 0..64 {
        assert_eq!(
            lanes.get(test_key(i)).unwrap(),
            Some(test_data(i, 500)),
            "{i}"
        );
    }
    // And blocks stored through the other lanes are listed by the first after a settle.
    for i in 64..128 {
        lanes.put(test_key(i), &test_data(i, 500)).unwrap();
    }
    assert_eq!(lanes.list(None, 1000).unwrap().0.len(), 128);
}
