//! `swap-dirs DIR TARGET`: the attacker of the restore-redirection tests. Run as an ordinary
//! user who may write in DIR, it loops until killed: every directory that appears in DIR (or
//! one level below it) is renamed aside and a symlink to TARGET put in its place, so that a
//! restore which names what it writes by path is sent into TARGET.

use std::path::{Path, PathBuf};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir, target] = &args[..] else {
        eprintln!("usage: swap-dirs DIR TARGET");
        std::process::exit(2);
    };
    let (dir, target) = (PathBuf::from(dir), PathBuf::from(target));
    let mut n = 0u64;
    loop {
        for d in dirs_in(&dir) {
            swap(&d, &target, &mut n);
            for inner in dirs_in(&d) {
                swap(&inner, &target, &mut n);
            }
        }
    }
}

/// The directories in `dir` that are not ones already put aside.
fn dirs_in(dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    rd.flatten()
        .filter(|e| !e.file_name().to_string_lossy().starts_with(".aside-"))
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect()
}

fn swap(d: &Path, target: &Path, n: &mut u64) {
    *n += 1;
    let Some(parent) = d.parent() else { return };
    if std::fs::rename(d, parent.join(format!(".aside-{n}"))).is_ok() {
        let _ = std::os::unix::fs::symlink(target, d);
    }
}
