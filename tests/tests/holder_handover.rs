//! Runs that share one `backend-splitlog DIR` process (issue 22, finding 4).
//!
//! The second run started on an archive attaches to the backend process the first one started
//! (its *holder*). That process used to end with the first run's connection, cutting off the
//! second: a gc attached to a snapshot's backend failed with "the backend exited with status
//! 0" when the snapshot finished, leaving its sweep announced. The holder now serves until the
//! last connection ends, and the run that started it is not kept waiting for the others. A
//! relay whose holder is killed says so, and what to do.

use ore_tests::liveness::{
    assert_no_backend_left, backends_of, make_garbage, new_data, shared_archive, slow,
    slow_snapshot, spawn,
};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn spawn_with(mut cmd: Command) -> Child {
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ore starts")
}

/// Waits until the archive's holder listens for attachments (its socket exists).
fn wait_for_holder(dir: &Path, what: &mut Child) {
    let socket = dir.join(protocol::share::SOCKET);
    let started = Instant::now();
    while !socket.exists() {
        assert!(
            what.try_wait().unwrap().is_none(),
            "the first run ended before its backend listened"
        );
        assert!(started.elapsed() < Duration::from_secs(30), "no holder");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn finish(child: Child, what: &str) -> (i32, String, String) {
    let o = child.wait_with_output().expect("ore ends");
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    );
    assert!(
        o.status.success(),
        "{what} failed: {:?}\nstdout: {out}\nstderr: {err}",
        o.status
    );
    (o.status.code().unwrap_or(-1), out, err)
}

#[test]
fn a_gc_attached_to_a_snapshots_backend_is_not_cut_off_when_the_snapshot_ends() {
    let (ore, dir, d) = shared_archive();
    let src = d.path().join("src");
    for round in 0..3 {
        make_garbage(&ore, d.path(), round);
        new_data(&src, round, 12);
        // The snapshot holds its lease for seconds (its link is slow); the gc attaches to its
        // backend, announces its sweep and waits for that lease: it is still working when the
        // snapshot's run ends.
        let snapshot = slow_snapshot(&ore, &src);
        let gc = spawn(&ore, &["gc", "--json"]);
        let snapshot_done = Instant::now();
        finish(snapshot, &format!("round {round}: the snapshot"));
        let snapshot_done = snapshot_done.elapsed();
        let (_, out, err) = finish(gc, &format!("round {round}: the gc"));
        let g: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out} {err}"));
        assert!(g["removed"].as_u64().unwrap() > 0, "round {round}: {g}");
        assert!(!err.contains("error"), "round {round}: {err}");
        assert!(
            snapshot_done < Duration::from_secs(60),
            "round {round}: the snapshot took {snapshot_done:?}"
        );
        assert_no_backend_left(&dir);
    }
    ore.run(&["check", "--read-data"]).expect(0, "check");
    let out = d.path().join("out");
    ore.restore("t", &out).expect(0, "restore");
    ore_tests::trees::assert_same(&src, &out);
}

#[test]
fn a_snapshot_attached_to_a_gcs_backend_is_not_cut_off_when_the_gc_ends() {
    let (ore, dir, d) = shared_archive();
    let src = d.path().join("src");
    // The gc runs through a slow link (every request costs 20 ms), so it is still the holder
    // when the snapshot attaches; it has nothing to sweep, so it ends while the snapshot works.
    let slow = slow(&ore, 20);
    for round in 0..3 {
        new_data(&src, round + 10, 12);
        let mut gc = slow.cmd(&["gc"]);
        gc.env("ORE_LANES", "1");
        let mut gc = spawn_with(gc);
        wait_for_holder(&dir, &mut gc);
        let snapshot = spawn(&ore, &["snapshot", "t", src.to_str().unwrap()]);
        let gc_done = Instant::now();
        finish(gc, &format!("round {round}: the gc"));
        let gc_done = gc_done.elapsed();
        finish(snapshot, &format!("round {round}: the snapshot"));
        assert!(
            gc_done < Duration::from_secs(60),
            "round {round}: the gc took {gc_done:?}"
        );
        assert_no_backend_left(&dir);
    }
    ore.run(&["check", "--read-data"]).expect(0, "check");
}

