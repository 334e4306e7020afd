//! How many bytes a first snapshot will read, for the progress line's percentage and ETA.
//!
//! A snapshot onto a tag that has one takes the previous snapshot's size as its estimate; a
//! first snapshot has nothing to go by. So while its progress is on a terminal, one more thread
//! walks the same paths with the same exclude rules (`--exclude`, `.oreignore`, config rules,
//! `--one-file-system`), adding up the sizes of regular files without reading any, and the total
//! is shown once that walk is done. It runs only for a terminal, stops when the snapshot ends,
//! and stats each entry once: a directory walk costs a small fraction of reading the files.

use crate::commands::snapshot::rules::{ignores_in, Rules};
use crate::core::fsys::{stat_path, Dir};
use crate::core::progress::Progress;
use std::collections::HashSet;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

/// Inodes with several names remembered so as to count them once (16 bytes each and the set's
/// own overhead: a few tens of MiB at most).
const MAX_LINKED: usize = 1 << 20;

/// Starts the estimating walk of `paths` in the background; it stores its total in
/// `progress.total_bytes` when done, unless the snapshot has ended (or found a total) first.
pub fn start(paths: Vec<PathBuf>, rules: Rules, one_file_system: bool, progress: Arc<Progress>) {
    let _ = std::thread::Builder::new()
        .name("ore estimate".into())
        .spawn(move || {
            if let Some(total) = walk(&paths, &rules, one_file_system, &progress) {
                let _ = progress
                    .total_bytes
                    .compare_exchange(0, total.max(1), Relaxed, Relaxed);
            }
        });
}

/// The bytes of the regular files under `paths` that the rules keep; `None` if the snapshot
/// ended first.
fn walk(paths: &[PathBuf], rules: &Rules, one_fs: bool, progress: &Progress) -> Option<u64> {
    let mut total = 0u64;
    // Hard links count once, as the snapshot reads them once (up to a bound on the memory
    // that takes: past it, further names count again and the estimate runs high).
    let mut linked = HashSet::new();
    let mut count = |st: &crate::core::fsys::Stat| {
        if !st.is_file() {
            return;
        }
        if st.nlink < 2 || linked.len() >= MAX_LINKED || linked.insert((st.dev, st.ino)) {
            total += st.size;
        }
    };
    for root in paths {
        let Ok(st) = stat_path(root, true) else {
            continue;
        };
        if !st.is_dir() {
            count(&st);
            continue;
        }
        let Ok(first) = rules.root_ignore(root) else {
            continue;
        };
        // Depth first, with a stack of its own: trees can be deeper than a thread's stack.
        let mut stack = vec![(root.clone(), Arc::new(vec![first]))];
        while let Some((dir_path, ignores)) = stack.pop() {
            if progress.done.load(Relaxed) {
                return None;
            }
            let Ok(dir) = Dir::open(&dir_path) else {
                continue;
            };
            let Ok(names) = dir.names() else {
                continue;
            };
            // A bad `.oreignore` is the snapshot's to warn about.
            let (ignores, _) = ignores_in(&dir_path, &names, &ignores);
            for name in names {
                let Ok(child) = dir.lstat(&name) else {
                    continue;
                };
                let path = dir_path.join(OsStr::from_bytes(&name));
                if rules.excludes(&ignores, &path, &child) {
                    continue;
                }
                if child.is_dir() {
                    if !(one_fs && child.dev != st.dev) {
                        stack.push((path, ignores.clone()));
                    }
                } else {
                    count(&child);
                }
            }
        }
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_estimate_follows_the_exclude_rules() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("t");
        std::fs::create_dir_all(root.join("keep/deeper")).unwrap();
        std::fs::create_dir_all(root.join("build")).unwrap();
        std::fs::write(root.join("keep/a"), vec![1; 1000]).unwrap();
        std::fs::write(root.join("keep/deeper/b"), vec![1; 200]).unwrap();
        std::fs::hard_link(root.join("keep/deeper/b"), root.join("keep/b2")).unwrap();
        std::fs::write(root.join("build/out"), vec![1; 5000]).unwrap();
        std::fs::write(root.join("x.o"), vec![1; 7000]).unwrap();
        std::fs::write(root.join("keep/.oreignore"), "deeper/\n").unwrap();
        std::fs::write(root.join("lone"), vec![1; 30]).unwrap();
        let p = Progress::default();
        let rules = Rules::new(&["*.o".into(), "/build".into()], &[]).unwrap();
        let ignore_len = std::fs::metadata(root.join("keep/.oreignore"))
            .unwrap()
            .len();
        // keep/a, keep/b2 (deeper/ is ignored there), keep/.oreignore, lone.
        assert_eq!(
            walk(std::slice::from_ref(&root), &rules, false, &p),
            Some(1000 + 200 + ignore_len + 30)
        );
        let none = Rules::new(&[], &[]).unwrap();
        assert_eq!(
            walk(&[root.join("x.o"), root.join("build")], &none, false, &p),
            Some(7000 + 5000)
        );
        // An ended snapshot stops the walk.
        p.done.store(true, Relaxed);
        assert_eq!(walk(&[root], &none, false, &p), None);
    }
}
