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
        // `ore init` does not sync the directory it creates the archive in, so a cut right
        // after it loses the whole archive (the test below); the other tests make that
        // name durable themselves, to test what comes after.
        sync_dir(&s.disk.mnt);
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

    /// The invariants after a cut: the archive opens and `check --read-data` is clean; every
    /// snapshot of `t` is one of `allowed` (taken, or being taken, from a known tree), the
    /// newest is `newest` (if given) or any allowed, and each restores to its tree.
    fn verify(&self, what: &str, newest: &[&str]) {
        let r = self.run(&["check", "--read-data"]);
        assert_eq!(
            r.code, 0,
            "{what}: check after the cut: {}\n{}",
            r.stdout, r.stderr
        );
        let log = self.log();
        assert!(!log.is_empty(), "{what}: the tag lost all its snapshots");
        if !newest.is_empty() {
            assert!(
                newest.contains(&log[0].as_str()),
                "{what}: the tag names {}, not one of {newest:?}",
                log[0]
            );
        }
        for (i, key) in log.iter().enumerate() {
            let tree = self.trees.get(key).unwrap_or_else(|| {
                panic!("{what}: the tag's snapshot {key} (t~{i}) is none this test made")
            });
            let dest = self.work.path().join(format!("restore-{key}"));
            self.run(&["restore", &format!("t~{i}"), dest.to_str().unwrap()])
                .expect(0, &format!("{what}: restore of {key}"));
            assert_same(tree, &dest);
            std::fs::remove_dir_all(&dest).unwrap();
        }
    }

    /// After a snapshot of tree `seed` was cut: the snapshot it may have made is allowed.
    fn allow(&mut self, seed: u64, out: std::process::Output) {
        let key = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if key.len() >= 12 {
            self.trees.insert(key[..12].to_string(), self.tree(seed));
        }
    }
}

/// `fsync` of a directory: its entries are durable.
fn sync_dir(dir: &Path) {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .unwrap_or_else(|e| panic!("syncing {}: {e}", dir.display()));
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
        let newest = s.log()[0].clone();
        s.cut();
        s.verify(&format!("{kind:?}"), &[&newest]);
        assert_eq!(s.log().len(), 2, "{kind:?}: both snapshots survive");
    }
}
