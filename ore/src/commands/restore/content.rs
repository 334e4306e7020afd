//! A regular file's bytes: its pieces fetched ahead of the one being written (a few within
//! the file, many over a slow link), its chunks opened a few at a time on the pool's threads
//! while the batch before them is written in order by one thread, small files' slices taken
//! from their bundle (opened once for all its files), and `--verify`'s reading back.
//! `file.rs` decides where and under which name the bytes go; this module only writes them
//! into the open file.

use super::Ctx;
use crate::core::block::{self, Kind};
use crate::core::entry::{Content, Piece};
use crate::core::error::{Error, Result};
use crate::core::prefetch::Fetch;
use crate::core::repo::Repo;
use crate::core::tree::{FileTree, Reader};
use protocol::Ticket;
use rayon::prelude::*;
use std::collections::VecDeque;
use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;

/// Blocks fetched ahead of the one being written, within a file (more over a slow link).
const READ_AHEAD: usize = 16;
/// Chunks of one file opened at once, on the pool's threads.
const OPEN_TOGETHER: usize = 4;
const READ_AHEAD_FAR: usize = 64;

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
    /// A catalogued file: no bytes to read.
    NotStored(Option<protocol::Key>),
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
                &mut Pieces::NotStored(id) => return Err(Error::NotStored { id }),
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
        &Content::Catalogued { id } => Pieces::NotStored(id),
    }
}

fn damaged(ctx: &Ctx, path: &Path, e: Error) -> String {
    ctx.damaged(path);
    format!("{}: not fully restored: {e}", path.display())
}

/// A piece, its chunk as stored (for data; or why it could not be had), and where it goes in
/// the file.
type Placed = (Piece, Option<Result<Vec<u8>>>, u64);
/// A piece, its chunk opened (decrypted, decompressed, its key checked; for data), and where
/// it goes in the file.
type Opened = (Piece, Option<Result<block::Plain>>, u64);

/// Where a file's writing stands: how far it got, and what went wrong on the way.
struct Progress<'a> {
    ctx: &'a Ctx<'a>,
    f: &'a File,
    path: &'a Path,
    pos: u64,
    hurt: bool,
    first_problem: Option<String>,
}

/// Writes the file's pieces into `f`: the bytes written, and whether damage in the archive left
/// some of them out (each reported).
///
/// The pieces go by in batches. While the calling thread writes one batch's plaintext into the
/// file, in order, the pool opens the next batch's chunks side by side. One thread writes:
/// two writing into one file take turns on its lock in the kernel, and a profile of a 1 GiB
/// restore showed 8% of its time spent spinning there, when chunks were written where they
/// were opened.
pub(super) fn write_content(
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
    let mut w = Progress {
        ctx,
        f,
        path,
        pos: 0,
        hurt: false,
        first_problem: None,
    };
    let mut at = 0u64;
    let mut opened: Vec<Opened> = Vec::new();
    let mut end = false;
    while !end {
        // The next few pieces, in order (their gets are on their way already).
        let mut batch: Vec<Placed> = Vec::with_capacity(OPEN_TOGETHER);
        while batch.len() < OPEN_TOGETHER {
            match ahead.next() {
                Ok(Some((piece, ticket))) => {
                    let here = at;
                    at = at.saturating_add(piece.len());
                    // Waited for here, in order, and not in the pool's tasks: a task that
                    // blocks on the store lets the thread waiting for it take up another
                    // file, and files then finish late and nested into one another.
                    let stored = match (&piece, ticket) {
                        (&Piece::Data { key, .. }, Some(t)) => {
                            Some(crate::core::repo::fetched(t.wait(), key, Kind::Chunk))
                        }
                        _ => None,
                    };
                    batch.push((piece, stored, here));
                }
                Ok(None) => end = true,
                Err(e) if crate::core::repo::is_damage(&e) => {
                    w.first_problem.get_or_insert(damaged(ctx, path, e));
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
        let done = std::mem::take(&mut opened);
        // One chunk is opened where it is; several side by side on the pool.
        let several = batch.iter().filter(|(_, s, _)| s.is_some()).count() > 1;
        let open_all = || -> Vec<Opened> {
            match several {
                true => batch.into_par_iter().map(|p| open(ctx, p)).collect(),
                false => batch.into_iter().map(|p| open(ctx, p)).collect(),
            }
        };
        if done.is_empty() && !several {
            // A file of one chunk (most files): nothing to write yet, no task to hand over.
            opened = open_all();
        } else {
            let (written, next) = rayon::join(|| w.write(done), open_all);
            opened = next;
            written?;
        }
    }
    w.write(opened)?;
    match w.first_problem {
        Some(msg) => {
            ctx.warn(msg);
            Ok((w.pos, true))
        }
        None => Ok((w.pos, w.hurt)),
    }
}

/// Opens a piece's chunk (on whichever thread runs this).
fn open(ctx: &Ctx, (piece, stored, here): Placed) -> Opened {
    let plain = match (piece, stored) {
        (Piece::Data { key, len }, Some(stored)) => Some(
            stored
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
                }),
        ),
        _ => None,
    };
    (piece, plain, here)
}

impl Progress<'_> {
    /// Writes opened pieces into the file, in order: a damaged chunk is reported and left out
    /// (a hole where it belonged); an archive that cannot be read ends the file.
    fn write(&mut self, opened: Vec<Opened>) -> std::result::Result<(), String> {
        let (ctx, path) = (self.ctx, self.path);
        for (piece, plain, here) in opened {
            self.pos = here;
            let len = piece.len();
            let written = match (piece, plain) {
                (Piece::Hole { .. }, _) => Ok(None),
                (Piece::Data { .. }, Some(Ok(plain))) => {
                    Ok(Some(self.f.write_all_at(plain.data(), here)))
                }
                (Piece::Data { .. }, Some(Err(e))) => Err(e),
                (slice @ Piece::Slice { key, .. }, _) => ctx
                    .bundle(key)
                    .and_then(|b| Ok(Some(self.f.write_all_at(slice.bytes_of(&b)?, here)))),
                (Piece::Data { .. }, None) => {
                    unreachable!("data pieces always come with their stored chunk")
                }
            };
            match written {
                Ok(None) => {}
                Ok(Some(w)) => {
                    w.map_err(|err| format!("{}: write failed: {err}", path.display()))?;
                    ctx.progress.add_bytes(len);
                }
                Err(e) if crate::core::repo::is_damage(&e) => {
                    let msg = damaged(ctx, path, e);
                    ctx.warn(msg);
                    self.hurt = true;
                }
                Err(e) => {
                    ctx.lose_archive(&e);
                    return Err(format!("{}: {e}", path.display()));
                }
            }
            self.pos = here + len;
        }
        Ok(())
    }
}

/// Re-reads a restored file (through the descriptor it was written with) and checks every
/// piece against its key.
pub(super) fn verify(
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
            &mut Pieces::NotStored(id) => {
                return Err(format!("{}: {}", path.display(), Error::NotStored { id }))
            }
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
