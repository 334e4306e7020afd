//! Attacks by a machine that holds only an append-only key, each tried for real: a real sshd on
//! 127.0.0.1 whose `authorized_keys` forces `backend-splitlog --append-only DIR`, the real
//! binaries, and the owner's routine commands afterwards. Each test is named after the attack
//! and proves it gains nothing (see docs/BACKENDS.md, "Append-only keys"). The attach-socket
//! attack is in `attach_forwarding.rs`.

use ore_tests::bin;
use ore_tests::ore::{scratch, Ore};
use ore_tests::sshd::Sshd;
use protocol::Backend;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// An archive the owner made locally with three snapshots of `home`, and an sshd whose only
/// key is append-only (with `restrict`, as the README shows).
struct Setup {
    d: tempfile::TempDir,
    owner: Ore,
    sshd: Sshd,
    src: PathBuf,
    /// The snapshots, oldest first.
    snapshots: Vec<String>,
}

impl Setup {
    fn new() -> Setup {
        let d = scratch();
        let archive = d.path().join("archive");
        let owner = Ore::new(archive.display().to_string());
        owner.run(&["init"]).expect(0, "init");
        let src = d.path().join("src");
        ore_tests::trees::every_kind(&src);
        let mut snapshots = Vec::new();
        for i in 0..3 {
            std::fs::write(src.join("changing"), format!("version {i}")).unwrap();
            snapshots.push(owner.snapshot("home", &src));
        }
        let forced = format!(
            "command=\"{} --append-only {}\",restrict",
            bin("backend-splitlog").display(),
            archive.display()
        );
        let sshd = Sshd::start(Some(&forced));
        Setup {
            d,
            owner,
            sshd,
            src,
            snapshots,
        }
    }

    /// `ore` through the append-only key, with the owner's passphrase (the machine holds it).
    fn laptop(&self) -> Ore {
        Ore::new(self.sshd.identifier("anything"))
    }

    /// A raw protocol connection through the append-only key.
    fn raw(&self) -> connect::Client {
        connect::Client::connect(&self.sshd.identifier("anything")).unwrap()
    }

    /// Through the append-only key, points `tag` at the format record's block (a key, so
    /// allowed; a block of another kind than the tag names). Returns that value.
    fn point_at_the_format_record(&self, tag: &str) -> Vec<u8> {
        let c = self.raw();
        let format = c.get_tag("ore:format").unwrap().unwrap();
        let now = c.get_tag(tag).unwrap();
        assert_eq!(
            c.set_tag(tag, now.as_deref(), &format).unwrap(),
            protocol::CasOutcome::Done
        );
        c.close().unwrap();
        format
    }

    /// The owner's routine: gc (which compacts), then every snapshot must still restore.
    fn owner_gc_keeps_everything(&self) {
        self.owner.run(&["gc"]).expect(0, "the owner's gc");
        for (i, key) in self.snapshots.iter().enumerate() {
            let dest = self.d.path().join(format!("dest-{i}-{}", &key[..8]));
            self.owner
                .restore(key, &dest)
                .expect(0, "restoring an old snapshot by key");
            assert_eq!(
                std::fs::read_to_string(dest.join("changing")).unwrap(),
                format!("version {i}")
            );
        }
    }
}

fn refused(r: protocol::Result<protocol::CasOutcome>, what: &str) -> String {
    let e = r.expect_err(what);
    assert_eq!(e.code(), protocol::ErrorCode::ReadOnly, "{what}: {e}");
    e.to_string()
}

