//! Opening the file cache for a run: whether it may be used at all, which generation of its
//! rows is trusted as it is, and the generation this run marks what it checks or writes with
//! (`core::filecache` says what generations are for).

use super::SnapshotOptions;
use crate::core::error::Result;
use crate::core::filecache::{CacheReader, CacheWriter, Generation};
use crate::core::lease::GcState;
use crate::core::repo::Repo;
use std::path::PathBuf;

/// A file cache that may be read, where it lives (for more connections), and the generation
/// whose rows are trusted as they are (`None`: every entry is checked against the archive
/// before it is used; see `core::filecache`).
pub(super) type TrustedCache = (CacheReader, PathBuf, Option<Generation>);

pub(super) fn open_cache(
    repo: &Repo,
    opts: &SnapshotOptions,
    gc_value: &[u8],
) -> Result<(Option<TrustedCache>, Option<CacheWriter>)> {
    let Some(path) = &opts.cache else {
        return Ok((None, None));
    };
    let id = &repo.format().archive_id;
    let writer = if opts.dry_run {
        None
    } else {
        match CacheWriter::open(path, id) {
            Ok(w) => Some(w),
            Err(e) => {
                protocol::log::warning(&format!("not using the file cache: {e}"));
                None
            }
        }
    };
    let (reader, trusted) = match CacheReader::open(path) {
        Ok(r) => {
            let trusted = trusted_generation(repo, &r, id, gc_value)?;
            (Some(r), trusted)
        }
        Err(e) => {
            protocol::log::warning(&format!("not using the file cache: {e}"));
            (None, None)
        }
    };
    // Directories checked or written in this run are marked with this generation: the one
    // trusted, or a new one (see `core::filecache`).
    let writer = match writer {
        Some(w) => Some(w.begin_generation(trusted.flatten().unwrap_or_else(Generation::new))?),
        None => None,
    };
    match (reader, trusted) {
        (Some(r), Some(t)) => Ok((Some((r, path.clone(), t)), writer)),
        _ => Ok((None, writer)),
    }
}

/// Whether the cache `reader` may be used for archive `id`, whose `ore:gc` tag reads
/// `gc_value`: `None` if not at all (every file is read again), `Some(None)` if each entry
/// must be checked against the archive, `Some(Some(g))` if rows of generation `g` are
/// trusted as they are.
fn trusted_generation(
    repo: &Repo,
    reader: &CacheReader,
    id: &str,
    gc_value: &[u8],
) -> Result<Option<Option<Generation>>> {
    if reader.meta("archive")?.as_deref() != Some(id.as_bytes())
        || !matches!(
            reader.meta("schema")?.as_deref(),
            Some(crate::core::filecache::SCHEMA | crate::core::filecache::SCHEMA_BEFORE_MARKS)
        )
    {
        return Ok(None);
    }
    let stored = reader.meta("gc")?.unwrap_or_default();
    let last_there = match reader.meta("last_snapshot")? {
        Some(v) => match crate::core::format::parse_tag_value(&v) {
            Some(k) => repo.backend().exists(&[k])?.first() == Some(&true),
            None => false,
        },
        None => false,
    };
    if stored == gc_value && last_there {
        return Ok(Some(Generation::from_meta(reader.meta("generation")?)));
    }
    // Blocks were removed since, but only by sweeps that completed: a file's content block
    // that still exists still has everything below it, so each entry is checked (one batched
    // `exists` per directory) instead of every file being read again.
    let (was, now) = (
        GcState::parse((!stored.is_empty()).then_some(stored.as_slice())),
        GcState::parse((!gc_value.is_empty()).then_some(gc_value)),
    );
    if stored != gc_value
        && matches!((&was, &now), (GcState::Idle { .. }, GcState::Idle { .. }))
        && was.unclean() == now.unclean()
    {
        protocol::log::info(
            "blocks were removed from the archive since the file cache was written: checking its entries against the archive",
        );
        return Ok(Some(None));
    }
    protocol::log::info(
        "the file cache does not match the archive (it was rolled back or replaced, or a collection stopped part way): reading every file again",
    );
    Ok(None)
}
