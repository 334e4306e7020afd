//! Removing a name and everything below it, beneath a directory held open: what
//! `ore restore --delete` does with names the snapshot does not hold.
//!
//! The same rule as the rest of `fsys`: every call takes one name relative to a directory held
//! open and follows no symlink. A subdirectory is opened with `O_NOFOLLOW | O_DIRECTORY` and
//! emptied through its own descriptor, then removed by name with `AT_REMOVEDIR`; a symlink
//! swapped in for it meanwhile makes the open or the removal fail, and the removal stops there
//! with that error instead of reaching what the link points at. The walk keeps its own stack
//! (one descriptor a level), so a deep tree costs descriptors, never the thread's stack.

use super::at::{check, one_name};
use super::Dir;
use std::io;
use std::os::fd::{AsFd, AsRawFd};

impl Dir {
    /// Removes the directory `name` (empty) itself.
    pub fn rmdir(&self, name: &[u8]) -> io::Result<()> {
        let c = one_name(name)?;
        // SAFETY: a valid descriptor and C string.
        check(unsafe { libc::unlinkat(self.as_fd().as_raw_fd(), c.as_ptr(), libc::AT_REMOVEDIR) })
    }

    /// Removes `name`, and when it is a directory everything below it first. The number of
    /// names removed; the first error ends the removal, and says how many were removed before
    /// it and where it happened (what was removed stays removed).
    pub fn remove_all(&self, name: &[u8]) -> Result<u64, Partial> {
        let mut removed = 0;
        let mut at = name.to_vec();
        let fail = |removed: u64, at: &[u8], error: io::Error| Partial {
            removed,
            at: at.to_vec(),
            error,
        };
        let st = self.lstat(name).map_err(|e| fail(0, b"", e))?;
        if !st.is_dir() {
            self.unlink(name).map_err(|e| fail(0, b"", e))?;
            return Ok(1);
        }
        let first = self.open_dir(name).map_err(|e| fail(0, b"", e))?;
        let left = first.names().map_err(|e| fail(0, b"", e))?;
        // Directories being emptied: each open, with its own name and the names left in it;
        // `at` is the path below `name` of the one on top.
        let mut open: Vec<(Dir, Vec<u8>, Vec<Vec<u8>>)> = vec![(first, name.to_vec(), left)];
        at.clear();
        while let Some((dir, _, left)) = open.last_mut() {
            if let Some(n) = left.pop() {
                let here = joined(&at, &n);
                let is_dir = dir.lstat(&n).map_err(|e| fail(removed, &here, e))?.is_dir();
                if is_dir {
                    let sub = dir.open_dir(&n).map_err(|e| fail(removed, &here, e))?;
                    let left = sub.names().map_err(|e| fail(removed, &here, e))?;
                    open.push((sub, n, left));
                    at = here;
                } else {
                    dir.unlink(&n).map_err(|e| fail(removed, &here, e))?;
                    removed += 1;
                }
                continue;
            }
            let Some((done, n, _)) = open.pop() else {
                break;
            };
            drop(done);
            let result = match open.last() {
                Some((parent, _, _)) => parent.rmdir(&n),
                None => self.rmdir(&n),
            };
            result.map_err(|e| fail(removed, &at, e))?;
            removed += 1;
            at = parent_of(&at);
        }
        Ok(removed)
    }
}

/// A removal that stopped part way: how many names it removed, the path (below the name it
/// was removing; empty for that name itself) where it stopped, and why.
#[derive(Debug)]
pub struct Partial {
    pub removed: u64,
    pub at: Vec<u8>,
    pub error: io::Error,
}

fn joined(dir: &[u8], name: &[u8]) -> Vec<u8> {
    if dir.is_empty() {
        return name.to_vec();
    }
    let mut p = dir.to_vec();
    p.push(b'/');
    p.extend_from_slice(name);
    p
}

fn parent_of(path: &[u8]) -> Vec<u8> {
    match path.iter().rposition(|&b| b == b'/') {
        Some(i) => path[..i].to_vec(),
        None => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tree_is_removed_whole_and_counted() {
        let d = tempfile::tempdir().unwrap();
        let t = d.path().join("t");
        std::fs::create_dir_all(t.join("a/b/c")).unwrap();
        std::fs::write(t.join("a/f"), b"x").unwrap();
        std::fs::write(t.join("a/b/c/g"), b"y").unwrap();
        std::os::unix::fs::symlink("/", t.join("a/b/link")).unwrap();
        let top = Dir::open(d.path()).unwrap();
        assert_eq!(top.remove_all(b"t").unwrap(), 7);
        assert!(!t.exists());
    }

    #[test]
    fn a_symlink_is_removed_itself_and_what_it_points_at_stays() {
        let d = tempfile::tempdir().unwrap();
        let outside = d.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("kept"), b"k").unwrap();
        let inside = d.path().join("in");
        std::fs::create_dir(&inside).unwrap();
        std::os::unix::fs::symlink(&outside, inside.join("l")).unwrap();
        let top = Dir::open(&inside).unwrap();
        assert_eq!(top.remove_all(b"l").unwrap(), 1);
        assert!(outside.join("kept").exists());
    }
}
