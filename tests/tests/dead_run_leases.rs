//! Leases and sweeps of runs that were killed on this machine (issue 22, finding 5).
//!
//! A run that is killed stops renewing its lease (or its gc's sweep), and the next gc used to
//! wait for it ("waiting for 1 run(s)") — or the next gc was refused ("another gc is removing
//! blocks") and the next snapshot waited — until the ttl passed: 15 minutes by default. A lease
//! or sweep now records where its holder runs, its pid and the pid's start time, and one whose
//! process is gone from this machine (or whose pid names another process now) is taken over at
//! once. A live holder, a holder on another machine, and a record without these fields keep
//! the ttl rule.

use ore_tests::liveness::{
    held_leases, make_garbage, new_data, open, shared_archive, slow_snapshot, spawn, wait_for_lease,
};
use ore_tests::ore::Ore;
use protocol::Backend;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Well below the default ttl (15 minutes) and the gc's `--wait` used here, and well above
/// what taking a dead run's lease over costs.
const AT_ONCE: Duration = Duration::from_secs(10);

/// Runs `cmd`, killing it after `limit`; what it printed, and how long it took.
fn run_within(mut cmd: Command, limit: Duration) -> (Output, Duration) {
    let started = Instant::now();
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ore starts");
    while child.try_wait().unwrap().is_none() && started.elapsed() < limit {
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    (child.wait_with_output().unwrap(), started.elapsed())
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn a_snapshot_killed_mid_run_costs_the_next_gc_no_wait() {
    let (ore, _dir, d) = shared_archive();
    make_garbage(&ore, d.path(), 0);
    let src = d.path().join("src");
    new_data(&src, 101, 12);
    // Killed once it holds its lease, while it stores blocks.
    let mut snapshot = spawn(&ore, &["snapshot", "t", src.to_str().unwrap()]);
    wait_for_lease(&ore, &mut snapshot);
    snapshot.kill().unwrap();
    snapshot.wait().unwrap();
    assert_eq!(held_leases(&ore), 1, "the killed run's lease is left");
    let mut gc = ore.cmd(&["gc", "--json", "--wait", "60"]);
    gc.stdin(Stdio::null());
    let (out, took) = run_within(gc, Duration::from_secs(90));
    let err = text(&out.stderr);
    assert!(out.status.success(), "gc: {err}");
    assert!(
        took < AT_ONCE,
        "gc took {took:?} to take over a dead run's lease: {err}"
    );
    assert!(err.contains("is no longer running"), "{err}");
    let g: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(g["removed"].as_u64().unwrap() > 0, "{g}");
    eprintln!("gc after a killed snapshot took {took:?} (the ttl is 15 minutes)");
    ore.run(&["check"]).expect(0, "check");
}

#[test]
fn a_gc_killed_after_announcing_its_sweep_holds_up_neither_the_next_gc_nor_a_snapshot() {
    let (ore, _dir, d) = shared_archive();
    let src = d.path().join("src");
    for (round, next) in ["gc", "snapshot"].into_iter().enumerate() {
        let round = round as u64;
        make_garbage(&ore, d.path(), round + 10);
        new_data(&src, round + 120, 12);
        let snapshot = slow_snapshot(&ore, &src);
        // The gc announces its sweep, then waits for the snapshot's lease: killed there.
        let mut gc = spawn(&ore, &["gc"]);
        let mut err = BufReader::new(gc.stderr.take().unwrap());
        let mut said = String::new();
        while !said.contains("waiting for 1 run(s)") {
            let mut line = String::new();
            assert!(
                err.read_line(&mut line).unwrap() > 0,
                "the gc ended before waiting: {said}"
            );
            said.push_str(&line);
        }
        gc.kill().unwrap();
        gc.wait().unwrap();
        let o = snapshot.wait_with_output().unwrap();
        assert!(o.status.success(), "the snapshot: {}", text(&o.stderr));
        std::fs::write(src.join("f0"), b"after the killed gc").unwrap();
        let cmd = match next {
            "gc" => ore.cmd(&["gc"]),
            _ => ore.cmd(&["snapshot", "t", src.to_str().unwrap()]),
        };
        let (out, took) = run_within(cmd, Duration::from_secs(60));
        let err = text(&out.stderr);
        assert!(out.status.success(), "the next {next}: {err}");
        assert!(took < AT_ONCE, "the next {next} took {took:?}: {err}");
        assert!(
            err.contains("stopped without finishing (its process is no longer running)"),
            "the next {next}: {err}"
        );
        eprintln!("the {next} after a killed gc took {took:?} (the ttl is 15 minutes)");
    }
    ore.run(&["gc"]).expect(0, "a last gc");
    ore.run(&["check", "--read-data"]).expect(0, "check");
}

/// Writes a lease holder into slot `ore:lease:7` of the archive, with `extra` fields.
fn plant_lease(ore: &Ore, extra: Value) {
    let backend = open(ore);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64;
    let mut v = json!({
        "by": "planted", "since": now, "heartbeat": now, "id": "0123456789abcdef",
        "ttl": 900_000_000_000i64,
    });
    for (k, x) in extra.as_object().unwrap() {
        v[k] = x.clone();
    }
    let slot = "ore:lease:7";
    let before = backend.get_tag(slot).unwrap();
    let value = serde_json::to_vec(&v).unwrap();
    backend
        .set_tag(slot, before.as_deref(), &value)
        .expect("the lease is planted");
    backend.flush().unwrap();
}

/// Runs gc allowing it `wait` for leases; whether it succeeded, what it said, and how long.
fn gc_waiting(ore: &Ore, wait: &str) -> (bool, String, Duration) {
    let (out, took) = run_within(ore.cmd(&["gc", "--wait", wait]), Duration::from_secs(60));
    (out.status.success(), text(&out.stderr), took)
}

#[test]
fn only_a_lease_whose_process_is_known_gone_from_this_machine_is_taken_over_early() {
    let (ore, d) = Ore::local();
    make_garbage(&ore, d.path(), 30);
    let host = ore::core::lease::process::this_host().expect("this machine can be named");
    let mut live = Command::new("sleep").arg("120").spawn().unwrap();
    let pid = live.id();
    let start = ore::core::lease::process::start_of(pid).expect("its start time");
    let mut ended = Command::new("true").spawn().unwrap();
    let dead = ended.id();
    ended.wait().unwrap();

    // Alive: respected for its ttl (gc gives up after its --wait).
    plant_lease(&ore, json!({"host": host, "pid": pid, "start": start}));
    let (ok, err, _) = gc_waiting(&ore, "2");
    assert!(
        !ok && err.contains("waiting for 1 run(s)"),
        "a live run: {err}"
    );
    // Gone, but on another machine (another boot, or pid namespace): the ttl rule.
    plant_lease(
        &ore,
        json!({"host": "boot:00000000-0000-0000-0000-000000000000 pid:[4026531836]",
               "pid": dead, "start": 1}),
    );
    let (ok, err, _) = gc_waiting(&ore, "2");
    assert!(
        !ok && err.contains("waiting for 1 run(s)"),
        "another host: {err}"
    );
    // Written by an earlier version (no host, pid or start time): the ttl rule.
    plant_lease(&ore, json!({"pid": dead}));
    let (ok, err, _) = gc_waiting(&ore, "2");
    assert!(
        !ok && err.contains("waiting for 1 run(s)"),
        "an old record: {err}"
    );
    // The pid lives, but it is another process now (another start time): taken over at once.
    plant_lease(&ore, json!({"host": host, "pid": pid, "start": start + 1}));
    let (ok, err, took) = gc_waiting(&ore, "60");
    assert!(ok, "a recycled pid: {err}");
    assert!(took < AT_ONCE, "a recycled pid: {took:?} {err}");
    assert!(err.contains("is no longer running"), "{err}");
    // And gone from this machine: taken over at once.
    make_garbage(&ore, d.path(), 31);
    plant_lease(&ore, json!({"host": host, "pid": dead, "start": 1}));
    let (ok, err, took) = gc_waiting(&ore, "60");
    assert!(ok && took < AT_ONCE, "a dead pid: {took:?} {err}");
    live.kill().unwrap();
    live.wait().unwrap();
}
