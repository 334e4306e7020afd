//! Writing one regular file: unnamed, or under a temporary name beside it, and put in place
//! when whole.
//!
//! A restore that is interrupted (Ctrl-C, a kill, a crash) must not leave a file cut short
//! under its real name, where the next run would take it for restored and leave it. So each
//! file is written where no name shows it, given its owner, mode, attributes and times,
//! checked with `--verify`, and only then given its name — without replacing what is there
//! under `--overwrite never`. Until then a file either is not there, or is whole.
//!
//! Where the process may (root, or any user since Linux 6.10, on a file system with
//! `O_TMPFILE`; one probe per restore),
//! the file is created unnamed in its directory and linked in under its name (`linkat` with
//! `AT_EMPTY_PATH`): an interrupted run leaves nothing at all. Otherwise it is created as
//! `.ore-partial-XXXXXXXXXXXXXXXX` (`O_EXCL`, relative to the directory's descriptor; the
//! suffix is derived from the name, so a re-run finds and replaces what an interrupted run
//! left) and renamed. Measured on /usr/share (43,246 files, tmpfs, 15 runs each): restore
//! took 1.038 s before files were put in place whole, 1.122 s with the rename; then, in another sitting, 0.938 s before
//! and 0.955 s with the unnamed file (as root).
//!
//! Blocks are fetched ahead of the one being written, a few within the file (many over a
//! slow link).

use super::{attrs, Ctx, Overwrite};
use crate::core::block::{self, Kind};
use crate::core::entry::{Content, Entry, EntryKind, Piece};
use crate::core::error::{Error, Result};
use crate::core::fsys::Dir;
use crate::core::prefetch::Fetch;
use crate::core::repo::Repo;
use crate::core::tree::{FileTree, Reader};
use crate::core::util::bytes_path;
use protocol::Ticket;
use rayon::prelude::*;
use std::collections::VecDeque;
use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;
use std::sync::atomic::Ordering::Relaxed;

/// Blocks fetched ahead of the one being written, within a file (more over a slow link).
const READ_AHEAD: usize = 16;
/// Chunks of one file opened at once, on the pool's threads.
const OPEN_TOGETHER: usize = 4;
const READ_AHEAD_FAR: usize = 64;

/// How every temporary name begins.
pub(super) const PARTIAL: &[u8] = b".ore-partial-";

/// The temporary name a file is written under until it is whole: the same for the same name,
/// so that a re-run replaces what an interrupted one left.
pub(super) fn partial_name(name: &[u8]) -> Vec<u8> {
    let h = blake3::hash(name);
    let mut out = Vec::with_capacity(29);
    out.extend_from_slice(PARTIAL);
    out.extend_from_slice(hex::encode(&h.as_bytes()[..8]).as_bytes());
    out
}

