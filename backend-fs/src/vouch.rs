//! backend-fs's record of the blocks restricted connections stored (`protocol::provenance`).
//!
//! One empty file per recorded block, `unvouched/ab/<key>` (fanned out by the key's first byte
//! so that a page of the `unvouched` listing reads one small directory at a time). A
//! restricted put creates it before the block's own file, so the batch sync that makes the
//! block durable makes the record durable too, and no crash keeps a block without its record;
//! at worst a record outlives a block that never got its name, and the owner's check passes
//! over a recorded block that is not stored. The owner's `vouch` and every removal of the
//! block unlink it. A full-access put creates nothing.

use crate::at::{hex64, Dir, Name};
use protocol::{Error, Key, Result};
use std::io;
use std::path::Path;

const DIR: &str = "unvouched";

fn name(key: &Key) -> Name {
    let hex = hex64(key);
    Name::new(&[DIR.as_bytes(), b"/", &hex[..2], b"/", &hex])
}

/// Records that a restricted connection stored `key` (the block's file comes after).
pub(crate) fn mark(root: &Dir, key: &Key) -> Result<()> {
    let n = name(key);
    let ctx = |e| Error::io(format!("recording {}", root.full(&n).display()), e);
    let made = match root.write_new(&n, b"") {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let hex = hex64(key);
            root.mkdir(&Name::new(&[DIR.as_bytes()])).map_err(ctx)?;
            root.mkdir(&Name::new(&[DIR.as_bytes(), b"/", &hex[..2]]))
                .map_err(ctx)?;
            root.write_new(&n, b"")
        }
        r => r,
    };
    match made {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => Err(ctx(e)),
        _ => Ok(()),
    }
}

/// Forgets the record of `key` (vouched for, or the block removed).
pub(crate) fn forget(root: &Dir, key: &Key) -> Result<()> {
    let n = name(key);
    root.unlink(&n)
        .map_err(|e| Error::io(format!("removing {}", root.full(&n).display()), e))?;
    Ok(())
}

/// Up to `limit` recorded keys after `after`, ascending, and whether more follow.
pub(crate) fn page(archive: &Path, after: Option<Key>, limit: usize) -> Result<(Vec<Key>, bool)> {
    let top = archive.join(DIR);
    let start = after.map_or_else(String::new, |k| k.to_hex()[..2].to_string());
    let mut keys = Vec::new();
    for fan in crate::files::sorted_names(&top)? {
        if fan < start {
            continue;
        }
        let mut here: Vec<Key> = crate::files::sorted_names(&top.join(&fan))?
            .iter()
            .filter_map(|n| n.parse::<Key>().ok())
            .filter(|k| after.is_none_or(|a| *k > a))
            .collect();
        here.sort();
        keys.extend(here);
        if keys.len() > limit {
            break;
        }
    }
    let more = keys.len() > limit;
    keys.truncate(limit);
    Ok((keys, more))
}
