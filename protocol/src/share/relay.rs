//! The body of a process that relays for the archive's holder, and what it says when the holder
//! goes away under it.
//!
//! A relay copies bytes, unchanged, between its stdin/stdout and the holder's socket. It does
//! not decode messages, but it does follow the frames going by — their headers are enough — so
//! that it knows how many requests it passed on that have not been answered yet. A holder
//! ends its attached connections only after answering everything they sent (a goodbye
//! included), so a connection that ends with requests unanswered means the holder died: it was
//! killed, or it crashed; and so does one that ends, with nothing unanswered, before its
//! frontend closed it or heard a goodbye. The relay then answers each request left unanswered
//! with an error that says so and what to do — the first of them may have been carried out,
//! the rest were not — or, with none waiting, says it on stderr (which its frontend shows above
//! the broken connection its next request finds) and exits with status 1, rather than leaving
//! its frontend to report "the backend exited with status 0". Reconnecting in its
//! place is not done: the holder took with it the answers it owed, and only the frontend can
//! tell which requests are safe to send again (its own run, started again, is).

use crate::error::{Error, ErrorCode, Result};
use crate::frame::{HEADER_LEN, MAGIC};
use crate::message::{kind, Response};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// How a relayed connection ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Relayed {
    /// Nothing came back from the holder: it was ending as this process attached, and the
    /// frontend may start this program again (see [`super::RETRY_EXIT`]).
    Nothing,
    /// The connection ended with every request answered: the frontend closed it, or said
    /// goodbye.
    Done,
    /// The holder went away with `unanswered` requests unanswered; the frontend was told (an
    /// error answer for each, or a line on stderr when the holder stopped inside an answer).
    HolderLost { unanswered: u64 },
}

/// Follows the frames of one direction of a connection from their headers: how many have
/// passed (log frames apart), and whether the stream is between two frames.
struct Frames {
    /// Bytes of the greeting's magic still to pass.
    magic: usize,
    header: [u8; HEADER_LEN],
    have: usize,
    body_left: u64,
    /// Frames that count (everything but log frames).
    counted: u64,
    /// The kind of the last frame that counted.
    last: u8,
}

impl Frames {
    fn new() -> Frames {
        Frames {
            magic: MAGIC.len(),
            header: [0; HEADER_LEN],
            have: 0,
            body_left: 0,
            counted: 0,
            last: 0,
        }
    }

    fn feed(&mut self, mut buf: &[u8]) {
        while !buf.is_empty() {
            if self.magic > 0 {
                let n = self.magic.min(buf.len());
                self.magic -= n;
                buf = &buf[n..];
            } else if self.body_left > 0 {
                let n = (self.body_left.min(buf.len() as u64)) as usize;
                self.body_left -= n as u64;
                buf = &buf[n..];
            } else {
                let n = (HEADER_LEN - self.have).min(buf.len());
                self.header[self.have..self.have + n].copy_from_slice(&buf[..n]);
                self.have += n;
                buf = &buf[n..];
                if self.have == HEADER_LEN {
                    self.have = 0;
                    let h = self.header;
                    self.body_left = u32::from_le_bytes([h[0], h[1], h[2], h[3]]) as u64;
                    if h[4] != kind::LOG {
                        self.counted += 1;
                        self.last = h[4];
                    }
                }
            }
        }
    }

    /// Whether the stream stands between two frames (after the greeting).
    fn at_boundary(&self) -> bool {
        self.magic == 0 && self.have == 0 && self.body_left == 0
    }
}

/// Copies stdin to the attached `stream` and the stream to stdout until the holder's side
/// ends: the body of a process that relays for the archive's holder, described as `holder`
/// in what it says should the holder die under it.
pub fn relay_stdio(stream: UnixStream, holder: &str) -> Result<Relayed> {
    let up = start_upstream(&stream)?;
    let mut from_holder = stream;
    let mut stdout = raw_stdout()?;
    let mut answers = Frames::new();
    let mut passed = 0u64;
    let down = pump(&mut from_holder, &mut stdout, |b| {
        passed += b.len() as u64;
        answers.feed(b);
    });
    // The frontend closed its end (the holder then ends the connection after answering what
    // it sent), or said goodbye and heard it: the connection is over as it should be. (A copy
    // that failed, on the other hand, failed writing to a holder that had gone.) The stdin
    // copy may still be blocked on a frontend that keeps its end open; it ends with the
    // process.
    let closed = up.stdin_ended.load(Ordering::Acquire);
    if let Err(e) = down {
        // Our frontend went away (its end of stdout is closed): nobody is left to tell.
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            return Ok(Relayed::Done);
        }
    }
    if passed == 0 {
        return Ok(Relayed::Nothing);
    }
    let unanswered = up
        .sent
        .load(Ordering::Acquire)
        .saturating_sub(answers.counted);
    let said_goodbye = answers.last == kind::GOODBYE && answers.at_boundary();
    if unanswered == 0 && answers.at_boundary() && (closed || said_goodbye) {
        return Ok(Relayed::Done);
    }
    tell_holder_lost(&mut stdout, holder, unanswered, answers.at_boundary());
    Ok(Relayed::HolderLost { unanswered })
}

