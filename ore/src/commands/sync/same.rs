//! Refusing a sync from an archive to itself, before the destination is opened: a local
//! archive is held by one process, so opening it a second time would wait on our own hold.

use crate::core::archive::{classify, Kind};
use crate::core::error::{Error, Result};
use std::path::PathBuf;

/// The directory an archive identifier stores its archive in, when it can be told without
/// starting anything: a plain path, or a store backend given one directory.
fn local_dir(id: &str) -> Option<PathBuf> {
    match classify(id) {
        Kind::Path(p) => Some(p.to_path_buf()),
        Kind::S3(_) => None,
        Kind::Command(c) => match shell_words::split(c).ok()?.as_slice() {
            [program, dir] if ["backend-splitlog", "backend-fs"].contains(&program.as_str()) => {
                Some(dir.into())
            }
            _ => None,
        },
    }
}

/// Fails when the identifiers `src` and `dst` name one archive (the same identifier, or the
/// same local directory).
pub fn refuse_same_archive(src: &str, dst: &str) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let same = match (local_dir(src), local_dir(dst)) {
        _ if src == dst => true,
        (Some(a), Some(b)) => match (std::fs::metadata(&a), std::fs::metadata(&b)) {
            (Ok(a), Ok(b)) => (a.dev(), a.ino()) == (b.dev(), b.ino()),
            _ => false,
        },
        _ => false,
    };
    if same {
        return Err(Error::Usage(format!(
            "{src} and {dst} are the same archive: sync copies to another one"
        )));
    }
    Ok(())
}
