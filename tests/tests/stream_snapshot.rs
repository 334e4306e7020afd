//! Snapshots of a stream (issue 26, item 2): standard input (`--stdin-name NAME`, or `-`) and
//! a command's output (`--stdin-from-command`), each kept as one file that deduplicates like
//! any other; a command that fails never passes for a backup.

use ore_tests::ore::{scratch, Ore, Run};
use std::path::Path;

/// `ore ARGS` with the file `input` on standard input.
fn with_stdin(o: &Ore, args: &[&str], input: &Path) -> Run {
    let f = std::fs::File::open(input).expect("open the input");
    Run::of(o.cmd(args).stdin(f).output().expect("ore runs"))
}

/// A new archive in `d`.
fn archive(d: &Path) -> Ore {
    let o = Ore::new(d.join("arch").display().to_string());
    o.run(&["init"]).expect(0, "init");
    o
}

/// Bytes that compress poorly and chunk into several blocks.
fn data(d: &Path) -> std::path::PathBuf {
    let p = d.join("dump.sql");
    let mut bytes = Vec::with_capacity(3 << 20);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    while bytes.len() < 3 << 20 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        bytes.extend_from_slice(&x.to_le_bytes());
    }
    std::fs::write(&p, &bytes).expect("write");
    p
}

fn new_bytes(r: &Run) -> u64 {
    let v: serde_json::Value = serde_json::from_str(r.stdout.trim()).expect("JSON");
    v["stats"]["new_bytes"]
        .as_u64()
        .unwrap_or_else(|| panic!("new_bytes in {v}"))
}

#[test]
fn standard_input_is_kept_as_one_file_that_reads_back_byte_for_byte_and_deduplicates() {
    let d = scratch();
    let o = archive(d.path());
    let input = data(d.path());
    let first = with_stdin(
        &o,
        &["--json", "snapshot", "db", "--stdin-name", "db.sql"],
        &input,
    )
    .expect(0, "snapshot of stdin");
    assert!(new_bytes(&first) >= 3 << 20, "{}", first.stdout);
    let ls = o.run(&["ls", "-l", "db"]).expect(0, "ls");
    assert!(
        ls.stdout.contains(" 3145728 ") && ls.stdout.trim_end().ends_with(" db.sql"),
        "{}",
        ls.stdout
    );
    assert!(
        ls.stdout.starts_with("-rw-------"),
        "private by default: {}",
        ls.stdout
    );
    let cat = o.cmd(&["cat", "db:db.sql"]).output().expect("cat");
    assert_eq!(cat.stdout, std::fs::read(&input).expect("read"));
    // The same stream again, through `-`: only the new directory is stored.
    let again = with_stdin(&o, &["--json", "snapshot", "db", "-"], &input).expect(0, "again");
    assert!(new_bytes(&again) < 4096, "deduplicated: {}", again.stdout);
    let ls = o.run(&["ls", "db"]).expect(0, "ls");
    assert_eq!(ls.stdout.trim(), "stdin", "the default name");
    let log = o.run(&["log", "db"]).expect(0, "log").stdout;
    assert!(
        log.contains("db.sql") && log.contains("stdin"),
        "the name as the path: {log}"
    );
}

#[test]
fn a_command_that_fails_fails_the_snapshot_and_the_tag_stays_where_it_was() {
    let d = scratch();
    let o = archive(d.path());
    let input = data(d.path());
    let cmd = format!("cat {}", input.display());
    o.run(&[
        "snapshot",
        "db",
        "--stdin-name",
        "db.sql",
        "--stdin-from-command",
        &cmd,
    ])
    .expect(0, "a command that succeeds");
    let cat = o.cmd(&["cat", "db:db.sql"]).output().expect("cat");
    assert_eq!(cat.stdout, std::fs::read(&input).expect("read"));
    let before = o.run(&["log", "db"]).expect(0, "log").stdout;
    let failing = format!("sh -c 'cat {}; exit 3'", input.display());
    let r = o
        .run(&["snapshot", "db", "--stdin-from-command", &failing])
        .expect(1, "a command that fails");
    assert!(
        r.stderr
            .contains("exited with status 3 after printing 3145728 bytes")
            && r.stderr.contains("the tag was not moved"),
        "{}",
        r.stderr
    );
    assert_eq!(o.run(&["log", "db"]).expect(0, "log").stdout, before);
    let r = o
        .run(&[
            "snapshot",
            "db",
            "--stdin-from-command",
            "no-such-program-here",
        ])
        .expect(1, "a command that does not start");
    assert!(
        r.stderr.contains("cannot start `no-such-program-here`"),
        "{}",
        r.stderr
    );
    let killed = o
        .run(&[
            "snapshot",
            "db",
            "--stdin-from-command",
            "sh -c 'kill -9 $$'",
        ])
        .expect(1, "a command killed");
    assert!(
        killed.stderr.contains("was killed by signal 9"),
        "{}",
        killed.stderr
    );
    assert_eq!(o.run(&["log", "db"]).expect(0, "log").stdout, before);
}

