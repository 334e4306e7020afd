//! A crash and damage campaign over every archive kind (issue 22), driven by a seed.
//!
//! Kill points (`steps.rs`, `kill.rs`): a snapshot, gc, forget or sync is started and `ore`
//! or one of its backend processes is SIGKILLed after a random delay drawn from the length of
//! that operation's clean runs on the same archive. After each kill the invariants hold
//! (`invariants.rs`): `ore check --read-data` is clean, every snapshot of every tag restores
//! and matches the manifest of the tree it was taken from, no process of the run is left
//! behind, and the killed operation run again succeeds — a snapshot's re-run storing no more
//! than the tree's new data and a small overhead (see [`steps::overhead`]).
//!
//! Damage trials (`corrupt.rs`): on a healthy archive, one stored file has a byte flipped, is
//! truncated or is deleted; then `ore check --read-data` must fail naming what is damaged, or
//! the archive must still be whole (damage in dead bytes, or repaired by the kind); damage
//! to a log must not stop `check` or a restore at the first bad block; a restore that exits
//! 0 with contents other than the manifest's is *silently wrong*.
//!
//! Everything random comes from the seed: each kind's kill steps from `(seed, kind)`, its
//! trials from `(seed, kind, "damage")`, so a finding's seed, kind and step replay it
//! (`bench/campaign.sh SEED KILLS CORRUPTIONS` with `CAMPAIGN_KINDS=KIND`; the timing of a
//! kill is the one thing a replay cannot repeat exactly).

pub mod corpus;
pub mod corrupt;
pub mod invariants;
pub mod kill;
pub mod kinds;
pub mod report;
pub mod steps;

pub use kinds::Kind;
pub use report::{Report, Violation};
use std::path::PathBuf;

/// What to run.
#[derive(Clone, Debug)]
pub struct Config {
    pub seed: u64,
    /// Kill points in all, shared evenly among the kinds.
    pub kills: usize,
    /// Damage trials in all, shared evenly among the kinds.
    pub corruptions: usize,
    pub kinds: Vec<Kind>,
    /// Small files in the generated tree (it also holds three files of 200–700 KB).
    pub scale: usize,
    /// Where archives and trees are made (removed at the end).
    pub scratch: PathBuf,
    /// Print each step as it ends.
    pub verbose: bool,
    /// When to stop starting steps (the counts then say how far the run got).
    pub deadline: Option<std::time::Instant>,
}

/// The random source of one part of the campaign: the seed mixed with the kind and the part.
pub fn rng(seed: u64, kind: Kind, part: u64) -> fastrand::Rng {
    let k = Kind::ALL.iter().position(|x| *x == kind).unwrap_or(0) as u64;
    fastrand::Rng::with_seed(
        seed ^ (k + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)
            ^ part.wrapping_mul(0xD1B5_4A32_D192_ED03),
    )
}

/// `total` shared among `n` parts, the first ones taking the remainder.
fn share(total: usize, n: usize, i: usize) -> usize {
    total / n.max(1) + usize::from(i < total % n.max(1))
}

/// One kind's part: its kill points and trials, and how many of each it must do.
struct Part<'a> {
    kind: Kind,
    kills: Option<steps::KillPoints<'a>>,
    kill_quota: usize,
    trials: Option<corrupt::Trials>,
    trial_quota: usize,
}

impl Part<'_> {
    fn kills_over(&self) -> bool {
        self.kills
            .as_ref()
            .is_none_or(|k| k.killed >= self.kill_quota as u64 || k.steps >= 3 * self.kill_quota)
    }

    fn trials_over(&self) -> bool {
        self.trials
            .as_ref()
            .is_none_or(|t| t.done >= self.trial_quota)
    }

    /// Trials keep pace with kill points, so that a run cut short by its deadline has some of
    /// each.
    fn trial_due(&self) -> bool {
        let (Some(t), Some(k)) = (&self.trials, &self.kills) else {
            return !self.trials_over();
        };
        !self.trials_over()
            && (self.kills_over()
                || t.done * self.kill_quota <= k.killed as usize * self.trial_quota)
    }
}

/// Runs the campaign: the kinds take turns, a kill point (and a damage trial, at the pace
/// that makes both end together) each, until every kind has done its share or the deadline
/// passed.
pub fn run(cfg: &Config) -> Report {
    let mut report = Report::new(cfg.seed);
    let n = cfg.kinds.len();
    let mut parts = Vec::new();
    for (i, &kind) in cfg.kinds.iter().enumerate() {
        let dir = cfg.scratch.join(kind.name());
        let (kill_quota, trial_quota) = (share(cfg.kills, n, i), share(cfg.corruptions, n, i));
        let kills = if kill_quota == 0 {
            None
        } else {
            steps::KillPoints::new(cfg, kind, &dir.join("kills"))
                .map_err(|e| report.violation(kind, "setup", "kills", e))
                .ok()
        };
        let trials = if trial_quota == 0 {
            None
        } else {
            corrupt::Trials::new(cfg, kind, &dir.join("damage"))
                .map_err(|e| report.violation(kind, "setup", "damage", e))
                .ok()
        };
        parts.push(Part {
            kind,
            kills,
            kill_quota,
            trials,
            trial_quota,
        });
    }
    let over = |report: &mut Report| {
        let late = cfg.deadline.is_some_and(|d| std::time::Instant::now() > d);
        if late {
            report.cut_short = true;
        }
        late
    };
    'turns: loop {
        let mut busy = false;
        for p in parts.iter_mut() {
            if over(&mut report) {
                break 'turns;
            }
            if !p.kills_over() {
                if let Some(k) = p.kills.as_mut() {
                    k.step(&mut report);
                    busy = true;
                }
            }
            if p.trial_due() {
                if let Some(t) = p.trials.as_mut() {
                    if let Err(e) = t.trial(cfg, &mut report) {
                        report.violation(p.kind, &format!("d{}", t.done - 1), "damage", e);
                    }
                    busy = true;
                }
            }
        }
        if !busy {
            break;
        }
    }
    for p in parts.iter_mut() {
        if let Some(k) = p.kills.as_mut() {
            k.finish(&mut report);
        }
    }
    drop(parts);
    for kind in &cfg.kinds {
        let _ = std::fs::remove_dir_all(cfg.scratch.join(kind.name()));
    }
    report
}
