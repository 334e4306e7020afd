//! `ore watch TAG PATH` (issue 26, item 17): a snapshot after each burst of changes settles,
//! holding exactly those changes; a full walk when the kernel's event queue overflowed; a
//! clean stop on SIGTERM.

use ore_tests::ore::{scratch, Ore};
use std::io::Read;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

fn write(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
    std::fs::write(path, bytes).expect("write");
}

fn start(o: &Ore, src: &Path) -> Child {
    o.cmd(&[
        "watch",
        "t",
        src.to_str().expect("UTF-8"),
        "--settle",
        "300ms",
        "--longest",
        "5s",
    ])
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .expect("ore watch starts")
}

/// Waits until tag `t` has `n` snapshots; false after `limit`.
fn wait_for(o: &Ore, n: usize, limit: Duration) -> bool {
    let started = Instant::now();
    while started.elapsed() < limit {
        let r = o.run(&["log", "t"]);
        if r.code == 0 && r.stdout.lines().count() >= n {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// Stops the watch with SIGTERM; its exit status and what it printed.
fn stop(mut child: Child) -> (Option<i32>, String) {
    // SAFETY: kill on a child's pid that has not been waited for.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let status = child.wait().expect("wait");
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    (status.code(), err)
}

#[test]
fn each_burst_of_changes_is_saved_once_it_settles_with_exactly_those_changes() {
    let d = scratch();
    let o = Ore::new(d.path().join("arch").display().to_string());
    o.run(&["init"]).expect(0, "init");
    let src = d.path().join("src");
    for dir in ["a", "b", "c"] {
        for i in 0..20 {
            write(
                &src.join(dir).join(format!("f{i}")),
                format!("{dir}{i}").as_bytes(),
            );
        }
    }
    let child = start(&o, &src);
    assert!(
        wait_for(&o, 1, Duration::from_secs(30)),
        "the first snapshot"
    );
    write(&src.join("a/f1"), b"changed");
    write(&src.join("b/new"), b"new");
    std::fs::remove_file(src.join("c/f2")).expect("rm");
    assert!(
        wait_for(&o, 2, Duration::from_secs(30)),
        "a snapshot after the changes"
    );
    let (code, err) = stop(child);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("stopped watching t"), "{err}");
    let diff = o.run(&["diff", "t~1", "t"]).expect(0, "diff").stdout;
    let changed: Vec<&str> = diff.lines().collect();
    assert_eq!(
        changed,
        [
            "M a/f1 (content, mtime)",
            "M b (mtime)",
            "+ b/new",
            "M c (mtime)",
            "- c/f2"
        ],
        "exactly the three changes (and the times of the directories they were in)"
    );
    // What it saved is what is there.
    o.run(&["check", "t", "--compare", src.to_str().expect("UTF-8")])
        .expect(0, "the snapshot matches the tree");
    let log = o.run(&["--json", "log", "t"]).expect(0, "log").stdout;
    let newest: serde_json::Value =
        serde_json::from_str(log.lines().next().expect("a line")).expect("JSON");
    assert!(
        newest["stats"]["files_read"].as_u64().expect("files_read") <= 2,
        "only the changed files read: {newest}"
    );
    // Directories taken from the cache unwalked still count in the totals.
    assert_eq!(newest["stats"]["files"], 60, "{newest}");
    assert_eq!(newest["stats"]["dirs"], 4, "{newest}");
}

/// Sets /proc/sys/fs/inotify/max_queued_events for as long as it lives.
struct QueueLimit(String);

impl QueueLimit {
    fn set(n: u32) -> QueueLimit {
        let path = "/proc/sys/fs/inotify/max_queued_events";
        let was = std::fs::read_to_string(path).expect("read the inotify queue limit");
        std::fs::write(path, n.to_string())
            .expect("setting the inotify queue limit takes root (CI runs as root)");
        QueueLimit(was)
    }
}

impl Drop for QueueLimit {
    fn drop(&mut self) {
        let _ = std::fs::write("/proc/sys/fs/inotify/max_queued_events", self.0.trim());
    }
}

#[test]
fn an_overflowed_event_queue_makes_the_next_snapshot_walk_everything() {
    let d = scratch();
    let o = Ore::new(d.path().join("arch").display().to_string());
    o.run(&["init"]).expect(0, "init");
    let src = d.path().join("src");
    write(&src.join("first"), b"1");
    // The queue's length is fixed when the watch begins: a short one for this watch only.
    let limit = QueueLimit::set(32);
    let child = start(&o, &src);
    assert!(
        wait_for(&o, 1, Duration::from_secs(30)),
        "the first snapshot"
    );
    drop(limit);
    for i in 0..2000 {
        write(&src.join(format!("many/{}/f{i}", i % 10)), b"x");
    }
    // Every file in the newest snapshot, though events were lost.
    let files = || {
        let listed = o.run(&["ls", "-R", "t"]).stdout;
        listed.lines().filter(|l| l.starts_with("many/")).count()
    };
    let started = Instant::now();
    while files() < 2000 && started.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(200));
    }
    let (code, err) = stop(child);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("events were lost"), "{err}");
    assert_eq!(files(), 2000 + 10, "2000 files in 10 directories: {err}");
}
