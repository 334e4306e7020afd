//! The kill points of one kind: each step prepares an operation, runs it with a kill point,
//! checks the invariants, and runs the operation again.
//!
//! - snapshot: the tree changes, `ore snapshot main` is killed; the re-run must succeed and
//!   store no more than the new data plus [`overhead`];
//! - gc: `forget main --keep-last 2` and `reflog expire --older-than 0s` make garbage, `ore gc`
//!   is killed; the re-run must succeed;
//! - forget: `main` gets at least four snapshots, `ore forget main --keep-last 2` is killed;
//!   the re-run must succeed and leave the two newest;
//! - sync: a new snapshot, `ore sync --to B` (B shares the keys) is killed; the re-run must
//!   succeed, and B's tags then name the same trees as A's. The invariants hold on B too.

use super::corpus::{manifest, Corpus, Manifest};
use super::invariants::{hold, snapshots, tail};
use super::kill::{run_with_kill, Victim};
use super::kinds::{Archive, Kind};
use super::{rng, Config, Report};
use crate::ore::Run as OreRun;
use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

const OPS: [&str; 4] = ["snapshot", "gc", "forget", "sync"];

/// What a snapshot may store beyond the new file data: its tree blocks and the snapshot
/// block. Tree blocks are rewritten for every directory on the path to a change, so the
/// bound is 64 KiB plus 2% of the tree's bytes (the tree here has ~10 directories and a
/// few hundred entries: its tree blocks are a few KiB).
pub fn overhead(tree_bytes: u64) -> u64 {
    64 * 1024 + tree_bytes / 50
}

/// The kill points of one kind, taken one step at a time (the kinds take turns).
pub struct KillPoints<'a> {
    cfg: &'a Config,
    kind: Kind,
    /// Operations and trees (the same sequence for a seed and kind, whatever the timing).
    rng: fastrand::Rng,
    /// Delays and victims.
    timing: fastrand::Rng,
    a: Archive,
    b: Archive,
    corpus: Corpus,
    manifests: Vec<Manifest>,
    /// New file data written since the last snapshot that completed.
    pending: u64,
    /// How long each operation's clean runs take here (the kill delay's range).
    took: HashMap<&'static str, Duration>,
    scratch: std::path::PathBuf,
    step: String,
    /// Steps taken, and runs killed (a run that ended before its kill point is no kill).
    pub steps: usize,
    pub killed: u64,
}

impl<'a> KillPoints<'a> {
    /// Archives A and B of `kind` under `dir`, a tree, `base` and `main` snapshotted, synced.
    pub fn new(cfg: &'a Config, kind: Kind, dir: &Path) -> Result<KillPoints<'a>, String> {
        let mut rng = rng(cfg.seed, kind, 0);
        let a = Archive::create(kind, &dir.join("a"), None)?;
        let b = Archive::create(kind, &dir.join("b"), Some(&a))?;
        let corpus =
            Corpus::create(&dir.join("src"), cfg.scale, &mut rng).map_err(|e| e.to_string())?;
        let mut r = KillPoints {
            cfg,
            kind,
            rng,
            timing: super::rng(cfg.seed, kind, 2),
            a,
            b,
            corpus,
            manifests: Vec::new(),
            pending: 0,
            took: HashMap::new(),
            scratch: dir.join("restores"),
            step: "setup".into(),
            steps: 0,
            killed: 0,
        };
        r.snapshot_clean("base")?;
        r.snapshot_clean("main")?;
        r.clean("sync", &["sync", "--to", &r.b.ore.archive.clone()])?;
        Ok(r)
    }

    /// The next step: an operation, its kill point, the invariants, the re-run.
    pub fn step(&mut self, report: &mut Report) {
        self.step = format!("k{}", self.steps);
        self.steps += 1;
        let op = OPS[self.rng.usize(..OPS.len())];
        if let Err(e) = self.one(op, report) {
            report.violation(self.kind, &self.step, op, e);
        }
    }

    /// The invariants once more on A and B, at the end.
    pub fn finish(&mut self, report: &mut Report) {
        for x in [&self.a, &self.b] {
            match hold(x, &self.manifests, &self.scratch) {
                Ok(n) => {
                    report.checks_passed += 1;
                    report.restores_matched += n as u64;
                }
                Err(e) => report.violation(self.kind, "end", "final check", e),
            }
        }
    }
}

impl KillPoints<'_> {
    /// Runs `ore ARGS` on A without a kill; it must succeed. Its time calibrates the kills.
    fn clean(&mut self, op: &'static str, args: &[&str]) -> Result<OreRun, String> {
        let t = Instant::now();
        let r = self.a.run(args);
        if r.code != 0 {
            return Err(format!(
                "{args:?} (not killed) exited {}: {}\n{}",
                r.code,
                tail(&r.stdout),
                tail(&r.stderr)
            ));
        }
        let d = t.elapsed();
        let e = self.took.entry(op).or_insert(d);
        *e = (*e + d) / 2;
        Ok(r)
    }

