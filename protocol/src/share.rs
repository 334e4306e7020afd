//! One process holding an archive, serving others that attach to it.
//!
//! Some stores allow one process per archive (splitlog keeps an index it alone may write). Yet
//! a frontend may want several connections to one archive at once — lanes over ssh, where each
//! connection brings its own flow-control window — and each connection is a process started
//! from the same archive identifier. So the process that opened the archive also listens on a
//! unix socket next to it (`attach.sock`, mode 0600, in the archive's 0700 directory), and a
//! later process started on the same archive, finding it held, becomes a relay: it connects to
//! the socket, names its own access (its `--append-only`/`--read-only` flags) and proves that
//! it is a relay (below), and then copies bytes both ways between its stdin/stdout and the
//! socket. The holder serves each attached connection with the same loop as its own,
//! restricted as the relay asked.
//!
//! Attachments last as long as the holder's own connection (the frontend that started it waits
//! for it to exit). When that ends, the socket goes away first, so nothing new attaches; each
//! attached connection then reads no further requests — the ones already received are answered
//! — and sees its connection end, as if its backend had closed. A frontend with several lanes
//! therefore closes the attached ones first when any of them may hold a put not yet flushed
//! (otherwise all at once: nothing is left for the holder to read). A socket left by a crashed
//! holder is replaced by the next one (it holds the archive's lock, so no live holder owns that
//! socket).
//!
//! A connection need not bring a process at all: asked for its attach point, the holder names
//! its socket and a ticket ([`Tickets`]), and a client that reaches the socket — through an ssh
//! forwarding, for lanes over ssh — shows the ticket instead of declaring an access. The ticket
//! carries the access of the connection it was issued to, so no one gains by attaching.
//!
//! # Nothing reached through the socket claims more than the key it came from
//!
//! The socket can be reached by more than the holder's relays: an ssh key whose
//! `authorized_keys` line forces `--append-only` but lacks `restrict` may still forward a local
//! socket to `DIR/attach.sock`, and its connection then arrives as the sshd process of the
//! archive owner's uid — `SO_PEERCRED` cannot tell it from a relay. What such a key cannot do
//! is read a file: every command it asks for is replaced by the forced one. So a declared
//! access is believed only with the holder's *relay secret*: 32 random bytes the holder makes
//! when it takes the archive and writes, before it listens, to `DIR/attach.key` (mode 0600,
//! replaced by each holder, removed with the socket). A relay reads the file after it has
//! connected and sends the secret after its access byte; the holder compares it in constant
//! time and closes, before any greeting, a connection that declares an access without it. A
//! relay is this program started with its own flags, so what it declares is what its key was
//! given. Everything else that reaches the socket must show a ticket, which only a connection
//! the holder already served can have been given, with its own access. Hence an append-only key
//! that forwards to the holder it started itself, or to the owner's full-access holder, gets
//! nothing it did not already have (test: `tests/tests/attach_forwarding.rs`).

use crate::backend::{AttachPoint, Backend};
use crate::error::{Error, ErrorCode, Result};
use crate::restrict::{Access, Restricted};
use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The socket's name inside the archive directory.
pub const SOCKET: &str = "attach.sock";
/// The relay secret's file, next to the socket.
pub const SECRET: &str = "attach.key";

/// Longest socket path a `sockaddr_un` holds, with room for its NUL.
const PATH_MAX: usize = 107;

/// The socket of the archive in `dir`, when its path fits in a socket address.
pub fn socket_path(dir: &Path) -> Option<PathBuf> {
    let p = std::path::absolute(dir).ok()?.join(SOCKET);
    (p.as_os_str().len() <= PATH_MAX).then_some(p)
}

/// The first byte of an attachment that shows a ticket (the ticket's bytes follow) instead
/// of declaring an access.
const SHOWS_TICKET: u8 = 3;
/// Set in a relay's access byte when its own connection is not to be offered attach points
/// (it came in through an ssh forced command, which is there to restrict it).
const NO_ATTACH_POINTS: u8 = 0x10;
/// How long an attaching peer has to send its preamble.
const ADMISSION_PATIENCE: Duration = Duration::from_secs(30);
/// Length of a ticket, and of the relay secret.
pub const TICKET_LEN: usize = 32;

