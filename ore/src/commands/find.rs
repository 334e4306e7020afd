//! `ore find PATTERN`: which snapshots hold a name, and what it was in each.
//!
//! The question is asked across many snapshots at once, and most of their directories are
//! the same blocks: a tag with a hundred snapshots of a tree where one directory changes each
//! day holds the rest a hundred times over. So each directory tree is read once per place it
//! appears: the walk keeps what it found in a directory, by the directory's key and its path,
//! and a later snapshot that holds the same directory at the same path takes the result
//! without reading a block. Keyed by the path too, because a pattern with a `/` is matched
//! against the whole path, and the same directory elsewhere could match differently.
//!
//! What is kept per directory is its matches and the ids of its subdirectories, not every
//! match below it, so memory grows with the number of distinct directories and matches, not
//! with the depth times the matches. The walk keeps its own stack and stops at
//! [`crate::core::depth::MAX_DEPTH`], like every walk of an archive's tree.

use crate::core::chains::{every, Listed};
use crate::core::entry::{Entry, EntryKind};
use crate::core::error::{Error, Result, WalkError};
use crate::core::repo::Repo;
use crate::core::tree::{DirTree, Reader};
use crate::core::util::show;
use protocol::Key;
use std::collections::HashMap;
use std::rc::Rc;

/// What to look for, and in which snapshots.
#[derive(Debug, Default)]
pub struct Query {
    /// A glob: matched against each name, or against the whole path from the snapshot's root
    /// when it holds a `/`.
    pub pattern: String,
    /// Matched without regard to case.
    pub ignore_case: bool,
    /// Only snapshots of these tags (all when empty).
    pub tags: Vec<String>,
    /// Only snapshots taken at or after this time (ns since the epoch)...
    pub newer: Option<i64>,
    /// ...and at or before this one.
    pub older: Option<i64>,
}

/// One name that matched: its path from the snapshot's root, and its entry.
#[derive(Debug)]
pub struct Hit {
    pub path: String,
    pub entry: Entry,
}

/// A snapshot that holds at least one match, and its matches, each directory's before what
/// it holds.
#[derive(Debug)]
pub struct Found {
    pub snapshot: Listed,
    pub hits: Vec<Rc<Hit>>,
}

/// What one directory, at one path, holds: its matches and its subdirectories, in its order.
enum Item {
    Hit(Rc<Hit>),
    Dir(usize),
}

/// The directories read so far, each once per path.
struct Walked {
    dirs: Vec<Vec<Item>>,
    ids: HashMap<(Key, String), usize>,
}

/// Calls `each` with every snapshot, oldest first, that holds a name matching the query, or
/// with the error met reading one (damage in one snapshot does not hide the matches of the
/// others; the search goes on). Snapshots without a match are passed over.
pub fn find(
    repo: &Repo,
    q: &Query,
    mut each: impl FnMut(Result<Found, WalkError>) -> Result<()>,
) -> Result<(), WalkError> {
    // A leading `/` names the snapshot's root, as in `ore restore --include`.
    let pattern = q.pattern.trim_start_matches('/');
    let whole = q.pattern.contains('/');
    if pattern.is_empty() {
        return Err(Error::Usage(format!("`{}` matches nothing", q.pattern)).into());
    }
    let known = repo.tags()?;
    if let Some(t) = q.tags.iter().find(|t| !known.iter().any(|(k, _)| k == *t)) {
        return Err(Error::Usage(format!("--tag {t}: the archive has no such tag")).into());
    }
    let glob = globset::GlobBuilder::new(pattern)
        .literal_separator(whole)
        .case_insensitive(q.ignore_case)
        .build()
        .map_err(|e| Error::Usage(format!("`{}` is not a pattern: {e}", q.pattern)))?
        .compile_matcher();
    let mut walked = Walked {
        dirs: Vec::new(),
        ids: HashMap::new(),
    };
    for listed in every(repo, &q.tags)? {
        let t = listed.snapshot.time;
        if q.newer.is_some_and(|n| t < n) || q.older.is_some_and(|o| t > o) {
            continue;
        }
        let EntryKind::Dir { tree } = listed.snapshot.root.kind else {
            continue;
        };
        let matches = |path: &str, name: &[u8]| {
            if whole {
                glob.is_match(path)
            } else {
                glob.is_match(show(name))
            }
        };
        let root = walked.read(repo, tree, &matches).map_err(|(dir, error)| {
            let dir = match dir.as_str() {
                "" => "the top directory".to_string(),
                d => format!("directory `{}`", crate::core::depth::shortened(d)),
            };
            WalkError {
                reading: Some(format!(
                    "reading {dir} of snapshot {} ({})",
                    &listed.key.to_hex()[..12],
                    listed.names.join(", ")
                )),
                error,
            }
        });
        let root = match root {
            Ok(r) => r,
            Err(e) => {
                each(Err(e))?;
                continue;
            }
        };
        let hits = walked.hits(root);
        if !hits.is_empty() {
            each(Ok(Found {
                snapshot: listed,
                hits,
            }))?;
        }
    }
    Ok(())
}

