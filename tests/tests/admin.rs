//! ore-admin driving backend-fs through the real binaries.

use ore_tests::{bin, quote};
use std::io::Write;
use std::process::{Command, Output, Stdio};

fn admin(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(bin("ore-admin"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(s) = stdin {
        input.write_all(s.as_bytes()).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn fs_id(dir: &std::path::Path) -> String {
    format!("backend-fs {}", quote(dir))
}

/// `id`, once `ore init` has created its archive: only init creates one, so ore-admin finds
/// none before (`newcomer_traps.rs`).
fn initialised(id: String) -> String {
    ore_tests::ore::Ore::new(id.clone())
        .run(&["init", "--no-encryption"])
        .expect(0, "init");
    id
}

#[test]
fn one_shot_commands_in_text_and_json() {
    let t = tempfile::tempdir().unwrap();
    let id = initialised(fs_id(&t.path().join("archive")));
    let out = admin(&[&id, "help"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let help = text(&out.stdout);
    for c in ["help", "info", "stats"] {
        assert!(help.contains(c), "{help}");
    }
    let out = admin(&[&id, "stats", "--json"], None);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["blocks"].as_u64().is_some_and(|n| n > 0), "{v}");
    let out = admin(&["--json", &id, "info"], None);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["kind"], "fs");
}

#[test]
fn unknown_command_fails_with_the_list_of_commands() {
    let t = tempfile::tempdir().unwrap();
    let out = admin(&[&initialised(fs_id(t.path())), "frobnicate"], None);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("unknown admin command `frobnicate`"), "{err}");
    assert!(err.contains("help, info, stats"), "{err}");
}

#[test]
fn prompt_reads_commands_from_a_pipe() {
    let t = tempfile::tempdir().unwrap();
    let out = admin(
        &[&initialised(fs_id(t.path()))],
        Some("info\n\n# blank and unknown lines\nnope\nstats\nquit\nhelp\n"),
    );
    let stdout = text(&out.stdout);
    assert!(stdout.contains("backend-fs archive"), "{stdout}");
    assert!(stdout.contains("blocks: "), "{stdout}");
    assert!(
        !stdout.contains("Admin commands"),
        "nothing runs after quit: {stdout}"
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "a failed command makes the exit code 1"
    );
}

#[test]
fn missing_backend_program_is_named() {
    let out = admin(&["backend-missing /x", "help"], None);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("archive `backend-missing /x`"), "{err}");
    assert!(err.contains("cannot start"), "{err}");
}

#[test]
fn archive_as_an_option() {
    let t = tempfile::tempdir().unwrap();
    let out = admin(&["-a", &initialised(fs_id(t.path())), "stats"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("blocks: "));
    let out = admin(&[], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("no archive given"));
}

#[test]
fn backend_stderr_is_forwarded_with_its_name() {
    let t = tempfile::tempdir().unwrap();
    std::fs::write(t.path().join("not-an-archive.txt"), b"x").unwrap();
    let out = admin(&[&fs_id(t.path()), "info"], None);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.lines()
            .any(|l| l.starts_with("backend-fs: error: opening the archive")),
        "{err}"
    );
    assert!(
        err.contains("exited with status 1 before answering"),
        "{err}"
    );
}

#[test]
fn a_plain_path_opens_a_splitlog_archive_in_process() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("archive");
    let path = initialised(dir.display().to_string());
    let out = admin(&[&path, "info"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("backend-splitlog archive"));
    assert!(dir.join("log-000001").exists());
    let out = admin(&[&path, "set-max-log-size", "2097152"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = admin(&[&path, "info", "--json"], None);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["max_log_size"], 2097152);
    // The same archive through the backend program.
    let out = admin(
        &[&format!("backend-splitlog {}", quote(&dir)), "stats"],
        None,
    );
    assert!(
        text(&out.stdout).contains("blocks: "),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_locked_archive_is_reported_with_the_identifier() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("archive");
    let path = initialised(dir.display().to_string());
    let mut holder = Command::new(bin("ore-admin"))
        .arg(&path)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the holder has the archive open (the lock names it; init's pid before).
    let pid = holder.id().to_string();
    for _ in 0..500 {
        if std::fs::read_to_string(dir.join("lock")).is_ok_and(|s| s.trim() == pid) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let out = admin(&[&path, "info"], None);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains(&format!("archive `{path}`")), "{err}");
    assert!(err.contains("in use by another process"), "{err}");
    assert!(err.contains(&format!("pid {}", holder.id())), "{err}");
    drop(holder.stdin.take());
    holder.wait().unwrap();
}
