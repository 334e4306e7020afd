//! Attacks on gc's coordination tags by a machine that holds only an append-only key: `ore:gc`
//! (which announces the owner's sweep) and `ore:lease:N` (which tells gc to wait for a
//! running snapshot). Both are tags an append-only connection may write, so each attack is
//! tried for real: a `backend-fs` archive, a real sshd whose `authorized_keys` forces
//! `backend-fs --append-only`, the real binaries, and the owner's routine gc in the middle of
//! it. Each test is named after the attack and ends with `ore check --read-data`: no snapshot
//! may end up naming a block gc removed (see ore/src/core/lease.rs and docs/DESIGN.md, "Why gc is safe
//! while snapshots run").
//!
//! The owner's gc is held in its sweep deterministically by a lease a test holds through a
//! full-access connection, as a long snapshot would: gc announces its sweep and waits for the
//! lease until the test lets it go.

use ore_tests::ore::{scratch, Ore, Run};
use ore_tests::sshd::Sshd;
use ore_tests::trees::bytes;
use ore_tests::{bin, quote};
use protocol::{Backend, CasOutcome};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A `backend-fs` archive the owner reaches directly, and an sshd whose only key is
/// append-only to it (`prefix` goes before the backend program in the forced command).
struct Setup {
    d: tempfile::TempDir,
    fs: PathBuf,
    owner: Ore,
    sshd: Sshd,
}

impl Setup {
    fn new(prefix: &str) -> Setup {
        let d = scratch();
        let fs = d.path().join("fs");
        let owner = Ore::fs(&fs);
        let forced = format!(
            "command=\"{prefix}{} --append-only {}\",restrict",
            bin("backend-fs").display(),
            fs.display()
        );
        let sshd = Sshd::start(Some(&forced));
        Setup { d, fs, owner, sshd }
    }

    /// `ore` through the append-only key, with the owner's passphrase (the machine holds it).
    fn laptop(&self) -> Ore {
        Ore::new(self.sshd.identifier("anything"))
    }

    /// A raw protocol connection through the append-only key: the attacker.
    fn attacker(&self) -> connect::Client {
        connect::Client::connect(&self.sshd.identifier("anything")).unwrap()
    }

    /// A raw full-access connection to the archive.
    fn full(&self) -> connect::Client {
        connect::Client::connect(&format!(
            "{} {}",
            quote(&bin("backend-fs")),
            quote(&self.fs)
        ))
        .unwrap()
    }

    /// Makes `garbage` (a file of 300 kB) unreachable: the owner snapshots `home` with it, then
    /// without it, forgets the first snapshot and expires the history. gc then has candidates.
    fn make_garbage(&self, src: &Path, garbage: &str) {
        std::fs::write(src.join(garbage), bytes(99, 300_000)).unwrap();
        self.owner.snapshot("home", src);
        std::fs::remove_file(src.join(garbage)).unwrap();
        self.owner.snapshot("home", src);
        self.owner
            .run(&["forget", "home", "--keep-last", "1"])
            .expect(0, "forget");
        self.owner
            .run(&["reflog", "expire", "--older-than", "0s"])
            .expect(0, "reflog expire");
    }

    /// The owner's check: every block every snapshot names is there and reads back.
    fn owner_check_is_clean(&self) {
        self.owner
            .run(&["check", "--read-data"])
            .expect(0, "the owner's check --read-data");
    }
}

/// A lease held through a full-access connection, as a long snapshot holds one.
fn hold_a_lease(c: &connect::Client) -> (String, Vec<u8>) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let name = "ore:lease:90".to_string();
    let value =
        format!(r#"{{"by":"a long snapshot","since":{now},"heartbeat":{now},"id":"long"}}"#)
            .into_bytes();
    assert_eq!(c.set_tag(&name, None, &value).unwrap(), CasOutcome::Done);
    (name, value)
}

