//! `backend-cache CACHE.db INNER-ID`: serves an archive through a cache of which blocks it has.

use anyhow::Context;
use backend_cache::CacheBackend;
use ore_util::flags::AccessFlags;
use std::path::PathBuf;

/// Serve an Ore archive through a local cache of which blocks it holds.
///
/// Answers "is this block stored?" from CACHE.db for every block it has seen stored, and asks
/// the inner archive only about the rest, so snapshots to a distant archive skip most round
/// trips. Everything else passes through. INNER-ID is an archive identifier: a directory
/// (opened as a splitlog archive in this process) or a command line, quoted as one argument.
///
/// A cache is only correct if every removal of blocks goes through it: run `ore gc` with the
/// cached identifier, never around it (see `ore-admin ID help`).
///
/// Examples:
///   ore -a "backend-cache $HOME/.cache/ore/nas.db 'ssh nas backend-splitlog /data'" snapshot home ~
///   ore-admin "backend-cache $HOME/.cache/ore/nas.db 'ssh nas backend-splitlog /data'" stats
#[derive(clap::Parser)]
#[command(name = "backend-cache", version, verbatim_doc_comment)]
struct Args {
    /// The cache file (sqlite; created when missing).
    cache: PathBuf,
    /// The archive identifier of the inner backend, as one argument.
    inner: String,
    #[command(flatten)]
    access: AccessFlags,
}

fn main() {
    ore_util::flags::main(run)
}

fn run(args: Args) -> anyhow::Result<()> {
    protocol::serve::keep_large_buffers();
    let backend = CacheBackend::open(&args.cache, &args.inner)
        .with_context(|| format!("opening the cache {}", args.cache.display()))?;
    protocol::serve::serve_stdio_flags(backend, args.access.append_only, args.access.read_only)?;
    Ok(())
}
