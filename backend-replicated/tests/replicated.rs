//! backend-replicated against the conformance suite (in process and through its binary), and
//! its own rules: trust decides how many copies, weights decide where, failures are routed
//! around, reads fall back, tags reach every member, and the admin commands.

use backend_replicated::ReplicatedBackend;
use backend_splitlog::{SplitlogBackend, SplitlogOptions};
use connect::Client;
use protocol::{Backend, ErrorCode, Key};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use testkit::conformance::{run, test_data, test_key};

fn quote(p: &Path) -> String {
    format!("'{}'", p.display().to_string().replace('\'', r"'\''"))
}

fn args(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| w.to_string()).collect()
}

/// A state with members in `dirs` (plain paths: splitlog in process), each `(trust, write
/// weight)`.
fn with_members(t: &Path, members: &[(u32, u32)]) -> (PathBuf, Vec<PathBuf>) {
    let state = t.join("state.db");
    let b = ReplicatedBackend::open(&state).unwrap();
    let mut dirs = Vec::new();
    for (i, (trust, write)) in members.iter().enumerate() {
        let dir = t.join(format!("m{i}"));
        let out = b
            .admin(
                "add",
                &args(&[
                    &dir.display().to_string(),
                    "--trust",
                    &trust.to_string(),
                    "--write-weight",
                    &write.to_string(),
                ]),
            )
            .unwrap();
        assert!(out.text.contains("added member"), "{}", out.text);
        dirs.push(dir);
    }
    (state, dirs)
}

/// The keys a member's directory holds.
fn keys_in(dir: &Path) -> BTreeSet<Key> {
    let b = SplitlogBackend::open(dir, SplitlogOptions::default()).unwrap();
    let mut out = BTreeSet::new();
    let mut after = None;
    loop {
        let (keys, more) = b.list(after, 1000).unwrap();
        after = keys.last().copied();
        out.extend(keys);
        if !more {
            return out;
        }
    }
}

fn admin_json(b: &dyn Backend, cmd: &str, a: &[&str]) -> serde_json::Value {
    serde_json::from_str(&b.admin(cmd, &args(a)).unwrap().json).unwrap()
}

#[test]
fn conformance_in_process() {
    let t = tempfile::tempdir().unwrap();
    let (state, _) = with_members(t.path(), &[(50, 1), (50, 1), (50, 1)]);
    let b = ReplicatedBackend::open(&state).unwrap();
    run(&b);
}

#[test]
fn conformance_through_the_binary() {
    let t = tempfile::tempdir().unwrap();
    let state = t.path().join("state dir/state.db");
    let id = format!(
        "{} {}",
        env!("CARGO_BIN_EXE_backend-replicated"),
        quote(&state)
    );
    {
        let c = Client::connect(&id).unwrap();
        for i in 0..2 {
            let member = format!(
                "backend-splitlog {}",
                quote(&t.path().join(format!("m{i}")))
            );
            c.admin("add", &args(&[&member, "--trust", "60"])).unwrap();
        }
        c.close().unwrap();
    }
    let c = Client::connect(&id).unwrap();
    assert!(c.info().server.starts_with("backend-replicated"));
    run(&c);
    c.close().unwrap();
}

#[test]
fn trust_decides_the_copies_and_write_weight_the_members() {
    let t = tempfile::tempdir().unwrap();
    // Trust 50 + 50 + 50: two copies each; the third member has write weight 0 (read-only).
    let (state, dirs) = with_members(t.path(), &[(50, 1), (50, 3), (50, 0)]);
    {
        let b = ReplicatedBackend::open(&state).unwrap();
        for i in 0..40 {
            b.put(test_key(i), &test_data(i, 200)).unwrap();
        }
        b.flush().unwrap();
        let members = admin_json(&b, "members", &[]);
        assert_eq!(members[0]["copies"], 40, "{members}");
        assert_eq!(members[1]["copies"], 40, "{members}");
        assert_eq!(members[2]["copies"], 0, "{members}");
        assert_eq!(admin_json(&b, "stats", &[])["short"], 0);
    }
    assert_eq!(keys_in(&dirs[0]).len(), 40);
    assert_eq!(keys_in(&dirs[1]).len(), 40);
    assert!(!dirs[2].join("metadata.db").exists() || keys_in(&dirs[2]).is_empty());

    // Trust 100 each, weights 1 and 3: one copy each, about three quarters on the second.
    let t2 = tempfile::tempdir().unwrap();
    let (state, dirs) = with_members(t2.path(), &[(100, 1), (100, 3)]);
    let b = ReplicatedBackend::open(&state).unwrap();
    for i in 0..400 {
        b.put(test_key(i), &test_data(i, 10)).unwrap();
    }
    b.flush().unwrap();
    drop(b);
    let (a, c) = (keys_in(&dirs[0]).len(), keys_in(&dirs[1]).len());
    assert_eq!(a + c, 400);
    assert!((40..=170).contains(&a), "weight 1 of 4 got {a} of 400");
}