#[test]
fn the_command_is_given_no_passphrase_in_its_environment() {
    let d = scratch();
    let o = archive(d.path());
    o.run(&["snapshot", "env", "--stdin-from-command", "env"])
        .expect(0, "snapshot of env");
    let env = o.cmd(&["cat", "env:stdin"]).output().expect("cat");
    let env = String::from_utf8_lossy(&env.stdout);
    assert!(env.contains("PATH="), "the environment was saved: {env}");
    assert!(!env.contains("ORE_PASSPHRASE"), "{env}");
}

#[test]
fn a_stream_with_paths_or_a_name_that_is_not_one_name_is_refused() {
    let d = scratch();
    let o = archive(d.path());
    let input = data(d.path());
    let r =
        with_stdin(&o, &["snapshot", "db", "--stdin-name", "../x"], &input).expect(1, "bad name");
    assert!(r.stderr.contains("--stdin-name `../x`"), "{}", r.stderr);
    // A name no file system takes could never be restored (found by attacking streams).
    let long = "n".repeat(300);
    let r = with_stdin(&o, &["snapshot", "db", "--stdin-name", &long], &input).expect(1, "long");
    assert!(r.stderr.contains("at most 255"), "{}", r.stderr);
    let here = d.path().to_str().expect("UTF-8");
    let r =
        with_stdin(&o, &["snapshot", "db", here, "--stdin-name", "x"], &input).expect(1, "both");
    assert!(r.stderr.contains("not both"), "{}", r.stderr);
    assert!(o.run(&["tags"]).expect(0, "tags").stdout.is_empty());
}

/// Found by attacking streams: SIGTERM while the producer printed nothing waited for its next
/// line (for ever, with `sleep`), and a second signal left the command running as an orphan.
#[test]
fn a_signal_stops_a_stream_snapshot_whose_producer_is_silent() {
    let d = scratch();
    let o = archive(d.path());
    let mut child = o
        .cmd(&["snapshot", "db", "--stdin-from-command", "sleep 30"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("ore starts");
    std::thread::sleep(std::time::Duration::from_millis(1500));
    // SAFETY: kill on a child's pid that has not been waited for.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            break s;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "still reading"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(130));
    assert!(
        o.run(&["tags"]).expect(0, "tags").stdout.is_empty(),
        "no tag"
    );
}

/// Issue 26, item 2: several named streams in one snapshot (`--stdin-from-command` and
/// `--stdin-name` repeated in pairs), each a file at the root; one failing command fails the
/// whole snapshot; names must pair up and differ.
#[test]
fn several_commands_make_one_snapshot_of_one_file_each_and_one_failure_fails_it() {
    let d = scratch();
    let o = archive(d.path());
    let input = data(d.path());
    let big = format!("cat {}", input.display());
    o.run(&[
        "snapshot",
        "dbs",
        "--stdin-from-command",
        "echo users",
        "--stdin-name",
        "users.sql",
        "--stdin-from-command",
        &big,
        "--stdin-name",
        "big.sql",
    ])
    .expect(0, "two commands");
    let ls = o.run(&["ls", "dbs"]).expect(0, "ls").stdout;
    assert_eq!(ls.lines().collect::<Vec<_>>(), ["big.sql", "users.sql"]);
    let cat = o.cmd(&["cat", "dbs:big.sql"]).output().expect("cat");
    assert_eq!(cat.stdout, std::fs::read(&input).expect("read"));
    let cat = o.run(&["cat", "dbs:users.sql"]).expect(0, "cat");
    assert_eq!(cat.stdout, "users\n");
    let log = o.run(&["log", "dbs"]).expect(0, "log").stdout;
    assert!(
        log.contains("users.sql") && log.contains("big.sql"),
        "{log}"
    );

    // The second command fails: no snapshot, the tag where it was.
    let before = o.run(&["log", "dbs"]).expect(0, "log").stdout;
    let r = o.run(&[
        "snapshot",
        "dbs",
        "--stdin-from-command",
        "echo users",
        "--stdin-name",
        "users.sql",
        "--stdin-from-command",
        "sh -c 'echo half; exit 4'",
        "--stdin-name",
        "big.sql",
    ]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("exit") && r.stderr.contains("tag was not moved"),
        "{r:?}"
    );
    assert_eq!(o.run(&["log", "dbs"]).stdout, before);

    // Names pair up with commands, and differ.
    for (args, says) in [
        (
            vec![
                "--stdin-from-command",
                "echo a",
                "--stdin-from-command",
                "echo b",
            ],
            "give each command its name",
        ),
        (
            vec![
                "--stdin-from-command",
                "echo a",
                "--stdin-name",
                "x",
                "--stdin-from-command",
                "echo b",
                "--stdin-name",
                "x",
            ],
            "two streams",
        ),
    ] {
        let mut all = vec!["snapshot", "dbs"];
        all.extend(args);
        let r = o.run(&all);
        assert_eq!(r.code, 1, "{r:?}");
        assert!(r.stderr.contains(says), "{says:?} in {r:?}");
    }
}