    /// Changes the tree and records the new generation's manifest: returns its comment.
    fn next_tree(&mut self) -> Result<String, String> {
        let new = self
            .corpus
            .mutate(&mut self.rng)
            .map_err(|e| e.to_string())?;
        self.pending += new;
        self.record()
    }

    fn record(&mut self) -> Result<String, String> {
        self.manifests
            .push(manifest(&self.corpus.root).map_err(|e| e.to_string())?);
        Ok(format!("m{}", self.manifests.len() - 1))
    }

    fn snapshot_args(&self, tag: &str, comment: &str) -> Vec<String> {
        let src = self.corpus.root.display().to_string();
        ["--json", "snapshot", tag, &src, "--comment", comment]
            .map(String::from)
            .to_vec()
    }

    fn snapshot_clean(&mut self, tag: &str) -> Result<(), String> {
        let comment = if self.manifests.is_empty() {
            self.record()?
        } else {
            self.next_tree()?
        };
        let args = self.snapshot_args(tag, &comment);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.clean("snapshot", &args)?;
        self.pending = 0;
        Ok(())
    }

    /// One kill point of `op`.
    fn one(&mut self, op: &'static str, report: &mut Report) -> Result<(), String> {
        let b_id = self.b.ore.archive.clone();
        let args: Vec<String> = match op {
            "snapshot" => {
                let comment = self.next_tree()?;
                self.snapshot_args("main", &comment)
            }
            "gc" => {
                self.clean("forget", &["forget", "main", "--keep-last", "2"])?;
                self.clean("expire", &["reflog", "expire", "--older-than", "0s"])?;
                vec!["gc".into()]
            }
            "forget" => {
                while snapshots(&self.a)?.iter().filter(|s| s.0 == "main").count() < 4 {
                    self.snapshot_clean("main")?;
                }
                ["forget", "main", "--keep-last", "2"]
                    .map(String::from)
                    .to_vec()
            }
            _ => {
                self.snapshot_clean("main")?;
                ["sync", "--to", &b_id].map(String::from).to_vec()
            }
        };
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let took = self
            .took
            .get(op)
            .copied()
            .unwrap_or(Duration::from_millis(300));
        // From a tenth of a clean run's time to nine tenths: mostly mid-operation, sometimes
        // just after the start, sometimes (when this run is quicker) after the end.
        let us = took.as_micros() as u64;
        let delay = Duration::from_micros(self.timing.u64(us / 10..(us * 9 / 10).max(1)));
        let backend = self.kind != Kind::Embedded && self.timing.bool();
        let killed = run_with_kill(self.a.cmd(&argv), delay, backend, &mut self.timing);
        let c = report.kills.entry((op.to_string(), self.kind)).or_default();
        match &killed.victim {
            Victim::Ore => c.ore += 1,
            Victim::Backend(_) => c.backend += 1,
            Victim::FinishedFirst => c.finished_first += 1,
        }
        if killed.victim != Victim::FinishedFirst {
            self.killed += 1;
        }
        if self.cfg.verbose {
            eprintln!(
                "{} {} {op}: delay {} ms, killed {:?}, exit {}",
                self.kind.name(),
                self.step,
                delay.as_millis(),
                killed.victim,
                killed.run.code
            );
        }
        if killed.victim == Victim::FinishedFirst && killed.run.code != 0 {
            report.violation(
                self.kind,
                &self.step,
                op,
                format!(
                    "{argv:?} (not killed) exited {}: {}\n{}",
                    killed.run.code,
                    tail(&killed.run.stdout),
                    tail(&killed.run.stderr)
                ),
            );
        }
        for p in killed.problems {
            report.violation(self.kind, &self.step, op, p);
        }
        let victim = format!("{:?} after {} ms", killed.victim, delay.as_millis());
        let archives: Vec<&Archive> = if op == "sync" {
            vec![&self.a, &self.b]
        } else {
            vec![&self.a]
        };
        for x in archives {
            match hold(x, &self.manifests, &self.scratch) {
                Ok(n) => {
                    report.checks_passed += 1;
                    report.restores_matched += n as u64;
                }
                Err(e) => {
                    report.violation(self.kind, &self.step, op, format!("after {victim}: {e}"))
                }
            }
        }
        self.rerun(op, &argv, report)
            .map_err(|e| format!("after {victim}: {e}"))
    }

