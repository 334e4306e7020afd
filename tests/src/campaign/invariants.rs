//! What must hold after every kill point: `ore check --read-data` is clean, and every snapshot
//! of every tag restores and matches the manifest of the tree it was taken from.
//!
//! A snapshot names its manifest in its comment (`m<N>`, see `corpus.rs`); a snapshot with
//! any other comment is a finding too (the campaign never made it).

use super::corpus::{first_difference, manifest, Manifest};
use super::kinds::Archive;
use std::path::Path;

/// `ore check --read-data` exits 0.
pub fn check_is_clean(a: &Archive) -> Result<(), String> {
    let r = a.run(&["check", "--read-data"]);
    if r.code == 0 {
        Ok(())
    } else {
        Err(format!(
            "check --read-data exited {}: {}{}",
            r.code,
            tail(&r.stdout),
            tail(&r.stderr)
        ))
    }
}

/// The last lines of a run's output, for a finding's message.
pub fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    let from = lines.len().saturating_sub(8);
    lines[from..].join("\n")
}

fn json_lines(s: &str) -> Vec<serde_json::Value> {
    s.lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Every snapshot of every tag: (tag, key, comment), newest first within a tag.
pub fn snapshots(a: &Archive) -> Result<Vec<(String, String, String)>, String> {
    let tags = a.run(&["--json", "tags"]);
    if tags.code != 0 {
        return Err(format!("tags exited {}: {}", tags.code, tail(&tags.stderr)));
    }
    let mut out = Vec::new();
    for t in json_lines(&tags.stdout) {
        let tag = t["tag"].as_str().unwrap_or_default().to_string();
        let log = a.run(&["--json", "log", &tag]);
        if log.code != 0 {
            return Err(format!(
                "log {tag} exited {}: {}",
                log.code,
                tail(&log.stderr)
            ));
        }
        for s in json_lines(&log.stdout) {
            out.push((
                tag.clone(),
                s["key"].as_str().unwrap_or_default().to_string(),
                s["comment"].as_str().unwrap_or_default().to_string(),
            ));
        }
    }
    Ok(out)
}

/// Restores every snapshot of every tag into `scratch` and compares it with its manifest.
/// Returns how many were restored.
pub fn every_snapshot_restores(
    a: &Archive,
    manifests: &[Manifest],
    scratch: &Path,
) -> Result<usize, String> {
    let all = snapshots(a)?;
    for (i, (tag, key, comment)) in all.iter().enumerate() {
        let want = comment
            .strip_prefix('m')
            .and_then(|n| n.parse::<usize>().ok())
            .and_then(|n| manifests.get(n))
            .ok_or_else(|| {
                format!("{tag}: snapshot {key} has comment {comment:?}, which no run made")
            })?;
        let dest = scratch.join(format!("restore-{i}"));
        let r = a.run(&["restore", key, &dest.display().to_string()]);
        let got = if r.code == 0 {
            manifest(&dest)
        } else {
            Ok(Manifest::new())
        };
        let _ = std::fs::remove_dir_all(&dest);
        if r.code != 0 {
            return Err(format!(
                "restore of {tag} snapshot {key} ({comment}) exited {}: {}",
                r.code,
                tail(&r.stderr)
            ));
        }
        let got = got.map_err(|e| format!("reading the restore of {key}: {e}"))?;
        if let Some(d) = first_difference(want, &got) {
            return Err(format!(
                "restore of {tag} snapshot {key} ({comment}) is wrong: {d}"
            ));
        }
    }
    Ok(all.len())
}

/// Both invariants on `a`; the number of restores checked.
pub fn hold(a: &Archive, manifests: &[Manifest], scratch: &Path) -> Result<usize, String> {
    check_is_clean(a)?;
    every_snapshot_restores(a, manifests, scratch)
}