/// 32 bytes from the operating system's random source.
fn random_bytes(what: &str) -> Result<[u8; TICKET_LEN]> {
    let mut t = [0u8; TICKET_LEN];
    getrandom::getrandom(&mut t)
        .map_err(|e| Error::backend(ErrorCode::Internal, format!("no random {what}: {e}")))?;
    Ok(t)
}

/// Whether two secrets are equal, compared in constant time.
fn same_secret(a: &[u8; TICKET_LEN], b: &[u8; TICKET_LEN]) -> bool {
    a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

/// The relay secret's file for the socket at `socket`.
fn secret_path(socket: &Path) -> PathBuf {
    socket.with_file_name(SECRET)
}

/// Makes a fresh relay secret and writes it next to `socket`, readable by its owner only
/// (written under a temporary name and renamed, so a relay never reads half of it).
fn write_secret(socket: &Path) -> Result<[u8; TICKET_LEN]> {
    use std::os::unix::fs::OpenOptionsExt;
    let secret = random_bytes("relay secret")?;
    let path = secret_path(socket);
    let temp = path.with_extension("key.new");
    let _ = std::fs::remove_file(&temp);
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temp)
        .and_then(|mut f| f.write_all(&secret))
        .and_then(|()| std::fs::rename(&temp, &path))
        .map_err(|e| Error::io(format!("writing the relay secret {}", path.display()), e))?;
    Ok(secret)
}

/// The relay secret of the holder listening on `socket`, if it can be read.
fn read_secret(socket: &Path) -> Option<[u8; TICKET_LEN]> {
    std::fs::read(secret_path(socket)).ok()?.try_into().ok()
}

/// The tickets a holder hands out with its attach point: one per access level, made at first
/// request from the operating system's random source and valid while the holder lives. A
/// ticket admits a connection with the access of the connection it was issued to, so a
/// connection can never gain by attaching — however it reaches the socket (an ssh forwarding
/// of it, say), it must have been served first with at least that access.
pub struct Tickets {
    socket: String,
    issued: Mutex<Vec<([u8; TICKET_LEN], Access)>>,
}

impl Tickets {
    /// Tickets for attachments through `socket` (`None` when its path is not UTF-8: no
    /// attach point can then be named in the protocol).
    pub fn new(socket: &Path) -> Option<Tickets> {
        Some(Tickets {
            socket: socket.to_str()?.to_string(),
            issued: Mutex::new(Vec::new()),
        })
    }

    /// The attach point, with the ticket for `access`.
    pub fn issue(&self, access: Access) -> Result<AttachPoint> {
        let mut issued = self.issued.lock().unwrap_or_else(|p| p.into_inner());
        let ticket = match issued.iter().find(|(_, a)| *a == access) {
            Some((t, _)) => *t,
            None => {
                let t = random_bytes("ticket")?;
                issued.push((t, access));
                t
            }
        };
        Ok(AttachPoint {
            socket: self.socket.clone(),
            ticket: ticket.to_vec(),
        })
    }

    /// The access `ticket` was issued for, if it was (compared in constant time).
    fn admit(&self, ticket: &[u8; TICKET_LEN]) -> Option<Access> {
        let issued = self.issued.lock().unwrap_or_else(|p| p.into_inner());
        let mut found = None;
        for (t, a) in issued.iter() {
            if same_secret(t, ticket) {
                found = Some(*a);
            }
        }
        found
    }
}

/// What a process that joins through an attach point sends first: the ticket it was given.
pub fn ticket_preamble(ticket: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(1 + ticket.len());
    v.push(SHOWS_TICKET);
    v.extend_from_slice(ticket);
    v
}

fn access_byte(a: Access) -> u8 {
    match a {
        Access::Full => 0,
        Access::AppendOnly => 1,
        Access::ReadOnly => 2,
    }
}

fn access_of(b: u8) -> Option<Access> {
    match b {
        0 => Some(Access::Full),
        1 => Some(Access::AppendOnly),
        2 => Some(Access::ReadOnly),
        _ => None,
    }
}

