//! Storing one file: read, cut with FastCDC, hash, and store the chunks the archive lacks.
//!
//! A file is read in windows of [`WINDOW`] bytes (more with chunks larger than half that).
//! FastCDC cuts each window; the last cut of a window that is not the end of the data is
//! carried over to the next one, so the chunks are exactly those of the whole file. The
//! chunks of a window are hashed, checked with one batched `exists`, and the missing ones
//! compressed, encrypted and stored — spread over the pool when there are several. Sparse
//! files are read region by region (`SEEK_DATA`/`SEEK_HOLE`); holes become pieces without
//! data.

use super::seen::{Seeing, Seen};
use super::Ctx;
use crate::core::block::{self, Compression, Kind};
use crate::core::cpustat::{time, Stage};
use crate::core::entry::{Content, Piece};
use crate::core::error::Error;
use crate::core::filecache::Stamp;
use crate::core::tree::{Pieces, Store};
use protocol::Key;
use rayon::prelude::*;
use std::cell::RefCell;
use std::collections::HashSet;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// How much of a file is read at a time…
pub const WINDOW: usize = 8 << 20;

/// …or, with chunks of up to `max` bytes, twice that when it is more. A chunk is stored only
/// once it ends before the window does (where the data ends is not a cut), so a window no
/// longer than the largest chunk can hold none to store when its data has no cut: an
/// archive with chunks of up to 16 MiB then read the first 8 MiB of a file of zeros again
/// and again, for ever (attack review).
fn window(max: u32) -> usize {
    WINDOW.max(2 * max as usize)
}

/// What became of a file.
pub(crate) enum FileDone {
    /// Stored: its size, content and extended attributes (read from the open file), and a
    /// warning when it changed while read.
    Stored {
        size: u64,
        content: Content,
        xattrs: std::io::Result<Vec<crate::core::entry::Xattr>>,
        warning: Option<String>,
        /// Its content id and type, when the run keeps them (`seen.rs`) and it was read whole.
        seen: Option<Seen>,
    },
    /// Not stored, with the reason (the snapshot goes on without it).
    Failed(String),
    /// The backend failed; the snapshot stops.
    Fatal(Error),
}

thread_local! {
    static BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

struct TreeStore<'a, 'r> {
    ctx: &'a Ctx<'r>,
}

impl Store for TreeStore<'_, '_> {
    fn store(&mut self, kind: Kind, plain: &[u8]) -> crate::Result<Key> {
        self.ctx.writer.store(kind, plain, None)
    }
}

/// Stores the file at `path`, whose walk-time stamp is `stamp`.
pub(crate) fn store(ctx: &Ctx, path: &Path, stamp: Stamp, blocks: u64) -> FileDone {
    let file = match open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return FileDone::Failed("vanished during the snapshot".into())
        }
        Err(e) => return FileDone::Failed(format!("not read: {e}")),
    };
    if ctx.opts.catalogue {
        return catalogued(ctx, &file, stamp);
    }
    let size = stamp.size;
    let regions = if size > 0 && blocks * 512 < size {
        match crate::core::meta::data_regions(&file, size) {
            Ok(r) => r,
            Err(_) => vec![(0, size)],
        }
    } else if size > 0 {
        vec![(0, size)]
    } else {
        Vec::new()
    };
    // Seen only when read in one piece from its start: a file with holes is opened again.
    let mut seeing = match (&ctx.seen, &regions[..]) {
        (Some(_), [(0, len)]) if *len == size => Some(Seeing::new(ctx.repo.keys())),
        _ => None,
    };
    let mut pieces = Pieces::default();
    let mut pos = 0u64;
    let mut short = false;
    let mut comp = ctx.repo.compression();
    for (off, len) in regions {
        if off > pos {
            if let Err(e) = pieces.push(&mut TreeStore { ctx }, Piece::Hole { len: off - pos }) {
                return FileDone::Fatal(e);
            }
        }
        let mut read = |b: &mut [u8], at: u64| file.read_at(b, at);
        match read_region(
            ctx,
            &mut read,
            (off, len),
            &mut comp,
            &mut pieces,
            seeing.as_mut(),
        ) {
            Ok(n) => {
                pos = off + n;
                if n < len {
                    short = true;
                    break;
                }
            }
            Err(RegionError::Io(e)) => return FileDone::Failed(format!("read failed: {e}")),
            Err(RegionError::Fatal(e)) => return FileDone::Fatal(e),
        }
    }
    if !short && pos < size {
        if let Err(e) = pieces.push(&mut TreeStore { ctx }, Piece::Hole { len: size - pos }) {
            return FileDone::Fatal(e);
        }
        pos = size;
    }
    // Read before the check below, so that a change to them also shows in the ctime.
    let xattrs = crate::core::meta::read_xattrs_of(&file);
    let warning = changed_while_read(&file, stamp, short);
    let seen = match (size, short) {
        (0, _) if ctx.seen.is_some() => Some(Seen::of(
            ctx.repo.keys().key_of(Kind::Chunk as u8, b""),
            b"",
        )),
        (_, false) => seeing.and_then(Seeing::finish),
        (_, true) => None,
    };
    match pieces.finish(&mut TreeStore { ctx }) {
        Ok(content) => FileDone::Stored {
            size: pos,
            content,
            xattrs,
            warning,
            seen,
        },
        Err(e) => FileDone::Fatal(e),
    }
}