/// Polls until `f` holds (a minute at most).
fn until(what: &str, mut f: impl FnMut() -> bool) {
    let started = Instant::now();
    while !f() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "never happened: {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether `ore:gc` announces a sweep.
fn sweeping(c: &connect::Client) -> bool {
    c.get_tag("ore:gc")
        .unwrap()
        .is_some_and(|v| String::from_utf8_lossy(&v).contains(r#""state":"sweeping""#))
}

/// Starts `ore ARGS` with its stderr sent line by line to the returned channel.
fn spawn(ore: &Ore, args: &[&str]) -> (Child, mpsc::Receiver<String>) {
    let mut child = ore
        .cmd(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let err = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(err).lines() {
            if tx.send(line.unwrap_or_default()).is_err() {
                return;
            }
        }
    });
    (child, rx)
}

/// Waits for `child` and collects what it printed (stderr from `lines`).
fn finish(child: Child, lines: mpsc::Receiver<String>, seen: &str) -> Run {
    let out = child.wait_with_output().unwrap();
    let mut r = Run::of(out);
    r.stderr = format!("{seen}{}", lines.iter().collect::<Vec<_>>().join("\n"));
    r
}

/// The attack: the append-only client watches `ore:gc` and, as soon as the owner's gc
/// announces a sweep, sets it back to idle. Snapshots started then would run during the sweep
/// and deduplicate against the blocks it removes. The backend refuses (the sweep is live), a
/// snapshot started meanwhile waits for the sweep, and the owner's check is clean after.
#[test]
fn an_append_only_key_cannot_end_the_owners_live_gc_sweep() {
    let s = Setup::new("");
    let src = s.d.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("kept"), bytes(1, 50_000)).unwrap();
    s.make_garbage(&src, "victim");

    let full = s.full();
    let (lease, held) = hold_a_lease(&full);
    let (gc, gc_err) = spawn(&s.owner, &["gc", "--json"]);
    until("the owner's gc announces its sweep", || sweeping(&full));

    let attacker = s.attacker();
    let announced = attacker.get_tag("ore:gc").unwrap().unwrap();
    let r = attacker.set_tag(
        "ore:gc",
        Some(&announced),
        br#"{"state":"idle","epoch":"evil","unclean":""}"#,
    );
    let e = r.expect_err("ending the owner's live sweep through the append-only key");
    assert_eq!(e.code(), protocol::ErrorCode::ReadOnly, "{e}");
    assert!(e.to_string().contains("sweep is under way"), "{e}");
    attacker.close().unwrap();
    assert_eq!(
        full.get_tag("ore:gc").unwrap().as_deref(),
        Some(announced.as_slice()),
        "the sweep's announcement stands"
    );

    // A snapshot that deduplicates against the doomed blocks waits for the sweep.
    std::fs::write(src.join("victim"), bytes(99, 300_000)).unwrap();
    let laptop = s.laptop();
    let (mut snap, snap_err) = spawn(&laptop, &["snapshot", "home", src.to_str().unwrap()]);
    let mut said = String::new();
    while !said.contains("waiting for a gc") {
        match snap_err.recv_timeout(Duration::from_secs(60)) {
            Ok(l) => said.push_str(&(l + "\n")),
            Err(_) => panic!("the snapshot did not wait for the sweep: {said}"),
        }
    }
    assert!(snap.try_wait().unwrap().is_none(), "{said}");

    // The long snapshot ends; gc removes the garbage, then the waiting snapshot goes on.
    assert_eq!(
        full.set_tag(&lease, Some(&held), b"free").unwrap(),
        CasOutcome::Done
    );
    full.close().unwrap();
    let g = finish(gc, gc_err, "").expect(0, "the owner's gc");
    let removed: serde_json::Value = serde_json::from_str(g.stdout.trim()).unwrap();
    assert!(removed["removed"].as_u64().unwrap() > 0, "{}", g.stdout);
    finish(snap, snap_err, &said).expect(0, "the snapshot that waited");
    s.owner_check_is_clean();
    let out = s.d.path().join("out");
    s.owner.restore("home", &out).expect(0, "restore");
    assert_eq!(
        std::fs::read(out.join("victim")).unwrap(),
        bytes(99, 300_000)
    );
}

/// The attack: after the owner's gc removed blocks (a new epoch in `ore:gc`), the append-only
/// client sets `ore:gc` back to an earlier idle value. A file cache written under that epoch
/// would trust its entries again, whose blocks the gc may have removed. The only change the
/// backend allows is the one writers need — ending a sweep whose gc died, with the value
/// derived from it — and a snapshot through the same key still does that.
#[test]
fn an_append_only_key_cannot_roll_ore_gc_back_to_an_epoch_file_caches_trust() {
    let s = Setup::new("");
    let src = s.d.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("kept"), bytes(1, 50_000)).unwrap();
    s.make_garbage(&src, "victim");
    s.owner.run(&["gc"]).expect(0, "the owner's first gc");
    let full = s.full();
    let earlier = full.get_tag("ore:gc").unwrap().unwrap();
    s.make_garbage(&src, "victim2");
    s.owner.run(&["gc"]).expect(0, "the owner's second gc");
    let attacker = s.attacker();
    let roll_back = |to: &[u8]| {
        let now = attacker.get_tag("ore:gc").unwrap();
        let e = attacker
            .set_tag("ore:gc", now.as_deref(), to)
            .expect_err("ore:gc rolled back through the append-only key");
        assert_eq!(e.code(), protocol::ErrorCode::ReadOnly, "{e}");
    };
    roll_back(&earlier);
    roll_back(br#"{"state":"idle","epoch":"mine","unclean":""}"#);

    // A gc that dies mid-sweep (its sweep declares a ttl of 1 s): not even then.
    s.make_garbage(&src, "victim3");
    let crashing = Ore::new(format!(
        "env ORE_FAULT=kill,op=remove,after=0 {} {}",
        quote(&bin("backend-fs")),
        quote(&s.fs)
    ));
    let r = crashing
        .cmd(&["gc"])
        .env("ORE_LEASE_TTL", "1")
        .output()
        .unwrap();
    assert!(!r.status.success(), "the gc's backend was killed");
    std::thread::sleep(Duration::from_millis(1500));
    assert!(sweeping(&full), "the dead gc's sweep is announced still");
    roll_back(&earlier);
    attacker.close().unwrap();
    // A snapshot through the key ends the dead sweep itself, as writers must.
    let r = s
        .laptop()
        .run(&["snapshot", "laptop", src.to_str().unwrap()])
        .expect(0, "a snapshot through the append-only key");
    assert!(
        r.stderr.contains("stopped without finishing"),
        "{}",
        r.stderr
    );
    let now = full.get_tag("ore:gc").unwrap().unwrap();
    assert!(!sweeping(&full) && now != earlier);
    full.close().unwrap();
    s.owner.run(&["gc"]).expect(0, "the owner's gc");
    s.owner_check_is_clean();
}

/// Belt and braces for the attack above: should `ore:gc` be changed behind a sweeping gc's
/// back all the same (here through a full-access connection), gc notices before its next
/// batch of removals — not at its next renewal, up to ttl/10 later — and removes nothing.
#[test]
fn a_gc_whose_sweep_was_ended_behind_its_back_removes_nothing_more() {
    let s = Setup::new("");
    let src = s.d.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("kept"), bytes(1, 50_000)).unwrap();
    s.make_garbage(&src, "victim");
    let full = s.full();
    let blocks = |c: &connect::Client| c.list(None, 100_000).unwrap().0.len();
    let before = blocks(&full);

    let (lease, held) = hold_a_lease(&full);
    let (gc, gc_err) = spawn(&s.owner, &["gc"]);
    until("the owner's gc announces its sweep", || sweeping(&full));
    let announced = full.get_tag("ore:gc").unwrap().unwrap();
    assert_eq!(
        full.set_tag(
            "ore:gc",
            Some(&announced),
            br#"{"state":"idle","epoch":"elsewhere","unclean":""}"#
        )
        .unwrap(),
        CasOutcome::Done
    );
    full.set_tag(&lease, Some(&held), b"free").unwrap();
    let g = finish(gc, gc_err, "");
    assert_ne!(g.code, 0, "gc went on removing: {}", g.stderr);
    assert!(g.stderr.contains("stopped removing blocks"), "{}", g.stderr);
    assert_eq!(
        blocks(&full),
        before,
        "gc removed blocks after its sweep ended"
    );
    full.close().unwrap();
    s.owner_check_is_clean();
}

