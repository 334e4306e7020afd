//! `find PATTERN` in `ore explore`: the names below the current directory that match a glob,
//! each directory before what it holds. Apart from the rest of the explorer because it is the
//! one walk of unbounded depth: the directories being listed are kept on a stack of its own
//! rather than recursing (a crafted snapshot nested a hundred thousand deep overflowed the
//! stack), and the matches come out one at a time, as they are found.

use super::{pwd_of, top, ExploreError, Explorer, Result};
use crate::core::util::show;
use crate::core::vtree::{VNode, CURRENT};

impl<'r> Explorer<'r> {
    /// The names below the current directory matching the glob `pattern` (against the whole
    /// path below here when it holds a `/`, else against each name), each as an absolute
    /// path, each directory before what it holds.
    pub fn find(&self, pattern: &str) -> Result<Find<'_, 'r>> {
        let whole = pattern.contains('/');
        let glob = globset::GlobBuilder::new(pattern)
            .literal_separator(whole)
            .build()
            .map_err(|e| ExploreError::BadPattern {
                pattern: pattern.into(),
                why: e.to_string(),
            })?
            .compile_matcher();
        let start = self.cwd.borrow().clone();
        let base = pwd_of(&start);
        let prefix = if base == "/" {
            base
        } else {
            format!("{base}/")
        };
        let first = self.listing(&top(&start))?;
        Ok(Find {
            explorer: self,
            glob,
            whole,
            prefix,
            open: vec![(first, String::new())],
            failed: None,
        })
    }

    /// The children of `node`, and whether it is a tag.
    fn listing(&self, node: &VNode) -> Result<Children> {
        let tag = matches!(node, VNode::Tag(_));
        Ok((self.tree.list(node)?.into_iter(), tag))
    }
}

/// A directory's children being walked by `find`, and whether it is a tag.
type Children = (std::vec::IntoIter<(Vec<u8>, VNode)>, bool);

/// The matches of `find`, in order. The directories being listed are kept on a stack of its
/// own rather than recursing (a crafted snapshot nested a hundred thousand deep overflowed the
/// stack); the tree refuses to list past the depth any walk of a snapshot goes
/// (`ore::core::depth`).
pub struct Find<'e, 'r> {
    explorer: &'e Explorer<'r>,
    glob: globset::GlobMatcher,
    whole: bool,
    prefix: String,
    open: Vec<(Children, String)>,
    /// The error to end with after the match just returned.
    failed: Option<ExploreError>,
}

impl Iterator for Find<'_, '_> {
    type Item = Result<String>;

    fn next(&mut self) -> Option<Result<String>> {
        if let Some(e) = self.failed.take() {
            return Some(Err(e));
        }
        while let Some(((children, in_tag), rel)) = self.open.last_mut() {
            let Some((name, child)) = children.next() else {
                self.open.pop();
                continue;
            };
            let n = show(&name);
            if *in_tag && n == CURRENT {
                continue;
            }
            let p = if rel.is_empty() {
                n.clone()
            } else {
                format!("{rel}/{n}")
            };
            let hit = self
                .glob
                .is_match(if self.whole { p.as_str() } else { n.as_str() })
                .then(|| format!("{}{p}", self.prefix));
            if child.is_dir() {
                match self.explorer.listing(&child) {
                    Ok(l) => self.open.push((l, p)),
                    Err(e) => {
                        // The walk ends; a match is shown before the error its listing met.
                        self.open.clear();
                        let Some(h) = hit else {
                            return Some(Err(e));
                        };
                        self.failed = Some(e);
                        return Some(Ok(h));
                    }
                }
            }
            if let Some(h) = hit {
                return Some(Ok(h));
            }
        }
        None
    }
}
