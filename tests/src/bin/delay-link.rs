//! `delay-link MS COMMAND [ARGS...]`: runs COMMAND with every byte that crosses its stdin and
//! its stdout held back MS milliseconds (so a round trip costs 2×MS), like a long network link.
//!
//! `delay-link --tcp MS LISTEN-ADDR TARGET-ADDR`: the same for TCP: accepts connections on
//! LISTEN-ADDR and joins each to TARGET-ADDR through a link delayed MS milliseconds each way,
//! saying `delay-link: connection N` on stderr as each arrives. Each joined connection holds
//! two descriptors until both its directions end (`tests/tests/s3_proxy_descriptors.rs`).
//!
//! `delay-link --serial MS COMMAND [ARGS...]`: a slow backend rather than a long link: COMMAND
//! (which must speak the Ore protocol) gets one request at a time, and each answer is held back
//! MS milliseconds — every request costs MS, however many the client sends at once (like a
//! store that serves one slow remote call at a time).
//!
//! A test tool: it models latency, not bandwidth — bytes are read as soon as they arrive and
//! written when their time has come, so many requests can be on the way at once, as on a real
//! link. `backend-*` commands are looked up next to this program first, like `ore` does.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("--tcp") if args.len() == 4 => tcp(&args[1], &args[2], &args[3]),
        Some("--serial") if args.len() >= 3 => serial(&args[1], &args[2..]),
        Some(ms) if args.len() >= 2 && !ms.starts_with('-') => command(ms, &args[1..]),
        _ => Err(
            "usage: delay-link MS COMMAND [ARGS...] | delay-link --serial MS COMMAND [ARGS...] | \
             delay-link --tcp MS LISTEN-ADDR TARGET-ADDR"
                .to_string(),
        ),
    };
    if let Err(e) = result {
        eprintln!("delay-link: {e}");
        std::process::exit(2);
    }
}

fn delay_of(ms: &str) -> Result<Duration, String> {
    ms.parse::<u64>()
        .map(Duration::from_millis)
        .map_err(|e| format!("the delay {ms:?} is not a number of milliseconds: {e}"))
}

/// Copies `from` to `to`, each piece written `delay` after it was read. Returns at the end of
/// `from` (after writing everything): `true`; or when a write to `to` fails: `false`, after
/// calling `unblock`, which must make a read of `from` return (a read that waits for bytes
/// that never come would keep this copy, and the descriptors of its connection, for ever).
fn delayed_copy(
    mut from: impl Read + Send + 'static,
    mut to: impl Write,
    delay: Duration,
    unblock: impl FnOnce(),
) -> bool {
    let (tx, rx) = mpsc::channel::<(Instant, Vec<u8>)>();
    let reader = std::thread::spawn(move || {
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx
                        .send((Instant::now() + delay, buf[..n].to_vec()))
                        .is_err()
                    {
                        break;
                    }
                }
            }
        }
    });
    let mut written = true;
    for (due, bytes) in rx {
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        if to.write_all(&bytes).and_then(|()| to.flush()).is_err() {
            written = false;
            unblock();
            break;
        }
    }
    let _ = reader.join();
    written
}

fn command(ms: &str, words: &[String]) -> Result<(), String> {
    let delay = delay_of(ms)?;
    let program = connect::spawn::resolve_program(&words[0]);
    let mut child = Command::new(&program)
        .args(&words[1..])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", program.display()))?;
    let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
        return Err("the child's pipes could not be set up".into());
    };
    let up = std::thread::spawn(move || delayed_copy(std::io::stdin(), stdin, delay, || ()));
    delayed_copy(stdout, std::io::stdout(), delay, || ());
    let status = child.wait().map_err(|e| e.to_string())?;
    // Our stdin may never close (the client waits for us): do not wait for that direction.
    drop(up);
    std::process::exit(status.code().unwrap_or(1));
}