/// Serves this process's stdin/stdout with `access`, and every process that attaches through
/// `socket` (when given) with the access it asks for (with the relay secret) or its ticket
/// carries. Connections are
/// offered attach points unless `offer` is false for this process's own one (it came through an
/// ssh forced command) or a relay says so for its own. Returns when its own connection and
/// every attached one have ended.
pub fn serve_stdio_sharing<B: Backend + 'static>(
    backend: B,
    access: Access,
    socket: Option<&Path>,
    offer: bool,
) -> Result<()> {
    let backend = Arc::new(backend);
    let Some(socket) = socket else {
        return crate::serve::serve_stdio(&Restricted::new(backend, access));
    };
    let _ = std::fs::remove_file(socket);
    // The secret is in place before anything can connect.
    let secret = write_secret(socket)?;
    let listener = UnixListener::bind(socket)
        .map_err(|e| Error::io(format!("listening on {}", socket.display()), e))?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| Error::io(format!("restricting {}", socket.display()), e))?;
    }
    let closing = Arc::new(AtomicBool::new(false));
    let tickets = Tickets::new(socket).map(Arc::new);
    let acceptor = {
        let (backend, closing, tickets) = (backend.clone(), closing.clone(), tickets.clone());
        std::thread::Builder::new()
            .name("ore attach".into())
            .spawn(move || accept_loop(listener, backend, closing, tickets, secret))
            .map_err(|e| Error::io("starting the attach thread", e))?
    };
    let own = Restricted::new(backend.clone(), access).with_tickets(tickets.filter(|_| offer));
    let own = crate::serve::serve_stdio(&own);
    // No new attachments: wake the acceptor, which sees `closing`, then remove the name.
    closing.store(true, Ordering::Release);
    let _ = UnixStream::connect(socket);
    let _ = std::fs::remove_file(socket);
    let _ = std::fs::remove_file(secret_path(socket));
    let attached = acceptor.join().unwrap_or_default();
    // The attached connections read nothing more; what they received is answered.
    for (_, stream) in &attached {
        let _ = stream.shutdown(std::net::Shutdown::Read);
    }
    for (t, _) in attached {
        let _ = t.join();
    }
    own
}

type Attached = (std::thread::JoinHandle<()>, UnixStream);

/// Reads what an attaching process sends first: the access it is served with, and whether it
/// is offered attach points. `None` for an unknown byte, a ticket that was never issued, or a
/// declared access without the relay `secret`.
fn admission(
    stream: &mut UnixStream,
    tickets: Option<&Tickets>,
    secret: &[u8; TICKET_LEN],
) -> Option<(Access, bool)> {
    let mut b = [0u8; 1];
    stream.read_exact(&mut b).ok()?;
    let mut t = [0u8; TICKET_LEN];
    stream.read_exact(&mut t).ok()?;
    if b[0] == SHOWS_TICKET {
        return tickets?.admit(&t).map(|a| (a, true));
    }
    if !same_secret(&t, secret) {
        crate::log::debug("refused an attachment that declared an access without the secret");
        return None;
    }
    let access = access_of(b[0] & !NO_ATTACH_POINTS)?;
    Some((access, b[0] & NO_ATTACH_POINTS == 0))
}