/// Issue 21, item 2: `ore forget --keep-last 1` and `ore reflog expire --older-than 0s`
/// through the append-only key, then the owner's routine gc and compaction. The tag's history
/// survives both, gc keeps every snapshot it names, and the owner puts the tag back with
/// `ore tag-history` and `ore reset`.
#[test]
fn an_append_only_forget_and_reflog_expire_cannot_make_the_owners_gc_delete_snapshots() {
    let s = Setup::new();
    let laptop = s.laptop();
    laptop
        .run(&["forget", "home", "--keep-last", "1"])
        .expect(0, "forget through the append-only key (a tag move)");
    // A hand-made client does what `reflog expire` would: it points `ore:reflog` back at the
    // first reflog block (a key, so allowed), which names none of the later snapshots.
    let c = s.raw();
    let kept = c
        .admin("tag-history", &["ore:reflog".into()])
        .expect("tag-history is a reading command");
    let rows: serde_json::Value = serde_json::from_str(&kept.json).unwrap();
    let first = rows[0]["value"]
        .as_str()
        .expect("a first reflog head")
        .to_string();
    let now = c.get_tag("ore:reflog").unwrap();
    assert_eq!(
        c.set_tag("ore:reflog", now.as_deref(), first.as_bytes())
            .unwrap(),
        protocol::CasOutcome::Done
    );
    c.close().unwrap();
    // `ore` itself says that expiring is the owner's, and changes nothing.
    let r = laptop.run(&["reflog", "expire", "--older-than", "0s"]);
    assert_ne!(
        r.code, 0,
        "reflog expire through the append-only key: {}",
        r.stdout
    );
    assert!(r.stderr.contains("full access"), "{}", r.stderr);
    s.owner_gc_keeps_everything();
    // Compaction ran (gc compacts): the history is still there.
    let h = s
        .owner
        .run(&["tag-history", "home"])
        .expect(0, "tag-history");
    for key in &s.snapshots {
        assert!(h.stdout.contains(key.as_str()), "{key} in\n{}", h.stdout);
    }
    s.owner
        .run(&["reset", "home", &s.snapshots[0]])
        .expect(0, "reset from the history");
    let dest = s.d.path().join("back");
    s.owner.restore("home", &dest).expect(0, "restore");
    assert_eq!(
        std::fs::read_to_string(dest.join("changing")).unwrap(),
        "version 0"
    );
    // With full access the owner can expire the history, and gc then frees the space.
    s.owner
        .run(&["reflog", "expire", "--older-than", "0s"])
        .expect(0, "the owner's reflog expire");
    s.owner.run(&["gc"]).expect(0, "gc after expiry");
    let gone = s.owner.restore(&s.snapshots[1], &s.d.path().join("gone"));
    assert_ne!(
        gone.code, 0,
        "an expired, unreachable snapshot is collected"
    );
}

#[test]
fn an_append_only_key_cannot_change_the_key_slots_with_key_passwd() {
    let s = Setup::new();
    let r = s
        .laptop()
        .cmd(&["key", "passwd"])
        .env("ORE_NEW_PASSPHRASE", "the attacker's")
        .output()
        .unwrap();
    let r = ore_tests::ore::Run::of(r);
    assert_ne!(
        r.code, 0,
        "key passwd through the append-only key: {}",
        r.stdout
    );
    assert!(r.stderr.contains("full access"), "{}", r.stderr);
    s.owner
        .run(&["log", "home"])
        .expect(0, "the owner's passphrase still opens it");
}

#[test]
fn an_append_only_key_cannot_set_the_format_record_to_zeros() {
    let s = Setup::new();
    let c = s.raw();
    let format = c.get_tag("ore:format").unwrap();
    let zeros = "0".repeat(64);
    let e = refused(
        c.set_tag("ore:format", format.as_deref(), zeros.as_bytes()),
        "format to zeros",
    );
    assert!(e.contains("ore:format"), "{e}");
    refused(c.remove_tag("ore:format", None), "format removed");
    c.close().unwrap();
    s.owner
        .run(&["log", "home"])
        .expect(0, "the archive still opens");
}

#[test]
fn an_append_only_key_cannot_plant_a_gc_sweep_that_never_ends() {
    let s = Setup::new();
    let c = s.raw();
    let before = c.get_tag("ore:gc").unwrap();
    let forever = format!(
        r#"{{"state":"sweeping","epoch":"x","unclean":"","by":"evil","since":0,"heartbeat":{},"id":"x"}}"#,
        i64::MAX
    );
    refused(
        c.set_tag("ore:gc", before.as_deref(), forever.as_bytes()),
        "a sweep planted",
    );
    let lease = format!(
        r#"{{"by":"evil","since":0,"heartbeat":{},"id":"x"}}"#,
        i64::MAX
    );
    refused(
        c.set_tag("ore:lease:0", None, lease.as_bytes()),
        "a lease for ever",
    );
    c.close().unwrap();
    std::fs::write(s.src.join("after"), b"x").unwrap();
    s.owner.snapshot("home", &s.src);
    s.owner.run(&["gc"]).expect(0, "the owner's gc");
}