fn tcp(ms: &str, listen: &str, target: &str) -> Result<(), String> {
    let delay = delay_of(ms)?;
    let listener =
        TcpListener::bind(listen).map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    for (n, conn) in listener.incoming().enumerate() {
        let Ok(client) = conn else { continue };
        // Tests count the connections a run makes.
        eprintln!("delay-link: connection {}", n + 1);
        let target = target.to_string();
        std::thread::spawn(move || match TcpStream::connect(&target) {
            Ok(server) => join(client, server, delay),
            Err(_) => eprintln!("delay-link: cannot connect to {target}"),
        });
    }
    Ok(())
}

/// Joins two connections through the delayed link until both directions have ended. Each
/// socket is shared by its two directions (two descriptors per connection, not a copy per
/// direction). A direction whose far side closed passes the close on and lets the other run
/// to its end (an HTTP client may still be reading its answer); one whose write failed closes
/// both connections, so the other direction does not wait for ever on a peer that is gone.
fn join(client: TcpStream, server: TcpStream, delay: Duration) {
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (client, server) = (Arc::new(client), Arc::new(server));
    let both = {
        let (client, server) = (client.clone(), server.clone());
        move || {
            let _ = client.shutdown(Shutdown::Both);
            let _ = server.shutdown(Shutdown::Both);
        }
    };
    let up = {
        let (client, server, both) = (client.clone(), server.clone(), both.clone());
        std::thread::spawn(move || {
            if delayed_copy(Shared(client), &*server, delay, both) {
                let _ = server.shutdown(Shutdown::Write);
            }
        })
    };
    if delayed_copy(Shared(server), &*client, delay, both) {
        let _ = client.shutdown(Shutdown::Write);
    }
    let _ = up.join();
}

/// A socket shared between the two directions of a link, read through a shared reference.
struct Shared(Arc<TcpStream>);

impl Read for Shared {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        (&*self.0).read(buf)
    }
}

fn serial(ms: &str, words: &[String]) -> Result<(), String> {
    use protocol::frame::{read_frame, MAGIC, MAX_FRAME_BODY};
    use protocol::message::{Request, Response};
    let delay = delay_of(ms)?;
    let program = connect::spawn::resolve_program(&words[0]);
    let mut child = Command::new(&program)
        .args(&words[1..])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", program.display()))?;
    let (Some(mut to_child), Some(from_child)) = (child.stdin.take(), child.stdout.take()) else {
        return Err("the child's pipes could not be set up".into());
    };
    let mut from_child = std::io::BufReader::new(from_child);
    let mut input = std::io::BufReader::new(std::io::stdin());
    let mut out = std::io::stdout();
    let io = |e: std::io::Error| e.to_string();
    let mut magic = [0u8; 8];
    if from_child.read_exact(&mut magic).is_err() {
        // The backend ended before its greeting (asking, say, to be started again with exit
        // status 75): pass its status on, as the client must see it.
        let status = child.wait().map_err(|e| e.to_string())?;
        std::process::exit(status.code().unwrap_or(1));
    }
    out.write_all(&magic)
        .and_then(|()| out.flush())
        .map_err(io)?;
    input.read_exact(&mut magic).map_err(io)?;
    if magic != MAGIC {
        return Err("the client did not greet with the Ore magic".into());
    }
    to_child.write_all(&magic).map_err(io)?;
    // One request at a time: forward it, wait for its answer (passing log frames on), hold
    // the answer back, then take the next.
    while let Some(frame) = read_frame(&mut input, MAX_FRAME_BODY).map_err(|e| e.to_string())? {
        let req = Request::decode(frame).map_err(|e| e.to_string())?;
        let closing = req == Request::Close;
        req.write_to(&mut to_child)
            .and_then(|()| to_child.flush())
            .map_err(io)?;
        std::thread::sleep(delay);
        loop {
            let Some(f) = read_frame(&mut from_child, MAX_FRAME_BODY).map_err(|e| e.to_string())?
            else {
                return Ok(());
            };
            let resp = Response::decode(f).map_err(|e| e.to_string())?;
            resp.write_to(&mut out)
                .and_then(|()| out.flush())
                .map_err(io)?;
            if !matches!(resp, Response::Log { .. }) {
                break;
            }
        }
        if closing {
            break;
        }
    }
    drop(to_child);
    let status = child.wait().map_err(|e| e.to_string())?;
    std::process::exit(status.code().unwrap_or(1));
}
