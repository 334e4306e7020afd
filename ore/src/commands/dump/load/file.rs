//! The data of one file of a dump stream, as `ore load` reads it: data and hole records cut
//! into chunks by the archive's chunker and stored, checked against the size the entry
//! declared before any work is done and against the file's hash at its end; for an archive
//! tag's stream, the file's content id under this archive's keys, or its catalogued id.

use super::super::*;
use super::{MayCatalogue, Records, RepoStore};

/// `total + more`, when that is within the file's declared `size`; else the error that the
/// file's records hold more bytes than its entry says.
fn within<R: Read>(r: &Records<R>, total: u64, more: u64, size: u64) -> Result<u64> {
    total
        .checked_add(more)
        .filter(|&t| t <= size)
        .ok_or_else(|| {
            r.bad(format!(
                "the file's records hold more than the {size} bytes its entry declares"
            ))
        })
}

/// Cuts `region` into chunks with the archive's chunker `c` and stores them as pieces; all of
/// them when `last`, else all but the last (which may continue in the next data record).
fn cut(
    c: crate::core::format::ChunkerParams,
    region: &mut Vec<u8>,
    last: bool,
    pieces: &mut Pieces,
    store: &mut RepoStore,
) -> Result<()> {
    let chunks: Vec<(usize, usize)> =
        fastcdc::v2020::FastCDC::with_level(region, c.min, c.avg, c.max, c.level())
            .map(|ch| (ch.offset, ch.length))
            .collect();
    let keep = if last {
        chunks.len()
    } else {
        chunks.len().saturating_sub(1)
    };
    let keys = store.chunks(region, &chunks[..keep])?;
    let mut end = 0;
    for (&(o, l), key) in chunks[..keep].iter().zip(keys) {
        pieces.push(store, Piece::Data { key, len: l as u64 })?;
        end = o + l;
    }
    region.drain(..end);
    Ok(())
}

/// A catalogued file of an archive tag's stream: its content id, then the end of the file.
fn catalogued<R: Read>(
    r: &mut Records<R>,
    total: u64,
    payload: &[u8],
    h: &mut FileHash,
    ids: MayCatalogue,
) -> Result<(crate::core::entry::Content, Option<Key>)> {
    let id = match payload.len() {
        0 => None,
        _ => Some(
            <[u8; 32]>::try_from(payload)
                .map(Key)
                .map_err(|_| r.bad("a catalogued file's id is not 32 bytes".into()))?,
        ),
    };
    if total != 0 {
        return Err(r.bad("a catalogued file holds data too".into()));
    }
    h.catalogued(id.as_ref());
    let (kind, end, _) = r.next()?;
    if kind != FILE_END || end.as_slice() != h.finalize().as_bytes() {
        return Err(Error::Usage(format!(
            "the dump is damaged: catalogued file {} does not end as it was dumped",
            r.at
        )));
    }
    if let Err((error, why)) = ids {
        return Err(error(format!("{} {why}", r.at)));
    }
    Ok((crate::core::entry::Content::Catalogued { id }, id))
}

/// Reads a file's data records, chunks and stores them, and checks the file's hash. With
/// `want_id`, also the file's content id under this archive's keys (none for a file whose
/// holes pass the stream's budget); a catalogued file's id is kept only when the stream's ids are
/// this archive's (`same_ids`).
pub(super) fn load_file<R: Read>(
    repo: &Repo,
    r: &mut Records<R>,
    store: &mut RepoStore,
    (size, version, want_id, ids): (u64, u8, bool, MayCatalogue),
    (stats, hole_budget): (&mut DumpStats, &mut u64),
) -> Result<(crate::core::entry::Content, Option<Key>)> {
    let c = repo.format().chunker;
    let mut pieces = Pieces::default();
    let mut h = FileHash::new(version);
    let mut id = want_id.then(|| repo.keys().hasher(Kind::Chunk as u8));
    let mut holes = 0u64;
    let mut region: Vec<u8> = Vec::new();
    let mut total = 0u64;
    let window = 8 << 20;
    loop {
        let (kind, payload, _) = r.next()?;
        match kind {
            DATA => {
                total = within(r, total, payload.len() as u64, size)?;
                h.data(&payload);
                if let Some(id) = &mut id {
                    id.update(&payload);
                }
                region.extend_from_slice(&payload);
                if region.len() >= window {
                    cut(c, &mut region, false, &mut pieces, store)?;
                }
            }
            HOLE => {
                let len = u64::from_le_bytes(
                    payload
                        .as_slice()
                        .try_into()
                        .map_err(|_| r.bad("a hole record is not 8 bytes".into()))?,
                );
                // Sizes are checked before any work: a crafted hole of 2^62 bytes must not
                // be hashed first.
                total = within(r, total, len, size)?;
                holes = holes.saturating_add(len);
                if version == 1 && holes > V1_HOLES {
                    return Err(Error::Usage(format!(
                        "the dump is refused at {}: it declares more than {} of holes in one \
                         file, and its stream version (1) hashes a hole's zeros; dump it again \
                         with this ore (version {VERSION} hashes a hole's length)",
                        r.at,
                        crate::core::util::human_bytes(V1_HOLES)
                    )));
                }
                cut(c, &mut region, true, &mut pieces, store)?;
                h.hole(len);
                pieces.push(store, Piece::Hole { len })?;
                // A hole's zeros are hashed for the id only while the stream's budget lasts:
                // a stream may declare exabytes of them, in one file or in many.
                id = id.filter(|_| len <= *hole_budget);
                if id.is_some() {
                    *hole_budget -= len;
                }
                if let Some(id) = &mut id {
                    let zeros = [0u8; 64 << 10];
                    let mut left = len;
                    while left > 0 {
                        let n = left.min(zeros.len() as u64) as usize;
                        id.update(&zeros[..n]);
                        left -= n as u64;
                    }
                }
            }
            FILE_END => {
                cut(c, &mut region, true, &mut pieces, store)?;
                if payload.as_slice() != h.finalize().as_bytes() || total != size {
                    return Err(Error::Usage(format!(
                        "the dump is damaged: file {} does not hold the bytes it was dumped with",
                        r.at
                    )));
                }
                stats.bytes += total;
                let id = id.map(|h| Key(*h.finalize().as_bytes()));
                return Ok((pieces.finish(store)?, id));
            }
            CATALOGUED if version >= super::archive::ARCHIVE => {
                return catalogued(r, total, &payload, &mut h, ids)
            }
            k => return Err(r.bad(format!("record kind {k} inside a file's data"))),
        }
    }
}