/// A file of a catalogue: its content id, computed from everything it holds (its holes as
/// the zeros they read as), not stored.
fn catalogued(ctx: &Ctx, file: &File, stamp: Stamp) -> FileDone {
    // A file with more holes than are hashed is recorded without an id (found by name).
    if crate::core::filelist::too_sparse(file) {
        return FileDone::Stored {
            size: stamp.size,
            content: Content::Catalogued { id: None },
            xattrs: crate::core::meta::read_xattrs_of(file),
            warning: None,
            seen: None,
        };
    }
    let (id, size) = match time(Stage::Hash, || {
        crate::core::filelist::content_id(ctx.repo.keys(), file)
    }) {
        Ok((id, size)) => (Some(id), size),
        Err(e) => return FileDone::Failed(format!("read failed: {e}")),
    };
    ctx.progress.add_bytes(size);
    FileDone::Stored {
        size,
        // An empty file's bytes are known: none (its id is still that of no bytes).
        content: match size {
            0 => Content::Empty,
            _ => Content::Catalogued { id },
        },
        xattrs: crate::core::meta::read_xattrs_of(file),
        warning: changed_while_read(file, stamp, size < stamp.size),
        seen: None,
    }
}

/// A warning when the open `file` changed since the walk stamped it `stamp` (or was `short`
/// of its size when read): what was read may mix the two.
pub(super) fn changed_while_read(file: &File, stamp: Stamp, short: bool) -> Option<String> {
    let after = Stamp::of(&crate::core::fsys::fstat(file).ok()?);
    let changed = short
        || after.size != stamp.size
        || after.mtime != stamp.mtime
        || after.ctime != stamp.ctime;
    changed.then(|| "changed while it was being read; saved as read".to_string())
}

fn open(path: &Path) -> std::io::Result<File> {
    crate::core::fsys::open_regular_path(path)
}

enum RegionError {
    Io(std::io::Error),
    Fatal(Error),
}

/// Stores a stream read to its end (standard input, a command's output) as a file's content:
/// its size and content. A read error is returned as it is, for the caller to name the stream.
pub(super) fn store_stream(
    ctx: &Ctx,
    read: &mut dyn FnMut(&mut [u8]) -> std::io::Result<usize>,
) -> Result<(u64, Content), StreamError> {
    let mut pieces = Pieces::default();
    let mut comp = ctx.repo.compression();
    let mut read_at = |b: &mut [u8], _: u64| read(b);
    let n = match read_region(
        ctx,
        &mut read_at,
        (0, u64::MAX),
        &mut comp,
        &mut pieces,
        None,
    ) {
        Ok(n) => n,
        Err(RegionError::Io(e)) => return Err(StreamError::Read(e)),
        Err(RegionError::Fatal(e)) => return Err(StreamError::Store(e)),
    };
    let content = pieces
        .finish(&mut TreeStore { ctx })
        .map_err(StreamError::Store)?;
    Ok((n, content))
}

