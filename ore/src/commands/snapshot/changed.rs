//! What `ore watch` tells a snapshot: the paths that changed since the tag's last snapshot,
//! so that the walk can take the directories nothing changed in from the file cache instead
//! of listing them (`walk.rs`, where a directory is resolved). Kept sorted: the descendants
//! of a directory follow it in path order, so "did anything below it change" is one lookup.

use std::path::{Path, PathBuf};

/// The paths `ore watch` saw change (absolute), for [`super::SnapshotOptions::changed`].
#[derive(Debug, Default)]
pub struct Changed(std::collections::BTreeSet<PathBuf>);

impl Changed {
    pub fn new(paths: impl IntoIterator<Item = PathBuf>) -> Changed {
        Changed(paths.into_iter().collect())
    }

    /// Whether nothing at, above or below `dir` changed: an event on a directory (made, moved,
    /// its ignore file changed) concerns everything below it.
    pub fn untouched(&self, dir: &Path) -> bool {
        let below = self
            .0
            .range(dir.to_path_buf()..)
            .next()
            .is_some_and(|p| p.starts_with(dir));
        !below && !dir.ancestors().skip(1).any(|a| self.0.contains(a))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_is_untouched_only_when_nothing_at_or_below_it_changed() {
        let c = Changed::new([PathBuf::from("/t/a/f"), PathBuf::from("/t/b")]);
        assert!(!c.untouched(Path::new("/t")));
        assert!(!c.untouched(Path::new("/t/a")));
        assert!(!c.untouched(Path::new("/t/b")), "the path itself changed");
        assert!(c.untouched(Path::new("/t/c")));
        assert!(
            c.untouched(Path::new("/t/a0")),
            "a sibling sharing a prefix of the name"
        );
        assert!(
            !c.untouched(Path::new("/t/b/sub")),
            "below a changed directory"
        );
        assert!(c.untouched(Path::new("/t/a/g")));
    }
}