/// Restores the regular file `e` into `dir` (shown as `dir_path`). Ok when the file is there
/// afterwards — written, or left as it was — with the inode number of the regular file now at
/// its name (none when what was left there is something else); an error message when it is
/// not. `fresh`: the directory was made by this restore, so nothing is there to look for.
pub(super) fn restore_file(
    ctx: &Ctx,
    dir: &Dir,
    dir_path: &Path,
    fresh: bool,
    e: &Entry,
) -> std::result::Result<Option<u64>, String> {
    let EntryKind::File { size, content } = &e.kind else {
        return Ok(None);
    };
    let path = dir_path.join(bytes_path(&e.name));
    if !fresh {
        if let Some(left) = found_there(ctx, dir, e, *size, &path) {
            return Ok(left);
        }
    }
    let tmp = partial_name(&e.name);
    // An unnamed file is reachable by no name until it is whole, so it is made with its
    // permission bits at once (less the umask; they are checked after): no second call to set
    // them. A file written under a temporary name is private (0600) until then.
    let unnamed = ctx
        .unnamed
        .then(|| dir.create_unnamed(e.mode & 0o777).ok())
        .flatten();
    let named = unnamed.is_none();
    let f = match unnamed {
        Some(f) => f,
        None => create_partial(dir, &tmp, &path)?,
    };
    // What was written of it would pass for the file restored: it goes (an unnamed file goes
    // with its descriptor).
    let discard = |msg: String| {
        if !named {
            return format!("{msg}; nothing of it was put in place");
        }
        let removed = match dir.unlink(&tmp) {
            Ok(()) => "what was written of it was removed".to_string(),
            Err(err) => format!(
                "what was written of it is left as {} ({err})",
                dir_path.join(bytes_path(&tmp)).display()
            ),
        };
        format!("{msg}; {removed}")
    };
    let written = write_content(ctx, &f, content, *size, &path).and_then(|(written, hurt)| {
        if written != *size || matches!(content, Content::Index(_)) {
            // Trailing holes, or a file cut short by damage.
            f.set_len(*size)
                .map_err(|err| format!("{}: {err}", path.display()))?;
        }
        Ok((written, hurt))
    });
    let (written, hurt) = written.map_err(discard)?;
    // A copy the archive could not give whole never replaces a file already there: that one
    // may be the only good copy left.
    if hurt && !fresh && dir.lstat(&e.name).is_ok() {
        if named {
            let _ = dir.unlink(&tmp);
        }
        ctx.warn(format!(
            "{}: the file already there was kept: the archive's copy of it is damaged (above)",
            path.display()
        ));
        return Ok(dir.lstat(&e.name).ok().and_then(|st| kept(ctx, e, &st)));
    }
    ctx.bytes.fetch_add(written, Relaxed);
    // Its status as made: its inode number (for hard links to it), and the owner and mode it
    // has already, which are then not set again.
    let made = crate::core::fsys::fstat(&f)
        .map_err(|err| discard(format!("{}: {err}", path.display())))?;
    let ino = made.ino;
    if let Err(err) = attrs::set_known(ctx, attrs::On::Fd(&f), Some(&made), e, &path) {
        ctx.warn(format!("{}: metadata not restored: {err}", path.display()));
    }
    if ctx.opts.verify {
        verify(ctx, &f, &path, content, *size).map_err(discard)?;
        ctx.verified.fetch_add(1, Relaxed);
        ctx.verified_bytes.fetch_add(*size, Relaxed);
    }
    let replace = ctx.opts.overwrite != Overwrite::Never;
    // An unnamed file that is to replace what is there is linked in under its temporary name
    // first, then renamed over it.
    let mut under_tmp = false;
    let placed = if named {
        drop(f);
        dir.rename(&tmp, &e.name, replace)
    } else {
        match dir.link_unnamed(&f, &e.name) {
            Err(err) if replace && err.kind() == std::io::ErrorKind::AlreadyExists => {
                let _ = dir.unlink(&tmp);
                match dir.link_unnamed(&f, &tmp) {
                    Ok(()) => {
                        under_tmp = true;
                        dir.rename(&tmp, &e.name, true)
                    }
                    // Something that is not a file of ours holds the temporary name (a
                    // directory planted there, say): an error, never "left alone".
                    Err(err) => Err(std::io::Error::other(format!(
                        "its temporary name {} cannot be used: {err}",
                        dir_path.join(bytes_path(&tmp)).display()
                    ))),
                }
            }
            r => r,
        }
    };
    match placed {
        Ok(()) => {}
        // It appeared while this one was written (never under a temporary name we made).
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists && !under_tmp => {
            if named {
                let _ = dir.unlink(&tmp);
            }
            ctx.left_alone(&path);
            return Ok(dir.lstat(&e.name).ok().and_then(|st| kept(ctx, e, &st)));
        }
        Err(err) => {
            // An unnamed file linked in under its temporary name goes, if that is still it.
            if under_tmp && dir.lstat(&tmp).is_ok_and(|st| st.ino == ino) {
                let _ = dir.unlink(&tmp);
            }
            return Err(discard(format!(
                "{}: not put in place: {err}",
                path.display()
            )));
        }
    }
    ctx.files.fetch_add(1, Relaxed);
    ctx.progress.add_file();
    Ok(Some(ino))
}

