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
//! # The holder lives as long as any connection it serves
//!
//! A holder does not end while an attached connection works: two runs of `ore` on one archive
//! (a snapshot, and a gc started while it runs) each depend on the process the first one
//! started, and neither may be cut off when the other finishes. So when the holder's own
//! connection ends — its goodbye answered, or its input closed — it goes on serving the
//! attached ones, and the last of them to end ends the process. The frontend that started it
//! must not wait for that (it could be the whole of another run): the holder, once its own
//! connection is over and others remain, points its stdin, stdout and stderr at `/dev/null`.
//! Its pipes close, the frontend sees its connection end as after any goodbye, and leaves the
//! process to be reaped in the background rather than killing it (see the `connect` crate's
//! `client.rs`). Over ssh the frontend's child is `ssh`, which lives as long as the remote
//! holder (sshd keeps the session open until the process exits) but passes the end of its
//! stdout on: the frontend
//! leaves that `ssh` running in the same way, and it ends with the holder. Should the frontend
//! exit meanwhile, the holder is reparented, reaped by init when it ends; it keeps the
//! archive's lock throughout, so no second holder can start beside it, and new runs keep
//! attaching to it.
//!
//! The count of attached connections and the door are one lock: the holder closes the door
//! (stops taking attachments, removes the socket) only when the count is zero, and a
//! connection accepted after that is shut before its greeting — its relay then asks to be
//! started again (exit status 75), and the new process takes the archive once this one has
//! let go of its lock. A socket left by a crashed holder is replaced by the next one (it holds
//! the archive's lock, so no live holder owns that socket).
//!
//! A holder that dies (killed, or crashed) takes its attached connections with it. Their
//! relays follow the frames going by, and answer each request left unanswered with an error
//! that says what happened and to run the command again (see `share/relay.rs`); they do not
//! reconnect on their own, since the first of those requests may have been carried out.
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

use crate::access::Access;
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::restrict::Restricted;
use crate::tickets::{random_bytes, same_secret, Tickets, SHOWS_TICKET, TICKET_LEN};
use ore_util::sync::{lock, wait};
use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// The exit status with which a backend program, before its greeting, asks to be started
/// again: it found its store busy with a process that was just ending (PROTOCOL.md §5).
pub const RETRY_EXIT: i32 = 75;

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

/// Set in a relay's access byte when its own connection is not to be offered attach points
/// (it came in through an ssh forced command, which is there to restrict it).
const NO_ATTACH_POINTS: u8 = 0x10;
/// How long an attaching peer has to send its preamble.
const ADMISSION_PATIENCE: Duration = Duration::from_secs(30);
mod relay;
pub use relay::{relay_stdio, Relayed};

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
    // A second handle on the listening socket, to wake its accept loop when the door closes:
    // connecting to the socket's path would not reach it if the path is gone (the archive's
    // directory deleted meanwhile), and the holder would then wait in `accept` for ever.
    let door = listener
        .try_clone()
        .map_err(|e| Error::io(format!("listening on {}", socket.display()), e))?;
    let live = Arc::new(Live::default());
    let tickets = Tickets::new(socket).map(Arc::new);
    let acceptor = {
        let (backend, live, tickets) = (backend.clone(), live.clone(), tickets.clone());
        std::thread::Builder::new()
            .name("ore attach".into())
            .spawn(move || accept_loop(listener, backend, live, tickets, secret))
            .map_err(|e| Error::io("starting the attach thread", e))?
    };
    let own = Restricted::new(backend.clone(), access).with_tickets(tickets.filter(|_| offer));
    let own = crate::serve::serve_stdio(&own);
    // Our own connection is over (its goodbye answered, or its input ended). While attached
    // connections work on, let go of stdio, so that whoever started this process — a frontend,
    // or sshd — sees the connection end and need not wait for theirs. The last connection to
    // end closes the door: nothing attaches after that.
    live.close_when_idle(|| {
        if let Err(e) = &own {
            eprintln!("error: {e}");
        }
        release_stdio();
    });
    {
        use std::os::fd::AsRawFd;
        // SAFETY: shutdown on a descriptor this process owns (`door` lives until after the
        // join below); on a listening socket it wakes the blocked `accept` with an error.
        unsafe {
            libc::shutdown(door.as_raw_fd(), libc::SHUT_RDWR);
        }
    }
    let _ = std::fs::remove_file(socket);
    let _ = std::fs::remove_file(secret_path(socket));
    for t in acceptor.join().unwrap_or_default() {
        let _ = t.join();
    }
    drop(door);
    own
}

