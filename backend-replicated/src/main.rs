//! `backend-replicated STATE.db`: serves an archive stored on several member backends.

use anyhow::Context;
use backend_replicated::ReplicatedBackend;
use ore_util::flags::AccessFlags;
use std::path::PathBuf;

/// Serve an Ore archive replicated over several member archives.
///
/// Each block goes to members drawn at random by write weight until their trust adds up to
/// 100%; reads go to the holder with the highest read weight. Members are archive identifiers
/// (a directory, or a command line such as "ssh nas backend-splitlog /data"), kept with their
/// trust and weights in STATE.db and managed with ore-admin. With no members it serves a
/// read-only, empty archive.
///
/// Examples:
///   ore-admin "backend-replicated $HOME/ore/state.db" add /mnt/disk1/ore --trust 50
///   ore-admin "backend-replicated $HOME/ore/state.db" add "ssh nas backend-splitlog /data" --trust 100
///   ore-admin "backend-replicated $HOME/ore/state.db" members
///   ore -a "backend-replicated $HOME/ore/state.db" snapshot home ~
#[derive(clap::Parser)]
#[command(name = "backend-replicated", version, verbatim_doc_comment)]
struct Args {
    /// The state file (sqlite; created when missing).
    state: PathBuf,
    #[command(flatten)]
    access: AccessFlags,
}

fn main() {
    ore_util::flags::main(run)
}

fn run(args: Args) -> anyhow::Result<()> {
    protocol::serve::keep_large_buffers();
    let backend = ReplicatedBackend::open(&args.state)
        .with_context(|| format!("opening the replication state {}", args.state.display()))?;
    protocol::serve::serve_stdio_flags(backend, args.access.append_only, args.access.read_only)?;
    Ok(())
}