/// Why a stream was not stored: it could not be read, or the archive failed.
pub(super) enum StreamError {
    Read(std::io::Error),
    Store(Error),
}

/// Reads (through `read`, which reads at an offset) and stores `len` bytes at `off`; returns
/// how many there were (fewer if the file shrank). The file's chunks are compressed with
/// `comp`, which becomes the fastest level when the start of the file shows a format that is
/// compressed already. What is read is shown to `seeing`, when given (a region that is the
/// whole file).
fn read_region(
    ctx: &Ctx,
    read: &mut dyn FnMut(&mut [u8], u64) -> std::io::Result<usize>,
    (off, len): (u64, u64),
    comp: &mut Compression,
    pieces: &mut Pieces,
    mut seeing: Option<&mut Seeing>,
) -> Result<u64, RegionError> {
    let c = ctx.repo.format().chunker;
    let mut buf = BUF.with(|b| std::mem::take(&mut *b.borrow_mut()));
    let want = (len as usize).min(window(c.max));
    if buf.len() < want {
        buf.resize(want, 0);
    }
    let mut filled = 0usize;
    let mut done = 0u64; // bytes of the region read so far
    let mut stored = 0u64;
    let result = loop {
        // A stop (SIGINT, SIGTERM, another thread's failure) ends even a file of many
        // gigabytes within a window: one of 6 GiB went on being read for 3 s after SIGTERM.
        if ctx.stopped() {
            break Err(RegionError::Fatal(Error::Stopped));
        }
        // Fill the window.
        let mut eof = false;
        while filled < want && done < len {
            let n = ((len - done) as usize).min(want - filled);
            match time(Stage::Read, || {
                read(&mut buf[filled..filled + n], off + done)
            }) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(k) => {
                    crate::core::cpustat::count_read(k);
                    filled += k;
                    done += k as u64;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    keep(buf);
                    return Err(RegionError::Io(e));
                }
            }
        }
        let at_end = eof || done >= len;
        if filled == 0 {
            break Ok(stored);
        }
        if off == 0 && stored == 0 {
            if block::already_compressed(&buf[..filled]) {
                *comp = comp.for_compressed_data();
            }
            if let Some(s) = seeing.as_deref_mut() {
                s.head(&buf[..filled]);
            }
        }
        let (cuts, consumed) = time(Stage::Chunk, || {
            let mut cuts = Vec::new();
            let mut consumed = 0;
            if at_end && filled <= c.min as usize {
                // Too short to cut: one chunk.
                cuts.push((0, filled));
                consumed = filled;
            }
            for ch in fastcdc::v2020::FastCDC::with_level(
                &buf[..filled - consumed],
                c.min,
                c.avg,
                c.max,
                c.level(),
            ) {
                let end = ch.offset + ch.length;
                if !at_end && end == filled {
                    break;
                }
                cuts.push((ch.offset, ch.length));
                consumed = end;
            }
            (cuts, consumed)
        });
        if consumed == 0 && !at_end {
            // A full window with no chunk to store. Cannot happen with a window of two
            // largest chunks (see `window`); a read that never moves on would spin for ever.
            break Err(RegionError::Fatal(Error::Archive(format!(
                "a read window of {filled} bytes held no whole chunk (the largest is {})",
                c.max
            ))));
        }
        let keys = match store_chunks(ctx, &buf[..filled], &cuts, *comp, pieces) {
            Ok(keys) => keys,
            Err(e) => break Err(RegionError::Fatal(e)),
        };
        if let Some(s) = seeing.as_deref_mut() {
            // A file that is one chunk has that chunk's key as its id: not hashed again.
            let whole =
                (stored == 0 && at_end && consumed == filled && keys.len() == 1).then(|| keys[0]);
            time(Stage::Hash, || s.read(&buf[..consumed], whole));
        }
        ctx.progress.add_bytes(consumed as u64);
        stored += consumed as u64;
        buf.copy_within(consumed..filled, 0);
        filled -= consumed;
        if at_end && filled == 0 {
            break Ok(stored);
        }
    };
    keep(buf);
    result
}