#[test]
fn an_append_only_key_cannot_plant_a_tag_value_that_stops_gc() {
    let s = Setup::new();
    let c = s.raw();
    let e = refused(
        c.set_tag("evil", None, b"not a key"),
        "a tag that is no key",
    );
    assert!(e.contains("block key"), "{e}");
    let current = c.get_tag("home").unwrap();
    refused(
        c.set_tag("home", current.as_deref(), b"garbage"),
        "home to garbage",
    );
    refused(c.set_tag("ore:whatever", None, b"x"), "a new reserved tag");
    // Expiring the history is the owner's.
    let e = c.admin("expire-tag-history", &["0".into()]).unwrap_err();
    assert!(e.to_string().contains("not allowed"), "{e}");
    c.close().unwrap();
    s.owner_gc_keeps_everything();
}

/// The rules are the backend programs', whichever: backend-fs, and the proxies backend-cache
/// and backend-replicated, each started with `--append-only` (as a forced command would).
/// Through each, the planted values are refused, expiring history is refused, and a tag and
/// the reflog rewound to their first values cost the owner's gc nothing.
#[test]
fn the_append_only_rules_and_the_kept_history_hold_for_every_backend_program() {
    let d = scratch();
    let programs = ore_tests::programs::every_backend_program(d.path());
    for (full, limited) in programs {
        let owner = Ore::new(full.clone());
        owner.run(&["init"]).expect(0, &full);
        let src = d.path().join("src");
        ore_tests::trees::every_kind(&src);
        let mut snapshots = Vec::new();
        for i in 0..3 {
            std::fs::write(src.join("changing"), format!("version {i}")).unwrap();
            snapshots.push(owner.snapshot("home", &src));
        }
        let c = connect::Client::connect(&limited).unwrap();
        let format = c.get_tag("ore:format").unwrap();
        let zeros = "0".repeat(64);
        refused(
            c.set_tag("ore:format", format.as_deref(), zeros.as_bytes()),
            &format!("{limited}: format to zeros"),
        );
        let sweeping =
            r#"{"state":"sweeping","epoch":"","by":"x","since":0,"heartbeat":0,"id":"x"}"#;
        let gc = c.get_tag("ore:gc").unwrap();
        refused(
            c.set_tag("ore:gc", gc.as_deref(), sweeping.as_bytes()),
            &format!("{limited}: a sweep"),
        );
        let home = c.get_tag("home").unwrap();
        refused(
            c.set_tag("home", home.as_deref(), b"garbage"),
            &format!("{limited}: garbage"),
        );
        let e = c.admin("expire-tag-history", &["0".into()]).unwrap_err();
        assert!(e.to_string().contains("not allowed"), "{limited}: {e}");
        // Rewind home and the reflog to their first values: allowed, and harmless.
        for tag in ["home", "ore:reflog"] {
            let kept = c.admin("tag-history", &[tag.into()]).unwrap();
            let rows: serde_json::Value = serde_json::from_str(&kept.json).unwrap();
            let first = rows[0]["value"].as_str().unwrap().to_string();
            let now = c.get_tag(tag).unwrap();
            assert_eq!(
                c.set_tag(tag, now.as_deref(), first.as_bytes()).unwrap(),
                protocol::CasOutcome::Done,
                "{limited}: {tag}"
            );
        }
        c.close().unwrap();
        owner.run(&["gc"]).expect(0, &format!("{full}: gc"));
        for (i, key) in snapshots.iter().enumerate() {
            let dest = d.path().join(format!("dest-{}-{i}", &key[..8]));
            owner
                .restore(key, &dest)
                .expect(0, &format!("{full}: {key}"));
            assert_eq!(
                std::fs::read_to_string(dest.join("changing")).unwrap(),
                format!("version {i}")
            );
        }
        // The owner, with full access, expires the history through the same program: then
        // what only the rewound values named is collected.
        owner
            .run(&["reflog", "expire", "--older-than", "0s"])
            .expect(0, &format!("{full}: reflog expire"));
        owner.run(&["gc"]).expect(0, &format!("{full}: gc"));
        let gone = owner.restore(
            &snapshots[2],
            &d.path().join(format!("gone-{}", &snapshots[2][..8])),
        );
        assert_ne!(
            gone.code, 0,
            "{full}: expired and unreachable, so collected"
        );
        std::fs::remove_dir_all(&src).unwrap();
    }
}

