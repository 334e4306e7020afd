//! `ore explore`'s archive work: where the shell is in the tree of tags, snapshots and files
//! ([`crate::core::vtree`]), and what each of its commands reads there — resolving paths
//! (`..`, absolute and relative, symlinks followed inside a snapshot and never above its
//! root), listings with their details, a file's contents, what `get` extracts and where,
//! a snapshot's properties, and `find`.
//!
//! Why apart from the binary: the prompt, line editing, completion and printing are a user
//! interface (`src/bin/ore/explore.rs`); the rules here are about the archive, and they are
//! where the attacks on explore were stopped — a crafted snapshot's names may not send `get`
//! outside the current directory ([`default_dest`]), and `find` walks with a stack of its own
//! so a snapshot nested a hundred thousand deep cannot overflow the stack. Nothing here
//! prints. `get` itself is a restore: the binary hands [`Extract`] to
//! [`crate::commands::restore`].

use crate::core::entry::{Content, Entry, EntryKind, Snapshot};
use crate::core::error::Error;
use crate::core::repo::Repo;
use crate::core::util::show;
use crate::core::vtree::{Named, VNode, VTree};
use protocol::Key;
use std::cell::RefCell;
use std::path::PathBuf;
use std::sync::Arc;

mod find;
pub use find::Find;

/// Where the shell is: the names from `/` down, with their nodes.
pub type Cwd = Vec<(Vec<u8>, VNode)>;

/// An error of an explore command; each names the path it was given.
#[derive(Debug, thiserror::Error)]
pub enum ExploreError {
    #[error(transparent)]
    Archive(#[from] Error),
    #[error("{0}: no such file or directory")]
    NotFound(String),
    #[error("{0}: too many levels of symbolic links")]
    SymlinkLoop(String),
    #[error("cd: {0}: not a directory")]
    NotADirectory(String),
    #[error("{0}: not a file")]
    NotAFile(String),
    #[error("{0}: only files and directories inside a snapshot can be extracted")]
    NotExtractable(String),
    #[error("{0}: no snapshot")]
    NoSnapshot(String),
    #[error("{0}: gone")]
    Gone(String),
    #[error("info: go into a snapshot first (or give a path inside one)")]
    NotInSnapshot,
    #[error("find: bad pattern {pattern:?}: {why}")]
    BadPattern { pattern: String, why: String },
    #[error(
        "get {path}: the snapshot names it `{name}`, which is not a plain file name; \
         give a destination (get PATH DEST)"
    )]
    NotPlainName { path: String, name: String },
}

type Result<T, E = ExploreError> = std::result::Result<T, E>;

/// What `ls` shows: one entry that is not a directory, or a directory's children.
pub enum Listed {
    One(Box<Entry>),
    Many(Vec<(Vec<u8>, VNode)>),
}

/// What a long listing says of a child beyond its name.
pub enum About {
    /// A tag: how many snapshots its chain holds, and the newest one's time.
    Tag {
        snapshots: usize,
        newest: Option<i64>,
    },
    /// A snapshot (named `name` in its tag; `current` names the newest).
    Snapshot { key: Key, named: Named },
    /// An entry inside a snapshot: its own metadata says it all.
    Entry(Box<Entry>),
    /// The root (never a child; listed by name).
    Root,
}

/// What `info` shows.
pub enum Info {
    /// A tag and how many snapshots its chain holds.
    Tag { tag: String, snapshots: usize },
    /// An archive tag, with how many objects it lists and how many are current.
    ArchiveTag {
        tag: String,
        objects: u64,
        current: u64,
    },
    /// The snapshot the path is in.
    Snapshot(Named),
    /// The archive object the path is in, on its archive tag.
    Object {
        tag: String,
        key: protocol::Key,
        object: Box<crate::core::archival::Object>,
    },
}

/// What `get PATH [DEST]` restores: the snapshot, the path inside it, and where to.
pub struct Extract {
    pub snapshot: Arc<Snapshot>,
    pub inner: Vec<u8>,
    pub dest: PathBuf,
}

/// The shell's state over one archive: the tree and the current directory.
pub struct Explorer<'r> {
    tree: VTree<'r>,
    cwd: RefCell<Cwd>,
}

/// Splits a shell path into its components (empty ones and `.` dropped).
fn split(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|c| !c.is_empty() && *c != ".")
}

/// The node at the end of `stack` (the root when it is empty).
pub fn top(stack: &Cwd) -> VNode {
    stack.last().map_or(VNode::Root, |(_, n)| n.clone())
}

/// `stack` as an absolute path.
pub fn pwd_of(stack: &Cwd) -> String {
    if stack.is_empty() {
        return "/".into();
    }
    stack.iter().map(|(n, _)| format!("/{}", show(n))).collect()
}

