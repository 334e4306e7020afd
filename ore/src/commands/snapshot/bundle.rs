//! Small files in shared chunks: the files of one directory smaller than [`SMALL`] are read
//! into *bundles*, one chunk each, and each file's content becomes its slice of its bundle
//! (`Content::Slice`, FORMAT.md §4; format 3 and later).
//!
//! A chunk per small file costs a block header, a nonce, an authentication tag, an index row
//! in the backend and a put, which for a file of a few hundred bytes is more than the file;
//! and each such file is compressed alone, so text files never share their vocabulary. A
//! bundle of ~100 of them is one block, compressed as one.
//!
//! Where a bundle ends is decided by the names and sizes of the files, never by what else the
//! directory holds or which thread reads what: a bundle ends after a file whose name hashes to
//! a chosen pattern (one in [`NAME_CUT`] on average), or when it reaches [`BUNDLE`] bytes. So
//! a directory saved again without the file cache (another machine, a distrusted cache) cuts
//! its bundles as before, and a file added or removed changes the bundle it falls in, not
//! every bundle after it. Bundles never span directories. A file that ends up alone in its
//! bundle is stored as an ordinary chunk (the same bytes give the same key either way).
//!
//! Within a bundle, a file whose bytes equal an earlier one's points at that one's slice.

use super::file::{changed_while_read, FileDone};
use super::seen::Seen;
use super::Ctx;
use crate::core::block::Kind;
use crate::core::cpustat::{time, Stage};
use crate::core::entry::Content;
use crate::core::filecache::Stamp;
use crate::core::fsys::Dir;
use protocol::Key;
use std::collections::HashMap;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// Files smaller than this go into bundles.
pub const SMALL: u64 = 16 << 10;
/// A bundle ends once it holds this many bytes.
pub const BUNDLE: usize = 256 << 10;
/// A bundle ends after a file whose name's hash is ≡ 0 modulo this.
pub const NAME_CUT: u16 = 64;

/// Whether a file of `size` bytes using `blocks` 512-byte blocks on disk is bundled: small,
/// not empty, and not sparse.
pub fn bundled(size: u64, blocks: u64) -> bool {
    size > 0 && size < SMALL && blocks.saturating_mul(512) >= size
}

/// Splits the sizes of a directory's small files, in name order, into bundles: the number of
/// files in each.
pub fn groups<'a>(files: impl Iterator<Item = (&'a [u8], u64)>) -> Vec<usize> {
    let mut out = Vec::new();
    let (mut n, mut bytes) = (0usize, 0u64);
    for (name, size) in files {
        n += 1;
        bytes += size;
        let h = blake3::hash(name);
        let bits = u16::from_le_bytes([h.as_bytes()[0], h.as_bytes()[1]]);
        if bits.is_multiple_of(NAME_CUT) || bytes >= BUNDLE as u64 {
            out.push(n);
            (n, bytes) = (0, 0);
        }
    }
    if n > 0 {
        out.push(n);
    }
    out
}

/// Where one file's bytes lie in the bundle, once read.
struct Read {
    start: usize,
    len: usize,
    xattrs: std::io::Result<Vec<crate::core::entry::Xattr>>,
    warning: Option<String>,
    seen: Option<Seen>,
}

/// Reads the files of directory `dir` (their names and walk-time stamps) into one bundle and
/// stores it: what became of each, in order. The files are opened relative to the directory,
/// opened once for them all: a path looked up from the root for every file cost a tenth of a
/// snapshot of a million small files.
pub(crate) fn store(ctx: &Ctx, dir: &Path, files: &[(&[u8], Stamp)]) -> Vec<FileDone> {
    // Waits for the keys while they are being derived (see `core::unlock`).
    let keys = match ctx.repo.try_keys() {
        Ok(k) => k,
        Err(e) => return fatal(e, files.len()),
    };
    let dir = match Dir::open(dir) {
        Ok(d) => d,
        Err(e) => {
            let why = format!("not read: its directory could not be opened again: {e}");
            return files
                .iter()
                .map(|_| FileDone::Failed(why.clone()))
                .collect();
        }
    };
    let mut buf = Vec::with_capacity(files.iter().map(|(_, s)| s.size as usize).sum());
    let mut seen: HashMap<Key, (usize, usize)> = HashMap::new();
    let mut read: Vec<Result<Read, String>> = Vec::with_capacity(files.len());
    for (name, stamp) in files {
        read.push(read_one(
            ctx,
            keys,
            dir.open_file(name),
            *stamp,
            &mut buf,
            &mut seen,
        ));
    }
    if buf.is_empty() {
        // Nothing was read (every file failed, or shrank to nothing).
        return read
            .into_iter()
            .map(|r| match r {
                Ok(r) => done(r, Content::Empty),
                Err(msg) => FileDone::Failed(msg),
            })
            .collect();
    }
    let key = match ctx.writer.store(Kind::Chunk, &buf, None) {
        Ok(k) => k,
        Err(e) => return fatal(e, files.len()),
    };
    let whole = buf.len();
    read.into_iter()
        .map(|r| match r {
            Err(msg) => FileDone::Failed(msg),
            Ok(r) if r.len == 0 => done(r, Content::Empty),
            // Alone in its bundle (or with copies of itself): an ordinary chunk.
            Ok(r) if r.start == 0 && r.len == whole => done(r, Content::Chunk(key)),
            Ok(r) => {
                let content = Content::Slice {
                    key,
                    start: r.start as u64,
                    len: r.len as u64,
                };
                done(r, content)
            }
        })
        .collect()
}

