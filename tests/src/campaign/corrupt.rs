//! Damage trials: one stored file of a healthy archive has a byte flipped, is truncated or is
//! deleted, and then the archive must either say so — `ore check --read-data` fails and
//! names a block, a log or the file — or still be whole: `check` clean, every snapshot
//! restoring to its manifest, the tags, the reflog and a tag's history as they were. A restore that exits 0
//! with other contents is *silently wrong*, whatever `check` said.
//!
//! The archive is made once per kind under a fixed path and copied aside; each trial damages
//! it in place and copies it back afterwards, so identifiers that hold absolute paths (the
//! replicated state's members, the cache's inner archive) stay true.
//!
//! Damage to a log must also not stop everything (issue 22, finding 6): `check` goes on to
//! its summary of damaged blocks, and a restore writes what it can and says it is incomplete.

use super::corpus::{first_difference, manifest, Corpus, Manifest};
use super::invariants::{snapshots, tail};
use super::kinds::{files_under, Archive, Kind};
use super::report::TrialCount;
use super::{rng, Config, Report};
use std::path::Path;
use std::process::Command;

const DAMAGE: [&str; 3] = ["flip", "truncate", "delete"];

/// Files a trial never damages: locks and the attach point, which hold no data.
fn eligible(p: &Path) -> bool {
    let name = p
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    !matches!(
        name.as_str(),
        "lock" | "tags.lock" | "attach.key" | "attach.sock"
    )
}

