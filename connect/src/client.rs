//! `Client`: a backend program driven over its stdin and stdout.
//!
//! The client starts the program named by an archive identifier, checks its greeting, agrees on
//! a version and then implements [`Backend`](protocol::Backend) by sending requests. It keeps many requests in
//! flight: a request is written as soon as it is issued and its completion is queued; one
//! reader thread matches answers to completions in order (answers come in request order) and
//! hands log frames to the log sink. Requests are buffered and the buffer is flushed when
//! someone waits for an answer, or a millisecond after a request was left in it (see `linger`),
//! so a thread that issues a thousand puts before waiting pays for a handful of writes, not a
//! thousand round trips — and no request sits in a buffer while others' answers are awaited.
//!
//! A client may also join, over a unix socket, the process that serves another client's
//! connection (an attach point, see `protocol::share`): the same protocol, with no program of
//! its own.
//!
//! Failures name the archive identifier: a program that cannot start, a program that prints
//! something other than the greeting, one that dies mid-request (with its exit status), and one
//! that answers out of turn. Opening a connection is in `start`, the greeting in `handshake`,
//! the reader thread and the watchdog in `reader`, the operations of [`Backend`](protocol::Backend) in `calls`, and how a
//! connection ends (a program that runs on after it is left running) in `ending`.

use crate::abandon::{Abandon, Abandonable};
use crate::spawn::describe_exit;
use ore_util::sync::{lock, wait};
use protocol::backend::{AttachPoint, BackendInfo, Ticket};
use protocol::error::{Error, Result};
use protocol::message::{Request, Response};
use std::collections::VecDeque;
use std::io::{BufReader, BufWriter, Read, Write};
use std::os::unix::net::UnixStream;
use std::process::Child;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

mod calls;
mod ending;
mod handshake;
mod reader;
mod start;
use ending::shutdown_child;

/// How a client is set up.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// Most requests in flight at once; issuing more blocks until answers arrive.
    pub window: usize,
    /// How the client introduces itself.
    pub client_name: String,
    /// Extra environment for the backend process (tests use it for fault injection).
    pub env: Vec<(String, String)>,
    /// How long requests may wait with nothing at all arriving from the backend before it is
    /// declared hung, killed, and every waiting request fails (`None`: wait for ever).
    pub timeout: Option<Duration>,
    /// A switch that kills this connection's backend while it is being opened (or once it is
    /// open, until [`Abandon::release`]): for connections opened in the background that the
    /// run may stop needing before they are up.
    pub abandon: Option<Abandon>,
    /// Lines of the backend program's stderr that are expected and handled, shown only at
    /// debug level (an ssh master's report of a forwarded channel the server refused, which
    /// ore answers by falling back to another kind of lane).
    pub expected_stderr: Option<fn(&str) -> bool>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            window: 4096,
            client_name: format!("ore {}", env!("CARGO_PKG_VERSION")),
            env: Vec::new(),
            timeout: None,
            abandon: None,
            expected_stderr: None,
        }
    }
}

type Completion = Box<dyn FnOnce(Result<Response>) + Send>;

/// Where requests go: the backend program's stdin, or a socket.
type Output = Box<dyn Write + Send>;
/// Where answers come from: the backend program's stdout, or a socket.
type Input = BufReader<Box<dyn Read + Send>>;

struct Writer {
    out: Option<BufWriter<Output>>,
    written: u64,
}

#[derive(Default)]
struct Pending {
    queue: VecDeque<Completion>,
    /// Threads waiting for room in the window (so the reader only signals when needed).
    waiters: usize,
}

pub(crate) struct Shared {
    archive: String,
    writer: Mutex<Writer>,
    /// Completions of the requests in flight, oldest first; its length is the window in use.
    pending: Mutex<Pending>,
    /// Requests up to this sequence number have left our buffer.
    flushed: AtomicU64,
    /// Wakes the sender thread when a request is left in the buffer (see `linger`).
    nudge: crate::linger::Nudge,
    /// Why the connection is unusable, once it is.
    dead: Mutex<Option<String>>,
    room: Condvar,
    window: usize,
    child: Mutex<Option<Child>>,
    /// The socket of a connection that joined another's process (no child of its own).
    socket: Option<UnixStream>,
    /// When something last arrived from the backend, or a request was sent while none was
    /// waiting: the watchdog's clock.
    heard: Mutex<Instant>,
}

impl Abandonable for Shared {
    /// Kills the backend of a connection that will not be used (see [`Abandon`]).
    fn abandoned(&self) {
        self.mark_dead("abandoned before it was used".into());
        self.cut();
    }
}

impl Shared {
    fn conn_error(&self, message: impl Into<String>) -> Error {
        Error::Connection {
            archive: self.archive.clone(),
            message: message.into(),
        }
    }

