//! `s3-proxy LISTEN TARGET [--slowdown-every N] [--log FILE]`: an HTTP/1.1 proxy in front of
//! an S3 gateway that can answer requests with `503 SlowDown` and counts requests by kind. It
//! prints the address it listens on (LISTEN may have port 0) as its one line on stdout.
//!
//! A test and benchmark tool: a real store under load answers `503 SlowDown`, and backend-s3
//! must retry with backoff and then fail with one clear message; no store here can be made to
//! do it on demand, so this proxy does. With `--slowdown-every N` every Nth request is answered
//! `503` with S3's `SlowDown` error body (without reaching the store) and the connection is
//! closed; `N` = 1 refuses every request. With `--log FILE` each request appends its kind
//! (`PUT`, `GET`, `HEAD`, `LIST` — a GET of a bucket with a listing query — `DELETE`, `POST`)
//! the request's path (with its `prefix=` for a listing) and the time it arrived (milliseconds
//! since the epoch) as one line to
//! FILE, which is how the benchmark counts restic's requests the way
//! `ORE_S3_REQUESTS` counts ore's.
//!
//! It reads each request's head and body (Content-Length or chunked), so it knows where one
//! request ends and the next begins, and passes responses back as they come: HTTP/1.1 clients
//! send the next request on a connection only after the last response, so answers never mix.
//! A connection holds two descriptors (the client's and the store's), and both are closed as
//! soon as either side ends, however it ends (`tests/tests/s3_proxy_descriptors.rs`).

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

struct Config {
    target: String,
    every: u64,
    log: Option<Mutex<std::fs::File>>,
    count: AtomicU64,
}

fn main() {
    if let Err(e) = run() {
        eprintln!("s3-proxy: {e}");
        std::process::exit(2);
    }
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: s3-proxy LISTEN TARGET [--slowdown-every N] [--log FILE]";
    let (listen, target) = match args.as_slice() {
        [l, t, ..] => (l.clone(), t.clone()),
        _ => return Err(usage.into()),
    };
    let (mut every, mut log) = (0, None);
    let mut rest = args[2..].iter();
    while let Some(a) = rest.next() {
        let v = rest.next().ok_or(usage)?;
        match a.as_str() {
            "--slowdown-every" => every = v.parse().map_err(|e| format!("{v:?}: {e}"))?,
            "--log" => {
                let f = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(v)
                    .map_err(|e| format!("opening {v}: {e}"))?;
                log = Some(Mutex::new(f));
            }
            _ => return Err(usage.into()),
        }
    }
    let config = Arc::new(Config {
        target,
        every,
        log,
        count: AtomicU64::new(0),
    });
    let listener =
        TcpListener::bind(&listen).map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    // The one line on stdout: where it listens (port 0 picks one), once it does.
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    println!("{addr}");
    std::io::stdout().flush().map_err(|e| e.to_string())?;
    for conn in listener.incoming() {
        let Ok(client) = conn else { continue };
        let config = config.clone();
        std::thread::spawn(move || {
            if let Err(e) = serve(client, &config) {
                if e.kind() != std::io::ErrorKind::UnexpectedEof {
                    eprintln!("s3-proxy: {e}");
                }
            }
        });
    }
    Ok(())
}

/// One request: its head (request line and headers, as sent) and its body bytes as sent.
struct Request {
    head: Vec<u8>,
    body: Vec<u8>,
    method: String,
    target: String,
}

