//! `serve`: the one server loop every backend program runs on its stdin and stdout.
//!
//! Writing it once means every backend gets the same handshake, the same treatment of bad
//! input, the same pipelining behaviour and the same fault injection. Requests are executed in
//! the order they arrive and answered in that order; answers are buffered and only flushed when
//! no further request is already waiting in the input buffer, so a client that pipelines
//! hundreds of small requests gets its answers in a few large writes.

use crate::answers::{send, SharedOut};
use crate::backend::Backend;
use crate::error::{Error, ErrorCode, Result};
use crate::fault::Fault;
use crate::frame::{read_frame, read_magic, MAGIC, MAX_FRAME_BODY};
use crate::log::{self, LogSink};
use crate::message::{Hello, Level, Request, Response, Welcome};
use ore_util::sync::{lock, wait};
use std::io::{BufReader, BufWriter, Read, Write};
use std::sync::{mpsc, Arc, Condvar, Mutex};

mod execute;
use execute::execute_all;

/// Oldest protocol version this implementation speaks.
pub const MIN_VERSION: u16 = 1;
/// Newest protocol version this implementation speaks.
pub const MAX_VERSION: u16 = 1;

/// Picks the version for a hello, or explains why there is none.
pub fn negotiate(hello: &Hello) -> Result<u16> {
    let lo = hello.min_version.max(MIN_VERSION);
    let hi = hello.max_version.min(MAX_VERSION);
    if hello.min_version > hello.max_version || lo > hi {
        return Err(Error::backend(
            ErrorCode::VersionMismatch,
            format!(
                "no common protocol version: the client speaks {}–{}, this server speaks {MIN_VERSION}–{MAX_VERSION}",
                hello.min_version, hello.max_version
            ),
        ));
    }
    Ok(hi)
}

/// Sends log messages to the client as log frames.
struct FrameSink<W: Write + Send> {
    out: SharedOut<W>,
}

impl<W: Write + Send> LogSink for FrameSink<W> {
    fn log(&self, level: Level, message: &str) {
        let r = Response::Log {
            level,
            message: message.to_string(),
        };
        // A log message is sent at once: the user should see a warning when it happens.
        if send(&self.out, &r, true).is_err() {
            log::StderrSink.log(level, message);
        }
    }
}

/// Serves one connection: greeting, handshake, then requests until the client closes.
///
/// Returns `Ok(())` on a clean close (a close request, or end of input between frames) and an
/// error when the stream breaks the protocol or the output fails. While it runs, the process's
/// log sink sends log frames to this client.
pub fn serve<B, R, W>(backend: &B, input: R, output: W) -> Result<()>
where
    B: Backend + ?Sized,
    R: Read + Send + 'static,
    W: Write + Send + 'static,
{
    serve_connection(backend, input, output, true)
}

/// [`serve`], saying whether this connection takes over the process's log sink (a process
/// serving several connections at once gives it to one of them, its own).
pub(crate) fn serve_connection<B, R, W>(backend: &B, input: R, output: W, sink: bool) -> Result<()>
where
    B: Backend + ?Sized,
    R: Read + Send + 'static,
    W: Write + Send + 'static,
{
    let info = backend.info();
    let fault = Fault::from_env()?.filter(|f| f.applies_to(&info.server));
    let mut input = BufReader::with_capacity(256 * 1024, input);
    let out: SharedOut<W> = Arc::new(Mutex::new(BufWriter::with_capacity(256 * 1024, output)));
    {
        let mut w = lock(&out);
        w.write_all(&MAGIC)
            .and_then(|()| w.flush())
            .map_err(|e| Error::io("writing the protocol greeting", e))?;
    }
    if let Err(e) = read_magic(&mut input) {
        let _ = send(&out, &Response::error(&e), true);
        return Err(e);
    }
    let hello = match read_frame(&mut input, MAX_FRAME_BODY)? {
        None => return Ok(()),
        Some(f) => match Request::decode(f) {
            Ok(Request::Hello(h)) => h,
            Ok(other) => {
                let e = Error::Protocol(format!(
                    "the first message must be hello, got {}",
                    other.op_name()
                ));
                let _ = send(&out, &Response::error(&e), true);
                return Err(e);
            }
            Err(e) => {
                let _ = send(&out, &Response::error(&e), true);
                return Err(e);
            }
        },
    };
    let version = match negotiate(&hello) {
        Ok(v) => v,
        Err(e) => {
            let _ = send(&out, &Response::error(&e), true);
            return Err(e);
        }
    };
    send(&out, &Response::Welcome(Welcome { version, info }), true)?;

    if !sink {
        return request_loop(backend, input, &out, fault);
    }
    let previous = log::set_sink(Some(Arc::new(FrameSink { out: out.clone() })));
    let result = request_loop(backend, input, &out, fault);
    log::set_sink(previous);
    result
}

