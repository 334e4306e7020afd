//! Opening a connection: starting the backend program (or joining another's process through
//! its attach point), greeting it, and starting the threads that serve the connection. A
//! backend that asks to be started again (exit status [`RETRY_EXIT`] before its greeting, see
//! `protocol::share`) is, a few times.

use super::ending::shutdown_child;
use super::handshake::handshake;
use super::reader::{read_answers, watchdog};
use super::{Client, ClientOptions, Input, Output, Pending, Shared, Writer};
use crate::abandon::Abandonable;
use crate::spawn::{command_for, forward_stderr, grow_pipe};
use protocol::backend::BackendInfo;
use protocol::error::{Error, Result};
use protocol::share::RETRY_EXIT;
use std::io::{BufReader, BufWriter, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How many times a backend is started again when it asks to be.
const RETRIES: u64 = 5;

/// Why a connection attempt failed: for good, or in a way worth trying again.
enum Retry {
    Fail(Error),
    Again(Error),
}

impl From<Error> for Retry {
    fn from(e: Error) -> Retry {
        Retry::Fail(e)
    }
}

/// The two ends of a connection being opened, and what stands behind them.
struct Link {
    out: Output,
    input: Box<dyn Read + Send>,
    child: Option<Child>,
    socket: Option<UnixStream>,
    stderr: Option<JoinHandle<()>>,
}

impl Client {
    /// Starts the backend for `archive` and performs the handshake.
    pub fn connect(archive: &str) -> Result<Client> {
        Client::connect_with(archive, ClientOptions::default())
    }

    /// [`connect`](Self::connect) with options. A backend that exits with [`RETRY_EXIT`] before
    /// its greeting is started again, a few times.
    pub fn connect_with(archive: &str, opts: ClientOptions) -> Result<Client> {
        let mut attempts = 0;
        loop {
            match Client::connect_once(archive, opts.clone()) {
                Err(Retry::Again(_)) if attempts < RETRIES => {
                    attempts += 1;
                    std::thread::sleep(Duration::from_millis(50 * attempts));
                }
                Err(Retry::Again(e) | Retry::Fail(e)) => return Err(e),
                Ok(c) => return Ok(c),
            }
        }
    }

    fn connect_once(archive: &str, opts: ClientOptions) -> std::result::Result<Client, Retry> {
        let (mut cmd, name) = command_for(archive)?;
        let conn = |m: String| Error::Connection {
            archive: archive.to_string(),
            message: m,
        };
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in &opts.env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().map_err(|e| {
            let hint = if e.kind() == std::io::ErrorKind::NotFound {
                " (looked next to this program and on PATH)"
            } else {
                ""
            };
            conn(format!(
                "cannot start `{}`: {e}{hint}",
                cmd.get_program().to_string_lossy()
            ))
        })?;
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(conn("the backend's pipes could not be set up".into()).into());
        };
        // Larger pipes let a whole large block cross in one write instead of sixteen.
        grow_pipe(&stdin);
        grow_pipe(&stdout);
        let expected = opts.expected_stderr;
        let stderr_thread = std::thread::Builder::new()
            .name(format!("{name} stderr"))
            .spawn(move || forward_stderr(&name, stderr, expected))
            .ok();
        let link = Link {
            out: Box::new(stdin),
            input: Box::new(stdout),
            child: Some(child),
            socket: None,
            stderr: stderr_thread,
        };
        Client::start(archive, opts, link)
    }

    /// Joins the process serving another connection to `archive` through its attach point:
    /// connects to the unix socket at `socket` (here, or an ssh forwarding of the one on the
    /// backend's machine), shows `ticket`, and performs the handshake. Fails when the socket
    /// does not answer or the ticket is refused (the connection is then closed before the
    /// greeting).
    pub fn connect_socket(
        archive: &str,
        socket: &Path,
        ticket: &[u8],
        opts: ClientOptions,
    ) -> Result<Client> {
        let conn = |m: String| Error::Connection {
            archive: archive.to_string(),
            message: m,
        };
        let mut stream = UnixStream::connect(socket)
            .map_err(|e| conn(format!("cannot connect to {}: {e}", socket.display())))?;
        let (Ok(input), Ok(own)) = (stream.try_clone(), stream.try_clone()) else {
            return Err(conn("the socket could not be duplicated".into()));
        };
        stream
            .write_all(&protocol::tickets::ticket_preamble(ticket))
            .map_err(|e| conn(format!("writing to {}: {e}", socket.display())))?;
        let link = Link {
            out: Box::new(stream),
            input: Box::new(input),
            child: None,
            socket: Some(own),
            stderr: None,
        };
        Client::start(archive, opts, link).map_err(|(Retry::Fail(e) | Retry::Again(e))| e)
    }

    /// Greets the backend over `link` and starts the threads that serve the connection.
    fn start(archive: &str, opts: ClientOptions, link: Link) -> std::result::Result<Client, Retry> {
        let stderr_thread = link.stderr;
        let shared = Shared::new(archive, opts.window, link.out, link.child, link.socket);
        if let Some(a) = &opts.abandon {
            if !a.register(&shared) {
                shared.abandoned();
            }
        }
        let mut input: Input = BufReader::with_capacity(256 * 1024, link.input);
        let (version, info) = match greet(&shared, &mut input, &opts) {
            Ok(v) => v,
            Err(e) => {
                let again = shared.child_code() == Some(RETRY_EXIT);
                shutdown_child(&shared, Duration::from_millis(200), || false);
                if let Some(t) = stderr_thread {
                    let _ = t.join();
                }
                return Err(if again {
                    Retry::Again(e)
                } else {
                    Retry::Fail(e)
                });
            }
        };
        let reader = start_threads(&shared, input, opts.timeout)?;
        Ok(Client {
            shared,
            info,
            version,
            reader: Mutex::new(Some(reader)),
            stderr: Mutex::new(stderr_thread),
        })
    }
}