fn read_request(r: &mut impl BufRead) -> std::io::Result<Option<Request>> {
    let mut head = Vec::new();
    let (mut length, mut chunked) = (0usize, false);
    loop {
        let mut line = Vec::new();
        if r.read_until(b'\n', &mut line)? == 0 {
            return Ok(None);
        }
        let text = String::from_utf8_lossy(&line).to_ascii_lowercase();
        if let Some(v) = text.strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
        if text.starts_with("transfer-encoding:") && text.contains("chunked") {
            chunked = true;
        }
        head.extend_from_slice(&line);
        if line == b"\r\n" || line == b"\n" {
            break;
        }
    }
    let first = String::from_utf8_lossy(&head)
        .lines()
        .next()
        .unwrap_or("")
        .to_string();
    let mut words = first.split_whitespace();
    let method = words.next().unwrap_or("").to_string();
    let target = words.next().unwrap_or("").to_string();
    let mut body = Vec::new();
    if chunked {
        loop {
            let mut size = Vec::new();
            r.read_until(b'\n', &mut size)?;
            body.extend_from_slice(&size);
            let hex = String::from_utf8_lossy(&size);
            let n =
                usize::from_str_radix(hex.trim().split(';').next().unwrap_or("0"), 16).unwrap_or(0);
            let mut chunk = vec![0; n + 2];
            r.read_exact(&mut chunk)?;
            body.extend_from_slice(&chunk);
            if n == 0 {
                break;
            }
        }
    } else {
        body.resize(length, 0);
        r.read_exact(&mut body)?;
    }
    Ok(Some(Request {
        head,
        body,
        method,
        target,
    }))
}

/// The request's kind as S3 bills it.
fn kind(req: &Request) -> &str {
    let (path, query) = req.target.split_once('?').unwrap_or((&req.target, ""));
    let bucket_only = path.trim_matches('/').split('/').count() <= 1;
    if req.method == "GET"
        && (query.contains("list-type") || (bucket_only && !query.contains("location")))
    {
        "LIST"
    } else {
        &req.method
    }
}

const SLOW_DOWN: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>";

fn serve(client: TcpStream, config: &Config) -> std::io::Result<()> {
    client.set_nodelay(true)?;
    let server = TcpStream::connect(&config.target)?;
    // Without these, a request written as head then body waits for the far side's delayed
    // ACK (Nagle): about 40 ms per PUT, which the proxy would add to every tool it measures.
    server.set_nodelay(true)?;
    // Each socket shared by both directions: two descriptors per connection, not five.
    let (client, server) = (Arc::new(client), Arc::new(server));
    // Responses flow back as they come, on a thread of their own; when the store closes the
    // connection, so does the proxy towards the client (which would otherwise send its next
    // request into a connection that goes nowhere).
    let pump = {
        let (client, server) = (client.clone(), server.clone());
        std::thread::spawn(move || {
            let copied = std::io::copy(&mut &*server, &mut &*client);
            let _ = client.shutdown(std::net::Shutdown::Both);
            copied
        })
    };
    let mut from_client = BufReader::new(&*client);
    let forwarded = forward(&mut from_client, &client, &server, config);
    // However the client's side ended (it closed, or sent half a request and went away, or a
    // write failed), close both sides now, so that the thread above ends too: a store keeps
    // an idle connection open for a while, and a proxy holding both ends of each connection
    // gone by ran out of descriptors.
    let _ = server.shutdown(std::net::Shutdown::Both);
    let _ = client.shutdown(std::net::Shutdown::Both);
    let _ = pump.join();
    forwarded
}

/// Passes the client's requests on to the store (or answers `SlowDown`) until the client
/// closes its side, a request is cut short, or a write fails.
fn forward(
    from_client: &mut impl BufRead,
    mut to_client: &TcpStream,
    mut to_server: &TcpStream,
    config: &Config,
) -> std::io::Result<()> {
    while let Some(req) = read_request(from_client)? {
        if let Some(log) = &config.log {
            let mut f = ore_util::sync::lock(log);
            let (path, query) = req.target.split_once('?').unwrap_or((&req.target, ""));
            // A listing is named by its prefix too, so a log tells which listing it was.
            let prefix = query.split('&').find(|q| q.starts_with("prefix="));
            let path = match (kind(&req), prefix) {
                ("LIST", Some(p)) => format!("{path}?{p}"),
                _ => path.to_string(),
            };
            let ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis());
            writeln!(f, "{} {path} {ms}", kind(&req))?;
        }
        let n = config.count.fetch_add(1, Ordering::Relaxed) + 1;
        if config.every > 0 && n.is_multiple_of(config.every) {
            write!(
                to_client,
                "HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{SLOW_DOWN}",
                SLOW_DOWN.len()
            )?;
            return to_client.flush();
        }
        to_server.write_all(&[&req.head[..], &req.body[..]].concat())?;
        to_server.flush()?;
    }
    Ok(())
}