/// Whether files can be written unnamed and linked in under `dir` (`linkat` with
/// `AT_EMPTY_PATH`, which root may do and, since Linux 6.10, the process that opened the file;
/// and a file system with `O_TMPFILE`): tried once per restore with a file linked in under a
/// name of its own and removed again.
pub(super) fn unnamed_works(dir: &Dir) -> bool {
    let Ok(f) = dir.create_unnamed(0o600) else {
        return false;
    };
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let name = format!(".ore-probe-{}-{nanos}", std::process::id());
    match dir.link_unnamed(&f, name.as_bytes()) {
        Ok(()) => dir.unlink(name.as_bytes()).is_ok(),
        Err(_) => false,
    }
}

/// What is already at `e`'s name, when the overwrite policy keeps it: `Some` with what
/// [`restore_file`] answers for a file kept, `None` when the file is to be written.
fn found_there(ctx: &Ctx, dir: &Dir, e: &Entry, size: u64, path: &Path) -> Option<Option<u64>> {
    let st = dir.lstat(&e.name).ok()?;
    let same = st.is_file() && st.size == size && st.mtime == e.mtime;
    match ctx.opts.overwrite {
        Overwrite::Never => {
            ctx.left_alone(path);
            Some(kept(ctx, e, &st))
        }
        Overwrite::IfChanged if same => {
            ctx.skipped.fetch_add(1, Relaxed);
            Some(kept(ctx, e, &st))
        }
        _ => None,
    }
}

/// Creates the file's partial copy `tmp` (shown as `path` in errors), replacing one that an
/// interrupted run left.
fn create_partial(dir: &Dir, tmp: &[u8], path: &Path) -> std::result::Result<File, String> {
    match dir.create(tmp, 0o600) {
        // Left by an interrupted run: ours to replace.
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {
            let _ = dir.unlink(tmp);
            dir.create(tmp, 0o600)
        }
        r => r,
    }
    .map_err(|err| format!("{}: not created: {err}", path.display()))
}

/// The inode number of a file found at `e`'s name and kept, if a hard link may point at it: a
/// regular file owned as the restore would have made it (a re-run keeps what the first run
/// made; a file of someone else's, planted there, is kept but not linked to).
fn kept(ctx: &Ctx, e: &Entry, st: &crate::core::fsys::Stat) -> Option<u64> {
    (st.is_file() && attrs::owned_as_made(ctx, e, st)).then_some(st.ino)
}

/// Fetches blocks ahead of writing: the tickets of the next data pieces.
/// A piece and, for data, the fetch already under way.
type Fetching = (Piece, Option<Ticket<Option<Vec<u8>>>>);

struct Ahead<'r> {
    ctx: &'r Ctx<'r>,
    pieces: Pieces<'r>,
    queue: VecDeque<Fetching>,
}

enum Pieces<'r> {
    One(Option<Piece>),
    Tree(Reader<'r, FileTree>),
}

impl<'r> Ahead<'r> {
    fn next(&mut self) -> Result<Option<Fetching>> {
        let depth = if self.ctx.prefetch.is_some() {
            READ_AHEAD_FAR
        } else {
            READ_AHEAD
        };
        while self.queue.len() < depth {
            let p = match &mut self.pieces {
                Pieces::One(p) => p.take(),
                Pieces::Tree(r) => r.next_item()?,
            };
            let Some(p) = p else { break };
            // A slice's bundle is read through the bundle cache, once for all its files.
            let t = match &p {
                Piece::Data { key, .. } => Some(self.ctx.start_get(*key)),
                Piece::Hole { .. } | Piece::Slice { .. } => None,
            };
            self.queue.push_back((p, t));
        }
        Ok(self.queue.pop_front())
    }
}

fn pieces<'r>(repo: &'r Repo, fetch: &'r dyn Fetch, content: &Content, size: u64) -> Pieces<'r> {
    match content {
        Content::Empty => Pieces::One(None),
        Content::Chunk(key) => Pieces::One(Some(Piece::Data {
            key: *key,
            len: size,
        })),
        &Content::Slice { key, start, len } => Pieces::One(Some(Piece::Slice { key, start, len })),
        Content::Index(root) => Pieces::Tree(Reader::via(repo, fetch, *root)),
    }
}

