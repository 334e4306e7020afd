//! Runs that overlap on one archive, for the tests of issue 22's findings 4 and 5
//! (`holder_handover.rs`, `dead_run_leases.rs`): an archive reached through its backend
//! program (so that runs attach to each other), garbage for gc to sweep, a run slow enough to
//! be caught mid-way, and a look at who holds leases.

use crate::ore::Ore;
use crate::trees::bytes;
use protocol::Backend;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A splitlog archive reached through its backend program, initialised, and the directory
/// holding it.
pub fn shared_archive() -> (Ore, PathBuf, tempfile::TempDir) {
    let d = crate::ore::scratch();
    let dir = d.path().join("archive");
    let ore = Ore::new(format!(
        "{} {}",
        crate::quote(&crate::bin("backend-splitlog")),
        crate::quote(&dir)
    ));
    ore.run(&["init"]).expect(0, "init");
    (ore, dir, d)
}

/// Fills `dir` with `files` files of 8 MiB that no other `seed` writes.
pub fn new_data(dir: &Path, seed: u64, files: u64) {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();
    for f in 0..files {
        std::fs::write(dir.join(format!("f{f}")), bytes(seed * 1000 + f, 8 << 20)).unwrap();
    }
}

/// Leaves blocks that nothing reaches (a forgotten snapshot, its reflog entry expired), so that
/// gc sweeps — and so waits for the runs that hold leases.
pub fn make_garbage(ore: &Ore, scratch: &Path, seed: u64) {
    let src = scratch.join("junk");
    std::fs::create_dir_all(&src).unwrap();
    for i in 0..2 {
        std::fs::write(src.join("j"), bytes(seed * 7 + i + 500_000, 1 << 20)).unwrap();
        ore.snapshot("junk", &src);
    }
    ore.run(&["forget", "junk", "--keep-last", "1"])
        .expect(0, "forget");
    ore.run(&["reflog", "expire", "--older-than", "0s"])
        .expect(0, "reflog expire");
}

/// The same archive through a slow link (every request costs `ms`).
pub fn slow(ore: &Ore, ms: u32) -> Ore {
    Ore::new(format!(
        "{} --serial {ms} {}",
        crate::quote(&crate::bin("delay-link")),
        ore.archive
    ))
}

/// `ore ARGS` started, its output piped.
pub fn spawn(ore: &Ore, args: &[&str]) -> Child {
    ore.cmd(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ore starts")
}

/// A snapshot of `src` to tag `t` through a slow link (5 ms a request, one connection),
/// started once, and returned once it holds its lease: it holds it for seconds more, long
/// enough for another run to start, attach to its backend and wait for it.
pub fn slow_snapshot(ore: &Ore, src: &Path) -> Child {
    let mut c = slow(ore, 5).cmd(&["snapshot", "t", src.to_str().unwrap()]);
    c.env("ORE_LANES", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut snapshot = c.spawn().expect("ore starts");
    wait_for_lease(ore, &mut snapshot);
    snapshot
}

/// Waits until a lease is held on the archive, while `run` goes on.
pub fn wait_for_lease(ore: &Ore, run: &mut Child) {
    let started = Instant::now();
    while held_leases(ore) == 0 {
        if let Some(status) = run.try_wait().unwrap() {
            let mut err = String::new();
            if let Some(mut e) = run.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut e, &mut err);
            }
            panic!("the run ended ({status}) before it took a lease: {err}");
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no lease taken"
        );
    }
}

/// Opens the archive from this process, waiting (up to 30 s) while a backend that is ending
/// still holds it (this process sets no `ORE_TIMEOUT`, so a busy archive fails at once).
pub fn open(ore: &Ore) -> Arc<dyn Backend> {
    let started = Instant::now();
    loop {
        match ore::core::archive::open_existing(&ore.archive) {
            Ok(b) => return b,
            Err(_) if started.elapsed() < Duration::from_secs(30) => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("opening {}: {e}", ore.archive),
        }
    }
}

/// The lease slots of the archive that are held.
pub fn held_leases(ore: &Ore) -> usize {
    let backend = open(ore);
    ore::core::lease::leases(&*backend)
        .unwrap()
        .into_iter()
        .filter(|(_, _, h)| h.is_some())
        .count()
}

/// The pids of `backend-splitlog` processes serving the archive in `dir` (zombies apart).
pub fn backends_of(dir: &Path) -> Vec<u32> {
    let needle = dir.display().to_string();
    let mut pids = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        let state = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        let zombie = state
            .rsplit_once(')')
            .is_some_and(|(_, r)| r.trim_start().starts_with('Z'));
        if cmd.contains("backend-splitlog") && cmd.contains(&needle) && !zombie {
            pids.push(pid);
        }
    }
    pids
}

/// Waits (up to 10 s) until no backend process serves the archive in `dir`: the last
/// connection to end ended its holder, and nothing was left behind.
pub fn assert_no_backend_left(dir: &Path) {
    let started = Instant::now();
    loop {
        let left = backends_of(dir);
        if left.is_empty() {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "backend processes left behind: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
