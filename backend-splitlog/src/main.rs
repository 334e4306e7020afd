//! `backend-splitlog DIR [METADATA]`: serves an append-only log archive on stdin/stdout.

use anyhow::Context;
use backend_splitlog::{SplitlogBackend, SplitlogOptions};
use clap::Parser;
use protocol::share;
use std::path::PathBuf;
use std::time::Duration;

/// Serve an Ore archive kept as append-only log files with a sqlite index.
///
/// Speaks the Ore backend protocol on stdin and stdout; it is started by `ore` or `ore-admin`
/// from an archive identifier such as "backend-splitlog /mnt/backup/ore". The archive is
/// created when DIR is missing or empty. One process at a time holds an archive; a second one
/// started on it while the first is running attaches to the first (through DIR/attach.sock) and
/// relays for it, so several connections may use one archive at once. When the holder does not
/// take attachments (an `ore` that opened the archive in process), the second fails at once,
/// naming the process that holds it.
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
    let access = protocol::Access::from_flags(args.append_only, args.read_only);
    let socket = share::socket_path(&args.dir);
    let opened = SplitlogBackend::open(
        &args.dir,
        SplitlogOptions {
            metadata: args.metadata,
        },
    );
    let backend = match opened {
        Ok(b) => b,
        Err(e) if e.code() == protocol::ErrorCode::Locked => {
            // Held by another process: attach to it if it takes attachments.
            let attached = socket
                .as_deref()
                .and_then(|s| share::attach(s, access, Duration::from_secs(1)));
            match attached {
                Some(stream) => return Ok(share::relay_stdio(stream)?),
                None => {
                    return Err(e)
                        .with_context(|| format!("opening the archive {}", args.dir.display()))
                }
            }
        }
        Err(e) => {
            return Err(e).with_context(|| format!("opening the archive {}", args.dir.display()))
        }
    };
    share::serve_stdio_sharing(backend, access, socket.as_deref())?;
    Ok(())
}