#[test]
fn zero_trust_is_an_error_and_no_members_is_read_only_and_empty() {
    let t = tempfile::tempdir().unwrap();
    let b = ReplicatedBackend::open(&t.path().join("empty.db")).unwrap();
    let info = b.info();
    assert!(!info.writable);
    assert!(
        info.description.contains("no members"),
        "{}",
        info.description
    );
    assert_eq!(b.get(test_key(1)).unwrap(), None);
    assert_eq!(
        b.put(test_key(1), b"x").unwrap_err().code(),
        ErrorCode::ReadOnly
    );
    assert!(b.admin("members", &[]).unwrap().text.contains("no members"));

    let (state, _) = with_members(t.path(), &[(0, 1)]);
    let b = ReplicatedBackend::open(&state).unwrap();
    let e = b.put(test_key(1), b"x").unwrap_err().to_string();
    assert!(e.contains("not stored with any trust"), "{e}");
}

#[test]
fn a_member_that_dies_is_routed_around_and_its_unflushed_copies_are_replaced() {
    let t = tempfile::tempdir().unwrap();
    let state = t.path().join("state.db");
    let splitlog = |n: usize| t.path().join(format!("m{n}"));
    let b = ReplicatedBackend::open(&state).unwrap();
    // Member 0 is killed at its 10th put; the others are healthy.
    let dying = format!(
        "env ORE_FAULT=kill,op=put,after=10 {} {}",
        env!("CARGO_BIN_EXE_backend-replicated").replace("backend-replicated", "backend-splitlog"),
        quote(&splitlog(0))
    );
    b.admin("add", &args(&[&dying, "--trust", "50"])).unwrap();
    for n in 1..3 {
        let id = format!("backend-splitlog {}", quote(&splitlog(n)));
        b.admin("add", &args(&[&id, "--trust", "50"])).unwrap();
    }
    drop(b);
    let b = ReplicatedBackend::open(&state).unwrap();
    let keys: Vec<Key> = (0..60).map(test_key).collect();
    for (i, k) in keys.iter().enumerate() {
        b.put(*k, &test_data(i as u64, 1000)).unwrap();
    }
    b.flush().unwrap();
    let members = admin_json(&b, "members", &[]);
    assert_eq!(members[0]["health"], "broken", "{members}");
    assert_eq!(admin_json(&b, "stats", &[])["short"], 0);
    drop(b);
    // Every block is on both survivors: 100% trust without the member that died.
    let want: BTreeSet<Key> = keys.into_iter().collect();
    assert_eq!(keys_in(&splitlog(1)), want);
    assert_eq!(keys_in(&splitlog(2)), want);
}