impl Walked {
    /// The id of directory `tree` at the snapshot's root, reading every directory below it
    /// that has not been read at its path before. An error comes with the path of the
    /// directory being read; what was read is then forgotten, since some of it is unfinished.
    fn read(
        &mut self,
        repo: &Repo,
        tree: Key,
        matches: &impl Fn(&str, &[u8]) -> bool,
    ) -> Result<usize, (String, Error)> {
        let had = self.dirs.len();
        let read = self.read_new(repo, tree, matches);
        if read.is_err() {
            self.dirs.truncate(had);
            self.ids.retain(|_, id| *id < had);
        }
        read
    }

    fn read_new(
        &mut self,
        repo: &Repo,
        tree: Key,
        matches: &impl Fn(&str, &[u8]) -> bool,
    ) -> Result<usize, (String, Error)> {
        let (root, new) = self.id(tree, String::new());
        // Directories seen but not read yet: their id, key, path and depth.
        let mut todo = Vec::new();
        if new {
            todo.push((root, tree, String::new(), 0usize));
        }
        while let Some((id, tree, prefix, depth)) = todo.pop() {
            let mut items = Vec::new();
            let mut r = Reader::<DirTree>::new(repo, tree);
            while let Some(entry) = r.next_item().map_err(|e| (prefix.clone(), e))? {
                let name = show(&entry.name);
                let path = if prefix.is_empty() {
                    name
                } else {
                    format!("{prefix}/{name}")
                };
                let sub = match entry.kind {
                    EntryKind::Dir { tree } => Some(tree),
                    _ => None,
                };
                if matches(&path, &entry.name) {
                    items.push(Item::Hit(Rc::new(Hit {
                        path: path.clone(),
                        entry,
                    })));
                }
                if let Some(sub) = sub {
                    if depth + 1 >= crate::core::depth::MAX_DEPTH {
                        return Err((prefix, crate::core::depth::too_deep(sub, &path)));
                    }
                    let (child, new) = self.id(sub, path.clone());
                    if new {
                        todo.push((child, sub, path, depth + 1));
                    }
                    items.push(Item::Dir(child));
                }
            }
            self.dirs[id] = items;
        }
        Ok(root)
    }

    /// The id of a directory at a path, and whether it is new (not read yet).
    fn id(&mut self, tree: Key, path: String) -> (usize, bool) {
        let next = self.dirs.len();
        let id = *self.ids.entry((tree, path)).or_insert(next);
        if id == next {
            self.dirs.push(Vec::new());
        }
        (id, id == next)
    }

    /// Every match below directory `id`, each directory's before what it holds.
    fn hits(&self, id: usize) -> Vec<Rc<Hit>> {
        let mut out = Vec::new();
        let mut open = vec![self.dirs[id].iter()];
        while let Some(items) = open.last_mut() {
            match items.next() {
                None => {
                    open.pop();
                }
                Some(Item::Hit(h)) => out.push(h.clone()),
                Some(Item::Dir(d)) => open.push(self.dirs[*d].iter()),
            }
        }
        out
    }
}
