//! `backend-fs DIR`: serves a one-file-per-block archive on stdin/stdout.

use anyhow::Context;
use backend_fs::{FsBackend, FsOptions, Opened};
use ore_util::flags::AccessFlags;
use std::path::PathBuf;

/// Serve an Ore archive stored as one file per block (DIR/blocks/ab/cd/<key>).
///
/// Speaks the Ore backend protocol on stdin and stdout; it is started by `ore` or `ore-admin`
/// from an archive identifier such as "backend-fs /mnt/backup/ore". When DIR is missing or
/// empty, the archive is created by the first write (`ore init`'s): until then it answers as
/// an empty archive and nothing is written there.
#[derive(clap::Parser)]
#[command(name = "backend-fs", version)]
struct Args {
    /// The archive directory.
    dir: PathBuf,
    #[command(flatten)]
    access: AccessFlags,
    /// Largest block accepted, in bytes (kept in the archive's settings).
    #[arg(long, value_name = "BYTES")]
    max_block_size: Option<u32>,
}

fn main() {
    ore_util::flags::main(run)
}

fn run(args: Args) -> anyhow::Result<()> {
    let backend = FsBackend::open_or_vacant(
        &args.dir,
        FsOptions {
            max_block_size: args.max_block_size,
            read_only: args.access.read_only,
        },
    )
    .with_context(|| format!("opening the archive {}", args.dir.display()))?;
    let (append_only, read_only) = (args.access.append_only, args.access.read_only);
    match backend {
        Opened::Archive(b) => protocol::serve::serve_stdio_flags(b, append_only, read_only)?,
        Opened::Vacant(v) => protocol::serve::serve_stdio_flags(v, append_only, read_only)?,
    }
    Ok(())
}
