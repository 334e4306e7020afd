//! How deep a walk of a snapshot's directories may go.
//!
//! A snapshot's directories are blocks that name each other, so a crafted archive can nest
//! them far deeper than any file system could hold: a hundred thousand levels cost a few
//! megabytes of blocks. A walk that recursed once a level overflowed its stack on such a tree
//! (an abort, not an error), and even a walk with a stack of its own does work that grows with
//! the square of the depth when it prints or keeps each path. So every walk of an archive's
//! tree — `ls -R`, `diff`, `sync`, `dump`, `restore`, `check --compare`, `explore`'s `find` —
//! stops at the depth `ore load` accepts and says where, naming the directory's block and its
//! path (shortened: a path that deep is tens of kilobytes).

use crate::core::block::Kind;
use crate::core::error::Error;
use protocol::Key;

/// Most directories nested below a snapshot's root that any walk of it follows; `ore load`
/// refuses deeper streams, and no file system's paths reach this deep.
pub const MAX_DEPTH: usize = 4096;

/// The error of a walk that met directory tree `tree`, at `path`, deeper than [`MAX_DEPTH`].
pub fn too_deep(tree: Key, path: &str) -> Error {
    Error::Corrupt {
        key: tree,
        kind: Kind::Dir.name(),
        why: format!(
            "`{}` is nested more than {MAX_DEPTH} directories deep (a crafted or damaged \
             snapshot; no file system holds that)",
            shortened(path)
        ),
    }
}

/// `path` as it can be shown: its start and its end when it is long.
pub fn shortened(path: &str) -> String {
    const HEAD: usize = 120;
    const TAIL: usize = 60;
    let chars: Vec<char> = path.chars().collect();
    if chars.len() <= HEAD + TAIL + 20 {
        return path.to_string();
    }
    let head: String = chars[..HEAD].iter().collect();
    let tail: String = chars[chars.len() - TAIL..].iter().collect();
    format!("{head}…({} characters)…{tail}", chars.len() - HEAD - TAIL)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_path_is_shown_whole_and_a_long_one_by_its_ends() {
        assert_eq!(shortened("home/d"), "home/d");
        let long = "d/".repeat(5000);
        let s = shortened(&long);
        assert!(s.len() < 300, "{s}");
        assert!(
            s.starts_with("d/d/") && s.contains("(9820 characters)"),
            "{s}"
        );
    }
}