#[test]
fn a_relay_whose_holder_is_killed_says_what_happened_and_what_to_do() {
    let (ore, dir, d) = shared_archive();
    let src = d.path().join("src");
    make_garbage(&ore, d.path(), 0);
    new_data(&src, 20, 12);
    let snapshot = slow_snapshot(&ore, &src);
    let mut gc = spawn(&ore, &["gc"]);
    // Once the gc waits for the snapshot's lease, it is attached to the snapshot's backend.
    let mut err = BufReader::new(gc.stderr.take().unwrap());
    let mut said = String::new();
    while !said.contains("waiting for 1 run(s)") {
        let mut line = String::new();
        if err.read_line(&mut line).unwrap() == 0 {
            panic!("the gc ended before waiting: {said}");
        }
        said.push_str(&line);
    }
    let holder: i32 = std::fs::read_to_string(dir.join("lock"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // SAFETY: kill with a pid read from the archive's lock: the snapshot's backend.
    assert_eq!(unsafe { libc::kill(holder, libc::SIGKILL) }, 0);
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut err, &mut rest).unwrap();
    let status = gc.wait().unwrap();
    let _ = snapshot.wait_with_output();
    said.push_str(&rest);
    assert!(!status.success(), "the gc cannot succeed: {said}");
    assert!(
        said.contains(&format!("pid {holder}"))
            && said.contains("ended while this connection was relayed through it")
            && said.contains("killed or it crashed")
            && said.contains("Run the command again"),
        "the gc says what happened and what to do: {said}"
    );
    assert!(!said.contains("exited with status 0"), "{said}");
    assert_no_backend_left(&dir);
}

/// An interactive `ore-admin` session on `archive`: its input, and its output by lines.
struct Session {
    child: Child,
    input: Option<std::process::ChildStdin>,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Session {
    fn start(archive: &str) -> Session {
        let mut child = Command::new(ore_tests::bin("ore-admin"))
            .arg(archive)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("ore-admin starts");
        let input = child.stdin.take();
        let output = BufReader::new(child.stdout.take().unwrap());
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in output.lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Session {
            child,
            input,
            lines,
        }
    }

    /// Asks for the archive's stats and waits (up to 30 s) for the answer's first line.
    fn stats(&mut self, what: &str) {
        use std::io::Write;
        let input = self.input.as_mut().unwrap();
        writeln!(input, "stats").unwrap();
        input.flush().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.starts_with("blocks:") => return,
                Ok(_) => {}
                Err(_) => panic!("{what}: no answer (its connection was cut)"),
            }
        }
    }

    /// Ends the session (closes its input) and returns how long it took to exit.
    fn end(mut self, what: &str) -> Duration {
        let started = Instant::now();
        drop(self.input.take());
        let status = self.child.wait().unwrap();
        assert!(status.success(), "{what}: {status}");
        started.elapsed()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The session that started the holder ends while another stays attached: it exits at once
/// (it is not kept waiting for the other, which may be a whole run), and the other goes on
/// being served until it ends, which ends the holder.
fn first_session_leaves_the_second_served(archive: &str, dir: &Path) {
    let mut first = Session::start(archive);
    first.stats("the first session");
    assert!(
        dir.join(protocol::share::SOCKET).exists(),
        "a holder listens"
    );
    let mut second = Session::start(archive);
    second.stats("the second session, attached");
    let took = first.end("the first session");
    assert!(
        took < Duration::from_secs(10),
        "the session that started the holder took {took:?} to exit: it waited for the other"
    );
    second.stats("the second session, after the first ended");
    second.stats("the second session, again");
    assert!(!backends_of(dir).is_empty(), "the holder serves the second");
    second.end("the second session");
    assert_no_backend_left(dir);
}

#[test]
fn the_process_that_started_the_holder_is_not_kept_waiting_for_those_attached_to_it() {
    let (ore, dir, _d) = shared_archive();
    first_session_leaves_the_second_served(&ore.archive, &dir);
}

#[test]
fn over_ssh_the_process_that_started_the_holder_is_not_kept_waiting_either() {
    let sshd = ore_tests::sshd::Sshd::start(None);
    let (ore, dir, _d) = shared_archive();
    let remote = sshd.identifier(&ore.archive);
    first_session_leaves_the_second_served(&remote, &dir);
}
