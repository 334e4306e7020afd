//! A store that answers `503 SlowDown` (through `s3-proxy`, in front of the real SeaweedFS
//! gateway): backend-s3 retries with backoff, so a snapshot completes when the store asks now
//! and then, and fails with one clear message naming the archive when it always does.

use ore_tests::ore::{scratch, Ore};
use ore_tests::seaweed::{Cluster, BUCKET};
use ore_tests::trees::{assert_same, every_kind};
use std::io::BufRead;
use std::process::{Child, Command, Stdio};

/// `s3-proxy` in front of the cluster's gateway, killed when dropped.
struct Proxy {
    child: Child,
    addr: String,
}

impl Proxy {
    fn start(c: &Cluster, every: u32) -> Proxy {
        let mut child = Command::new(ore_tests::bin("s3-proxy"))
            .args([
                "127.0.0.1:0",
                &format!("127.0.0.1:{}", c.s3_port),
                "--slowdown-every",
                &every.to_string(),
            ])
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
        format!(
            "backend-s3 s3://{BUCKET}/{prefix} --endpoint http://{} --credentials-file {} --profile ore",
            self.addr,
            ore_tests::quote(&c.credentials_file())
        )
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_store_asking_to_slow_down_now_and_then_is_retried_and_the_snapshot_completes() {
    let c = Cluster::start();
    let proxy = Proxy::start(&c, 3);
    let d = scratch();
    let src = d.path().join("src");
    every_kind(&src);
    let o = Ore::new(proxy.archive(&c, "slow"));
    o.run(&["init"])
        .expect(0, "init with every third request refused");
    o.snapshot("home", &src);
    let dest = d.path().join("dest");
    o.restore("home", &dest).expect(0, "restore");
    assert_same(&src, &dest);
    o.run(&["check", "--read-data"])
        .expect(0, "check --read-data");
}

#[test]
fn a_store_that_always_asks_to_slow_down_gives_one_clear_error_naming_the_archive() {
    let c = Cluster::start();
    let proxy = Proxy::start(&c, 1);
    let started = std::time::Instant::now();
    let out = Command::new(ore_tests::bin("backend-s3"))
        .arg(format!("s3://{BUCKET}/refused"))
        .args(["--endpoint", &format!("http://{}", proxy.addr)])
        .arg("--credentials-file")
        .arg(c.credentials_file())
        .args(["--profile", "ore"])
        .stdin(Stdio::null())
        .output()
        .expect("backend-s3 runs");
    let took = started.elapsed();
    let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
    eprintln!("{err} ({took:.1?})");
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(
        err.contains("s3://ore-test/refused"),
        "names the archive: {err}"
    );
    assert!(err.contains("slow down"), "says what the store said: {err}");
    assert!(
        took > std::time::Duration::from_millis(500),
        "it retried with backoff before giving up ({took:?})"
    );
    assert!(
        took < std::time::Duration::from_secs(60),
        "no hang: {took:?}"
    );
}