#[test]
fn reads_fall_back_and_find_copies_the_state_forgot() {
    let t = tempfile::tempdir().unwrap();
    let (state, dirs) = with_members(t.path(), &[(100, 1), (100, 1)]);
    {
        let b = ReplicatedBackend::open(&state).unwrap();
        for i in 0..20 {
            b.put(test_key(i), &test_data(i, 100)).unwrap();
        }
        b.flush().unwrap();
    }
    // The state forgets every copy (it is lost and made again with the same members).
    std::fs::remove_file(&state).unwrap();
    let _ = std::fs::remove_file(state.with_extension("db-wal"));
    let b = ReplicatedBackend::open(&state).unwrap();
    for d in &dirs {
        b.admin("add", &args(&[&d.display().to_string()])).unwrap();
    }
    drop(b);
    let b = ReplicatedBackend::open(&state).unwrap();
    assert_eq!(b.exists(&[test_key(3)]).unwrap(), vec![false]);
    assert_eq!(b.get(test_key(3)).unwrap(), Some(test_data(3, 100)));
    // Found where the state did not expect it, and recorded.
    assert_eq!(b.exists(&[test_key(3)]).unwrap(), vec![true]);
    assert_eq!(b.get(test_key(99)).unwrap(), None);
    // A scrub learns the rest from the members' listings.
    let r = admin_json(&b, "scrub", &[]);
    assert_eq!(r["found"], 19, "{r}");
    assert_eq!(b.exists(&[test_key(7)]).unwrap(), vec![true]);
}

#[test]
fn a_damaged_copy_is_read_from_another_member_and_repaired_by_scrub() {
    let t = tempfile::tempdir().unwrap();
    let (state, dirs) = with_members(t.path(), &[(50, 1), (50, 1)]);
    let data = test_data(1, 5000);
    {
        let b = ReplicatedBackend::open(&state).unwrap();
        b.put(test_key(1), &data).unwrap();
        b.flush().unwrap();
        // The first member is read first.
        b.admin("set", &args(&["1", "--read-weight", "10"]))
            .unwrap();
    }
    // Flip a byte inside the block's payload in the first member's log.
    let log = std::fs::read_dir(&dirs[0])
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("log-"))
        })
        .expect("a log file");
    let mut bytes = std::fs::read(&log).unwrap();
    let at = bytes
        .windows(32)
        .position(|w| w == test_key(1).0)
        .expect("the record of the block");
    bytes[at + 32 + 4 + 100] ^= 0x55;
    std::fs::write(&log, bytes).unwrap();

    let b = ReplicatedBackend::open(&state).unwrap();
    assert_eq!(b.get(test_key(1)).unwrap(), Some(data.clone()));
    let stats = admin_json(&b, "stats", &[]);
    assert_eq!(stats["damaged"][0]["member"], 1, "{stats}");
    let r = admin_json(&b, "scrub", &["--read"]);
    assert_eq!(
        (r["damaged"].as_u64(), r["repaired"].as_u64()),
        (Some(1), Some(1)),
        "{r}"
    );
    assert_eq!(
        admin_json(&b, "stats", &[])["damaged"],
        serde_json::json!([])
    );
    drop(b);
    let m0 = SplitlogBackend::open(&dirs[0], SplitlogOptions::default()).unwrap();
    assert_eq!(m0.get(test_key(1)).unwrap(), Some(data));
}

#[test]
fn tags_reach_every_writable_member_and_late_members_catch_up() {
    let t = tempfile::tempdir().unwrap();
    let (state, dirs) = with_members(t.path(), &[(100, 1), (100, 1)]);
    {
        let b = ReplicatedBackend::open(&state).unwrap();
        b.set_tag("home", None, b"v1").unwrap();
        b.set_tag("gone", None, b"x").unwrap();
        b.remove_tag("gone", None).unwrap();
        b.flush().unwrap();
    }
    for d in &dirs {
        let m = SplitlogBackend::open(d, SplitlogOptions::default()).unwrap();
        assert_eq!(
            m.list_tags().unwrap(),
            vec![("home".to_string(), b"v1".to_vec())]
        );
    }
    // A member that missed changes (here: one changed behind the state's back) is brought
    // up to date when the backend opens; tags the state never knew are left alone.
    {
        let m = SplitlogBackend::open(&dirs[1], SplitlogOptions::default()).unwrap();
        m.set_tag("home", Some(b"v1"), b"stale").unwrap();
        m.set_tag("gone", None, b"back").unwrap();
        m.set_tag("theirs", None, b"t").unwrap();
        m.flush().unwrap();
    }
    drop(ReplicatedBackend::open(&state).unwrap());
    let m = SplitlogBackend::open(&dirs[1], SplitlogOptions::default()).unwrap();
    assert_eq!(
        m.list_tags().unwrap(),
        vec![
            ("home".to_string(), b"v1".to_vec()),
            ("theirs".to_string(), b"t".to_vec())
        ]
    );
}