impl<'r> Explorer<'r> {
    /// An explorer at `/` over every tag of `repo`, or only `only`.
    pub fn new(repo: &'r Repo, only: Option<String>) -> Explorer<'r> {
        Explorer {
            tree: VTree::new(repo, only),
            cwd: RefCell::new(Vec::new()),
        }
    }

    /// The tree walked.
    pub fn tree(&self) -> &VTree<'r> {
        &self.tree
    }

    /// The current directory as an absolute path.
    pub fn pwd(&self) -> String {
        pwd_of(&self.cwd.borrow())
    }

    /// Changes to `path`, or to `/` without one.
    pub fn cd(&self, path: Option<&str>) -> Result<()> {
        let Some(path) = path else {
            self.cwd.borrow_mut().clear();
            return Ok(());
        };
        let stack = self.resolve(path, true)?;
        if !top(&stack).is_dir() {
            return Err(ExploreError::NotADirectory(path.into()));
        }
        *self.cwd.borrow_mut() = stack;
        Ok(())
    }

    /// Resolves `path` from the current directory. Symlinks inside a snapshot are followed
    /// when `follow` (always for components before the last).
    pub fn resolve(&self, path: &str, follow: bool) -> Result<Cwd> {
        let mut stack = if path.starts_with('/') {
            Vec::new()
        } else {
            self.cwd.borrow().clone()
        };
        let comps: Vec<&str> = split(path).collect();
        self.walk(&mut stack, &comps, follow, 0)?;
        Ok(stack)
    }

    fn walk(&self, stack: &mut Cwd, comps: &[&str], follow: bool, hops: u32) -> Result<()> {
        for (i, c) in comps.iter().enumerate() {
            if *c == ".." {
                stack.pop();
                continue;
            }
            let node = top(stack);
            let child = self
                .tree
                .child(&node, c.as_bytes())?
                .ok_or_else(|| ExploreError::NotFound(c.to_string()))?;
            let last = i + 1 == comps.len();
            if let VNode::Entry { entry, .. } = &child {
                if let EntryKind::Symlink { target } = &entry.kind {
                    if follow || !last {
                        self.follow(stack, c, target, hops)?;
                        continue;
                    }
                }
            }
            stack.push((c.as_bytes().to_vec(), child));
        }
        Ok(())
    }

    /// Walks the symlink `name`'s `target` from where it is (the end of `stack`).
    fn follow(&self, stack: &mut Cwd, name: &str, target: &[u8], hops: u32) -> Result<()> {
        if hops > 40 {
            return Err(ExploreError::SymlinkLoop(name.into()));
        }
        let t = String::from_utf8_lossy(target).into_owned();
        if t.starts_with('/') {
            // Absolute targets are taken from the snapshot's root.
            stack.truncate(2);
        }
        let tc: Vec<&str> = split(&t).collect();
        // Never above the snapshot's root.
        let floor = 2.min(stack.len());
        let mut sub = stack.split_off(floor);
        self.walk_floor(stack, &mut sub, &tc, hops + 1)?;
        stack.extend(sub);
        Ok(())
    }

    /// Walks a symlink's target below the snapshot root `base` (`rel` is the part of the
    /// stack below that root).
    fn walk_floor(&self, base: &Cwd, rel: &mut Cwd, comps: &[&str], hops: u32) -> Result<()> {
        let mut full = base.clone();
        full.append(rel);
        let floor = base.len();
        for c in comps {
            if *c == ".." {
                if full.len() > floor {
                    full.pop();
                }
                continue;
            }
            self.walk(&mut full, &[c], true, hops)?;
        }
        *rel = full.split_off(floor);
        Ok(())
    }

    /// What `ls PATH` lists.
    pub fn list(&self, path: &str) -> Result<Listed> {
        let node = top(&self.resolve(path, true)?);
        if let (false, VNode::Entry { entry, .. }) = (node.is_dir(), &node) {
            return Ok(Listed::One(entry.clone()));
        }
        Ok(Listed::Many(self.tree.list(&node)?))
    }

    /// The details of `child` (named `name` in its listing) for a long listing.
    pub fn about(&self, name: &str, child: &VNode) -> Result<About> {
        Ok(match child {
            VNode::Tag(t) => {
                let c = self.tree.chain(t)?;
                About::Tag {
                    snapshots: c.len(),
                    newest: c.first().map(|s| s.snapshot.time),
                }
            }
            VNode::Entry { key, path, .. } if path.is_empty() => {
                let named = self
                    .tree
                    .snapshot_of(child)?
                    .ok_or_else(|| ExploreError::Gone(name.into()))?;
                About::Snapshot { key: *key, named }
            }
            VNode::Entry { entry, .. } => About::Entry(entry.clone()),
            VNode::Root | VNode::Archive { .. } => About::Root,
        })
    }