/// A laptop whose snapshots go through the append-only key, each request costing 20 ms, with
/// a file cache that says where `victim`'s blocks are — blocks the owner has since made
/// garbage — and a tree of 300 new files to store: its next snapshot refers to `victim`'s
/// blocks without asking and runs for seconds, long enough for an attack and the owner's gc.
fn slow_laptop_with_a_doomed_cache() -> (Setup, Ore, PathBuf) {
    let slow = format!("{} --serial 20 ", bin("delay-link").display());
    let s = Setup::new(&slow);
    let laptop = s.laptop();
    let src = s.d.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("victim"), bytes(99, 300_000)).unwrap();
    laptop.snapshot("home", &src);
    // The owner replaces that snapshot and lets it go: `victim`'s blocks are garbage, but the
    // laptop's cache (whose last snapshot is still stored) still trusts them.
    let elsewhere = s.d.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::fs::write(elsewhere.join("other"), b"other").unwrap();
    s.owner.snapshot("home", &elsewhere);
    s.owner
        .run(&["forget", "home", "--keep-last", "1"])
        .expect(0, "forget");
    s.owner
        .run(&["reflog", "expire", "--older-than", "0s"])
        .expect(0, "reflog expire");
    for i in 0..300 {
        std::fs::write(src.join(format!("new-{i}")), bytes(1000 + i, 3_000)).unwrap();
    }
    (s, laptop, src)
}

/// The first held lease slot, once there is one.
fn a_held_lease(full: &connect::Client) -> (String, Vec<u8>) {
    let mut lease = None;
    until("a snapshot takes its lease", || {
        lease = full
            .list_tags()
            .unwrap()
            .into_iter()
            .find(|(n, v)| n.starts_with("ore:lease:") && !v.starts_with(b"free"));
        lease.is_some()
    });
    lease.unwrap()
}

