//! Properties found in an imported file's contents (archival mode, docs/ARCHIVAL.md).
//!
//! A file is never trusted: what is read is bounded, and a file a parser cannot make sense
//! of simply gives no property. The MIME type comes from the file's first bytes, through the
//! `infer` crate (magic numbers of some two hundred formats); its tables are kept up to date
//! by others, which a hand-written list would not be.

use std::io::Read;
use std::path::Path;

/// How much of a file the type is judged from.
const HEAD: u64 = 8192;

/// The MIME type of the file at `path` from its first bytes; `None` when it cannot be read or
/// is of no type `infer` knows.
pub fn mime(path: &Path) -> Option<String> {
    let mut head = Vec::with_capacity(HEAD as usize);
    std::fs::File::open(path)
        .ok()?
        .take(HEAD)
        .read_to_end(&mut head)
        .ok()?;
    infer::get(&head).map(|t| t.mime_type().to_string())
}
