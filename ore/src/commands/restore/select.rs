//! Which entries a restore writes: `--include` and `--exclude` patterns, and the directories
//! that must be made to reach what is included.
//!
//! Patterns are globs, matched like `ore find`'s: one without a `/` against each name, one
//! with a `/` against the whole path from the snapshot's root (as `ore ls` and `ore find`
//! show it, so a path `find` printed can be given as it is). An entry is restored when no
//! exclude matches it and, if any include is given, an include matches it or a directory
//! above it: `--include docs` restores `docs` whole, `--include '*.pdf'` every PDF. An
//! excluded directory is not entered.
//!
//! A directory that is not included itself but holds something included must still be made,
//! and only a walk of the directories can tell which those are: before writing anything, the
//! restore reads the directories of what it restores (not the files' data), and notes the
//! paths of the directories on the way to an included entry ([`wanted`]). Its cost is the
//! directory blocks, read once more; a restore without includes skips it.

use crate::core::entry::EntryKind;
use crate::core::error::{Error, Result};
use crate::core::repo::Repo;
use crate::core::tree::{DirTree, Reader};
use crate::core::util::bytes_path;
use globset::{GlobBuilder, GlobMatcher};
use protocol::Key;
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// One pattern: a glob, whether it is matched against whole paths (it holds a `/` other
/// than a last one), and whether it matches directories only (it ends with `/`, as in
/// gitignore).
#[derive(Debug)]
struct Pattern {
    glob: GlobMatcher,
    whole: bool,
    dirs_only: bool,
}

impl Pattern {
    fn new(p: &str, option: &str) -> Result<Pattern> {
        let dirs_only = p.ends_with('/');
        let body = p.trim_end_matches('/');
        // `./name` and `/name` are anchored at the root: matched as whole paths.
        let whole = body.contains('/');
        let body = body.strip_prefix("./").unwrap_or(body);
        let body = body.trim_start_matches('/');
        if body.is_empty() {
            return Err(Error::Usage(format!(
                "{option} `{p}`: matches nothing (a name or a path from the snapshot's root)"
            )));
        }
        let glob = GlobBuilder::new(body)
            .literal_separator(whole)
            .build()
            .map_err(|e| Error::Usage(format!("{option} `{p}`: not a pattern: {e}")))?;
        Ok(Pattern {
            glob: glob.compile_matcher(),
            whole,
            dirs_only,
        })
    }

    fn hits(&self, path: &Path, is_dir: bool) -> bool {
        if self.dirs_only && !is_dir {
            return false;
        }
        if self.whole {
            self.glob.is_match(path)
        } else {
            path.file_name().is_some_and(|n| self.glob.is_match(n))
        }
    }
}

/// The `--include` and `--exclude` patterns of a restore; none selects everything.
#[derive(Debug, Default)]
pub struct Selection {
    include: Vec<Pattern>,
    exclude: Vec<Pattern>,
}

impl Selection {
    /// The patterns given, each checked: a bad one is an error naming it.
    pub fn new(include: &[String], exclude: &[String]) -> Result<Selection> {
        Ok(Selection {
            include: include
                .iter()
                .map(|p| Pattern::new(p, "--include"))
                .collect::<Result<_>>()?,
            exclude: exclude
                .iter()
                .map(|p| Pattern::new(p, "--exclude"))
                .collect::<Result<_>>()?,
        })
    }

    /// Whether every entry is restored (no pattern given).
    pub fn everything(&self) -> bool {
        self.include.is_empty() && self.exclude.is_empty()
    }

    /// Whether the entry at `path` (from the snapshot's root; a directory when `is_dir`) is
    /// excluded.
    pub fn excluded(&self, path: &Path, is_dir: bool) -> bool {
        self.exclude.iter().any(|p| p.hits(path, is_dir))
    }

    /// Whether the entry at `path` is included: no include was given, or one matches it or a
    /// directory above it.
    pub fn included(&self, path: &Path, is_dir: bool) -> bool {
        self.include.is_empty()
            || self.include.iter().any(|p| p.hits(path, is_dir))
            || path
                .ancestors()
                .skip(1)
                .filter(|a| !a.as_os_str().is_empty())
                .any(|a| self.include.iter().any(|p| p.hits(a, true)))
    }

