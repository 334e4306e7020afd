//! Helpers shared by the integration tests of this crate.

use std::path::Path;

/// Copies every file of the archive directory `from` into `to` as it is on disk now — what a
/// process killed at this moment would leave (its gathered records and open index transaction
/// die with it).
pub fn copy_as_killed(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}