/// The outcome of `n` files when storing their bundle failed: the first file carries the
/// error that stops the snapshot.
fn fatal(e: crate::Error, n: usize) -> Vec<FileDone> {
    if n == 0 {
        return Vec::new();
    }
    let mut out = vec![FileDone::Fatal(e)];
    out.extend((1..n).map(|_| FileDone::Failed("not stored".into())));
    out
}

fn done(r: Read, content: Content) -> FileDone {
    FileDone::Stored {
        size: r.len as u64,
        content,
        xattrs: r.xattrs,
        warning: r.warning,
        seen: r.seen,
    }
}

/// Reads one file (as opened) onto the end of `buf` (or, when its bytes are there already,
/// not): where they lie, or why it was not read.
fn read_one(
    ctx: &Ctx,
    keys: &crate::core::crypto::Keys,
    opened: std::io::Result<std::fs::File>,
    stamp: Stamp,
    buf: &mut Vec<u8>,
    seen: &mut HashMap<Key, (usize, usize)>,
) -> Result<Read, String> {
    let file = match opened {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err("vanished during the snapshot".into())
        }
        Err(e) => return Err(format!("not read: {e}")),
    };
    let start = buf.len();
    let want = stamp.size as usize;
    buf.resize(start + want, 0);
    let mut got = 0usize;
    while got < want {
        match time(Stage::Read, || {
            file.read_at(&mut buf[start + got..], got as u64)
        }) {
            Ok(0) => break,
            Ok(k) => {
                crate::core::cpustat::count_read(k);
                got += k;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                buf.truncate(start);
                return Err(format!("read failed: {e}"));
            }
        }
    }
    buf.truncate(start + got);
    ctx.progress.add_bytes(got as u64);
    let xattrs = crate::core::meta::read_xattrs_of(&file);
    let warning = changed_while_read(&file, stamp, got < want);
    // The file's content id (what a chunk of its bytes alone would be keyed by) tells copies
    // apart, and is what `ore import --each` lists the file by.
    let hash = time(Stage::Hash, || {
        keys.key_of(Kind::Chunk as u8, &buf[start..])
    });
    let whole = (ctx.seen.is_some() && got == want).then(|| Seen::of(hash, &buf[start..]));
    let (start, len) = match seen.get(&hash) {
        Some(&(s, l)) if buf[s..s + l] == buf[start..] => {
            buf.truncate(start);
            (s, l)
        }
        _ => {
            seen.insert(hash, (start, got));
            (start, got)
        }
    };
    Ok(Read {
        start,
        len,
        xattrs,
        warning,
        seen: whole,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundles_end_by_name_or_size_whatever_else_the_directory_holds() {
        let names: Vec<Vec<u8>> = (0..2000).map(|i| format!("f{i}").into_bytes()).collect();
        let cuts = groups(names.iter().map(|n| (n.as_slice(), 100)));
        assert_eq!(cuts.iter().sum::<usize>(), 2000);
        assert!(cuts.len() > 10 && cuts.len() < 100, "{cuts:?}");
        // Dropping one file changes the bundle it was in, and no other.
        let mut fewer = names.clone();
        fewer.remove(1000);
        let ends = |cuts: &[usize], names: &[Vec<u8>]| -> Vec<Vec<u8>> {
            let mut at = 0;
            cuts.iter()
                .map(|n| {
                    at += n;
                    names[at - 1].clone()
                })
                .collect()
        };
        let before = ends(&cuts, &names);
        let after = ends(&groups(fewer.iter().map(|n| (n.as_slice(), 100))), &fewer);
        let removed = names[1000].clone();
        let before: Vec<_> = before.into_iter().filter(|n| *n != removed).collect();
        assert_eq!(before, after);
        // Large files end bundles by size.
        let big = groups(names.iter().take(100).map(|n| (n.as_slice(), 16000)));
        assert!(big.iter().all(|&n| n <= 17), "{big:?}");
        assert!(bundled(10, 8) && !bundled(0, 0) && !bundled(SMALL, 64) && !bundled(8192, 0));
    }
}
