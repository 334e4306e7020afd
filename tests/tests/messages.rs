//! Messages a new user met that said too little or the wrong thing (issue 26, "Messages"):
//! each run through the real binaries, with what the message must now say.

use ore_tests::ore::{scratch, Ore, Run};
use ore_tests::{bin, quote};
use std::time::Duration;

/// Regression: `ore key add` with only `ORE_PASSPHRASE` set said "no passphrase: set
/// ORE_PASSPHRASE", which was set; what it lacked was the new passphrase.
#[test]
fn key_add_without_a_new_passphrase_asks_for_ore_new_passphrase() {
    let d = scratch();
    let o = Ore::new(d.path().join("arch").display().to_string());
    o.run(&["init"]).expect(0, "init");
    let r = Run::of(
        o.cmd(&["key", "add"])
            .stdin(std::process::Stdio::null())
            .output()
            .expect("ore runs"),
    );
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("no new passphrase") && r.stderr.contains("ORE_NEW_PASSPHRASE"),
        "{r:?}"
    );
    assert!(!r.stderr.contains("set ORE_PASSPHRASE"), "{r:?}");
}

/// Regression: a sync to an archive under another passphrase said only "wrong passphrase",
/// though the source had opened with it.
#[test]
fn a_sync_to_an_archive_under_another_passphrase_says_it_is_the_destinations() {
    let d = scratch();
    let src = Ore::new(d.path().join("src-arch").display().to_string());
    src.run(&["init"]).expect(0, "init the source");
    let dst_path = d.path().join("dst-arch");
    let mut dst = Ore::new(dst_path.display().to_string());
    dst.passphrase = "another passphrase".into();
    dst.run(&["init"]).expect(0, "init the destination");
    let r = src.run(&["sync", "--to", dst_path.to_str().expect("utf-8")]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("the destination archive")
            && r.stderr.contains("wrong passphrase")
            && r.stderr.contains("--to-passphrase-file"),
        "{r:?}"
    );
}

/// Regression: a backend program missing where it runs (on an ssh host, the remote shell
/// answers 127) was reported as "exited with status 127" and nothing more.
#[test]
fn a_backend_program_that_is_not_found_is_named_as_not_installed() {
    let o = Ore::new("sh -c 'exit 127'");
    let r = o.run(&["tags"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("status 127")
            && r.stderr.contains("was not found")
            && r.stderr.contains("install the backend there"),
        "{r:?}"
    );
}

/// Regression: SIGINT during a snapshot ended it with status 130 and not a word. Now the run
/// stops before its tag moves and says so; the next run completes, and check is clean.
#[test]
fn an_interrupted_snapshot_says_its_tag_was_not_moved_and_a_rerun_completes() {
    let d = scratch();
    // Behind 100 ms each way, opening the archive alone takes several round trips: the
    // signal comes while the run is still starting, whatever the machine's speed.
    let archive = d.path().join("arch");
    let o = Ore::new(format!(
        "{} 100 backend-splitlog {}",
        bin("delay-link").display(),
        quote(&archive)
    ));
    o.run(&["init"]).expect(0, "init");
    let src = d.path().join("src");
    std::fs::create_dir(&src).expect("mkdir");
    for i in 0..20 {
        std::fs::write(
            src.join(format!("f{i}")),
            ore_tests::trees::bytes(i, 100_000),
        )
        .expect("write");
    }
    let path = src.to_str().expect("utf-8");
    let child = o
        .cmd(&["snapshot", "home", path])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("ore snapshot starts");
    // The run starts its backend only after it has set up its handling of the signal: once
    // the backend is up, the signal cannot come too early, and the archive is still opening.
    let started = std::time::Instant::now();
    while !has_child(child.id()) {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the backend never started"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    // SAFETY: kill(2) on the pid of a child this test started and has not reaped.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let r = Run::of(child.wait_with_output().expect("ore snapshot ends"));
    assert_eq!(r.code, 130, "{r:?}");
    assert!(
        r.stderr.contains("interrupted")
            && r.stderr.contains("tag home was not moved")
            && r.stderr.contains("running the snapshot again"),
        "{r:?}"
    );
    let tags = o.run(&["tags"]).expect(0, "tags");
    assert!(
        !tags.stdout.contains("home"),
        "the tag was not set: {tags:?}"
    );
    o.run(&["snapshot", "home", path])
        .expect(0, "the snapshot run again");
    o.run(&["check"]).expect(0, "check");
}

/// Regression: `ore key passwd` replaced the slot with one under a new id, so notes and scripts
/// naming the slot went wrong. The slot keeps its id; only the new passphrase opens it.
#[test]
fn key_passwd_keeps_the_slots_id() {
    let d = scratch();
    let mut o = Ore::new(d.path().join("arch").display().to_string());
    o.run(&["init"]).expect(0, "init");
    let id = |o: &Ore| {
        let r = o.run(&["key", "list"]).expect(0, "key list");
        r.stdout
            .split_whitespace()
            .next()
            .expect("a slot")
            .trim_start_matches('*')
            .to_string()
    };
    let before = id(&o);
    let r = Run::of(
        o.cmd(&["key", "passwd"])
            .env("ORE_NEW_PASSPHRASE", "a new one")
            .output()
            .expect("ore runs"),
    )
    .expect(0, "key passwd");
    assert!(
        r.stderr.contains(&format!("key slot {before} changed")),
        "{r:?}"
    );
    let old = o.run(&["key", "list"]);
    assert_eq!(old.code, 1, "the old passphrase opens nothing: {old:?}");
    o.passphrase = "a new one".into();
    assert_eq!(id(&o), before, "the slot kept its id");
}

/// Regression: `restore --verify` said nothing of what it had checked.
#[test]
fn restore_verify_says_what_it_verified() {
    let d = scratch();
    let (o, _, src) = ore_tests::ore::fs_with_one_snapshot(d.path());
    std::fs::write(src.join("b"), ore_tests::trees::bytes(7, 300_000)).expect("write");
    o.snapshot("t", &src);
    let dest = d.path().join("out");
    let r = o
        .run(&["restore", "t", dest.to_str().expect("utf-8"), "--verify"])
        .expect(0, "restore --verify");
    assert!(
        r.stderr.contains("verified 2 files") && r.stderr.contains("matched its key"),
        "{r:?}"
    );
}

/// Whether process `pid` has a child process (read from /proc).
fn has_child(pid: u32) -> bool {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return false;
    };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .any(|stat| {
            // pid (comm) state ppid ...: comm may hold spaces, so read after its ')'.
            stat.rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok())
                == Some(pid)
        })
}
