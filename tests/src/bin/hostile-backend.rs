//! `hostile-backend MODE [ARGS...]`: a backend program that breaks the protocol in one chosen
//! way, so that tests can show what `ore` does with a broken or hostile peer (a compromised
//! server behind ssh, a buggy proxy). It speaks just enough of the protocol to get there:
//!
//! - `version N`: greets like a backend, but its welcome picks protocol version N.
//! - `empty-page INNER`: passes every request on to the backend started from the archive
//!   identifier INNER, but answers each listing with no keys and `more = true`.
//! - `endless-logs`: welcomes, then answers no request, sending a log frame every 10 ms for
//!   as long as it runs.
//! - `long-messages`: welcomes, then sends a log message of a megabyte and answers the first
//!   request with an error whose message is a megabyte long.
//! - `over-limit`: welcomes, then answers the first request with a frame header that claims
//!   more than the frame limit, and then neither sends nor exits for two minutes (it ignores
//!   the end of its input): only being killed ends it sooner.

use connect::Client;
use protocol::frame::{read_frame, read_magic, MAGIC, MAX_FRAME_BODY};
use protocol::message::{Request, Response, Welcome};
use protocol::{Backend, BackendInfo, Key, Level};
use std::io::{Read, Write};
use std::time::Duration;
use testkit::MemoryBackend;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["version", n] => n
            .parse()
            .map_err(|_| format!("not a version: {n}"))
            .and_then(|v| greet(v).map(|_| drain())),
        ["empty-page", inner] => empty_page(inner),
        ["endless-logs"] => greet(1).map(|(_, mut out)| endless_logs(&mut out)),
        ["long-messages"] => greet(1).and_then(|(mut input, mut out)| long_messages(&mut input, &mut out)),
        ["over-limit"] => {
            greet(1).and_then(|(mut input, mut out)| over_limit(&mut input, &mut out))
        }
        _ => Err(
            "usage: hostile-backend version N | empty-page INNER | endless-logs | long-messages | over-limit"
                .into(),
        ),
    };
    if let Err(e) = result {
        eprintln!("hostile-backend: {e}");
        std::process::exit(1);
    }
}

/// Reads the client's magic and hello, and answers with a welcome picking `version`.
fn greet(version: u16) -> Result<(std::io::Stdin, std::io::Stdout), String> {
    let mut input = std::io::stdin();
    let mut out = std::io::stdout();
    read_magic(&mut input).map_err(|e| e.to_string())?;
    let hello = read_frame(&mut input, MAX_FRAME_BODY)
        .map_err(|e| e.to_string())?
        .ok_or("no hello")?;
    Request::decode(hello).map_err(|e| e.to_string())?;
    let welcome = Response::Welcome(Welcome {
        version,
        info: MemoryBackend::new(1 << 20).info(),
    });
    out.write_all(&MAGIC)
        .and_then(|()| out.write_all(&welcome.to_frame_bytes()))
        .and_then(|()| out.flush())
        .map_err(|e| e.to_string())?;
    Ok((input, out))
}

/// Reads and drops whatever comes until the client closes.
fn drain() {
    let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
}

fn endless_logs(out: &mut impl Write) {
    let log = Response::Log {
        level: Level::Debug,
        message: "still thinking".into(),
    }
    .to_frame_bytes();
    while out.write_all(&log).and_then(|()| out.flush()).is_ok() {
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn long_messages(input: &mut impl Read, out: &mut impl Write) -> Result<(), String> {
    read_frame(input, MAX_FRAME_BODY).map_err(|e| e.to_string())?;
    let long = "blah ".repeat(200_000);
    let log = Response::Log {
        level: Level::Warning,
        message: long.clone(),
    };
    let error = Response::Error {
        code: protocol::ErrorCode::Io,
        message: long,
    };
    out.write_all(&log.to_frame_bytes())
        .and_then(|()| out.write_all(&error.to_frame_bytes()))
        .and_then(|()| out.flush())
        .map_err(|e| e.to_string())?;
    drain();
    Ok(())
}

fn over_limit(input: &mut impl Read, out: &mut impl Write) -> Result<(), String> {
    read_frame(input, MAX_FRAME_BODY).map_err(|e| e.to_string())?;
    let mut header = (MAX_FRAME_BODY + 1).to_le_bytes().to_vec();
    header.push(0x83);
    out.write_all(&header)
        .and_then(|()| out.flush())
        .map_err(|e| e.to_string())?;
    // Long past any test's patience, but not for ever, should nothing kill it.
    std::thread::sleep(Duration::from_secs(120));
    Ok(())
}

fn empty_page(inner: &str) -> Result<(), String> {
    let client = Client::connect(inner).map_err(|e| e.to_string())?;
    protocol::serve_stdio(&EmptyPages(client)).map_err(|e| e.to_string())
}

/// A backend whose listings promise more and hold nothing; everything else is passed on.
struct EmptyPages(Client);

impl Backend for EmptyPages {
    fn info(&self) -> BackendInfo {
        self.0.info()
    }
    fn put(&self, key: Key, data: &[u8]) -> protocol::Result<()> {
        self.0.put(key, data)
    }
    fn get(&self, key: Key) -> protocol::Result<Option<Vec<u8>>> {
        self.0.get(key)
    }
    fn exists(&self, keys: &[Key]) -> protocol::Result<Vec<bool>> {
        self.0.exists(keys)
    }
    fn remove(&self, keys: &[Key]) -> protocol::Result<()> {
        self.0.remove(keys)
    }
    fn list(&self, _after: Option<Key>, _limit: u32) -> protocol::Result<(Vec<Key>, bool)> {
        Ok((Vec::new(), true))
    }
    fn get_tag(&self, name: &str) -> protocol::Result<Option<Vec<u8>>> {
        self.0.get_tag(name)
    }
    fn set_tag(
        &self,
        name: &str,
        expected: Option<&[u8]>,
        value: &[u8],
    ) -> protocol::Result<protocol::CasOutcome> {
        self.0.set_tag(name, expected, value)
    }
    fn remove_tag(
        &self,
        name: &str,
        expected: Option<&[u8]>,
    ) -> protocol::Result<protocol::CasOutcome> {
        self.0.remove_tag(name, expected)
    }
    fn list_tags(&self) -> protocol::Result<Vec<(String, Vec<u8>)>> {
        self.0.list_tags()
    }
    fn flush(&self) -> protocol::Result<()> {
        self.0.flush()
    }
    fn stats(&self) -> protocol::Result<protocol::Stats> {
        self.0.stats()
    }
    fn admin(&self, command: &str, args: &[String]) -> protocol::Result<protocol::AdminOutput> {
        self.0.admin(command, args)
    }
}
