//! `backend-splitlog DIR [METADATA]`: serves an append-only log archive on stdin/stdout.

use anyhow::Context;
use backend_splitlog::{Opened, SplitlogBackend, SplitlogOptions};
use ore_util::flags::AccessFlags;
use protocol::share;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Serve an Ore archive kept as append-only log files with a sqlite index.
///
/// Speaks the Ore backend protocol on stdin and stdout; it is started by `ore` or `ore-admin`
/// from an archive identifier such as "backend-splitlog /mnt/backup/ore". When DIR is missing
/// or empty, the archive is created by the first write (`ore init`'s): until then it answers
/// as an empty archive and nothing is written there. One process at a time holds an archive;
/// a second one started on it while the first is running attaches to the first (through
/// DIR/attach.sock) and relays for it, so several connections may use one archive at once. When the holder does not
/// take attachments (an `ore` that opened the archive in process), the second waits for it
/// when started by `ore` (up to its --timeout), and otherwise fails at once, naming the process
/// that holds it.
#[derive(clap::Parser)]
#[command(name = "backend-splitlog", version)]
struct Args {
    /// The directory of the log files.
    dir: PathBuf,
    /// The sqlite index (default DIR/metadata.db); may live on another disk.
    metadata: Option<PathBuf>,
    #[command(flatten)]
    access: AccessFlags,
}

fn main() {
    ore_util::flags::main(run)
}

fn run(args: Args) -> anyhow::Result<()> {
    protocol::serve::keep_large_buffers();
    let access = protocol::Access::from_flags(args.access.append_only, args.access.read_only);
    let socket = share::socket_path(&args.dir);
    // A connection that came through an ssh forced command is restricted by whoever wrote it,
    // and ssh forwarding is usually off for such keys: it is offered no attach point to reach
    // through a forwarding (its frontend then starts this program again for each lane).
    let offer = std::env::var_os("SSH_ORIGINAL_COMMAND").is_none();
    // Started by `ore` (which sets ORE_TIMEOUT), a busy archive is waited for, as one opened
    // in process is: a process that holds it only for a moment more — one that is ending, or
    // one a finished run started and no longer needs — must not fail the next run. Started
    // otherwise, a busy archive that takes no attachments is an error at once.
    // (Giving up a little before the frontend would, so that it hears why; a limit that is
    // not a number waits for ever.)
    let limit = protocol::duration::busy_limit(&args.dir.display().to_string())
        .unwrap_or(None)
        .map(|l| l.mul_f64(0.8));
    let started = Instant::now();
    let mut pause = Duration::from_millis(20);
    let backend = loop {
        let opened = SplitlogBackend::open_or_vacant(
            &args.dir,
            SplitlogOptions {
                metadata: args.metadata.clone(),
                private: false,
            },
        );
        match opened {
            Ok(b) => break b,
            Err(e) if e.code() == protocol::ErrorCode::Locked => {
                // Held by another process: attach to it if it takes attachments.
                // (A holder may have just taken the archive: its socket comes a moment later.)
                let patience = match limit {
                    Some(l) if !l.is_zero() => l.saturating_sub(started.elapsed()),
                    _ => Duration::from_secs(1),
                }
                .min(Duration::from_secs(1));
                let attached = socket
                    .as_deref()
                    .and_then(|s| share::attach(s, access, offer, patience));
                if let Some(stream) = attached {
                    match share::relay_stdio(stream, &holder(&args.dir))? {
                        share::Relayed::Done => return Ok(()),
                        // The holder was ending as we attached: ask to be started again.
                        share::Relayed::Nothing => {
                            eprintln!(
                                "the process holding {} ended before answering; start again",
                                args.dir.display()
                            );
                            std::process::exit(share::RETRY_EXIT);
                        }
                        // Said to the frontend already, in the answers it waited for.
                        share::Relayed::HolderLost { .. } => std::process::exit(1),
                    }
                }
                if limit.is_some_and(|l| started.elapsed() >= l) {
                    return Err(e)
                        .with_context(|| format!("opening the archive {}", args.dir.display()));
                }
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(500));
            }
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("opening the archive {}", args.dir.display()))
            }
        }
    };
    match backend {
        Opened::Archive(b) => share::serve_stdio_sharing(b, access, socket.as_deref(), offer)?,
        // Nothing is there yet, not even an attach point: only a write creates the archive.
        Opened::Vacant(v) => share::serve_stdio_sharing(v, access, None, offer)?,
    }
    Ok(())
}

/// The holder of the archive in `dir`, for a relay's messages: the program, the archive and
/// the pid its lock names.
fn holder(dir: &std::path::Path) -> String {
    let pid = std::fs::read_to_string(dir.join(backend_splitlog::logs::LOCK_FILE))
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok());
    match pid {
        Some(pid) => format!("backend-splitlog {}, pid {pid}", dir.display()),
        None => format!("backend-splitlog {}", dir.display()),
    }
}
