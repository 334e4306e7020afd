//! A restore stopped in the middle of a large file (by SIGINT, by SIGKILL) leaves no file cut
//! short under its real name, and the plain re-run completes the tree; and setuid/setgid bits
//! survive a restore only onto files owned as the snapshot says.
//!
//! The interruption is real: the restore reads through `delay-link --serial`, a backend that
//! answers one request at a time, each after 15 ms, so a 48 MiB file takes most of a second to
//! write and is caught half written.

use ore_tests::ore::{Ore, Run};
use ore_tests::trees::{assert_same, bytes, is_root, partial_name};
use ore_tests::users::{as_nobody, chown_tree, NOBODY};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, Instant};

/// Whether a file in `dir` or a directory in it (a temporary one, under any name, or one with
/// no name yet that process `pid` holds open) holds some bytes yet.
fn writing(dir: &Path, pid: u32) -> bool {
    let big = |m: std::fs::Metadata| m.is_file() && m.len() > (4 << 20);
    let in_dir = |d: &Path| {
        std::fs::read_dir(d).is_ok_and(|rd| rd.flatten().any(|e| e.metadata().is_ok_and(big)))
    };
    let named = in_dir(dir)
        || std::fs::read_dir(dir)
            .is_ok_and(|rd| rd.flatten().any(|e| e.path().is_dir() && in_dir(&e.path())));
    // An unnamed file (O_TMPFILE) shows in /proc/PID/fd as "DIR/#INODE (deleted)".
    let unnamed = std::fs::read_dir(format!("/proc/{pid}/fd")).is_ok_and(|rd| {
        rd.flatten().any(|fd| {
            std::fs::read_link(fd.path()).is_ok_and(|l| l.starts_with(dir))
                && std::fs::metadata(fd.path()).is_ok_and(big)
        })
    });
    named || unnamed
}

/// A restore of a tree holding a 48 MiB file at `big` (a path in it) is stopped by `signal`
/// while it writes that file; then the checks, and the plain re-run.
fn interrupted_then_rerun(signal: libc::c_int, big: &str) {
    let d = ore_tests::ore::scratch();
    let store = d.path().join("store");
    let ore = Ore::fs(&store);
    let src = d.path().join("src");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    std::fs::write(src.join(big), bytes(7, 48 << 20)).unwrap();
    std::fs::write(src.join("sub/small"), b"small").unwrap();
    ore.snapshot("t", &src);
    // The same archive through a slow backend.
    let slow = ore.fs_serially_slowed(&store, 15);
    let dest = d.path().join("dest");
    let mut cmd = slow.cmd(&["restore", "t", dest.to_str().unwrap()]);
    cmd.stderr(std::process::Stdio::piped());
    // SIGINT as a terminal delivers it: a suite started in the background by a
    // non-interactive shell runs with SIGINT ignored, which children inherit.
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
            libc::signal(libc::SIGINT, libc::SIG_DFL);
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    let started = Instant::now();
    while !writing(&dest, child.id()) {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the restore ended before it was interrupted"
        );
        assert!(started.elapsed() < Duration::from_secs(60), "never wrote");
        std::thread::sleep(Duration::from_millis(5));
    }
    // SAFETY: a plain kill of our own child.
    assert_eq!(unsafe { libc::kill(child.id() as i32, signal) }, 0);
    let o = child.wait_with_output().unwrap();
    assert!(!o.status.success(), "the restore was interrupted");
    // No file cut short under its real name; a directory the restore made is not under its
    // real name until everything in it is done.
    if let Ok(md) = std::fs::metadata(dest.join(big)) {
        assert_eq!(md.len(), 48 << 20, "a file cut short passes for restored");
        assert_eq!(std::fs::read(dest.join(big)).unwrap(), bytes(7, 48 << 20));
    }
    if big.starts_with("sub/") {
        assert!(
            !dest.join("sub").exists(),
            "the directory shows under its real name unfinished"
        );
        assert!(
            dest.join(partial_name("sub")).is_dir(),
            "the stopped run left its directory under the temporary name"
        );
    }
    // The plain re-run completes what is missing; what it finds whole it leaves.
    let r: Run = ore.restore("t", &dest);
    assert!([0, 3].contains(&r.code), "re-run: {}\n{}", r.code, r.stderr);
    if big.starts_with("sub/") {
        // What the stopped run wrote beneath its temporary name is its own: taken up without
        // a word about files left alone.
        assert_eq!(r.code, 0, "re-run: {}", r.stderr);
    }
    assert_same(&src, &dest);
}

