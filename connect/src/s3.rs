//! Archives in an object store, opened in this process.
//!
//! An identifier whose first word is an `s3://` URL is backend-s3's command line without the
//! program's name (`s3://bucket/ore --endpoint http://nas:8333`): the archive is opened with
//! backend-s3's library, in the frontend's own process, as a plain path opens the default local
//! store. Through a child process every block crossed a pipe, two copies and a second
//! process's threads, and each run started that process and its runtime. Measured on
//! /usr/share through SeaweedFS (backend-s3/LAYOUT.md, "Requests"). `backend-s3 s3://...`
//! still starts the program, for ssh forced commands and for anyone who wants it apart.
//!
//! The options are the program's own, parsed by the same definition
//! (`backend_s3::cli::Args`), and `--append-only`/`--read-only` wrap the backend in the same
//! restriction the program serves it through.

use protocol::restrict::{Access, Restricted};
use protocol::{Backend, Error, ErrorCode, Result};
use std::sync::Arc;

/// Whether `id` names an archive in an object store, to be opened in process.
pub fn is_s3(id: &str) -> bool {
    id.trim_start().starts_with("s3://")
}

/// Opens the archive that `id` (an `s3://` identifier, see [`is_s3`]) names.
pub fn open(id: &str) -> Result<Arc<dyn Backend>> {
    let invalid =
        |m: String| Error::backend(ErrorCode::InvalidArgument, format!("archive `{id}`: {m}"));
    let words = shell_words::split(id).map_err(|e| invalid(format!("cannot split it: {e}")))?;
    let args = backend_s3::cli::Args::from_words(&words)
        .map_err(|e| invalid(e.render().to_string().trim_end().to_string()))?;
    let backend = args.open()?;
    let access = Access::from_flags(args.access.append_only, args.access.read_only);
    Ok(Arc::new(Restricted::new(backend, access)))
}