/// What the reader thread hands to the executing thread, in arrival order.
enum Incoming {
    Request(Result<Request>, usize),
    /// Clean end of input between frames.
    End,
    /// The stream broke (torn frame, oversized length, read error): nothing after it is
    /// trustworthy.
    Broken(Error),
}

/// Bytes of received requests not yet executed, bounded so a fast client cannot make the
/// server buffer without limit.
struct Budget {
    used: Mutex<usize>,
    freed: Condvar,
}

const QUEUE_BYTES: usize = 4 << 20;

impl Budget {
    fn take(&self, n: usize) {
        let mut used = lock(&self.used);
        // A single request larger than the whole budget still goes through, alone.
        while *used > 0 && *used + n > QUEUE_BYTES {
            used = wait(&self.freed, used);
        }
        *used += n;
    }

    fn give(&self, n: usize) {
        *lock(&self.used) -= n;
        self.freed.notify_all();
    }
}

/// Reads and decodes requests on their own thread, so that receiving the next request (often
/// a large block) overlaps with executing the current one. Requests are handed over in
/// batches: every complete request already in the input buffer goes in one batch, and the
/// executing side flushes its answers only after a batch when no further batch is waiting.
fn spawn_reader<R: Read + Send + 'static>(
    mut input: BufReader<R>,
    budget: Arc<Budget>,
) -> Result<(mpsc::Receiver<Vec<Incoming>>, std::thread::JoinHandle<()>)> {
    let (tx, rx) = mpsc::channel();
    let handle = std::thread::Builder::new()
        .name("ore serve reader".into())
        .spawn(move || loop {
            let mut batch = Vec::new();
            let last = loop {
                let item = match read_frame(&mut input, MAX_FRAME_BODY) {
                    Ok(Some(f)) => {
                        let n = f.body.len() + crate::frame::HEADER_LEN;
                        budget.take(n);
                        Incoming::Request(Request::decode(f), n)
                    }
                    Ok(None) => Incoming::End,
                    Err(e) => Incoming::Broken(e),
                };
                // Nothing after a close is read (PROTOCOL.md, section 6).
                let last = !matches!(item, Incoming::Request(Ok(ref r), _) if *r != Request::Close)
                    && !matches!(item, Incoming::Request(Err(_), _));
                batch.push(item);
                if last || !complete_frame_buffered(input.buffer()) || batch.len() >= 1024 {
                    break last;
                }
            };
            if tx.send(batch).is_err() || last {
                return;
            }
        })
        .map_err(|e| Error::io("starting the request reader thread", e))?;
    Ok((rx, handle))
}

/// Whether `buf` starts with a complete frame (so reading it will not block).
fn complete_frame_buffered(buf: &[u8]) -> bool {
    if buf.len() < crate::frame::HEADER_LEN {
        return false;
    }
    let len = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    buf.len() - crate::frame::HEADER_LEN >= len
}

fn request_loop<B, R, W>(
    backend: &B,
    input: BufReader<R>,
    out: &SharedOut<W>,
    fault: Option<Fault>,
) -> Result<()>
where
    B: Backend + ?Sized,
    R: Read + Send + 'static,
    W: Write + Send + 'static,
{
    let budget = Arc::new(Budget {
        used: Mutex::new(0),
        freed: Condvar::new(),
    });
    let (incoming, reader) = spawn_reader(input, budget.clone())?;
    let (result, reader_ended) = execute_all(backend, &incoming, &budget, out, fault);
    // Once the reader has handed over its last item (a close, the end of input, or a broken
    // stream) it is about to exit: wait for it. Otherwise (answers could not be written) it may
    // be blocked reading input the client has not closed: leave it; the process or the
    // connection ends without it.
    if reader_ended || reader.is_finished() {
        let _ = reader.join();
    }
    result
}