impl Shared {
    /// The state of a connection that is about to greet its backend over `out`.
    fn new(
        archive: &str,
        window: usize,
        out: Output,
        child: Option<Child>,
        socket: Option<UnixStream>,
    ) -> Arc<Shared> {
        Arc::new(Shared {
            archive: archive.to_string(),
            writer: Mutex::new(Writer {
                out: Some(BufWriter::with_capacity(256 * 1024, out)),
                written: 0,
            }),
            pending: Mutex::new(Pending::default()),
            flushed: AtomicU64::new(0),
            nudge: Default::default(),
            dead: Mutex::new(None),
            room: Condvar::new(),
            window: window.max(1),
            child: Mutex::new(child),
            socket,
            heard: Mutex::new(Instant::now()),
        })
    }
}

/// Performs the handshake; the error says why it failed (the backend's exit, or the timeout).
fn greet(
    shared: &Arc<Shared>,
    input: &mut Input,
    opts: &ClientOptions,
) -> Result<(u16, BackendInfo)> {
    // A backend that never greets (a hung program, ssh waiting on a network) is given up
    // after the timeout too.
    let greeted = Arc::new(AtomicBool::new(false));
    if let Some(limit) = opts.timeout {
        handshake_timer(shared, &greeted, limit);
    }
    let handshake = handshake(shared, input, &opts.client_name);
    greeted.store(true, Ordering::Release);
    handshake.map_err(|e| match e {
        // Given up by the handshake timer: say so rather than how the child died.
        _ if shared.dead_error().is_some() => shared
            .dead_error()
            .unwrap_or_else(|| shared.conn_error("the handshake failed")),
        Error::Connection { .. } => e,
        other => {
            let exit = shared
                .child_exit()
                .map(|s| format!(" (the backend {s})"))
                .unwrap_or_default();
            shared.conn_error(format!("handshake failed: {other}{exit}"))
        }
    })
}

/// Gives the connection up unless `greeted` is set within `limit`.
fn handshake_timer(shared: &Arc<Shared>, greeted: &Arc<AtomicBool>, limit: Duration) {
    let (shared, greeted) = (shared.clone(), greeted.clone());
    let _ = std::thread::Builder::new()
        .name("ore client handshake timer".into())
        .spawn(move || {
            let started = Instant::now();
            while !greeted.load(Ordering::Acquire) {
                if started.elapsed() >= limit {
                    shared.mark_dead(format!(
                        "the backend did not answer the greeting within {} s (the \
                         limit is set with --timeout or ORE_TIMEOUT)",
                        limit.as_secs_f64()
                    ));
                    shared.cut();
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        });
}

/// Starts the threads that serve a greeted connection: the reader of answers (returned), the
/// sender of what is left in the buffer (see `linger`) and, with a `timeout`, the watchdog.
fn start_threads(
    shared: &Arc<Shared>,
    input: Input,
    timeout: Option<Duration>,
) -> Result<JoinHandle<()>> {
    let reader_shared = shared.clone();
    let reader = std::thread::Builder::new()
        .name("ore client reader".into())
        .spawn(move || read_answers(&reader_shared, input))
        .map_err(|e| shared.conn_error(format!("cannot start the reader thread: {e}")))?;
    let weak = Arc::downgrade(shared);
    std::thread::Builder::new()
        .name("ore client sender".into())
        .spawn(move || crate::linger::run(weak, |s: &Shared| &s.nudge, Shared::send_gathered))
        .map_err(|e| shared.conn_error(format!("cannot start the sender thread: {e}")))?;
    if let Some(limit) = timeout {
        let weak = Arc::downgrade(shared);
        std::thread::Builder::new()
            .name("ore client watchdog".into())
            .spawn(move || watchdog(weak, limit))
            .map_err(|e| shared.conn_error(format!("cannot start the watchdog thread: {e}")))?;
    }
    Ok(reader)
}