/// Every lease slot is free (runs through the append-only key free theirs with a proof).
fn all_leases_free(full: &connect::Client) {
    for (n, v) in full.list_tags().unwrap() {
        if n.starts_with("ore:lease:") {
            assert!(
                v.starts_with(b"free"),
                "{n} = {}",
                String::from_utf8_lossy(&v)
            );
        }
    }
}

/// The attack: a snapshot is running (its file cache says a 300 kB file's blocks are in the
/// archive, so it refers to them without asking); the append-only client sets that snapshot's
/// lease to `free`, so that the owner's routine gc does not wait for it and removes those
/// blocks (they were unreachable) — after which the snapshot would move its tag onto a tree
/// naming them. The backend refuses: the lease is live and locked with a secret only the
/// snapshot knows. So gc waits, and everything is whole after.
#[test]
fn an_append_only_key_cannot_free_a_running_snapshots_lease() {
    let (s, laptop, src) = slow_laptop_with_a_doomed_cache();
    let full = s.full();
    let (snap, snap_err) = spawn(&laptop, &["snapshot", "home", src.to_str().unwrap()]);
    let (name, value) = a_held_lease(&full);
    let attacker = s.attacker();
    for evil in [b"free".to_vec(), value.clone()] {
        let e = attacker
            .set_tag(&name, Some(&value), &evil)
            .expect_err("changing a running snapshot's lease through the append-only key");
        assert_eq!(e.code(), protocol::ErrorCode::ReadOnly, "{e}");
        assert!(e.to_string().contains("held by a running snapshot"), "{e}");
    }
    attacker.close().unwrap();
    s.owner.run(&["gc"]).expect(0, "the owner's gc");
    finish(snap, snap_err, "").expect(0, "the laptop's snapshot");
    all_leases_free(&full);
    full.close().unwrap();
    s.owner_check_is_clean();
    let out = s.d.path().join("out");
    s.owner.restore("home", &out).expect(0, "restore");
    ore_tests::trees::assert_same(&src, &out);
}

/// The same attack by a connection the backend does not restrict (or on a lease written by an
/// earlier version, without a lock): the lease is freed, gc sweeps without waiting and
/// removes blocks the snapshot refers to. The snapshot re-reads its lease before it moves its
/// tag, finds it is no longer its own and that a gc ran, and refuses; the owner's check is
/// clean, and a re-run completes.
#[test]
fn a_snapshot_whose_lease_was_freed_behind_its_back_refuses_to_finish_after_a_gc() {
    let (s, laptop, src) = slow_laptop_with_a_doomed_cache();
    let full = s.full();
    let (mut snap, snap_err) = spawn(&laptop, &["snapshot", "home", src.to_str().unwrap()]);
    let (name, value) = a_held_lease(&full);
    assert_eq!(
        full.set_tag(&name, Some(&value), b"free").unwrap(),
        CasOutcome::Done
    );
    let g = s.owner.run(&["gc", "--json"]).expect(0, "the owner's gc");
    assert!(!g.stdout.contains(r#""removed":0"#), "{}", g.stdout);
    assert!(
        snap.try_wait().unwrap().is_none(),
        "the snapshot ended before the gc did: make it slower"
    );
    let r = finish(snap, snap_err, "");
    assert_ne!(r.code, 0, "the snapshot moved its tag: {}", r.stderr);
    assert!(r.stderr.contains("a gc ran meanwhile"), "{}", r.stderr);
    s.owner_check_is_clean();
    laptop.snapshot("home", &src);
    all_leases_free(&full);
    full.close().unwrap();
    s.owner_check_is_clean();
    let out = s.d.path().join("out");
    s.owner.restore("home", &out).expect(0, "restore");
    ore_tests::trees::assert_same(&src, &out);
}

/// The locks cost an honest writer nothing: through the append-only key a snapshot renews its
/// lease (every 100 ms with `ORE_LEASE_TTL=1`), each renewal revealing the last secret and
/// locking with a new one, and frees it at the end.
#[test]
fn a_snapshot_through_an_append_only_key_renews_and_frees_its_locked_lease() {
    let (s, laptop, src) = slow_laptop_with_a_doomed_cache();
    let full = s.full();
    let mut c = laptop.cmd(&["snapshot", "home", src.to_str().unwrap()]);
    let mut snap = c
        .env("ORE_LEASE_TTL", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (name, first) = a_held_lease(&full);
    let mut seen = vec![first];
    while snap.try_wait().unwrap().is_none() {
        if let Some(v) = full.get_tag(&name).unwrap() {
            if seen.last() != Some(&v) {
                seen.push(v);
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = snap.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let renewals: Vec<_> = seen
        .iter()
        .filter(|v| String::from_utf8_lossy(v).contains(r#""proof":"#))
        .collect();
    assert!(renewals.len() >= 3, "{} renewals seen", renewals.len());
    all_leases_free(&full);
    full.close().unwrap();
    s.owner_check_is_clean();
}