    /// The contents of the file at `path` (hard links followed).
    pub fn file(&self, path: &str) -> Result<Content> {
        let node = top(&self.resolve(path, true)?);
        let e = self.tree.resolve_hardlink(&node)?;
        let EntryKind::File { content, .. } = e.kind else {
            return Err(ExploreError::NotAFile(path.into()));
        };
        Ok(content)
    }

    /// What `get PATH [DEST]` restores, and where: `dest`, or a plain name in the current
    /// directory ([`default_dest`]).
    pub fn extract(&self, path: &str, dest: Option<&str>) -> Result<Extract> {
        let node = top(&self.resolve(path, false)?);
        let VNode::Entry {
            path: inner, entry, ..
        } = &node
        else {
            return Err(ExploreError::NotExtractable(path.into()));
        };
        let named = self
            .tree
            .snapshot_of(&node)?
            .ok_or_else(|| ExploreError::NoSnapshot(path.into()))?;
        let dest = match dest {
            Some(d) => PathBuf::from(d),
            None => default_dest(path, &entry.name)?,
        };
        Ok(Extract {
            snapshot: named.snapshot,
            inner: inner.clone(),
            dest,
        })
    }

    /// What `info PATH` shows: the snapshot or archive object the path is in, or the tag it
    /// names.
    pub fn info(&self, path: &str) -> Result<Info> {
        let node = top(&self.resolve(path, true)?);
        if let Some((tag, key)) = self.tree.object_of(&node) {
            let object = self.tree.repo.get(key, crate::core::block::Kind::Object)?;
            return Ok(Info::Object {
                tag,
                key,
                object: Box::new(object),
            });
        }
        if let Some(s) = self.tree.snapshot_of(&node)? {
            return Ok(Info::Snapshot(s));
        }
        let t = match &node {
            VNode::Tag(t) | VNode::Archive { tag: t, .. } => t,
            _ => return Err(ExploreError::NotInSnapshot),
        };
        if let Some((objects, current)) = self.tree.archive_counts(t) {
            return Ok(Info::ArchiveTag {
                tag: t.clone(),
                objects,
                current,
            });
        }
        let snapshots = self.tree.chain(t)?.len();
        Ok(Info::Tag {
            tag: t.clone(),
            snapshots,
        })
    }

    /// The names in directory `dir` (from the current one), each with whether it is a
    /// directory: what Tab completes from.
    pub fn names_in(&self, dir: &str) -> Result<Vec<(String, bool)>> {
        let node = top(&self.resolve(dir, true)?);
        let list = self.tree.list(&node)?;
        Ok(list
            .into_iter()
            .map(|(n, node)| (show(&n), node.is_dir()))
            .collect())
    }
}

/// Where `get PATH` without a destination writes: a name in the current directory, the one the
/// snapshot gives the entry — which must be one plain name (a crafted snapshot once named its
/// root `/tmp/x/pwned`, and `get` wrote there).
pub fn default_dest(path: &str, name: &[u8]) -> Result<PathBuf> {
    let name = if name.is_empty() {
        &b"snapshot"[..]
    } else {
        name
    };
    if name == b"." || name == b".." || name.contains(&b'/') || name.contains(&0) {
        return Err(ExploreError::NotPlainName {
            path: path.into(),
            name: show(name),
        });
    }
    Ok(PathBuf::from(
        <std::ffi::OsString as std::os::unix::ffi::OsStringExt>::from_vec(name.to_vec()),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_without_a_destination_writes_the_entrys_plain_name_here() {
        let dest = default_dest("tag/current/etc/hosts", b"hosts").unwrap();
        assert_eq!(dest, PathBuf::from("hosts"));
    }

    #[test]
    fn a_snapshot_root_with_no_name_is_extracted_as_snapshot() {
        assert_eq!(
            default_dest("tag/current", b"").unwrap(),
            PathBuf::from("snapshot")
        );
    }

    #[test]
    fn a_crafted_name_cannot_send_get_elsewhere() {
        for name in [&b"/tmp/x/pwned"[..], b"..", b".", b"a/b", b"a\0b"] {
            let e = default_dest("tag/current/x", name).unwrap_err();
            assert!(
                matches!(e, ExploreError::NotPlainName { .. }),
                "{name:?}: {e}"
            );
            assert!(e.to_string().contains("give a destination"), "{e}");
        }
    }
}
