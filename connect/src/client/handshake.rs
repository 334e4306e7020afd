//! The greeting that opens a connection, and what counts as a backend that speaks Ore.
//!
//! The client sends its magic and a hello offering a range of versions; the backend must
//! answer with its magic and a welcome that picks a version from that range (PROTOCOL.md).
//! Anything else ends the connection before a request is sent: a welcome with a version we
//! did not offer (naming both), an error, and above all a program that does not speak the
//! protocol at all — one that echoes what it is sent (`cat`) gets past the magic, so an
//! answer that is not a welcome says that, rather than quoting a kind byte.

use super::{lock, Input, Shared};
use protocol::backend::BackendInfo;
use protocol::error::{Error, Result};
use protocol::frame::{read_frame, read_magic, MAGIC, MAX_FRAME_BODY};
use protocol::log;
use protocol::message::{Hello, Request, Response};
use protocol::serve::{MAX_VERSION, MIN_VERSION};
use std::io::Write;
use std::sync::Arc;

pub(super) fn handshake(
    shared: &Arc<Shared>,
    input: &mut Input,
    client_name: &str,
) -> Result<(u16, BackendInfo)> {
    {
        let mut w = lock(&shared.writer);
        if let Some(out) = w.out.as_mut() {
            let hello = Request::Hello(Hello {
                min_version: MIN_VERSION,
                max_version: MAX_VERSION,
                client: client_name.to_string(),
            });
            // A failed write means the child is already gone; reading says why.
            let _ = out
                .write_all(&MAGIC)
                .and_then(|()| hello.write_to(out))
                .and_then(|()| out.flush());
        }
    }
    let gone = |shared: &Shared, what: &str| {
        let how = shared
            .child_exit()
            .unwrap_or_else(|| "closed its output".to_string());
        // The shells' (and ssh's, passing on the remote shell's) codes for a command that
        // could not be found or run: the usual reason is a backend not installed where it runs.
        let why = match shared.child_code() {
            Some(127) => {
                ": a program it names was not found (for `ssh HOST backend-...`, on that host: \
                 install the backend there, with `cargo install --locked --path backend-splitlog` \
                 in an Ore checkout or by copying the binary into a directory on the PATH that \
                 `ssh HOST 'command -v backend-splitlog'` sees, or give its full path)"
            }
            Some(126) => ": a program it names was found but could not be run (not executable?)",
            _ => "",
        };
        shared.conn_error(format!("the backend {how} {what}{why}"))
    };
    match read_magic(input) {
        Ok(()) => {}
        Err(Error::Protocol(m)) if m.contains("closed the connection") => {
            return Err(gone(shared, "before answering"))
        }
        Err(e) => return Err(shared.conn_error(e.to_string())),
    }
    let not_ore = |what: String| {
        shared.conn_error(format!(
            "the program does not speak the Ore protocol: {what} instead of a welcome"
        ))
    };
    loop {
        let frame = read_frame(input, MAX_FRAME_BODY)
            .map_err(|e| shared.conn_error(format!("during the handshake: {e}")))?
            .ok_or_else(|| gone(shared, "during the handshake"))?;
        let kind = frame.kind;
        let answer = Response::decode(frame)
            .map_err(|_| not_ore(format!("it answered with a frame of kind {kind:#04x}")))?;
        match answer {
            Response::Welcome(w) if (MIN_VERSION..=MAX_VERSION).contains(&w.version) => {
                return Ok((w.version, w.info))
            }
            Response::Welcome(w) => {
                return Err(shared.conn_error(format!(
                    "the backend chose protocol version {}, but we offered versions \
                     {MIN_VERSION} to {MAX_VERSION}",
                    w.version
                )))
            }
            Response::Log { level, message } => log::log(level, &log::capped(message)),
            Response::Error { code, message } => {
                let message = log::capped(message);
                return Err(
                    shared.conn_error(format!("the backend refused us ({code}): {message}"))
                );
            }
            other => {
                return Err(not_ore(format!(
                    "it answered with an answer of kind {:#04x}",
                    other.kind()
                )))
            }
        }
    }
}
