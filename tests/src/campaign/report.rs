//! The campaign's counts and findings, and how they are printed.

use super::Kind;
use std::collections::BTreeMap;
use std::fmt;

/// Kill points of one operation on one kind.
#[derive(Clone, Debug, Default)]
pub struct KillCount {
    pub ore: u64,
    pub backend: u64,
    /// The run ended before its kill point (counted, but not as a kill).
    pub finished_first: u64,
}

/// Damage trials of one kind (flip, truncate or delete).
#[derive(Clone, Debug, Default)]
pub struct TrialCount {
    pub trials: u64,
    /// `check` failed and its message named a block, log or file.
    pub detected_named: u64,
    /// `check` was clean and everything still restored and matched: the damage hit dead
    /// bytes, or the kind repaired it.
    pub intact: u64,
    /// `check` or a restore stopped at damage in a log instead of reporting it block by
    /// block (and going on with the rest).
    pub stopped: u64,
    /// A restore exited 0 with contents that differ from the manifest.
    pub silently_wrong: u64,
    /// `check` failed without naming anything, or passed while something was lost.
    pub missed: u64,
}

/// One broken invariant: where, and how to replay it.
#[derive(Clone, Debug)]
pub struct Violation {
    pub seed: u64,
    pub kind: Kind,
    /// The step (`k3` the fourth kill point, `d7` the eighth damage trial, or `setup`).
    pub step: String,
    pub op: String,
    pub what: String,
}

impl Violation {
    /// The command that runs this kind again up to this step.
    pub fn replay(&self) -> String {
        let n = |p: char| {
            self.step
                .strip_prefix(p)
                .and_then(|n| n.parse::<u64>().ok())
                .map_or(0, |n| n + 1)
        };
        format!(
            "CAMPAIGN_KINDS={} bench/campaign.sh {} {} {}",
            self.kind.name(),
            self.seed,
            n('k'),
            n('d')
        )
    }

    /// Which known finding of issue 22 it looks like, from its message.
    pub fn class(&self) -> &'static str {
        let w = &self.what;
        if w.contains("moved independently") {
            "finding 7 (sync after forget)"
        } else if w.contains("instead of being reported block by block") {
            "finding 6 (damaged log stops everything)"
        } else if w.contains("lost history") {
            "finding 6 (history lost silently)"
        } else if w.contains("waiting for") || w.contains("another gc is removing") {
            "finding 5 (dead lease holds the archive)"
        } else if w.contains("Broken pipe") || w.contains("backend exited with status 0") {
            "finding 4 (holder cut-off)"
        } else if w.contains("malformed") {
            "finding 3 (malformed index)"
        } else if w.contains("silently wrong") {
            "SILENTLY WRONG"
        } else {
            "new"
        }
    }
}

/// Everything one campaign run counted.
#[derive(Clone, Debug)]
pub struct Report {
    pub seed: u64,
    pub kills: BTreeMap<(String, Kind), KillCount>,
    /// Invariant checks (check + every restore, after one kill) that passed.
    pub checks_passed: u64,
    pub restores_matched: u64,
    pub reruns_passed: u64,
    pub violations: Vec<Violation>,
    pub trials: BTreeMap<(Kind, String), TrialCount>,
    /// The run reached its deadline before doing its share of every kind.
    pub cut_short: bool,
}

impl Report {
    pub fn new(seed: u64) -> Report {
        Report {
            seed,
            kills: BTreeMap::new(),
            checks_passed: 0,
            restores_matched: 0,
            reruns_passed: 0,
            violations: Vec::new(),
            trials: BTreeMap::new(),
            cut_short: false,
        }
    }

    /// Records a broken invariant (and prints it at once, so a long run shows it early).
    pub fn violation(&mut self, kind: Kind, step: &str, op: &str, what: String) {
        let v = Violation {
            seed: self.seed,
            kind,
            step: step.into(),
            op: op.into(),
            what,
        };
        eprintln!(
            "VIOLATION seed {} kind {} step {} ({}) [{}]: {}",
            v.seed,
            v.kind.name(),
            v.step,
            v.op,
            v.class(),
            v.what
        );
        self.violations.push(v);
    }

    /// Kill points actually killed (runs that ended first are not counted).
    pub fn killed(&self) -> u64 {
        self.kills.values().map(|c| c.ore + c.backend).sum()
    }

    pub fn trial_total(&self) -> TrialCount {
        let mut t = TrialCount::default();
        for c in self.trials.values() {
            t.trials += c.trials;
            t.detected_named += c.detected_named;
            t.intact += c.intact;
            t.stopped += c.stopped;
            t.silently_wrong += c.silently_wrong;
            t.missed += c.missed;
        }
        t
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "campaign seed {}{}",
            self.seed,
            if self.cut_short {
                " (cut short by its deadline)"
            } else {
                ""
            }
        )?;
        writeln!(
            f,
            "kill points (op, kind: ore killed / backend killed / ended first):"
        )?;
        for ((op, kind), c) in &self.kills {
            writeln!(
                f,
                "  {op:<9} {:<11} {:>4} / {:>4} / {:>4}",
                kind.name(),
                c.ore,
                c.backend,
                c.finished_first
            )?;
        }
        writeln!(
            f,
            "killed: {}; invariant checks passed: {}; restores matched: {}; re-runs passed: {}",
            self.killed(),
            self.checks_passed,
            self.restores_matched,
            self.reruns_passed
        )?;
        writeln!(
            f,
            "damage trials (kind damage: trials, detected+named, intact, stopped, silently wrong, missed):"
        )?;
        for ((kind, damage), c) in &self.trials {
            writeln!(
                f,
                "  {:<11} {damage:<8} {:>4} {:>4} {:>4} {:>4} {:>4} {:>4}",
                kind.name(),
                c.trials,
                c.detected_named,
                c.intact,
                c.stopped,
                c.silently_wrong,
                c.missed
            )?;
        }
        let t = self.trial_total();
        writeln!(
            f,
            "trials: {}; detected and named: {}; intact: {}; stopped: {}; silently wrong: {}; \
             missed: {}",
            t.trials, t.detected_named, t.intact, t.stopped, t.silently_wrong, t.missed
        )?;
        let mut classes: BTreeMap<&str, usize> = BTreeMap::new();
        for v in &self.violations {
            *classes.entry(v.class()).or_default() += 1;
        }
        writeln!(f, "violations: {} {classes:?}", self.violations.len())?;
        for v in &self.violations {
            writeln!(
                f,
                "  seed {} kind {} step {} ({}) [{}]: {}\n    replay: {}",
                v.seed,
                v.kind.name(),
                v.step,
                v.op,
                v.class(),
                v.what.replace('\n', " | "),
                v.replay()
            )?;
        }
        Ok(())
    }
}
