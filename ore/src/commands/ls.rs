//! `ore ls SNAPSHOT[:PATH]`: the entries of a directory in a snapshot, and with `-R` everything
//! below it, depth first.
//!
//! A module because the listing is a walk of directory trees that must stay bounded: it keeps
//! its open directories on a stack of its own rather than recursing, and stops with an error
//! at the depth `ore load` accepts (`ore::core::depth`) — a crafted snapshot nested a hundred
//! thousand deep overflowed the stack (an abort). The entries come out one at a time, so a
//! huge listing is printed as it is read and never held whole.

use crate::core::entry::{Entry, EntryKind, Snapshot};
use crate::core::error::{Error, WalkError};
use crate::core::repo::Repo;
use crate::core::tree::{DirTree, Reader};
use crate::core::util::show;

/// What `ore ls` lists: one entry that is not a directory, or a walk of a directory.
pub enum Listing<'r> {
    One(Entry),
    Dir(Walk<'r>),
}

/// Finds `path` in `snap`: the entry itself when it is not a directory, else a walk of what it
/// holds (and, when `recursive`, of everything below), each entry with its path.
pub fn ls<'r>(
    repo: &'r Repo,
    snap: &Snapshot,
    path: &str,
    recursive: bool,
) -> Result<Listing<'r>, Error> {
    let e = crate::core::tree::find(repo, &snap.root, path.as_bytes())?;
    Ok(match e.kind {
        EntryKind::Dir { tree } => Listing::Dir(Walk {
            repo,
            open: vec![(
                Reader::new(repo, tree),
                path.trim_end_matches('/').to_string(),
            )],
            recursive,
            next_error: None,
        }),
        _ => Listing::One(e),
    })
}

/// The entries below a directory, depth first, each with its path from the snapshot's root.
pub struct Walk<'r> {
    repo: &'r Repo,
    open: Vec<(Reader<'r, DirTree>, String)>,
    recursive: bool,
    /// The error to end with after the entry just returned (a directory too deep to enter).
    next_error: Option<WalkError>,
}

impl Iterator for Walk<'_> {
    type Item = Result<(String, Entry), WalkError>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(e) = self.next_error.take() {
            return Some(Err(e));
        }
        while let Some((r, prefix)) = self.open.last_mut() {
            let e = match r.next_item() {
                Ok(Some(e)) => e,
                Ok(None) => {
                    self.open.pop();
                    continue;
                }
                Err(error) => {
                    // A damaged or crafted directory is named by its path, as well as its block.
                    let reading = match prefix.as_str() {
                        "" => "reading the snapshot's top directory".to_string(),
                        p => format!("reading directory `{}`", crate::core::depth::shortened(p)),
                    };
                    self.open.clear();
                    return Some(Err(WalkError {
                        reading: Some(reading),
                        error,
                    }));
                }
            };
            let path = if prefix.is_empty() {
                show(&e.name)
            } else {
                format!("{prefix}/{}", show(&e.name))
            };
            if let (true, EntryKind::Dir { tree }) = (self.recursive, &e.kind) {
                if self.open.len() >= crate::core::depth::MAX_DEPTH {
                    // The entry is listed; the walk ends with the error after it.
                    self.open.clear();
                    let error = crate::core::depth::too_deep(*tree, &path);
                    self.next_error = Some(WalkError {
                        reading: None,
                        error,
                    });
                } else {
                    self.open
                        .push((Reader::new(self.repo, *tree), path.clone()));
                }
            }
            return Some(Ok((path, e)));
        }
        None
    }
}