fn damaged(ctx: &Ctx, path: &Path, e: Error) -> String {
    ctx.damaged(path);
    format!("{}: not fully restored: {e}", path.display())
}

/// Writes the file's pieces into `f`: the bytes written, and whether damage in the archive left
/// some of them out (each reported).
fn write_content(
    ctx: &Ctx,
    f: &File,
    content: &Content,
    size: u64,
    path: &Path,
) -> std::result::Result<(u64, bool), String> {
    let mut ahead = Ahead {
        ctx,
        pieces: pieces(ctx.repo, ctx.fetcher(), content, size),
        queue: VecDeque::new(),
    };
    let mut pos = 0u64;
    let mut first_problem = None;
    let mut hurt = false;
    let mut end = false;
    while !end {
        // The next few pieces, in order.
        let mut batch = Vec::with_capacity(OPEN_TOGETHER);
        while batch.len() < OPEN_TOGETHER {
            match ahead.next() {
                Ok(Some(x)) => batch.push(x),
                Ok(None) => end = true,
                Err(e) if crate::core::repo::is_damage(&e) => {
                    first_problem.get_or_insert(damaged(ctx, path, e));
                    end = true;
                }
                Err(e) => {
                    ctx.lose_archive(&e);
                    return Err(format!("{}: {e}", path.display()));
                }
            }
            if end {
                break;
            }
        }
        // Their chunks as stored (the gets are on their way already)...
        let mut fetched = Vec::with_capacity(batch.len());
        for (piece, ticket) in batch {
            let stored = match (piece, ticket) {
                (Piece::Data { key, .. }, Some(t)) => {
                    match crate::core::repo::fetched(t.wait(), key, Kind::Chunk) {
                        Ok(s) => Some(Ok(s)),
                        Err(e) if crate::core::repo::is_damage(&e) => Some(Err(e)),
                        Err(e) => {
                            ctx.lose_archive(&e);
                            return Err(format!("{}: {e}", path.display()));
                        }
                    }
                }
                _ => None,
            };
            fetched.push((piece, stored));
        }
        // ...opened (decrypted, decompressed, their keys checked) and written side by side on
        // the pool, each at its place in the file: a large file was otherwise opened and
        // written one chunk at a time on one thread, at half the speed of copying it.
        let mut at = pos;
        let placed: Vec<(Piece, Option<Result<Vec<u8>>>, u64)> = fetched
            .into_iter()
            .map(|(piece, stored)| {
                let here = at;
                at = at.saturating_add(piece.len());
                (piece, stored, here)
            })
            .collect();
        let write = |(piece, stored, here): (Piece, Option<Result<Vec<u8>>>, u64)| {
            let done = match (piece, stored) {
                (Piece::Data { key, len }, stored) => Some(
                    stored
                        .unwrap_or_else(|| {
                            crate::core::repo::fetched(
                                ctx.repo.backend().get(key),
                                key,
                                Kind::Chunk,
                            )
                        })
                        .and_then(|s| block::open(ctx.repo.keys(), &key, Some(Kind::Chunk), s))
                        .and_then(|plain| match plain.data().len() as u64 == len {
                            true => Ok(plain),
                            false => Err(crate::Error::Corrupt {
                                key,
                                kind: Kind::Chunk.name(),
                                why: format!(
                                    "it holds {} bytes, where its file's index says {len}",
                                    plain.data().len()
                                ),
                            }),
                        })
                        .map(|plain| f.write_all_at(plain.data(), here)),
                ),
                _ => None,
            };
            (piece, done, here)
        };
        let opened: Vec<(Piece, Option<Result<std::io::Result<()>>>, u64)> =
            if placed.iter().filter(|(_, s, _)| s.is_some()).count() > 1 {
                placed.into_par_iter().map(write).collect()
            } else {
                placed.into_iter().map(write).collect()
            };
        for (piece, done, here) in opened {
            pos = here;
            match (piece, done) {
                (Piece::Hole { len }, _) => pos += len,
                (Piece::Data { len, .. }, Some(Ok(written))) => {
                    written.map_err(|err| format!("{}: write failed: {err}", path.display()))?;
                    ctx.progress.add_bytes(len);
                    pos += len;
                }
                (Piece::Data { len, .. }, Some(Err(e))) if crate::core::repo::is_damage(&e) => {
                    let msg = damaged(ctx, path, e);
                    ctx.warn(msg);
                    hurt = true;
                    pos += len;
                }
                (Piece::Data { .. }, Some(Err(e))) => {
                    ctx.lose_archive(&e);
                    return Err(format!("{}: {e}", path.display()));
                }
                (slice @ Piece::Slice { key, len, .. }, _) => {
                    let written = ctx
                        .bundle(key)
                        .and_then(|b| Ok(f.write_all_at(slice.bytes_of(&b)?, pos)));
                    match written {
                        Ok(w) => {
                            w.map_err(|err| format!("{}: write failed: {err}", path.display()))?;
                            ctx.progress.add_bytes(len);
                            pos += len;
                        }
                        Err(e) if crate::core::repo::is_damage(&e) => {
                            let msg = damaged(ctx, path, e);
                            ctx.warn(msg);
                            hurt = true;
                            pos += len;
                        }
                        Err(e) => {
                            ctx.lose_archive(&e);
                            return Err(format!("{}: {e}", path.display()));
                        }
                    }
                }
                (Piece::Data { .. }, None) => unreachable!("every data piece is opened"),
            }
        }
    }
    match first_problem {
        Some(msg) => {
            ctx.warn(msg);
            Ok((pos, true))
        }
        None => Ok((pos, hurt)),
    }
}