    /// Whether the entry at `path` is restored, given the directories [`wanted`] found.
    pub fn chosen(&self, path: &Path, is_dir: bool, wanted: &HashSet<PathBuf>) -> bool {
        !self.excluded(path, is_dir)
            && (self.included(path, is_dir) || (is_dir && wanted.contains(path)))
    }
}

/// The directories below `top` (the path in the snapshot of directory tree `tree`, which is
/// restored) that hold an included entry without being included themselves: the ones a
/// restore must make to reach what it restores. Empty when no include was given.
pub fn wanted(repo: &Repo, sel: &Selection, tree: Key, top: &Path) -> Result<HashSet<PathBuf>> {
    let mut wanted = HashSet::new();
    if sel.include.is_empty() {
        return Ok(wanted);
    }
    let mut open = vec![(tree, top.to_path_buf())];
    while let Some((tree, dir)) = open.pop() {
        let mut r = Reader::<DirTree>::new(repo, tree);
        while let Some(e) = r.next_item()? {
            let path = dir.join(bytes_path(&e.name));
            let is_dir = matches!(e.kind, EntryKind::Dir { .. });
            if sel.excluded(&path, is_dir) {
                continue;
            }
            if sel.included(&path, is_dir) {
                // Everything from `top` down to here is on the way.
                let mut up = path.parent();
                while let Some(d) = up.filter(|d| *d != top && d.starts_with(top)) {
                    if !wanted.insert(d.to_path_buf()) {
                        break;
                    }
                    up = d.parent();
                }
                continue;
            }
            if let EntryKind::Dir { tree } = e.kind {
                if path.components().count() >= crate::core::depth::MAX_DEPTH {
                    return Err(crate::core::depth::too_deep(
                        tree,
                        &path.display().to_string(),
                    ));
                }
                open.push((tree, path));
            }
        }
    }
    Ok(wanted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sel(include: &[&str], exclude: &[&str]) -> Selection {
        let s = |v: &[&str]| v.iter().map(|p| p.to_string()).collect::<Vec<_>>();
        Selection::new(&s(include), &s(exclude)).unwrap()
    }

    #[test]
    fn an_include_takes_what_it_matches_and_everything_below_it() {
        let s = sel(&["docs"], &[]);
        assert!(s.included(Path::new("home/docs"), true));
        assert!(s.included(Path::new("home/docs/a/b.txt"), false));
        assert!(!s.included(Path::new("home/music/a.mp3"), false));
    }

    #[test]
    fn a_pattern_with_a_slash_is_matched_against_the_whole_path() {
        let s = sel(&["home/*/notes.txt"], &["/home/b/**"]);
        assert!(s.included(Path::new("home/a/notes.txt"), false));
        assert!(!s.included(Path::new("x/home/a/notes.txt"), false));
        assert!(s.excluded(Path::new("home/b/notes.txt"), false));
        assert!(!s.excluded(Path::new("home/a/notes.txt"), false));
    }

    #[test]
    fn a_trailing_slash_matches_directories_only_and_a_leading_dot_slash_is_the_root() {
        let s = sel(&[], &["keep/", "./top"]);
        assert!(s.excluded(Path::new("a/keep"), true));
        assert!(!s.excluded(Path::new("a/keep"), false));
        assert!(s.excluded(Path::new("top"), false));
        assert!(
            !s.excluded(Path::new("a/top"), false),
            "anchored at the root"
        );
        let e = Selection::new(&[], &["/".into()]).unwrap_err().to_string();
        assert!(e.contains("matches nothing"), "{e}");
    }

    #[test]
    fn an_exclude_wins_over_an_include() {
        let s = sel(&["*.txt"], &["secret*"]);
        let none = HashSet::new();
        assert!(s.chosen(Path::new("a/b.txt"), false, &none));
        assert!(!s.chosen(Path::new("a/secret.txt"), false, &none));
        assert!(!s.chosen(Path::new("a"), true, &none), "not on the way");
        let wanted = HashSet::from([PathBuf::from("a")]);
        assert!(s.chosen(Path::new("a"), true, &wanted));
    }

    #[test]
    fn a_bad_pattern_is_named_with_its_option() {
        let e = Selection::new(&[], &["[x".into()]).unwrap_err().to_string();
        assert!(e.contains("--exclude `[x`"), "{e}");
    }
}