/// A tag pointed at a block key that is no snapshot (here the format record's) is allowed —
/// the backend cannot tell what a block is — and stops the owner's gc, which will not guess
/// what a root meant to keep. The owner undoes it with `ore tag-history` and `ore reset`.
#[test]
fn a_tag_an_append_only_key_points_at_a_block_that_is_no_snapshot_is_undone_with_reset() {
    let s = Setup::new();
    s.point_at_the_format_record("home");
    let r = s.owner.run(&["gc"]);
    assert_ne!(r.code, 0, "gc with a tag naming no snapshot: {}", r.stdout);
    let h = s
        .owner
        .run(&["tag-history", "home"])
        .expect(0, "tag-history");
    assert!(h.stdout.contains(s.snapshots[2].as_str()), "{}", h.stdout);
    s.owner
        .run(&["reset", "home", &s.snapshots[2]])
        .expect(0, "reset from a value that is no snapshot");
    s.owner_gc_keeps_everything();
}

/// A sweep or a lease dated far in the future (planted before the backend refused them, or
/// with full access) counts as abandoned: the owner's next run clears it instead of waiting
/// for ever.
#[test]
fn a_sweep_or_lease_dated_in_the_future_is_cleared_by_the_owners_next_run() {
    let s = Setup::new();
    let full = connect::Client::connect(&format!(
        "backend-splitlog {}",
        ore_tests::quote(&s.d.path().join("archive"))
    ))
    .unwrap();
    let forever = format!(
        r#"{{"state":"sweeping","epoch":"x","unclean":"","by":"evil","since":0,"heartbeat":{},"id":"x"}}"#,
        i64::MAX
    );
    let gc = full.get_tag("ore:gc").unwrap();
    full.set_tag("ore:gc", gc.as_deref(), forever.as_bytes())
        .unwrap();
    let lease = format!(
        r#"{{"by":"evil","since":0,"heartbeat":{},"id":"x"}}"#,
        i64::MAX
    );
    full.set_tag("ore:lease:7", None, lease.as_bytes()).unwrap();
    full.close().unwrap();
    std::fs::write(s.src.join("after"), b"x").unwrap();
    let started = Instant::now();
    s.owner.snapshot("home", &s.src);
    s.owner.run(&["gc"]).expect(0, "the owner's gc");
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "waited {:?}",
        started.elapsed()
    );
}

/// `ore:reflog` pointed at a block that is no reflog (any block key is allowed: the backend
/// cannot tell) makes the reflog unreadable (and may stop the owner's gc, whose walk reads it
/// as a reflog). Nothing is lost — the earlier heads are kept — and the owner finds them with
/// `ore tag-history ore:reflog` and puts one back with `ore reflog reset`.
#[test]
fn a_reflog_an_append_only_key_points_elsewhere_is_undone_with_reflog_reset() {
    let s = Setup::new();
    let format = s.point_at_the_format_record("ore:reflog");
    let r = s.owner.run(&["reflog"]);
    assert_ne!(
        r.code, 0,
        "reading a reflog that is no reflog: {}",
        r.stdout
    );
    let h = s
        .owner
        .run(&["--json", "tag-history", "ore:reflog"])
        .expect(0, "tag-history");
    let earlier: Vec<String> = h
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["state"] == "kept")
        .map(|v| v["value"].as_str().unwrap().to_string())
        .collect();
    let newest = earlier.last().expect("an earlier reflog head");
    let wrong = s
        .owner
        .run(&["reflog", "reset", std::str::from_utf8(&format).unwrap()]);
    assert_ne!(wrong.code, 0, "the format record is no reflog");
    s.owner
        .run(&["reflog", "reset", newest])
        .expect(0, "reflog reset");
    s.owner.run(&["reflog"]).expect(0, "the reflog reads again");
    s.owner_gc_keeps_everything();
}