#[test]
fn a_restore_interrupted_by_sigint_mid_file_leaves_no_partial_file_and_a_rerun_completes() {
    interrupted_then_rerun(libc::SIGINT, "big");
}

#[test]
fn a_restore_killed_mid_file_leaves_no_partial_file_and_a_rerun_completes() {
    interrupted_then_rerun(libc::SIGKILL, "big");
}

#[test]
fn a_restore_killed_mid_file_in_a_new_directory_shows_none_of_it_and_a_rerun_takes_it_up() {
    // The file is written in place there, the directory being under a temporary name: the
    // re-run, with the default `--overwrite never`, must not keep the file cut short in it.
    interrupted_then_rerun(libc::SIGKILL, "sub/big");
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().mode() & 0o7777
}

#[test]
fn setuid_bits_are_restored_only_onto_files_owned_as_the_snapshot_says() {
    assert!(is_root(), "this test needs root: it restores owners");
    let (ore, d) = Ore::local();
    let src = d.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    for (name, uid) in [("mine", 0), ("theirs", NOBODY)] {
        let p = src.join(name);
        std::fs::write(&p, b"#!/bin/sh\n").unwrap();
        std::os::unix::fs::chown(&p, Some(uid), Some(uid)).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o6755)).unwrap();
    }
    ore.snapshot("t", &src);
    // Root restoring owners: everything as it was.
    let all = d.path().join("all");
    ore.restore("t", &all).expect(0, "restore as root");
    assert_eq!(mode(&all.join("mine")), 0o6755);
    assert_eq!(mode(&all.join("theirs")), 0o6755);
    assert_eq!(std::fs::metadata(all.join("theirs")).unwrap().uid(), NOBODY);
    // Root without owners: nobody's program must not become root's setuid program.
    let no = d.path().join("no-owner");
    let r = ore
        .run(&["restore", "t", no.to_str().unwrap(), "--no-owner"])
        .expect(3, "restore --no-owner warns");
    assert_eq!(mode(&no.join("mine")), 0o6755, "root's own file keeps them");
    assert_eq!(mode(&no.join("theirs")), 0o755, "nobody's file loses them");
    assert!(
        r.stderr.contains("theirs: setuid/setgid bits not restored"),
        "{}",
        r.stderr
    );
    // An ordinary user: their own program keeps them, root's does not.
    chown_tree(d.path(), NOBODY);
    // Their own cache and config directory too (Ore keeps its cache private to its owner).
    std::fs::create_dir_all(&ore.cache).unwrap();
    chown_tree(&ore.cache, NOBODY);
    let theirs = d.path().join("as-nobody");
    let r = Run::of(
        as_nobody(&ore.cmd(&["restore", "t", theirs.to_str().unwrap()]))
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap(),
    );
    assert_eq!(r.code, 3, "restore as nobody warns: {}", r.stderr);
    assert_eq!(
        mode(&theirs.join("theirs")),
        0o6755,
        "their own file keeps them"
    );
    assert_eq!(mode(&theirs.join("mine")), 0o755, "root's file loses them");
    assert_eq!(
        std::fs::metadata(theirs.join("mine")).unwrap().uid(),
        NOBODY
    );
}