/// Keeps a read window for this thread's next file, on one thread per core: the extra threads
/// of a walk of a cold tree (`threads.rs`) mostly wait for the disk, and each of them keeping
/// its 8 MiB window raised the peak of a cold snapshot of /usr/share from 58 to 94 MiB.
fn keep(buf: Vec<u8>) {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    let cores = *CORES.get_or_init(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    if rayon::current_thread_index().is_none_or(|i| i < cores) {
        BUF.with(|b| *b.borrow_mut() = buf);
    }
}

/// Hashes the chunks `cuts` of `data`, stores those the archive lacks (compressed with
/// `comp`), and adds them as pieces: their keys.
fn store_chunks(
    ctx: &Ctx,
    data: &[u8],
    cuts: &[(usize, usize)],
    comp: Compression,
    pieces: &mut Pieces,
) -> crate::Result<Vec<Key>> {
    // Waits for the keys while they are being derived (see `core::unlock`).
    let archive_keys = ctx.repo.try_keys()?;
    // Timed per chunk: the pool's other threads hash some of them.
    let keys_of = |&(o, l): &(usize, usize)| {
        time(Stage::Hash, || {
            archive_keys.key_of(Kind::Chunk as u8, &data[o..o + l])
        })
    };
    let keys: Vec<Key> = if cuts.len() > 1 {
        cuts.par_iter().map(keys_of).collect()
    } else {
        cuts.iter().map(keys_of).collect()
    };
    if ctx.writer.defers() {
        // Ask, and go on reading: the answer is waited for by a resolver (see `defer`).
        let end = cuts.last().map_or(0, |&(o, l)| o + l);
        let present = time(Stage::Store, || {
            ctx.repo.backend().start_exists(keys.clone())
        });
        ctx.writer.defer_chunks(
            present,
            data[..end].to_vec(),
            cuts.to_vec(),
            keys.clone(),
            comp,
        )?;
    } else {
        store_missing(ctx, data, cuts, &keys, comp)?;
    }
    time(Stage::Index, || {
        for (i, &(_, l)) in cuts.iter().enumerate() {
            pieces.push(
                &mut TreeStore { ctx },
                Piece::Data {
                    key: keys[i],
                    len: l as u64,
                },
            )?;
        }
        Ok::<_, Error>(())
    })?;
    Ok(keys)
}

/// Asks the archive which of the chunks `cuts` of `data` (their keys `keys`) it lacks, and
/// stores those, each once.
fn store_missing(
    ctx: &Ctx,
    data: &[u8],
    cuts: &[(usize, usize)],
    keys: &[Key],
    comp: Compression,
) -> crate::Result<()> {
    let asked = time(Stage::Store, || ctx.repo.backend().exists(keys))?;
    let present = ctx.repo.answered(keys.len(), asked)?;
    let mut seen = HashSet::new();
    let missing: Vec<usize> = (0..cuts.len())
        .filter(|&i| !present[i] && seen.insert(keys[i]))
        .collect();
    let seal = |&i: &usize| -> crate::Result<()> {
        let (o, l) = cuts[i];
        ctx.writer
            .seal_and_put(Kind::Chunk, &data[o..o + l], keys[i], comp)
    };
    if missing.len() > 1 {
        missing.par_iter().try_for_each(seal)?;
    } else {
        missing.iter().try_for_each(seal)?;
    }
    Ok(())
}