    /// Runs the killed operation again: it must succeed, and do what a clean run does.
    fn rerun(
        &mut self,
        op: &'static str,
        argv: &[&str],
        report: &mut Report,
    ) -> Result<(), String> {
        let before = self.a.stored();
        let r = self
            .clean(op, argv)
            .map_err(|e| format!("the re-run: {e}"))?;
        match op {
            "snapshot" => {
                let v: serde_json::Value = serde_json::from_str(r.stdout.trim())
                    .map_err(|e| format!("the re-run's --json: {e}: {}", r.stdout))?;
                let new = v["stats"]["new_bytes"].as_u64().unwrap_or(u64::MAX);
                let sent = v["stats"]["stored_bytes"].as_u64().unwrap_or(u64::MAX);
                let tree = self.corpus.bytes().map_err(|e| e.to_string())?;
                let bound = self.pending + overhead(tree);
                if new > bound {
                    return Err(format!(
                        "the re-run stored {new} new bytes, more than the {} bytes of new data \
                         plus {} overhead",
                        self.pending,
                        overhead(tree)
                    ));
                }
                // What reached the disk: the blocks sent, once per copy, and index pages.
                let grew = self.a.stored().saturating_sub(before);
                let disk = self.kind.copies() * sent + self.kind.copies() * (1 << 20);
                if grew > disk {
                    return Err(format!(
                        "the re-run sent {sent} bytes but the archive grew by {grew} (bound {disk})"
                    ));
                }
                self.pending = 0;
            }
            "forget" => {
                let main: Vec<_> = snapshots(&self.a)?
                    .into_iter()
                    .filter(|s| s.0 == "main")
                    .collect();
                let newest = format!("m{}", self.manifests.len() - 1);
                if main.len() != 2 || main[0].2 != newest {
                    return Err(format!(
                        "after forget --keep-last 2, main is {main:?} (newest should be {newest})"
                    ));
                }
            }
            "sync" => {
                let newest = |x: &Archive| -> Result<Vec<(String, String)>, String> {
                    let mut seen = Vec::new();
                    for (tag, _, comment) in snapshots(x)? {
                        if !seen.iter().any(|(t, _)| *t == tag) {
                            seen.push((tag, comment));
                        }
                    }
                    Ok(seen)
                };
                let (a, b) = (newest(&self.a)?, newest(&self.b)?);
                if a != b {
                    return Err(format!(
                        "after sync, the destination's tags name {b:?}, the source's {a:?}"
                    ));
                }
            }
            _ => {}
        }
        report.reruns_passed += 1;
        Ok(())
    }
}