#[test]
fn remove_refuses_a_needed_member_and_drain_moves_its_blocks() {
    let t = tempfile::tempdir().unwrap();
    let (state, dirs) = with_members(t.path(), &[(100, 1), (100, 0)]);
    let b = ReplicatedBackend::open(&state).unwrap();
    for i in 0..30 {
        b.put(test_key(i), &test_data(i, 300)).unwrap();
    }
    b.flush().unwrap();
    let e = b.admin("remove", &args(&["1"])).unwrap_err().to_string();
    assert!(
        e.contains("30 block(s) fall short") && e.contains("drain 1"),
        "{e}"
    );
    let e = b.admin("drain", &args(&["7"])).unwrap_err().to_string();
    assert!(e.contains("no member \"7\""), "{e}");
    b.admin("set", &args(&["2", "--write-weight", "1"]))
        .unwrap();
    let out = b.admin("drain", &args(&["1"])).unwrap();
    assert!(out.text.contains("drained and removed"), "{}", out.text);
    let members = admin_json(&b, "members", &[]);
    assert_eq!(members.as_array().unwrap().len(), 1);
    drop(b);
    std::fs::remove_dir_all(&dirs[0]).unwrap();
    assert_eq!(keys_in(&dirs[1]).len(), 30);
    let b = ReplicatedBackend::open(&state).unwrap();
    for i in 0..30 {
        assert_eq!(b.get(test_key(i)).unwrap(), Some(test_data(i, 300)));
    }
}

#[test]
fn rereplicate_restores_full_trust_after_a_member_lost_everything() {
    let t = tempfile::tempdir().unwrap();
    let (state, dirs) = with_members(t.path(), &[(50, 1), (50, 1), (50, 1)]);
    {
        let b = ReplicatedBackend::open(&state).unwrap();
        for i in 0..50 {
            b.put(test_key(i), &test_data(i, 100)).unwrap();
        }
        b.flush().unwrap();
    }
    std::fs::remove_dir_all(&dirs[0]).unwrap();
    let b = ReplicatedBackend::open(&state).unwrap();
    let fresh = t.path().join("fresh");
    b.admin(
        "add",
        &args(&[&fresh.display().to_string(), "--trust", "50"]),
    )
    .unwrap();
    drop(b);
    let b = ReplicatedBackend::open(&state).unwrap();
    let r = admin_json(&b, "rereplicate", &[]);
    assert!(r["missing"].as_u64().unwrap() > 0, "{r}");
    assert_eq!(r["short"], serde_json::json!([]), "{r}");
    assert_eq!(r["unreadable"], serde_json::json!([]), "{r}");
    drop(b);
    // Every block is on at least two members again.
    let mut count = std::collections::HashMap::new();
    for d in dirs.iter().chain([&fresh]) {
        if d.exists() {
            for k in keys_in(d) {
                *count.entry(k).or_insert(0) += 1;
            }
        }
    }
    assert_eq!(count.len(), 50);
    assert!(count.values().all(|&n| n >= 2), "{count:?}");
}

#[test]
fn admin_arguments_are_checked() {
    let t = tempfile::tempdir().unwrap();
    let (state, _) = with_members(t.path(), &[(100, 1)]);
    let b = ReplicatedBackend::open(&state).unwrap();
    let err = |cmd: &str, a: &[&str]| b.admin(cmd, &args(a)).unwrap_err().to_string();
    assert!(err("add", &[]).contains("needs a member"));
    assert!(err("add", &["/x", "--trust", "150"]).contains("from 0 to 100"));
    assert!(err("add", &["/x", "--color"]).contains("does not take \"--color\""));
    assert!(err("set", &["1"]).contains("at least one"));
    let missing = t.path().join("m0").display().to_string();
    assert!(err("add", &[&missing]).contains("is a member already"));
    let e = err("add", &["backend-nonexistent /x"]);
    assert!(e.contains("cannot add"), "{e}");
}
