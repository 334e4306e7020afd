//! Connection faults end to end: the network dropping mid-snapshot (the link process between
//! ssh and sshd is killed), and a backend that stops answering (SIGSTOP). Either way the
//! snapshot fails with an error naming the archive, the tag stays where it was, and a re-run
//! completes, reusing what was stored.

use ore_tests::ore::{scratch, Ore};
use ore_tests::sshd::{free_port, Sshd};
use ore_tests::trees::{assert_same, bytes};
use ore_tests::{bin, logged, quote};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn tree(root: &Path) {
    for d in 0..20 {
        let sub = root.join(format!("d{d:02}"));
        std::fs::create_dir_all(&sub).unwrap();
        for f in 0..30 {
            std::fs::write(sub.join(format!("f{f}")), bytes(d * 1000 + f, 20_000)).unwrap();
        }
    }
}

/// Pids of processes whose command line contains `needle`.
/// The processes running `program` with an argument containing `needle` (not this one).
/// Only the program's own processes: ore's child between fork and exec still has ore's
/// command line, which names the archive too, and stopping it hung ore in the fork for ever
/// (the `--timeout` watchdog was not running yet).
fn pids_of(program: &str, needle: &str) -> Vec<i32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let mut args = cmd.split(|&b| b == 0);
        let runs = args.next().is_some_and(|a| {
            Path::new(&*String::from_utf8_lossy(a)).file_name() == Some(program.as_ref())
        });
        if runs
            && String::from_utf8_lossy(&cmd).contains(needle)
            && pid != std::process::id() as i32
        {
            out.push(pid);
        }
    }
    out
}

fn new_blocks(o: &Ore, src: &Path) -> u64 {
    let r = o
        .run(&["snapshot", "t", src.to_str().unwrap(), "--json"])
        .expect(0, "snapshot");
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    v["stats"]["new_blocks"].as_u64().unwrap()
}

#[test]
fn the_network_dropping_mid_snapshot_fails_cleanly_and_a_rerun_reuses_the_blocks() {
    let sshd = Sshd::start(None);
    let d = scratch();
    let src = d.path().join("src");
    tree(&src);
    let archive = d.path().join("archive");
    let link_port = free_port();
    let start_link = || {
        Command::new(bin("delay-link"))
            .args(["--tcp", "5"])
            .arg(format!("127.0.0.1:{link_port}"))
            .arg(format!("127.0.0.1:{}", sshd.port))
            .stdin(Stdio::null())
            .spawn()
            .unwrap()
    };
    let id = format!(
        "ssh -F {} -p {link_port} ore-test {} {}",
        quote(&sshd.config()),
        bin("backend-splitlog").display(),
        quote(&archive)
    );
    let mut link = start_link();
    std::thread::sleep(Duration::from_millis(200));
    let o = Ore::new(id.clone());
    o.run(&["init"]).expect(0, "init");
    // The network goes away once a few megabytes have arrived.
    let before = logged(&archive);
    let snap = o
        .cmd(&["snapshot", "t", src.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while logged(&archive) < before + (3 << 20) {
        assert!(Instant::now() < deadline, "the snapshot sent nothing");
        std::thread::sleep(Duration::from_millis(5));
    }
    link.kill().unwrap();
    link.wait().unwrap();
    let out = snap.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("ore-test"),
        "the error names the archive: {err}"
    );
    // The tag was never set.
    let log = o.run(&["log", "t"]);
    assert_ne!(log.code, 0, "the tag exists: {}", log.stdout);
    // The link is back: the re-run completes and stores less than everything again.
    let mut link = start_link();
    std::thread::sleep(Duration::from_millis(200));
    let again = new_blocks(&o, &src);
    let fresh = Ore::new(d.path().join("fresh").display().to_string());
    fresh.run(&["init"]).expect(0, "init");
    let all = new_blocks(&fresh, &src);
    assert!(again < all, "the re-run stored {again} blocks of {all}");
    let dest = d.path().join("dest");
    o.restore("t", &dest).expect(0, "restore");
    assert_same(&src, &dest);
    link.kill().unwrap();
    link.wait().unwrap();
}

#[test]
fn a_backend_that_stops_answering_is_given_up_after_the_timeout() {
    let d = scratch();
    let src = d.path().join("src");
    tree(&src);
    let archive = d.path().join("archive-stopped");
    let id = format!("backend-splitlog {}", quote(&archive));
    let o = Ore::new(id);
    o.run(&["init"]).expect(0, "init");
    let snap = o
        .cmd(&["--timeout", "2", "snapshot", "t", src.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Stop the backend as soon as it runs.
    let needle = archive.display().to_string();
    let deadline = Instant::now() + Duration::from_secs(20);
    let pid = loop {
        if let Some(p) = pids_of("backend-splitlog", &needle).into_iter().next() {
            break p;
        }
        assert!(Instant::now() < deadline, "the backend never started");
        std::thread::sleep(Duration::from_millis(5));
    };
    // SAFETY: stopping a process this test started.
    unsafe {
        libc::kill(pid, libc::SIGSTOP);
    }
    let started = Instant::now();
    let out = snap.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("sent nothing for 2 s") || err.contains("did not answer the greeting"),
        "{err}"
    );
    assert!(err.contains(&needle), "the error names the archive: {err}");
    assert!(started.elapsed() < Duration::from_secs(30));
    // SAFETY: as above; the watchdog killed it, this only makes sure.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
    std::thread::sleep(Duration::from_millis(100));
    let r = o.run(&["snapshot", "t", src.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
}