    fn dead_error(&self) -> Option<Error> {
        lock(&self.dead)
            .as_ref()
            .map(|m| self.conn_error(m.clone()))
    }

    /// Waits for room in the window. When the window is full, sends what is buffered (the
    /// answers that free places only come for requests that left our buffer) and waits until
    /// it is half empty, so requests keep leaving in large batches rather than one per answer.
    fn wait_for_room(&self) {
        if lock(&self.pending).queue.len() < self.window {
            return;
        }
        self.flush_all();
        let mut p = lock(&self.pending);
        while p.queue.len() > self.window / 2 {
            p.waiters += 1;
            p = wait(&self.room, p);
            p.waiters -= 1;
        }
    }

    /// The sender thread's step: sends what gathered; false once the connection is closed.
    fn send_gathered(&self) -> bool {
        self.flush_all();
        lock(&self.writer).out.is_some() && lock(&self.dead).is_none()
    }

    /// Sends every request written so far.
    fn flush_all(&self) {
        let written = lock(&self.writer).written;
        self.flush_to(written);
    }

    /// Takes the oldest completion, waking threads waiting for room when there is enough.
    fn pop_completion(&self) -> Option<Completion> {
        let mut p = lock(&self.pending);
        let done = p.queue.pop_front();
        if p.waiters > 0 && p.queue.len() <= self.window / 2 {
            self.room.notify_all();
        }
        done
    }

    /// Writes a request and queues its completion; returns the request's sequence number.
    fn submit(&self, req: &Request, done: Completion) -> u64 {
        self.wait_for_room();
        let mut w = lock(&self.writer);
        if let Some(e) = self.dead_error() {
            drop(w);
            done(Err(e));
            return 0;
        }
        let Some(out) = w.out.as_mut() else {
            drop(w);
            done(Err(self.conn_error("the connection is closed")));
            return 0;
        };
        // Queue the completion before writing, under the writer lock, so completions are in
        // exactly the order requests are written.
        {
            let mut p = lock(&self.pending);
            if p.queue.is_empty() {
                *lock(&self.heard) = Instant::now();
            }
            p.queue.push_back(done);
        }
        let was_empty = out.buffer().is_empty();
        match req.write_to(out) {
            // The first request left in the buffer wakes the sender; it sends the later ones
            // too. (One written straight through, being large, leaves nothing to send.)
            Ok(()) if was_empty && !out.buffer().is_empty() => self.nudge.unsent(),
            Ok(()) => {}
            Err(e) => {
                // The reader sees the end of the stream and fails everything queued, this
                // included.
                self.send_failed(&format!("sending {}", req.op_name()), &e);
                w.out = None;
            }
        }
        w.written += 1;
        w.written
    }

    /// Makes sure request `seq` has left our buffer.
    fn flush_to(&self, seq: u64) {
        if self.flushed.load(Ordering::Acquire) >= seq {
            return;
        }
        let mut w = lock(&self.writer);
        let written = w.written;
        if let Some(out) = w.out.as_mut() {
            if let Err(e) = out.flush() {
                self.send_failed("sending requests", &e);
                w.out = None;
            }
        }
        self.flushed.fetch_max(written, Ordering::AcqRel);
    }

    /// Ends the connection at once: kills the backend program, or shuts the socket.
    fn cut(&self) {
        if let Some(child) = lock(&self.child).as_mut() {
            let _ = child.kill();
        }
        if let Some(s) = &self.socket {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }

    /// Marks the connection dead because writing to it failed, saying how the backend
    /// program ended when it has: a backend that died makes the next write fail (a broken
    /// pipe) as often as the reader sees it go, and its exit is the part that explains.
    fn send_failed(&self, what: &str, e: &std::io::Error) {
        let how = self
            .child_exit()
            .map(|h| format!(" (the backend {h})"))
            .unwrap_or_default();
        self.mark_dead(format!("{what} failed: {e}{how}"));
    }

    fn mark_dead(&self, why: String) {
        let mut d = lock(&self.dead);
        if d.is_none() {
            *d = Some(why);
        }
    }

    /// How the backend program ended, once it has (waiting a moment for it).
    fn child_status(&self) -> Option<std::process::ExitStatus> {
        let mut guard = lock(&self.child);
        let child = guard.as_mut()?;
        let deadline = Instant::now() + Duration::from_millis(500);
        loop {
            match child.try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5))
                }
                _ => return None,
            }
        }
    }

    /// The backend program's exit code, once it has exited.
    fn child_code(&self) -> Option<i32> {
        self.child_status()?.code()
    }

    /// Describes how the backend program ended, once it has.
    fn child_exit(&self) -> Option<String> {
        self.child_status().map(describe_exit)
    }
}

