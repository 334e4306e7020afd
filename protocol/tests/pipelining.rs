//! `serve` keeps requests in flight through a backend that pipelines (a proxy), answers them in
//! order, and makes every other request wait for the answers before it.

use protocol::frame::{read_frame, read_magic, MAGIC, MAX_FRAME_BODY};
use protocol::message::{Hello, Request, Response, SetTag};
use protocol::{AdminOutput, Backend, BackendInfo, CasOutcome, Key, Result, Stats, Ticket};
use std::io::{BufReader, Write};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use testkit::MemoryBackend;

/// Stands in for a proxy whose inner backend is far away: every put, get and exists is
/// answered `DELAY` after it was started, independently of the others.
struct Far {
    inner: MemoryBackend,
    done_puts: Arc<AtomicUsize>,
}

const DELAY: Duration = Duration::from_millis(50);
const SLOW: Duration = Duration::from_millis(1500);

fn later<T: Send + 'static>(r: Result<T>, then: impl FnOnce() + Send + 'static) -> Ticket<T> {
    let due = Instant::now() + DELAY;
    Ticket::pending(move || {
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        then();
        r
    })
}

impl Backend for Far {
    fn info(&self) -> BackendInfo {
        self.inner.info()
    }
    fn pipelines(&self) -> bool {
        true
    }
    fn put(&self, key: Key, data: &[u8]) -> Result<()> {
        self.start_put(key, data.to_vec()).wait()
    }
    fn get(&self, key: Key) -> Result<Option<Vec<u8>>> {
        self.start_get(key).wait()
    }
    fn exists(&self, keys: &[Key]) -> Result<Vec<bool>> {
        self.start_exists(keys.to_vec()).wait()
    }
    fn start_put(&self, key: Key, data: Vec<u8>) -> Ticket<()> {
        let done = self.done_puts.clone();
        later(self.inner.put(key, &data), move || {
            done.fetch_add(1, Ordering::SeqCst);
        })
    }
    fn start_get(&self, key: Key) -> Ticket<Option<Vec<u8>>> {
        later(self.inner.get(key), || {})
    }
    fn start_exists(&self, keys: Vec<Key>) -> Ticket<Vec<bool>> {
        later(self.inner.exists(&keys), || {})
    }
    /// The tag "slow" is read as a far store would: it takes [`SLOW`].
    fn get_tag(&self, name: &str) -> Result<Option<Vec<u8>>> {
        if name == "slow" {
            std::thread::sleep(SLOW);
        }
        self.inner.get_tag(name)
    }
    /// Stores how many puts were answered when it ran, instead of `value`: every put sent
    /// before it must be.
    fn set_tag(&self, name: &str, expected: Option<&[u8]>, _value: &[u8]) -> Result<CasOutcome> {
        let n = self.done_puts.load(Ordering::SeqCst);
        self.inner
            .set_tag(name, expected, format!("{n}").as_bytes())
    }
    fn remove_tag(&self, name: &str, expected: Option<&[u8]>) -> Result<CasOutcome> {
        self.inner.remove_tag(name, expected)
    }
    fn list_tags(&self) -> Result<Vec<(String, Vec<u8>)>> {
        self.inner.list_tags()
    }
    fn flush(&self) -> Result<()> {
        self.inner.flush()
    }
    fn stats(&self) -> Result<Stats> {
        self.inner.stats()
    }
    fn admin(&self, command: &str, args: &[String]) -> Result<AdminOutput> {
        self.inner.admin(command, args)
    }
}

/// Serves `Far` on one end of a socket pair; returns the other end, past the handshake.
fn connect() -> (
    UnixStream,
    BufReader<UnixStream>,
    std::thread::JoinHandle<()>,
) {
    let (ours, theirs) = UnixStream::pair().unwrap();
    let input = theirs.try_clone().unwrap();
    let server = std::thread::spawn(move || {
        let far = Far {
            inner: MemoryBackend::new(1 << 20),
            done_puts: Arc::default(),
        };
        protocol::serve(&far, input, theirs).unwrap();
    });
    let mut w = ours.try_clone().unwrap();
    let mut r = BufReader::new(ours);
    w.write_all(&MAGIC).unwrap();
    Request::Hello(Hello {
        min_version: 1,
        max_version: 1,
        client: "test".into(),
    })
    .write_to(&mut w)
    .unwrap();
    read_magic(&mut r).unwrap();
    let welcome = Response::decode(read_frame(&mut r, MAX_FRAME_BODY).unwrap().unwrap()).unwrap();
    assert!(matches!(welcome, Response::Welcome(_)));
    (w, r, server)
}

fn answer(r: &mut BufReader<UnixStream>) -> Response {
    Response::decode(read_frame(r, MAX_FRAME_BODY).unwrap().unwrap()).unwrap()
}

#[test]
fn requests_through_a_pipelining_backend_overlap_and_stay_in_order() {
    let (mut w, mut r, server) = connect();
    let n = 200u8;
    let key = |i: u8| Key([i; 32]);
    let started = Instant::now();
    let mut batch = Vec::new();
    for i in 0..n {
        Request::Put {
            key: key(i),
            data: vec![i; 100].into(),
        }
        .write_to(&mut batch)
        .unwrap();
    }
    // A non-pipelined request must see every put before it answered.
    Request::SetTag(SetTag {
        name: "t".into(),
        expected: None,
        value: Vec::new(),
    })
    .write_to(&mut batch)
    .unwrap();
    Request::GetTag("t".into()).write_to(&mut batch).unwrap();
    for i in 0..n {
        Request::Get(key(i)).write_to(&mut batch).unwrap();
    }
    Request::Close.write_to(&mut batch).unwrap();
    w.write_all(&batch).unwrap();
    for _ in 0..n {
        assert_eq!(answer(&mut r), Response::Ok);
    }
    assert_eq!(answer(&mut r), Response::TagSet(CasOutcome::Done));
    assert_eq!(
        answer(&mut r),
        Response::Tag(Some(format!("{n}").into_bytes()))
    );
    for i in 0..n {
        assert_eq!(answer(&mut r), Response::Data(vec![i; 100]), "get {i}");
    }
    assert_eq!(answer(&mut r), Response::Goodbye);
    let took = started.elapsed();
    server.join().unwrap();
    // One at a time, 400 requests of 50 ms would take 20 s; in flight together, the puts
    // and the gets each cost about one delay.
    assert!(took < Duration::from_secs(3), "took {took:?}");
}

#[test]
fn an_answer_that_is_ready_goes_out_before_a_slow_request_after_it_runs() {
    // Regression: the answer to an `exists` (the client's round-trip probe, which decides how
    // many connections it opens) stayed buffered while the tag reads sent after it ran, so a
    // far store made a near backend look far.
    let (mut w, mut r, server) = connect();
    let mut batch = Vec::new();
    Request::Exists(Vec::new()).write_to(&mut batch).unwrap();
    Request::GetTag("slow".into()).write_to(&mut batch).unwrap();
    Request::Close.write_to(&mut batch).unwrap();
    let started = Instant::now();
    w.write_all(&batch).unwrap();
    assert_eq!(answer(&mut r), Response::Presence(Vec::new()));
    let first = started.elapsed();
    assert_eq!(answer(&mut r), Response::Tag(None));
    assert_eq!(answer(&mut r), Response::Goodbye);
    server.join().unwrap();
    assert!(
        first < SLOW / 2,
        "the exists answer came after {first:?}, behind a tag read of {SLOW:?}"
    );
}
