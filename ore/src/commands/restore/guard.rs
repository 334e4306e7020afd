//! What `--delete` never removes, whatever the snapshot lacks.
//!
//! A name the snapshot does not hold is removed whole, and whole can be far more than the user
//! thought: the archive the restore is reading (a directory or a cache database inside the
//! destination), another file system mounted below it, or something `--exclude` was given to
//! keep. So before a stray goes, its whole tree is looked at — one name at a time from
//! descriptors held open, like the removal itself — and it is left, with a warning saying
//! why, when it:
//!
//! - is, or holds, a file or directory the caller protects ([`super::RestoreOptions::protect`]:
//!   every path the archive identifier names, ore's file cache, its config and passphrase
//!   files), known by device and inode number, so a symlink or bind mount to it is known too;
//! - is on another device than its directory, or holds something that is (a mount point):
//!   `--delete` never crosses into another file system, as `rm --one-file-system` does not;
//! - holds a directory laid out as an Ore archive (splitlog's `metadata.db` beside `log-*`
//!   files, backend-fs's `blocks/`, `tags/` and `tags.lock`), named in no identifier (a
//!   replicated proxy's member, say);
//! - holds a name an `--exclude` pattern matches (the stray would go whole, and that name
//!   with it).

use super::Ctx;
use crate::core::fsys::Dir;
use crate::core::util::bytes_path;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// Device and inode numbers of what is never removed.
pub(super) type Protected = HashSet<(u64, u64)>;

/// The device and inode numbers of `paths` (followed through symlinks), and of the journal
/// files a database beside them keeps.
pub(super) fn protected(paths: &[PathBuf]) -> Protected {
    let mut out = HashSet::new();
    for p in paths {
        let mut all = vec![p.clone()];
        for suffix in ["-wal", "-shm", "-journal"] {
            let mut s = p.as_os_str().to_os_string();
            s.push(suffix);
            all.push(PathBuf::from(s));
        }
        for q in all {
            if let Ok(m) = std::fs::metadata(&q) {
                use std::os::unix::fs::MetadataExt;
                out.insert((m.dev(), m.ino()));
            }
        }
    }
    out
}

/// Why the stray `name` in `dir` (whose device is `dev`; `shown` as the restore shows it,
/// `in_snapshot` where it would be in the snapshot) must stay, if it must.
pub(super) fn keep_reason(
    ctx: &Ctx,
    dir: &Dir,
    name: &[u8],
    dev: u64,
    (shown, in_snapshot): (&Path, &Path),
) -> Option<String> {
    let st = match dir.lstat(name) {
        Ok(st) => st,
        Err(e) => return Some(format!("not looked at: {e}")),
    };
    if let Some(why) = kept(ctx, &st, dev, shown) {
        return Some(why);
    }
    if !st.is_dir() {
        return None;
    }
    let first = match dir.open_dir(name) {
        Ok(d) => Rc::new(d),
        Err(e) => return Some(format!("not looked into: {e}")),
    };
    // Directories to look into: the open parent, the name, where it is shown and in the
    // snapshot. Opened when taken, so only the parents of what waits are held open.
    let mut open: Vec<Pending> =
        vec![(first, None, shown.to_path_buf(), in_snapshot.to_path_buf())];
    while let Some((parent, name, shown, in_snap)) = open.pop() {
        let d = match name {
            None => parent,
            Some(n) => match parent.open_dir(&n) {
                Ok(d) => Rc::new(d),
                Err(e) => return Some(format!("{} not looked into: {e}", shown.display())),
            },
        };
        let names = match d.names() {
            Ok(n) => n,
            Err(e) => return Some(format!("{} not listed: {e}", shown.display())),
        };
        if looks_like_an_archive(&names) {
            return Some(format!("{} holds an Ore archive", shown.display()));
        }
        for n in names {
            let (s, p) = (shown.join(bytes_path(&n)), in_snap.join(bytes_path(&n)));
            let st = match d.lstat(&n) {
                Ok(st) => st,
                Err(e) => return Some(format!("{} not looked at: {e}", s.display())),
            };
            if let Some(why) = kept(ctx, &st, dev, &s) {
                return Some(why);
            }
            if ctx.opts.select.excluded(&p, st.is_dir()) {
                return Some(format!("it holds {}, which --exclude keeps", s.display()));
            }
            if st.is_dir() {
                open.push((d.clone(), Some(n), s, p));
            }
        }
    }
    None
}

/// A directory to look into: its open parent (or itself, when the name is `None`), its name,
/// where it is shown and where it would be in the snapshot.
type Pending = (Rc<Dir>, Option<Vec<u8>>, PathBuf, PathBuf);

/// Why the entry with status `st` (shown as `shown`) must stay on its own account.
fn kept(ctx: &Ctx, st: &crate::core::fsys::Stat, dev: u64, shown: &Path) -> Option<String> {
    if st.dev != dev {
        return Some(format!(
            "{} is on another file system (a mount point): --delete does not cross into one",
            shown.display()
        ));
    }
    if ctx.protected.contains(&(st.dev, st.ino)) {
        return Some(format!(
            "{} is the archive being read, or ore's own cache, config or passphrase file",
            shown.display()
        ));
    }
    None
}

/// Whether a directory's names are those of an Ore archive's directory.
fn looks_like_an_archive(names: &[Vec<u8>]) -> bool {
    let has = |n: &[u8]| names.iter().any(|x| x == n);
    let splitlog = has(b"metadata.db") && names.iter().any(|n| n.starts_with(b"log-"));
    let fs = has(b"blocks") && has(b"tags") && has(b"tags.lock");
    splitlog || fs
}