/// The attached connections being served, and whether the holder has stopped taking more.
#[derive(Default)]
struct Live {
    state: Mutex<(usize, bool)>,
    idle: Condvar,
}

impl Live {
    fn lock(&self) -> std::sync::MutexGuard<'_, (usize, bool)> {
        lock(&self.state)
    }

    /// Counts in a connection just accepted; false when the holder is closing (the connection
    /// is then shut before its greeting, and its relay asks to be started again).
    fn enter(&self) -> bool {
        let mut s = self.lock();
        if s.1 {
            return false;
        }
        s.0 += 1;
        true
    }

    fn leave(&self) {
        let mut s = self.lock();
        s.0 = s.0.saturating_sub(1);
        self.idle.notify_all();
    }

    fn closed(&self) -> bool {
        self.lock().1
    }

    /// Waits until no attached connection is left, calling `waiting` first if one is, then
    /// stops taking more.
    fn close_when_idle(&self, waiting: impl FnOnce()) {
        let mut s = self.lock();
        if s.0 > 0 {
            waiting();
        }
        while s.0 > 0 {
            s = wait(&self.idle, s);
        }
        s.1 = true;
    }
}

/// Counts an attached connection out when dropped.
struct Leaving(Arc<Live>);

impl Drop for Leaving {
    fn drop(&mut self) {
        self.0.leave();
    }
}

/// Points stdin, stdout and stderr at `/dev/null`: the pipes (or the ssh session) of the
/// process's own connection close, and what the holder says from now on goes nowhere rather
/// than failing on a closed pipe.
fn release_stdio() {
    use std::os::fd::AsRawFd;
    let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    else {
        return;
    };
    for fd in 0..3 {
        // SAFETY: dup2 onto the standard descriptors, which this process owns; the standard
        // library's handles keep using the numbers, now naming /dev/null.
        unsafe {
            libc::dup2(null.as_raw_fd(), fd);
        }
    }
}

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
    live: Arc<Live>,
    tickets: Option<Arc<Tickets>>,
    secret: [u8; TICKET_LEN],
) -> Vec<std::thread::JoinHandle<()>> {
    let mut attached = Vec::new();
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else {
            // The door was shut (see `serve_stdio_sharing`): accept fails from now on.
            if live.closed() {
                break;
            }
            continue;
        };
        if !live.enter() {
            let _ = stream.shutdown(std::net::Shutdown::Both);
            break;
        }
        let (backend, tickets, done) = (backend.clone(), tickets.clone(), live.clone());
        let t = std::thread::Builder::new()
            .name("ore attached".into())
            .spawn(move || {
                // Counted out however the thread ends, a panic included: a count that never
                // came back to zero would keep the holder alive for ever.
                let _leaving = Leaving(done);
                serve_attached(&mut stream, backend, tickets, &secret);
                // The relay learns that the connection is over from its end of the socket.
                let _ = stream.shutdown(std::net::Shutdown::Both);
            });
        match t {
            Ok(t) => attached.push(t),
            Err(_) => live.leave(),
        }
        attached.retain(|t| !t.is_finished());
    }
    attached
}

/// Admits one attached connection and serves it until it ends.
fn serve_attached<B: Backend + 'static>(
    stream: &mut UnixStream,
    backend: Arc<B>,
    tickets: Option<Arc<Tickets>>,
    secret: &[u8; TICKET_LEN],
) {
    // A peer that never finishes its preamble does not hold a thread for ever.
    let _ = stream.set_read_timeout(Some(ADMISSION_PATIENCE));
    let admitted = admission(stream, tickets.as_deref(), secret);
    let _ = stream.set_read_timeout(None);
    let Some((access, offer)) = admitted else {
        return;
    };
    let (Ok(input), Ok(output)) = (stream.try_clone(), stream.try_clone()) else {
        return;
    };
    let served = Restricted::new(backend, access).with_tickets(tickets.filter(|_| offer));
    if let Err(e) = crate::serve::serve_connection(&served, input, output, false) {
        crate::log::debug(&format!("an attached connection ended: {e}"));
    }
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