#[test]
fn a_deep_and_wide_tree_restores_within_a_small_descriptor_limit() {
    // A directory is held open while it is restored, so a restore holds about one descriptor
    // per level for each thread: 2,000 directories, 40 chains 50 deep, restored by a process
    // allowed far fewer descriptors than that (on a machine of up to 30 cores).
    let (ore, d) = Ore::local();
    let src = d.path().join("src");
    for chain in 0..40 {
        let mut p = src.join(format!("c{chain}"));
        for depth in 0..50 {
            p.push(format!("d{depth}"));
            std::fs::create_dir_all(&p).unwrap();
            std::fs::write(p.join("f"), format!("{chain}/{depth}")).unwrap();
        }
    }
    ore.snapshot("t", &src);
    let dest = d.path().join("dest");
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get()) as u64;
    let limit = 64 + 60 * cores;
    let mut c = ore.cmd(&["restore", "t", dest.to_str().unwrap()]);
    // SAFETY: setrlimit is async-signal-safe; only plain data is touched before exec.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut c, move || {
            let r = libc::rlimit {
                rlim_cur: limit,
                rlim_max: limit,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &r) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
    Run::of(c.output().unwrap()).expect(0, "restore with few descriptors");
    assert_same(&src, &dest);
}

#[test]
fn a_file_named_like_the_temporary_name_of_its_neighbour_is_restored_too() {
    // A snapshot of a directory where a restore was once interrupted holds such a file; so
    // can a crafted one. Writing `big` under that name must not remove the file restored there.
    let (ore, d) = Ore::local();
    let src = d.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("big"), b"big file").unwrap();
    std::fs::write(src.join(partial_name("big")), b"a file of its own").unwrap();
    ore.snapshot("t", &src);
    for round in 0..3 {
        let dest = d.path().join(format!("dest{round}"));
        let r = ore.restore("t", &dest);
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert_same(&src, &dest);
    }
    // A re-run that finds the neighbour restored and `big` missing restores `big` beside it.
    let dest = d.path().join("dest0");
    std::fs::remove_file(dest.join("big")).unwrap();
    let r = ore.run(&["restore", "t", dest.to_str().unwrap()]);
    assert!([0, 3].contains(&r.code), "{}", r.stderr);
    assert_same(&src, &dest);
}

/// An archive with snapshot `t` of one file `f` ("restored"), and the destination to restore
/// it to (not made yet).
fn one_file_snapshot() -> (Ore, tempfile::TempDir, std::path::PathBuf) {
    let (ore, d) = Ore::local();
    let src = d.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("f"), b"restored").unwrap();
    ore.snapshot("t", &src);
    let dest = d.path().join("dest");
    (ore, d, dest)
}

#[test]
fn a_directory_planted_at_the_temporary_name_makes_an_overwriting_restore_fail_not_keep_the_planted_file(
) {
    // Regression: with the file written unnamed, a directory at its temporary name made
    // `--overwrite always` report the planted file at its real name as "exists, not
    // overwritten" (exit 3) and keep it.
    let (ore, _scratch, dest) = one_file_snapshot();
    std::fs::create_dir_all(dest.join(partial_name("f"))).unwrap();
    std::fs::write(dest.join("f"), b"planted").unwrap();
    let r = ore.run(&[
        "restore",
        "t",
        dest.to_str().unwrap(),
        "--overwrite",
        "always",
    ]);
    assert_eq!(r.code, 1, "the file was not restored: {}", r.stderr);
    assert!(
        r.stderr.contains("temporary name"),
        "says why: {}",
        r.stderr
    );
    assert!(!r.stderr.contains("not overwritten"), "{}", r.stderr);
}

#[test]
fn a_file_that_cannot_be_put_in_place_leaves_no_whole_copy_under_its_temporary_name() {
    // Regression: a file linked in under its temporary name, whose rename over the real name
    // failed (a directory there), stayed whole under the temporary name while the message said
    // nothing of it was put in place.
    let (ore, _scratch, dest) = one_file_snapshot();
    std::fs::create_dir_all(dest.join("f/sub")).unwrap();
    let r = ore.run(&[
        "restore",
        "t",
        dest.to_str().unwrap(),
        "--overwrite",
        "always",
    ]);
    assert_ne!(r.code, 0, "{}", r.stderr);
    let left: Vec<_> = std::fs::read_dir(&dest)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| n.to_string_lossy().starts_with(".ore-"))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}\n{}", r.stderr);
}
