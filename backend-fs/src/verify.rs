//! backend-fs's `verify`: what the backend can check of its own files.
//!
//! A block file carries no checksum: its key is a keyed hash that only the frontend can
//! recompute, so a flipped byte inside a block is found by `ore check --read-data`, not here.
//! What the backend can see, it checks:
//!
//! - every entry under `blocks/` is a regular file named by a key, in the fan-out directories
//!   of that key (any other is a block `get` cannot find, or something that does not belong);
//! - every block file reads to its end (a bad sector or a lost permission shows up here rather
//!   than in the middle of a restore);
//! - every file under `tags/` has a valid tag name and value;
//! - every tag whose history's latest change set a value still has its file: the history
//!   records a set only once the tag file is durable, and a removal before the file goes
//!   (`history`), so a tag file that is gone while its history says it holds a value was
//!   deleted behind the backend's back — a deleted `tags/ore:reflog` is found here;
//! - every line of every tag history file parses and matches its checksum (`history`): a
//!   damaged line is named by file and line number.
//!
//! Each problem names the file. The answer's `problems` array lists them (PROTOCOL.md §6,
//! "admin"), so `ore-admin DIR verify` exits 1 when there are any.

use crate::files::{sorted_names, FileLock};
use crate::{history, FsBackend};
use ore_util::lock;
use protocol::key::{check_tag_name, check_tag_value};
use protocol::{AdminOutput, Result};
use serde_json::json;
use std::io::Read;
use std::path::Path;

/// What `verify` counted and found.
#[derive(Default)]
struct Findings {
    blocks: u64,
    bytes: u64,
    tags: u64,
    problems: Vec<String>,
}

pub(crate) fn verify(b: &FsBackend) -> Result<AdminOutput> {
    // Blocks still waiting in tmp/ get their names first, so that every block is looked at.
    b.publish()?;
    let mut f = Findings::default();
    blocks(&b.dir, &mut f)?;
    {
        // No tag changes while the tags and their history are compared.
        let _inner = lock(&b.tag_mutex);
        // A read-only archive may sit on a read-only file system, where nobody changes tags.
        let _outer = match FileLock::acquire(&b.dir.join("tags.lock")) {
            Ok(lock) => Some(lock),
            Err(_) if b.read_only => None,
            Err(e) => return Err(e),
        };
        tags(&b.dir, &mut f)?;
    }
    let text = format!(
        "verified {} block file(s) ({} bytes) and {} tag(s): {}\n",
        f.blocks,
        f.bytes,
        f.tags,
        if f.problems.is_empty() {
            "no problems"
        } else {
            "damaged"
        }
    );
    Ok(AdminOutput::checked(
        text,
        json!({"blocks": f.blocks, "bytes": f.bytes, "tags": f.tags}),
        &f.problems,
    ))
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
}

/// `blocks/ab/cd/<key>`: every entry where it belongs, and every block file readable.
fn blocks(dir: &Path, f: &mut Findings) -> Result<()> {
    let root = dir.join("blocks");
    for l1 in sorted_names(&root)? {
        let d1 = root.join(&l1);
        if !is_hex(&l1, 2) || !d1.is_dir() {
            f.problems.push(format!(
                "{}: does not belong in blocks/ (only fan-out directories `ab` do)",
                d1.display()
            ));
            continue;
        }
        for l2 in sorted_names(&d1)? {
            let d2 = d1.join(&l2);
            if !is_hex(&l2, 2) || !d2.is_dir() {
                f.problems.push(format!(
                    "{}: does not belong in blocks/{l1}/ (only fan-out directories `cd` do)",
                    d2.display()
                ));
                continue;
            }
            for name in sorted_names(&d2)? {
                let path = d2.join(&name);
                if !is_hex(&name, 64) {
                    f.problems.push(format!(
                        "{}: not a block file (a block file is named by its 64-digit key)",
                        path.display()
                    ));
                } else if !name.starts_with(&format!("{l1}{l2}")) {
                    f.problems.push(format!(
                        "{}: block {name} is not in its own directory blocks/{}/{}/, so it \
                         cannot be found",
                        path.display(),
                        &name[..2],
                        &name[2..4]
                    ));
                } else {
                    read_block(&path, f);
                }
            }
        }
    }
    Ok(())
}

/// Reads one block file to its end.
fn read_block(path: &Path, f: &mut Findings) {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) => {
            f.problems.push(format!("{}: {e}", path.display()));
            return;
        }
    };
    if !meta.is_file() {
        f.problems
            .push(format!("{}: not a regular file", path.display()));
        return;
    }
    let mut n = 0u64;
    let read = std::fs::File::open(path).and_then(|mut file| {
        let mut buf = vec![0u8; 1 << 20];
        loop {
            match file.read(&mut buf)? {
                0 => return Ok(()),
                k => n += k as u64,
            }
        }
    });
    match read {
        Ok(()) => {
            f.blocks += 1;
            f.bytes += n;
        }
        Err(e) => f.problems.push(format!(
            "{}: cannot be read (after {n} bytes): {e}",
            path.display()
        )),
    }
}

/// `tags/<name>`: valid names and values; and no tag gone that its history says is set.
fn tags(dir: &Path, f: &mut Findings) -> Result<()> {
    let tags = dir.join("tags");
    for name in sorted_names(&tags)? {
        let path = tags.join(&name);
        if let Err(e) = check_tag_name(&name) {
            f.problems
                .push(format!("{}: not a tag file: {e}", path.display()));
            continue;
        }
        match std::fs::read(&path) {
            Ok(v) => match check_tag_value(&v) {
                Ok(()) => f.tags += 1,
                Err(e) => f
                    .problems
                    .push(format!("tag {name} ({}): {e}", path.display())),
            },
            Err(e) => f.problems.push(format!(
                "tag {name}: {} cannot be read: {e}",
                path.display()
            )),
        }
    }
    for name in history::names(dir)? {
        if check_tag_name(&name).is_err() {
            continue;
        }
        let (mut changes, bad) = history::read(dir, &name)?;
        f.problems.extend(bad.iter().map(|b| b.to_string()));
        // With a damaged line the last readable one may not be the latest change.
        if !bad.is_empty() {
            continue;
        }
        let Some((ns, Some(value))) = changes.pop() else {
            continue;
        };
        if !tags.join(&name).exists() {
            f.problems.push(format!(
                "tag {name} is missing: {} does not exist, but the tag's history says its \
                 latest change ({} seconds after the epoch) set it to {}",
                tags.join(&name).display(),
                ns / 1_000_000_000,
                protocol::history::show_value(&value)
            ));
        }
    }
    Ok(())
}
