//! Power cuts: archives on `powercut-fs` (see `ore_tests::powercut`), which loses at a cut
//! every write and every directory change not made durable by `fsync`, as a machine crash
//! may. A process kill cannot test this (the page cache survives it); these tests can.
//!
//! For the embedded archive (splitlog in process), `backend-splitlog DIR` and `backend-fs DIR`:
//! a snapshot that completed survives a cut whole; a snapshot cut at chosen points (before its
//! first flush, between its flush and the tag move, right after the tag move) and at seeded
//! random moments leaves an archive that opens, whose tag names the old or the new snapshot,
//! that `check --read-data` finds clean, whose snapshots all restore to their trees, and where
//! a re-run succeeds; a forget and a gc cut mid-run lose nothing reachable.
//!
//! The client's cache is on the same disk (the same machine loses power).

use ore_tests::ore::{Ore, Run};
use ore_tests::powercut::Disk;
use ore_tests::trees::{assert_same, bytes};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::Duration;
use std::time::Instant;

#[derive(Clone, Copy, Debug)]
enum Kind {
    Embedded,
    Splitlog,
    Fs,
}

const KINDS: [Kind; 3] = [Kind::Embedded, Kind::Splitlog, Kind::Fs];

/// An archive of `kind` on a power-cut disk, with the trees its snapshots were taken from.
struct Setup {
    kind: Kind,
    disk: Disk,
    ore: Ore,
    /// Snapshot key (as `ore log` shortens it) → the tree it was taken from.
    trees: HashMap<String, PathBuf>,
    work: tempfile::TempDir,
}

fn archive(kind: Kind, dir: &Path, fault: Option<&str>) -> String {
    let env = fault
        .map(|f| format!("env ORE_FAULT={f} "))
        .unwrap_or_default();
    let q = ore_tests::quote(dir);
    match kind {
        Kind::Embedded => dir.display().to_string(),
        Kind::Splitlog => format!("{env}backend-splitlog {q}"),
        Kind::Fs => format!("{env}backend-fs {q}"),
    }
}

/// A tree for `seed`: most files shared between seeds (so snapshots share blocks), some new,
/// one large enough to take several chunks.
fn tree(dir: &Path, seed: u64) {
    for d in 0..4u64 {
        let sub = dir.join(format!("d{d}"));
        std::fs::create_dir_all(&sub).unwrap();
        for f in 0..10u64 {
            let len = if f == 0 {
                300_000
            } else {
                2_000 + f as usize * 500
            };
            let s = if f % 3 == 0 {
                seed * 1_000 + d * 10 + f
            } else {
                d * 10 + f
            };
            std::fs::write(sub.join(format!("f{f}")), bytes(s, len)).unwrap();
        }
    }
}

impl Setup {
    fn new(kind: Kind) -> Setup {
        let disk = Disk::new();
        let work = ore_tests::ore::scratch();
        let mut s = Setup {
            kind,
            ore: Ore::new(archive(kind, &disk.mnt.join("archive"), None)),
            disk,
            trees: HashMap::new(),
            work,
        };
        s.ore.cache = s.disk.mnt.join("cache");
        s.run(&["init"]).expect(0, "init");
        s
    }

    /// `ore ARGS`, with a short lease ttl (a cut run's leases expire in seconds, not minutes).
    fn cmd(&self, fault: Option<&str>, args: &[&str]) -> std::process::Command {
        let mut c = match fault {
            None => self.ore.cmd(args),
            Some(_) => {
                let mut o = Ore::new(archive(self.kind, &self.disk.mnt.join("archive"), fault));
                o.cache = self.ore.cache.clone();
                let mut c = o.cmd(args);
                // The fault counts the requests of one backend process: one connection.
                c.env("ORE_LANES", "1");
                c
            }
        };
        c.env("ORE_LEASE_TTL", "3");
        c.env("LD_PRELOAD", ore_tests::powercut::syncfs_shim());
        c
    }

    fn run(&self, args: &[&str]) -> Run {
        Run::of(self.cmd(None, args).output().expect("ore runs"))
    }