/// Runs one request against the backend and forms its answer.
pub fn execute<B: Backend + ?Sized>(backend: &B, request: Request) -> Response {
    let r: Result<Response> = match request {
        Request::Hello(_) => Err(Error::backend(
            ErrorCode::BadRequest,
            "hello may only be sent once, at the start",
        )),
        Request::Put { key, data } => backend.put(key, &data).map(|()| Response::Ok),
        Request::Get(key) => backend.get(key).map(|d| match d {
            Some(d) => Response::Data(d),
            None => Response::Missing,
        }),
        Request::Exists(keys) => backend.exists(&keys).map(Response::Presence),
        Request::Remove(keys) => backend.remove(&keys).map(|()| Response::Ok),
        Request::List { after, limit } => backend
            .list(after, limit)
            .map(|(keys, more)| Response::Keys { keys, more }),
        Request::GetTag(name) => backend.get_tag(&name).map(Response::Tag),
        Request::SetTag(s) => backend
            .set_tag(&s.name, s.expected.as_deref(), &s.value)
            .map(Response::TagSet),
        Request::RemoveTag(r) => backend
            .remove_tag(&r.name, r.expected.as_deref())
            .map(Response::TagSet),
        Request::ListTags => backend.list_tags().map(Response::Tags),
        Request::Flush => backend.flush().map(|()| Response::Ok),
        Request::Stats => backend.stats().map(Response::Stats),
        Request::Admin(a) => backend.admin(&a.command, &a.args).map(Response::Admin),
        Request::AttachPoint => backend.attach_point().map(Response::AttachPoint),
        Request::Close => Ok(Response::Goodbye),
    };
    r.unwrap_or_else(|e| Response::error(&e))
}

/// Runs `serve` on the process's stdin and stdout: the body of every backend program's `main`.
///
/// Stdout belongs to the protocol from here on; anything a backend wants to say goes through
/// the log functions or stderr. Both streams are used through duplicated raw descriptors, so
/// the standard library's line buffering never splits a frame into many writes.
pub fn serve_stdio<B: Backend + ?Sized>(backend: &B) -> Result<()> {
    use std::os::fd::AsFd;
    keep_large_buffers();
    let dup = |fd: std::os::fd::BorrowedFd<'_>, what: &str| {
        fd.try_clone_to_owned()
            .map(std::fs::File::from)
            .map_err(|e| Error::io(format!("duplicating {what}"), e))
    };
    let stdin = dup(std::io::stdin().as_fd(), "stdin")?;
    let stdout = dup(std::io::stdout().as_fd(), "stdout")?;
    serve(backend, stdin, stdout)
}

/// [`serve_stdio`] for a backend program's `--append-only` and `--read-only` flags.
pub fn serve_stdio_flags<B: Backend>(backend: B, append_only: bool, read_only: bool) -> Result<()> {
    let access = crate::restrict::Access::from_flags(append_only, read_only);
    serve_stdio(&crate::restrict::Restricted::new(backend, access))
}

/// Makes the allocator keep large buffers (blocks of up to 64 MiB) on its heap for reuse
/// instead of mapping and unmapping each one: with one fresh mapping per block, page faults,
/// zeroing and cross-CPU TLB flushes on unmap cost more than moving the block's bytes. Called
/// by every backend program that allocates with glibc (backend-s3 uses jemalloc, and a
/// snapshot in the frontend sets the opposite, see `ore::core::util::return_large_buffers`);
/// a no-op where the C library has no `mallopt`.
pub fn keep_large_buffers() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tuning parameters.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 512 << 20);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation() {
        let h = |min, max| Hello {
            min_version: min,
            max_version: max,
            client: "t".into(),
        };
        assert_eq!(negotiate(&h(1, 5)).unwrap(), 1);
        let e = negotiate(&h(2, 3)).unwrap_err().to_string();
        assert!(e.contains("2–3") && e.contains("1–1"), "{e}");
        assert!(negotiate(&h(3, 1)).is_err());
    }
}
