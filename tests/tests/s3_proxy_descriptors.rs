//! The test and benchmark proxies in front of the S3 gateway, `delay-link --tcp` (a long
//! link) and `s3-proxy` (request counts, `503 SlowDown`), hold a bounded number of file
//! descriptors however a run ends its connections: `bench/s3.sh` runs whole snapshots and
//! restores of /usr/share through them, and a proxy that kept the descriptors of connections
//! gone by ran out of them ("Too many open files") under a limit of 1,024.

use ore_tests::ore::{scratch, Ore};
use ore_tests::seaweed::Cluster;
use ore_tests::trees::grid;
use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Open descriptors of process `pid`.
fn descriptors(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("the proxy's descriptors")
        .count()
}

/// A proxy started under `ulimit -n 1024`, as the benchmark's proxies ran, killed when dropped.
struct Proxy {
    child: Child,
    addr: String,
}

impl Proxy {
    /// `delay-link --tcp MS` in front of `target`.
    fn delay(target: &str, ms: u32) -> Proxy {
        let port = ore_tests::sshd::free_port();
        let addr = format!("127.0.0.1:{port}");
        let mut child = limited(&format!(
            "exec {} --tcp {ms} {addr} {target}",
            ore_tests::bin("delay-link").display(),
        ))
        .stderr(Stdio::null())
        .spawn()
        .expect("delay-link starts");
        let deadline = Instant::now() + Duration::from_secs(30);
        // Polled: delay-link says nothing when it listens.
        while std::net::TcpStream::connect(&addr).is_err() {
            assert!(Instant::now() < deadline, "delay-link does not listen");
            assert!(
                child.try_wait().expect("wait").is_none(),
                "delay-link ended"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Proxy { child, addr }
    }

    /// `s3-proxy` in front of the gateway.
    fn counting(c: &Cluster) -> Proxy {
        let mut child = limited(&format!(
            "exec {} 127.0.0.1:0 127.0.0.1:{}",
            ore_tests::bin("s3-proxy").display(),
            c.s3_port
        ))
        .stdout(Stdio::piped())
        .spawn()
        .expect("s3-proxy starts");
        let mut line = String::new();
        let out = child.stdout.take().expect("its stdout");
        std::io::BufReader::new(out)
            .read_line(&mut line)
            .expect("s3-proxy says where it listens");
        Proxy {
            child,
            addr: line.trim().to_string(),
        }
    }

    fn archive(&self, c: &Cluster, prefix: &str) -> String {
        c.archive(prefix, "")
            .replace(&c.endpoint(), &format!("http://{}", self.addr))
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn limited(script: &str) -> Command {
    let mut c = Command::new("sh");
    c.args(["-c", &format!("ulimit -n 1024 && {script}")])
        .stdin(Stdio::null());
    c
}

/// `delay-link --tcp 20` in front of `s3-proxy` in front of the gateway, as `bench/s3.sh`
/// chains them for its runs through a long link.
fn chain(c: &Cluster) -> (Proxy, Proxy) {
    let counting = Proxy::counting(c);
    let delay = Proxy::delay(&counting.addr, 20);
    (delay, counting)
}

/// Connections that each send the start of a PUT and go away before its body ends, as a
/// client does when a request times out or its process ends.
fn abandon_requests(addr: &str, n: usize) {
    use std::io::Write;
    for i in 0..n {
        let mut s = std::net::TcpStream::connect(addr).expect("a connection to the proxy");
        write!(
            s,
            "PUT /{}/abandoned/{i} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 100000\r\n\r\nonly the start",
            ore_tests::seaweed::BUCKET
        )
        .expect("the start of a request");
    }
}

/// `n` connections that each make one request and stay open, as a client's pool keeps them;
/// returned so that they stay open.
fn idle_connections(addr: &str, n: usize) -> Vec<std::net::TcpStream> {
    use std::io::{Read, Write};
    (0..n)
        .map(|i| {
            let mut s = std::net::TcpStream::connect(addr).expect("a connection to the proxy");
            write!(
                s,
                "HEAD /{}/idle/{i} HTTP/1.1\r\nHost: {addr}\r\n\r\n",
                ore_tests::seaweed::BUCKET
            )
            .expect("a request");
            // The answer's head has come back through both proxies: each holds this
            // connection and its own to the next hop.
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                assert_eq!(s.read(&mut byte).expect("the answer"), 1, "{head:?}");
                head.push(byte[0]);
            }
            s
        })
        .collect()
}

/// Waits (polling: a process says nothing when it closes a descriptor) until `pid` holds at
/// most `limit` descriptors; `false` if it still holds more after 20 s.
fn settles_to(pid: u32, limit: usize) -> bool {
    let deadline = Instant::now() + Duration::from_secs(20);
    while descriptors(pid) > limit {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    true
}

#[test]
fn the_proxies_give_back_the_descriptors_of_every_connection_however_it_ended() {
    let c = Cluster::start();
    let (delay, counting) = chain(&c);
    let pids = [
        ("delay-link", delay.child.id()),
        ("s3-proxy", counting.child.id()),
    ];
    let idle: Vec<usize> = pids.iter().map(|&(_, p)| descriptors(p)).collect();

    // Whole runs: each run's connections end when its backend does.
    let d = scratch();
    let src = d.path().join("src");
    grid(&src, 8, 40, 3000);
    let o = Ore::new(delay.archive(&c, "chained"));
    o.run(&["init"]).expect(0, "init");
    o.snapshot("home", &src);
    o.restore("home", &d.path().join("dest"))
        .expect(0, "restore");
    for (&(tool, pid), &n) in pids.iter().zip(&idle) {
        assert!(
            settles_to(pid, n),
            "{tool} keeps {} descriptors after the runs (idle: {n})",
            descriptors(pid)
        );
    }

    // Each open connection costs each proxy two descriptors, its own end and the next hop's
    // (delay-link held four and s3-proxy five: a copy of each socket per direction).
    let open = idle_connections(&delay.addr, 10);
    for (&(tool, pid), &n) in pids.iter().zip(&idle) {
        assert!(
            settles_to(pid, n + 2 * open.len()),
            "{tool} holds {} descriptors for {} open connections (idle: {n})",
            descriptors(pid),
            open.len()
        );
    }
    drop(open);

    // Regression: a request abandoned midway left s3-proxy's thread that passes answers back
    // holding its connection to the store and a copy of the client's, and so delay-link's
    // connection to s3-proxy never ended either: 2 + 4 descriptors per such request, for as
    // long as the store kept its idle connection.
    abandon_requests(&delay.addr, 40);
    let kept: Vec<String> = pids
        .iter()
        .zip(&idle)
        .filter(|&(&(_, pid), &n)| !settles_to(pid, n))
        .map(|(&(tool, pid), &n)| format!("{tool}: {} (idle: {n})", descriptors(pid)))
        .collect();
    assert!(
        kept.is_empty(),
        "descriptors kept after 40 abandoned requests: {kept:?}"
    );
}