/// What the stdin-to-holder copy has done so far, as the thread doing it records it.
struct Upstream {
    /// Frames passed on to the holder (log frames apart).
    sent: Arc<AtomicU64>,
    /// Whether stdin ended (the frontend closed its end) and the copy with it.
    stdin_ended: Arc<AtomicBool>,
}

/// Starts the thread that copies stdin to the holder, counting frames as they pass, and
/// shuts the socket's writing side when stdin ends.
fn start_upstream(stream: &UnixStream) -> Result<Upstream> {
    let mut to_holder = stream
        .try_clone()
        .map_err(|e| Error::io("duplicating the attach socket", e))?;
    let sent = Arc::new(AtomicU64::new(0));
    let stdin_ended = Arc::new(AtomicBool::new(false));
    {
        let (sent, stdin_ended) = (sent.clone(), stdin_ended.clone());
        std::thread::spawn(move || {
            let mut frames = Frames::new();
            let r = pump(&mut std::io::stdin().lock(), &mut to_holder, |b| {
                frames.feed(b);
                sent.store(frames.counted, Ordering::Release);
            });
            // Said before the holder can see it (and end the connection in answer).
            if r.is_ok() {
                stdin_ended.store(true, Ordering::Release);
            }
            let _ = to_holder.shutdown(std::net::Shutdown::Write);
        });
    }
    Ok(Upstream { sent, stdin_ended })
}

/// Standard output through a duplicate of the raw descriptor: the standard library's stdout is
/// line buffered, and would hold answers back until a newline byte happened to pass.
fn raw_stdout() -> Result<std::fs::File> {
    use std::os::fd::AsFd;
    std::io::stdout()
        .as_fd()
        .try_clone_to_owned()
        .map(std::fs::File::from)
        .map_err(|e| Error::io("duplicating stdout", e))
}

/// Tells the frontend that the holder went away with `unanswered` requests unanswered: each
/// request waiting is answered with the message when the answers stopped between two frames
/// (`at_boundary`); otherwise, or with none waiting, the frontend reads it on stderr, above the
/// broken connection its next request finds.
fn tell_holder_lost(stdout: &mut std::fs::File, holder: &str, unanswered: u64, at_boundary: bool) {
    let owed = match unanswered {
        0 => String::new(),
        1 => " with a request unanswered, which may or may not have been carried out".into(),
        n => format!(
            " with {n} requests unanswered: the first may or may not have been carried out, \
             the rest were not"
        ),
    };
    let message = format!(
        "the process holding the archive ({holder}) ended while this connection was relayed \
         through it{owed}. It was killed or it crashed. Run the command again: the next process \
         to start takes the archive over"
    );
    let told = unanswered > 0 && at_boundary && {
        let answer = Response::error(&Error::backend(ErrorCode::Internal, message.clone()));
        (0..unanswered)
            .try_for_each(|_| answer.write_to(&mut *stdout))
            .and_then(|()| stdout.flush())
            .is_ok()
    };
    if !told {
        eprintln!("{message}");
    }
}

/// Copies until the end of `from`, passing on each read at once (no buffering in between, and
/// none of the kernel-side shortcuts `std::io::copy` may take, which can wait to fill a buffer),
/// and showing each piece to `seen` once it has passed.
fn pump(
    from: &mut impl Read,
    to: &mut impl Write,
    mut seen: impl FnMut(&[u8]),
) -> std::io::Result<()> {
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => {
                to.write_all(&buf[..n])?;
                seen(&buf[..n]);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_followed_across_any_split_and_log_frames_do_not_count() {
        let mut stream = MAGIC.to_vec();
        for (k, body) in [
            (kind::WELCOME, 3usize),
            (kind::LOG, 7),
            (kind::OK, 0),
            (kind::DATA, 70000),
        ] {
            stream.extend_from_slice(&(body as u32).to_le_bytes());
            stream.push(k);
            stream.extend(std::iter::repeat_n(0xAAu8, body));
        }
        for split in [1usize, 2, 5, 9, 4096] {
            let mut f = Frames::new();
            for piece in stream.chunks(split) {
                f.feed(piece);
            }
            assert_eq!(f.counted, 3, "split {split}");
            assert!(f.at_boundary());
        }
        let mut torn = Frames::new();
        torn.feed(&stream[..stream.len() - 1]);
        assert!(!torn.at_boundary());
        assert_eq!(torn.counted, 3);
    }
}