/// A connection to a backend program.
pub struct Client {
    shared: Arc<Shared>,
    info: BackendInfo,
    version: u16,
    reader: Mutex<Option<JoinHandle<()>>>,
    stderr: Mutex<Option<JoinHandle<()>>>,
}

impl Client {
    /// The archive identifier this client was started with.
    pub fn archive(&self) -> &str {
        &self.shared.archive
    }

    /// The backend process's id (while it runs).
    pub fn pid(&self) -> Option<u32> {
        lock(&self.shared.child).as_ref().map(Child::id)
    }

    /// The protocol version agreed on.
    pub fn version(&self) -> u16 {
        self.version
    }

    /// Sends a request and returns a ticket for its converted answer.
    fn call<T, F>(&self, req: Request, convert: F) -> Ticket<T>
    where
        T: Send + 'static,
        F: FnOnce(Response) -> Result<T, Response> + Send + 'static,
    {
        let (tx, rx) = mpsc::sync_channel::<Result<T>>(1);
        let op = req.op_name();
        let archive = self.shared.archive.clone();
        let seq = self.shared.submit(
            &req,
            Box::new(move |r| {
                let r = r.and_then(|resp| match resp {
                    Response::Error { code, message } => Err(Error::Backend {
                        code,
                        message: protocol::log::capped(message),
                    }),
                    other => convert(other).map_err(|other| Error::Connection {
                        archive,
                        message: format!(
                            "protocol error: answer of kind {:#04x} does not fit a {op} request",
                            other.kind()
                        ),
                    }),
                });
                let _ = tx.send(r);
            }),
        );
        let shared = self.shared.clone();
        Ticket::pending(move || {
            shared.flush_to(seq);
            rx.recv().unwrap_or_else(|_| {
                Err(shared
                    .dead_error()
                    .unwrap_or_else(|| shared.conn_error("the connection ended")))
            })
        })
    }

    /// Measures a round trip to the backend with the quickest request there is (an exists of
    /// no keys), sent at once. The time is taken when the answer is read, not when a waiter
    /// gets to it, so a busy machine's scheduling does not pass for a long link.
    pub fn start_round_trip(&self) -> Ticket<Duration> {
        let started = Instant::now();
        self.call_at_once(Request::Exists(Vec::new()), move |r| match r {
            Response::Presence(v) if v.is_empty() => Ok(started.elapsed()),
            o => Err(o),
        })
    }

    /// [`call`](Self::call), with the request sent now rather than a moment later.
    fn call_at_once<T, F>(&self, req: Request, convert: F) -> Ticket<T>
    where
        T: Send + 'static,
        F: FnOnce(Response) -> Result<T, Response> + Send + 'static,
    {
        let t = self.call(req, convert);
        self.shared.flush_all();
        t
    }

    /// Asks where a further connection may join the backend's process, sent at once (see
    /// [`Backend::attach_point`](protocol::Backend::attach_point)).
    pub fn start_attach_point(&self) -> Ticket<AttachPoint> {
        self.call_at_once(Request::AttachPoint, |r| match r {
            Response::AttachPoint(a) => Ok(a),
            o => Err(o),
        })
    }

    /// Says goodbye, waits for the backend to flush and exit, and reports how it ended.
    pub fn close(&self) -> Result<()> {
        let r = self
            .call(Request::Close, |r| match r {
                Response::Goodbye => Ok(()),
                o => Err(o),
            })
            .wait();
        self.end(Duration::from_secs(30));
        r
    }

    /// Ends the connection: closes the backend's stdin and waits up to `grace` for the
    /// program to exit, or to close its stdout — a holder that goes on serving other
    /// connections attached to it does that (see `share`; over ssh, the remote one does, and
    /// ssh passes the end of its output on while it waits for the remote process), and is then
    /// left to run and be reaped in the background, rather than waited for or killed; what it
    /// still writes on stderr is passed on meanwhile. A program that does neither is killed.
    fn end(&self, grace: Duration) {
        let stdout_ended = || {
            lock(&self.reader)
                .as_ref()
                .is_none_or(JoinHandle::is_finished)
        };
        if let Some(child) = shutdown_child(&self.shared, grace, stdout_ended) {
            // The stderr thread ends with the program; nobody waits for either.
            drop(lock(&self.stderr).take());
            let _ = std::thread::Builder::new()
                .name("ore reaper".into())
                .spawn(move || {
                    let mut child = child;
                    let _ = child.wait();
                });
        }
        self.join_threads();
    }

    fn join_threads(&self) {
        if let Some(t) = lock(&self.reader).take() {
            let _ = t.join();
        }
        if let Some(t) = lock(&self.stderr).take() {
            let _ = t.join();
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        // Closing stdin tells the backend to flush and exit; give it time, then kill it.
        self.end(Duration::from_secs(30));
    }
}
