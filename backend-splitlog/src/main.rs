//! `backend-splitlog DIR [METADATA]`: serves an append-only log archive on stdin/stdout.

use anyhow::Context;
use backend_splitlog::{SplitlogBackend, SplitlogOptions};
use clap::Parser;
use std::path::PathBuf;

/// Serve an Ore archive kept as append-only log files with a sqlite index.
///
/// Speaks the Ore backend protocol on stdin and stdout; it is started by `ore` or `ore-admin`
/// from an archive identifier such as "backend-splitlog /mnt/backup/ore". The archive is
/// created when DIR is missing or empty. Only one process may open an archive at a time; a
/// second one fails at once, naming the process that holds it.
#[derive(Parser)]
#[command(name = "backend-splitlog", version)]
struct Args {
    /// The directory of the log files.
    dir: PathBuf,
    /// The sqlite index (default DIR/metadata.db); may live on another disk.
    metadata: Option<PathBuf>,
    /// Accept puts and tag moves only: refuse removals, tag removals and admin commands that
    /// change anything (for an ssh forced command on a machine that makes backups).
    #[arg(long)]
    append_only: bool,
    /// Serve reads only.
    #[arg(long)]
    read_only: bool,
}

fn main() {
    let args = Args::parse();
    if let Err(e) = run(args) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    protocol::serve::keep_large_buffers();
    let backend = SplitlogBackend::open(
        &args.dir,
        SplitlogOptions {
            metadata: args.metadata,
        },
    )
    .with_context(|| format!("opening the archive {}", args.dir.display()))?;
    protocol::serve::serve_stdio_flags(backend, args.append_only, args.read_only)?;
    Ok(())
}