/// Re-reads a restored file (through the descriptor it was written with) and checks every
/// piece against its key.
fn verify(
    ctx: &Ctx,
    f: &File,
    path: &Path,
    content: &Content,
    size: u64,
) -> std::result::Result<(), String> {
    let md = f
        .metadata()
        .map_err(|e| format!("{}: not verified: {e}", path.display()))?;
    if md.size() != size {
        return Err(format!(
            "{}: verify: size is {} but should be {size}",
            path.display(),
            md.size()
        ));
    }
    let mut pieces = pieces(ctx.repo, ctx.repo, content, size);
    let mut pos = 0u64;
    let mut buf = Vec::new();
    loop {
        let p = match &mut pieces {
            Pieces::One(p) => p.take(),
            Pieces::Tree(r) => r
                .next_item()
                .map_err(|e| format!("{}: not verified: {e}", path.display()))?,
        };
        let Some(p) = p else { break };
        let len = p.len() as usize;
        buf.resize(len, 0);
        f.read_exact_at(&mut buf, pos)
            .map_err(|e| format!("{}: verify: {e}", path.display()))?;
        let ok = match p {
            Piece::Data { key, .. } => ctx.repo.keys().key_of(Kind::Chunk as u8, &buf) == key,
            Piece::Slice { key, .. } => {
                let bundle = ctx
                    .bundle(key)
                    .map_err(|e| format!("{}: not verified: {e}", path.display()))?;
                p.bytes_of(&bundle)
                    .map_err(|e| format!("{}: not verified: {e}", path.display()))?
                    == buf
            }
            Piece::Hole { .. } => buf.iter().all(|&b| b == 0),
        };
        if !ok {
            return Err(format!(
                "{}: verify: bytes {pos}..{} differ from the snapshot",
                path.display(),
                pos + len as u64
            ));
        }
        pos += len as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_partial_name_is_one_name_the_same_for_the_same_file() {
        let a = super::partial_name(b"big.iso");
        assert_eq!(a, super::partial_name(b"big.iso"));
        assert_ne!(a, super::partial_name(b"big.isp"));
        assert!(a.starts_with(b".ore-partial-") && a.len() == 29);
        assert!(crate::core::fsys::one_name(&a).is_ok());
    }
}
