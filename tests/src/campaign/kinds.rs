//! The five archive kinds the campaign runs on, each set up in a directory of its own so that
//! everything it stores (logs, index, blocks, cache and state databases, members) is under one
//! path: the corruption trials pick files from there, and the stored-bytes bound measures it.

use crate::ore::{Ore, Run};
use crate::{bin, quote, shell_quote};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// An archive kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// A plain path: splitlog opened inside `ore` (no backend process).
    Embedded,
    /// `backend-splitlog DIR`.
    Splitlog,
    /// `backend-fs DIR`.
    Fs,
    /// `backend-cache CACHE.db 'backend-splitlog DIR'`.
    Cache,
    /// `backend-replicated STATE.db` over three `backend-splitlog` members at trust 50.
    Replicated,
}

impl Kind {
    pub const ALL: [Kind; 5] = [
        Kind::Embedded,
        Kind::Splitlog,
        Kind::Fs,
        Kind::Cache,
        Kind::Replicated,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Embedded => "embedded",
            Kind::Splitlog => "splitlog",
            Kind::Fs => "fs",
            Kind::Cache => "cache",
            Kind::Replicated => "replicated",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == s)
    }

    /// How many copies of a block the kind may store (the replicated members at trust 50
    /// each keep every block on at least two of the three, at most three).
    pub fn copies(self) -> u64 {
        if self == Kind::Replicated {
            3
        } else {
            1
        }
    }
}

/// How long a lease or a sweep of a killed run blocks the next step.
///
/// Workaround: today a killed run's lease (and a killed gc's sweep) holds the archive until
/// its ttl runs out, even when its holder is a dead process on this host (issue 22, finding
/// 5, being fixed so that such leases are taken over at once). Until then every run of the
/// campaign holds its leases for this short ttl, so that a kill costs seconds, not 15
/// minutes. It must stay well above the renewal period (a tenth of it) on a loaded machine.
pub const LEASE_TTL: &str = "4s";

/// One archive of a kind, set up under `dir`, and the `ore` that reaches it.
pub struct Archive {
    pub kind: Kind,
    pub dir: PathBuf,
    pub ore: Ore,
}

/// Runs `ore-admin ARCHIVE WORDS`, which must succeed.
fn admin(archive: &str, words: &[&str]) -> Result<(), String> {
    let out = Command::new(bin("ore-admin"))
        .arg(archive)
        .args(words)
        .output()
        .map_err(|e| format!("ore-admin: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ore-admin {archive} {words:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// The identifier of an archive of `kind` stored under `dir` (members are added here).
pub fn identifier(kind: Kind, dir: &Path) -> Result<String, String> {
    let splitlog = |d: &Path| format!("backend-splitlog {}", quote(d));
    Ok(match kind {
        Kind::Embedded => dir.join("archive").display().to_string(),
        Kind::Splitlog => splitlog(&dir.join("archive")),
        Kind::Fs => format!("backend-fs {}", quote(&dir.join("blocks"))),
        Kind::Cache => format!(
            "backend-cache {} {}",
            quote(&dir.join("cache.db")),
            shell_quote(&splitlog(&dir.join("inner")))
        ),
        Kind::Replicated => {
            let id = format!("backend-replicated {}", quote(&dir.join("state.db")));
            for m in 0..3 {
                admin(
                    &id,
                    &[
                        "add",
                        &splitlog(&dir.join(format!("m{m}"))),
                        "--trust",
                        "50",
                    ],
                )?;
            }
            id
        }
    })
}

impl Archive {
    /// A new archive of `kind` under `dir` (created), initialised — or, with `from`, sharing
    /// the keys of that archive (`ore init --from`), so that `ore sync` copies blocks as stored.
    pub fn create(kind: Kind, dir: &Path, from: Option<&Archive>) -> Result<Archive, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let ore = Ore::new(identifier(kind, dir)?);
        let a = Archive {
            kind,
            dir: dir.to_path_buf(),
            ore,
        };
        let r = match from {
            Some(src) => a.run(&["init", "--from", &src.ore.archive]),
            None => a.run(&["init"]),
        };
        if r.code != 0 {
            return Err(format!("init {}: {}", a.ore.archive, r.stderr));
        }
        Ok(a)
    }

    /// `ore ARGS` as a command, with the campaign's lease ttl.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = self.ore.cmd(args);
        c.env("ORE_LEASE_TTL", LEASE_TTL);
        c
    }

    /// Runs `ore ARGS` to its end (killed after ten minutes: a hang is a finding, not a wait;
    /// so is a process left behind, added to its stderr).
    pub fn run(&self, args: &[&str]) -> Run {
        super::kill::run_to_end(self.cmd(args), Duration::from_secs(600))
    }

    /// Bytes in every file under the archive's directory (apparent sizes).
    pub fn stored(&self) -> u64 {
        files_under(&self.dir)
            .iter()
            .filter_map(|p| std::fs::symlink_metadata(p).ok())
            .map(|m| m.len())
            .sum()
    }
}

/// Every regular file under `dir`, sorted (the order corruption trials pick from).
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => todo.push(e.path()),
                Ok(t) if t.is_file() => out.push(e.path()),
                _ => {}
            }
        }
    }
    out.sort();
    out
}