    /// Tree number `seed`, made once.
    fn tree(&self, seed: u64) -> PathBuf {
        let p = self.work.path().join(format!("tree-{seed}"));
        if !p.exists() {
            tree(&p, seed);
        }
        p
    }

    /// Snapshots tree `seed` to `t`, to the end.
    fn snapshot(&mut self, seed: u64) {
        let t = self.tree(seed);
        let r = self
            .run(&["snapshot", "t", t.to_str().unwrap()])
            .expect(0, "snapshot");
        self.trees.insert(r.stdout.trim()[..12].to_string(), t);
    }

    /// Starts a snapshot of tree `seed` (the run a cut interrupts).
    fn start_snapshot(&self, seed: u64, fault: Option<&str>) -> Child {
        let t = self.tree(seed);
        self.cmd(fault, &["snapshot", "t", t.to_str().unwrap()])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("ore runs")
    }

    /// The keys `ore log t` lists, newest first.
    fn log(&self) -> Vec<String> {
        let r = self.run(&["log", "t"]).expect(0, "log after the cut");
        r.stdout
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .map(str::to_string)
            .collect()
    }

    /// Cuts the power, then mounts what survived.
    fn cut(&mut self) {
        self.disk.cut();
        self.disk.mount();
    }

    /// Cuts the power while `run` runs (it goes with the power, whether or not it had a file
    /// open on the disk at that instant), then mounts what survived.
    fn cut_during(&mut self, mut run: Child) {
        self.disk.cut();
        let _ = run.kill();
        let _ = run.wait();
        self.disk.mount();
    }

    /// The invariants after a cut: the archive opens and `check --read-data` is clean; the
    /// tag's newest snapshot is `old` or a new one of `pending` (the tree of the run that was
    /// cut) whose parent is `old`; every snapshot of the tag was taken from a known tree (or
    /// `pending`) and restores to it exactly.
    fn verify(&mut self, what: &str, old: &str, pending: Option<&Path>) {
        let r = self.run(&["check", "--read-data"]);
        assert_eq!(
            r.code, 0,
            "{what}: check after the cut: {}\n{}",
            r.stdout, r.stderr
        );
        let log = self.log();
        assert!(!log.is_empty(), "{what}: the tag lost all its snapshots");
        if log[0] != old {
            assert!(
                pending.is_some() && log.get(1).map(String::as_str) == Some(old),
                "{what}: the tag names {}, neither the old snapshot {old} nor a new one on it: \
                 {log:?}",
                log[0]
            );
        }
        for (i, key) in log.iter().enumerate() {
            let tree = match (self.trees.get(key), pending) {
                (Some(t), _) => t.clone(),
                (None, Some(p)) if i == 0 => p.to_path_buf(),
                _ => panic!("{what}: the tag's snapshot {key} (t~{i}) is none this test made"),
            };
            let dest = self.work.path().join(format!("restore-{key}"));
            self.run(&["restore", &format!("t~{i}"), dest.to_str().unwrap()])
                .expect(0, &format!("{what}: restore of {key}"));
            assert_same(&tree, &dest);
            std::fs::remove_dir_all(&dest).unwrap();
            self.trees.insert(key.clone(), tree);
        }
    }

    /// The newest snapshot of `t`.
    fn newest(&self) -> String {
        self.log()[0].clone()
    }
}