fn accept_loop<B: Backend + 'static>(
    listener: UnixListener,
    backend: Arc<B>,
    closing: Arc<AtomicBool>,
    tickets: Option<Arc<Tickets>>,
    secret: [u8; TICKET_LEN],
) -> Vec<Attached> {
    let mut attached: Vec<Attached> = Vec::new();
    for stream in listener.incoming() {
        if closing.load(Ordering::Acquire) {
            break;
        }
        let Ok(mut stream) = stream else { continue };
        let Ok(handle) = stream.try_clone() else {
            continue;
        };
        let (backend, tickets) = (backend.clone(), tickets.clone());
        let t = std::thread::Builder::new()
            .name("ore attached".into())
            .spawn(move || {
                // A peer that never finishes its preamble does not hold a thread for ever.
                let _ = stream.set_read_timeout(Some(ADMISSION_PATIENCE));
                let admitted = admission(&mut stream, tickets.as_deref(), &secret);
                let _ = stream.set_read_timeout(None);
                let Some((access, offer)) = admitted else {
                    let _ = stream.shutdown(std::net::Shutdown::Both);
                    return;
                };
                let (Ok(input), Ok(end)) = (stream.try_clone(), stream.try_clone()) else {
                    return;
                };
                let served =
                    Restricted::new(backend, access).with_tickets(tickets.filter(|_| offer));
                if let Err(e) = crate::serve::serve_connection(&served, input, stream, false) {
                    crate::log::debug(&format!("an attached connection ended: {e}"));
                }
                // The relay learns that the connection is over from its end of the socket.
                let _ = end.shutdown(std::net::Shutdown::Both);
            });
        if let Ok(t) = t {
            attached.push((t, handle));
        }
        attached.retain(|(t, _)| !t.is_finished());
    }
    attached
}

/// Connects to the process serving the archive at `socket`, waiting up to `patience` for it
/// to start listening (it may have just taken the archive), to relay for a connection with
/// `access`, which is offered attach points only if `offer`; the relay secret, read once
/// connected, proves this is a relay. `None` when nothing answers (or the secret cannot be
/// read).
pub fn attach(
    socket: &Path,
    access: Access,
    offer: bool,
    patience: Duration,
) -> Option<UnixStream> {
    let started = Instant::now();
    let first = access_byte(access) | if offer { 0 } else { NO_ATTACH_POINTS };
    loop {
        // Connected first, then the secret read: a live holder wrote it before listening.
        if let Ok(mut s) = UnixStream::connect(socket) {
            if let Some(secret) = read_secret(socket) {
                let mut preamble = vec![first];
                preamble.extend_from_slice(&secret);
                if s.write_all(&preamble).is_ok() {
                    return Some(s);
                }
            }
        }
        if started.elapsed() >= patience {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Copies stdin to the attached `stream` and the stream to stdout until both directions end:
/// the body of a process that relays for the archive's holder. Returns how many bytes came
/// back from the holder: none means it ended before it answered anything (it was ending as
/// this process attached), and the frontend may start this program again (see
/// [`crate::client::RETRY_EXIT`]).
pub fn relay_stdio(stream: UnixStream) -> Result<u64> {
    let mut to_holder = stream
        .try_clone()
        .map_err(|e| Error::io("duplicating the attach socket", e))?;
    let up = std::thread::spawn(move || {
        let r = pump(&mut std::io::stdin().lock(), &mut to_holder);
        let _ = to_holder.shutdown(std::net::Shutdown::Write);
        r
    });
    let mut from_holder = stream;
    // Through a duplicate of the raw descriptor: the standard library's stdout is line
    // buffered, and would hold answers back until a newline byte happened to pass.
    let mut stdout = {
        use std::os::fd::AsFd;
        std::io::stdout()
            .as_fd()
            .try_clone_to_owned()
            .map(std::fs::File::from)
            .map_err(|e| Error::io("duplicating stdout", e))?
    };
    let down = pump(&mut from_holder, &mut stdout);
    // The frontend closed, or the holder did: either way this relay is done. The stdin copy
    // may still be blocked on a frontend that keeps its end open; it ends with the process.
    if up.is_finished() {
        if let Ok(Err(e)) = up.join() {
            return Err(Error::io("relaying requests to the archive's holder", e));
        }
    }
    down.map_err(|e| Error::io("relaying answers from the archive's holder", e))
}

/// Copies until the end of `from`, passing on each read at once (no buffering in between, and
/// none of the kernel-side shortcuts `std::io::copy` may take, which can wait to fill a buffer).
/// Returns how many bytes passed.
fn pump(from: &mut impl Read, to: &mut impl Write) -> std::io::Result<u64> {
    let mut buf = vec![0u8; 256 * 1024];
    let mut passed = 0u64;
    loop {
        match from.read(&mut buf) {
            Ok(0) => return Ok(passed),
            Ok(n) => {
                to.write_all(&buf[..n])?;
                passed += n as u64;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}