fn copy_tree(from: &Path, to: &Path) -> Result<(), String> {
    let _ = std::fs::remove_dir_all(to);
    let out = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .output()
        .map_err(|e| format!("cp: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "cp -a {} {}: {}",
            from.display(),
            to.display(),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Whether a message names something: a block key (12 or more hex digits), a log, or the
/// damaged file — by its name, or by what it is to its program (a splitlog's `metadata.db`
/// is its "index database", a replicated archive's `state.db` its "replication state", the
/// cache's `cache.db` "the cache").
pub fn names_something(msg: &str, file: &Path) -> bool {
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let role = match name.as_str() {
        "metadata.db" => "index database",
        "state.db" => "replication state",
        "cache.db" => "the cache",
        _ => "\0",
    };
    if msg.contains(role) {
        return true;
    }
    let hex_run = msg
        .split(|c: char| !c.is_ascii_hexdigit())
        .any(|w| w.len() >= 12);
    hex_run || msg.contains("log-") || (!name.is_empty() && msg.contains(&name))
}

/// Damages `file` as `damage` says; returns what was done.
fn damage(file: &Path, damage: &str, rng: &mut fastrand::Rng) -> Result<String, String> {
    let len = std::fs::metadata(file).map_err(|e| e.to_string())?.len();
    match damage {
        "flip" if len > 0 => {
            let at = rng.u64(..len);
            let mut data = std::fs::read(file).map_err(|e| e.to_string())?;
            data[at as usize] ^= rng.u8(1..);
            std::fs::write(file, data).map_err(|e| e.to_string())?;
            Ok(format!("flipped byte {at} of {len}"))
        }
        "truncate" if len > 0 => {
            let to = rng.u64(..len);
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(file)
                .map_err(|e| e.to_string())?;
            f.set_len(to).map_err(|e| e.to_string())?;
            Ok(format!("truncated from {len} to {to} bytes"))
        }
        _ => {
            std::fs::remove_file(file).map_err(|e| e.to_string())?;
            Ok("deleted".into())
        }
    }
}

/// What the archive says about itself, to compare before and after: its tags, its reflog
/// and the history of `main` (without the times a history shows: an index rebuilt from the
/// logs dates its entries anew).
fn history(a: &Archive) -> Vec<(&'static str, String)> {
    let t = a.run(&["--json", "tags"]);
    let r = a.run(&["--json", "reflog"]);
    let h = a.run(&["--json", "tag-history", "main"]);
    let undated: Vec<String> = h
        .stdout
        .lines()
        .map(|l| match serde_json::from_str::<serde_json::Value>(l) {
            Ok(serde_json::Value::Object(mut m)) => {
                m.remove("time");
                serde_json::Value::Object(m).to_string()
            }
            _ => l.to_string(),
        })
        .collect();
    vec![
        ("tags", t.stdout),
        ("reflog", r.stdout),
        ("tag history of main", undated.join("\n")),
    ]
}

/// The parts of `history` that differ.
fn changed(
    before: &[(&'static str, String)],
    after: &[(&'static str, String)],
) -> Vec<&'static str> {
    before
        .iter()
        .zip(after)
        .filter(|(b, a)| b.1 != a.1)
        .map(|(b, _)| b.0)
        .collect()
}

/// The damage trials of one kind: a healthy archive and its copy, taken one trial at a time.
pub struct Trials {
    kind: Kind,
    rng: fastrand::Rng,
    dir: std::path::PathBuf,
    live: std::path::PathBuf,
    healthy: std::path::PathBuf,
    a: Archive,
    manifests: Vec<Manifest>,
    all: Vec<(String, String, String)>,
    healthy_history: Vec<(&'static str, String)>,
    files: Vec<std::path::PathBuf>,
    pub done: usize,
}

impl Trials {
    /// An archive of `kind` under `dir` with four snapshots on two tags, and its copy.
    pub fn new(cfg: &Config, kind: Kind, dir: &Path) -> Result<Trials, String> {
        let mut rng = rng(cfg.seed, kind, 1);
        let live = dir.join("a");
        let a = Archive::create(kind, &live, None)?;
        let mut corpus =
            Corpus::create(&dir.join("src"), cfg.scale, &mut rng).map_err(|e| e.to_string())?;
        let mut manifests: Vec<Manifest> = Vec::new();
        for (i, tag) in ["base", "main", "main", "main"].iter().enumerate() {
            if i > 0 {
                corpus.mutate(&mut rng).map_err(|e| e.to_string())?;
            }
            manifests.push(manifest(&corpus.root).map_err(|e| e.to_string())?);
            let src = corpus.root.display().to_string();
            let r = a.run(&["snapshot", tag, &src, "--comment", &format!("m{i}")]);
            if r.code != 0 {
                return Err(format!("snapshot: {}", tail(&r.stderr)));
            }
        }
        let healthy_history = history(&a);
        let all = snapshots(&a)?;
        let healthy = dir.join("healthy");
        copy_tree(&live, &healthy)?;
        let files: Vec<_> = files_under(&live)
            .into_iter()
            .filter(|p| eligible(p))
            .collect();
        if files.is_empty() {
            return Err(format!("no stored files under {}", live.display()));
        }
        Ok(Trials {
            kind,
            rng,
            dir: dir.to_path_buf(),
            live,
            healthy,
            a,
            manifests,
            all,
            healthy_history,
            files,
            done: 0,
        })
    }

    /// The next trial: damage, check, restore, compare, classify; then the archive is put back.
    pub fn trial(&mut self, cfg: &Config, report: &mut Report) -> Result<(), String> {
        let t = self.done;
        self.done += 1;
        let (kind, dir, a, manifests, all) =
            (self.kind, &self.dir, &self.a, &self.manifests, &self.all);
        let rng = &mut self.rng;
        let step = format!("d{t}");
        let kind_of_damage = DAMAGE[rng.usize(..DAMAGE.len())];
        let file = &self.files[rng.usize(..self.files.len())];
        let done = damage(file, kind_of_damage, rng)?;
        let rel = file.strip_prefix(dir).unwrap_or(file).display().to_string();
        let what = format!("{rel} {done}");
        let check = a.run(&["check", "--read-data"]);
        let said = format!("{}\n{}", check.stdout, check.stderr);
        // Every snapshot the healthy archive had, by key.
        let mut wrong = Vec::new();
        let mut failed = Vec::new();
        for (i, (tag, key, comment)) in all.iter().enumerate() {
            let dest = dir.join(format!("restore-{i}"));
            let r = a.run(&["restore", key, &dest.display().to_string()]);
            let want = comment
                .strip_prefix('m')
                .and_then(|n| n.parse::<usize>().ok())
                .and_then(|n| manifests.get(n));
            if r.code == 0 {
                let got = manifest(&dest).unwrap_or_default();
                match want.map(|w| first_difference(w, &got)) {
                    Some(None) => {}
                    Some(Some(d)) => wrong.push(format!("{tag} {comment}: {d}")),
                    None => wrong.push(format!("{tag}: unknown comment {comment}")),
                }
            } else {
                // The line saying the restore is incomplete comes before the list of what it
                // left out, which a bundle of many small files makes longer than the tail.
                let incomplete = r.stderr.lines().find(|l| l.contains("INCOMPLETE"));
                failed.push(format!(
                    "{tag} {comment}: {}{}",
                    incomplete.map(|l| format!("{l}\n")).unwrap_or_default(),
                    tail(&r.stderr)
                ));
            }
            let _ = std::fs::remove_dir_all(&dest);
        }
        let lost = changed(&self.healthy_history, &history(a));
        let c: &mut TrialCount = report
            .trials
            .entry((kind, kind_of_damage.to_string()))
            .or_default();
        c.trials += 1;
        let mut finding = None;
        if !wrong.is_empty() {
            c.silently_wrong += 1;
            finding = Some(format!(
                "{what}: a restore exited 0 but is silently wrong: {}",
                wrong.join("; ")
            ));
        } else if check.code != 0 {
            // Damage to a log must be reported block by block: check goes through every
            // block (its summary counts the damaged ones), and a restore writes everything
            // else and says it is incomplete — neither stops at the first bad block.
            let log = file
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("log-"));
            let stopped_check = log && !said.contains("missing or damaged block(s)");
            // A restore that names the snapshot's own block as unreadable has nothing else to
            // restore (its root is in that block): that is the damage reported, not a stop.
            let stopped_restore = failed.iter().find(|f| {
                log && !f.contains("INCOMPLETE") && !f.contains("cannot be read as a snapshot")
            });
            if stopped_check || stopped_restore.is_some() {
                c.stopped += 1;
                finding = Some(format!(
                    "{what}: the damage stopped {} instead of being reported block by block: {}",
                    if stopped_check { "check" } else { "a restore" },
                    if stopped_check {
                        tail(&said)
                    } else {
                        stopped_restore.cloned().unwrap_or_default()
                    }
                ));
            } else if names_something(&said, file) {
                c.detected_named += 1;
            } else {
                c.missed += 1;
                finding = Some(format!(
                    "{what}: check failed without naming what: {}",
                    tail(&said)
                ));
            }
        } else if failed.is_empty() && lost.is_empty() {
            c.intact += 1;
        } else {
            c.missed += 1;
            finding = Some(if failed.is_empty() {
                format!(
                    "{what}: check is clean, but lost history: the {} changed",
                    lost.join(", the ")
                )
            } else {
                format!(
                    "{what}: check is clean, but restores failed: {}",
                    failed.join("; ")
                )
            });
        }
        if cfg.verbose {
            eprintln!(
                "{} {step} {what}: check exit {} ({}), {} restore(s) failed {:?}",
                kind.name(),
                check.code,
                tail(&said).replace('\n', " | "),
                failed.len(),
                failed.first()
            );
        }
        if let Some(f) = finding {
            report.violation(kind, &step, kind_of_damage, f);
        }
        copy_tree(&self.healthy, &self.live)
    }
}