fn pseudo(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

#[test]
fn a_completed_snapshot_survives_a_power_cut_on_every_archive_kind() {
    for kind in KINDS {
        let mut s = Setup::new(kind);
        s.snapshot(1);
        s.snapshot(2);
        let newest = s.newest();
        s.cut();
        s.verify(&format!("{kind:?}"), &newest, None);
        assert_eq!(s.log().len(), 2, "{kind:?}: both snapshots survive");
    }
}

/// The named points of a run, where the backend kills itself (`ORE_FAULT`) just before the
/// power goes: a snapshot's are before its first flush, between the flush and the tag move,
/// and right after the tag move.
const SNAPSHOT_POINTS: [&str; 3] = [
    "kill,op=flush,after=0,point=before",
    "kill,op=set-tag,after=0,point=before",
    "kill,op=set-tag,after=0,point=after",
];

/// Cuts a snapshot of `kind` at each named point (not for the embedded archive, which has no
/// backend process to stop) and at `random` seeded moments in the span of a clean run.
fn snapshots_cut_mid_run(kind: Kind, random: u64) {
    let mut s = Setup::new(kind);
    let started = Instant::now();
    s.snapshot(1);
    let span = started.elapsed().as_millis() as u64 + 1;
    let points: &[&str] = match kind {
        Kind::Embedded => &[],
        _ => &SNAPSHOT_POINTS,
    };
    let mut rng = 0x9e37_79b9_u64 ^ kind as u64;
    let runs = points
        .iter()
        .map(|p| Some(*p))
        .chain((0..random).map(|_| None));
    for (i, fault) in runs.enumerate() {
        let seed = 10 + i as u64;
        let tree = s.tree(seed);
        let old = s.newest();
        let mut child = s.start_snapshot(seed, fault);
        let what = match fault {
            Some(f) => format!("{kind:?}, snapshot cut at {f}"),
            None => {
                let ms = pseudo(&mut rng) % (span * 5 / 4);
                std::thread::sleep(Duration::from_millis(ms));
                format!("{kind:?}, snapshot cut {ms} ms into a {span} ms run")
            }
        };
        if fault.is_some() {
            let status = child.wait().expect("ore ends");
            assert!(!status.success(), "{what}: the fault fired");
        }
        s.cut_during(child);
        s.verify(&what, &old, Some(&tree));
        let kept = if s.newest() == old { "old" } else { "new" };
        eprintln!("{what}: the tag names the {kept} snapshot");
        // A re-run succeeds, and holds the tree.
        s.snapshot(seed);
        let newest = s.newest();
        let dest = s.work.path().join("rerun");
        s.run(&["restore", "t", dest.to_str().unwrap()])
            .expect(0, &format!("{what}: restore of the re-run {newest}"));
        assert_same(&tree, &dest);
        std::fs::remove_dir_all(&dest).unwrap();
    }
}

#[test]
fn an_embedded_snapshot_cut_by_a_power_cut_leaves_the_old_or_the_new_snapshot() {
    snapshots_cut_mid_run(Kind::Embedded, 5);
}

#[test]
fn a_splitlog_snapshot_cut_by_a_power_cut_leaves_the_old_or_the_new_snapshot() {
    snapshots_cut_mid_run(Kind::Splitlog, 3);
}

#[test]
fn a_backend_fs_snapshot_cut_by_a_power_cut_leaves_the_old_or_the_new_snapshot() {
    snapshots_cut_mid_run(Kind::Fs, 3);
}

/// After a forget was cut: `check --read-data` is clean, and the tag's chain is the old one
/// whole or the forget's result (a rewritten chain of the two newest, with new keys), each
/// snapshot restoring to the tree at its place (`by_place`, newest first).
fn verify_forget(s: &Setup, what: &str, old_log: &[String], by_place: &[PathBuf]) {
    let r = s.run(&["check", "--read-data"]);
    assert_eq!(r.code, 0, "{what}: check: {}\n{}", r.stdout, r.stderr);
    let log = s.log();
    assert!(
        log == old_log || log.len() == 2,
        "{what}: the chain is neither the old one {old_log:?} nor the forget's: {log:?}"
    );
    for (i, tree) in by_place.iter().take(log.len()).enumerate() {
        let dest = s.work.path().join(format!("restore-{i}"));
        s.run(&["restore", &format!("t~{i}"), dest.to_str().unwrap()])
            .expect(0, &format!("{what}: restore of t~{i} ({})", log[i]));
        assert_same(tree, &dest);
        std::fs::remove_dir_all(&dest).unwrap();
    }
}

/// Runs `args` until the cut: at a named point (`fault`, where the backend kills itself just
/// before the power goes) or at a seeded moment. Returns what happened, for messages.
fn cut_run(s: &mut Setup, args: &[&str], fault: Option<&str>, rng: &mut u64) -> String {
    let mut child = s
        .cmd(fault, args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("ore runs");
    let what = match fault {
        Some(f) => {
            child.wait().expect("ore ends");
            format!("{:?}: {} cut at {f}", s.kind, args[0])
        }
        None => {
            let ms = pseudo(rng) % 300;
            std::thread::sleep(Duration::from_millis(ms));
            format!("{:?}: {} cut {ms} ms in", s.kind, args[0])
        }
    };
    s.cut_during(child);
    what
}

/// A forget, then a gc, cut mid-run (at seeded moments, and where the backend moves the tag
/// or removes blocks): no snapshot the tag names loses a byte, and a re-run completes.
fn forget_and_gc_cut_mid_run(kind: Kind) {
    let mut s = Setup::new(kind);
    for seed in 1..=4 {
        s.snapshot(seed);
    }
    let by_place: Vec<PathBuf> = (1..=4).rev().map(|seed| s.tree(seed)).collect();
    let old_log = s.log();
    let mut rng = 0x51ed_u64 ^ kind as u64;
    let (forget_faults, gc_faults): (&[&str], &[&str]) = match kind {
        Kind::Embedded => (&[], &[]),
        _ => (
            &["kill,op=set-tag,after=0,point=after"],
            &[
                "kill,op=remove,after=0",
                "kill,op=remove,after=3,point=after",
            ],
        ),
    };
    let forget = ["forget", "t", "--keep-last", "2"];
    for fault in forget_faults.iter().map(|f| Some(*f)).chain([None, None]) {
        let what = cut_run(&mut s, &forget, fault, &mut rng);
        verify_forget(&s, &what, &old_log, &by_place);
    }
    s.run(&forget)
        .expect(0, &format!("{kind:?}: forget after the cuts"));
    let log = s.log();
    assert_eq!(log.len(), 2, "{kind:?}: forget kept two: {log:?}");
    for (key, tree) in log.iter().zip(&by_place) {
        s.trees.insert(key.clone(), tree.clone());
    }
    let newest = log[0].clone();
    for fault in gc_faults.iter().map(|f| Some(*f)).chain([None, None]) {
        let what = cut_run(&mut s, &["gc"], fault, &mut rng);
        s.verify(&what, &newest, None);
    }
    s.run(&["gc"])
        .expect(0, &format!("{kind:?}: gc after the cuts"));
    s.cut();
    s.verify(&format!("{kind:?}: after the completed gc"), &newest, None);
    assert_eq!(s.log().len(), 2, "{kind:?}: both kept snapshots survive");
}

#[test]
fn an_embedded_forget_and_gc_cut_by_a_power_cut_lose_nothing_reachable() {
    forget_and_gc_cut_mid_run(Kind::Embedded);
}

#[test]
fn a_splitlog_forget_and_gc_cut_by_a_power_cut_lose_nothing_reachable() {
    forget_and_gc_cut_mid_run(Kind::Splitlog);
}

#[test]
fn a_backend_fs_forget_and_gc_cut_by_a_power_cut_lose_nothing_reachable() {
    forget_and_gc_cut_mid_run(Kind::Fs);
}

/// Bug: `ore init` created the archive's directory and never synced the directory it is in,
/// so a power cut soon after lost the whole archive, snapshots and all (the other tests sync
/// that name themselves).
#[test]
fn an_archive_made_just_before_a_power_cut_survives_it() {
    let mut lost = Vec::new();
    for kind in KINDS {
        let disk = Disk::new();
        let mut ore = Ore::new(archive(kind, &disk.mnt.join("archive"), None));
        ore.cache = disk.mnt.join("cache");
        let mut s = Setup {
            kind,
            ore,
            disk,
            trees: HashMap::new(),
            work: ore_tests::ore::scratch(),
        };
        s.run(&["init"]).expect(0, "init");
        s.snapshot(1);
        s.cut();
        let r = s.run(&["log", "t"]);
        if r.code != 0 {
            lost.push(format!("{kind:?}: {}", r.stderr.trim()));
        }
    }
    assert!(lost.is_empty(), "archives lost: {lost:#?}");
}
