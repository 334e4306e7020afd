//! Opening an archive from its identifier.
//!
//! An archive identifier is a command line that starts a backend program speaking the Ore
//! protocol (`backend-fs /mnt/ore`, `ssh nas backend-fs /data`). Opening one starts the program
//! and performs the handshake; every failure names the identifier.

use protocol::{Backend, Client};
use std::sync::Arc;

/// Environment variable naming the archive when no `-a/--archive` is given.
pub const ARCHIVE_ENV: &str = "ORE_ARCHIVE";

/// Opens the archive named by `id`.
pub fn open(id: &str) -> protocol::Result<Arc<dyn Backend>> {
    Ok(Arc::new(Client::connect(id)?))
}
