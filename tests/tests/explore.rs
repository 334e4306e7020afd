//! `ore explore` driven through standard input, the way scripts use it: the virtual tree of
//! tags, snapshots by time and `current`, every command, and errors that name the path.

use ore_tests::ore::{Ore, Run};
use ore_tests::trees::{assert_same, bytes, every_kind};
use std::io::Write;
use std::process::Stdio;

fn explore(ore: &Ore, script: &str) -> Run {
    ore.explore(script, None)
}

#[test]
fn a_scripted_session_walks_tags_snapshots_and_files() {
    let (ore, d) = Ore::local();
    let src = d.path().join("src");
    std::fs::create_dir_all(src.join("docs/deep")).unwrap();
    std::fs::write(src.join("docs/deep/notes.txt"), b"remember the milk\n").unwrap();
    std::fs::write(src.join("docs/big.bin"), bytes(3, 700_000)).unwrap();
    std::os::unix::fs::symlink("docs/deep", src.join("shortcut")).unwrap();
    std::os::unix::fs::symlink("/docs", src.join("absolute")).unwrap();
    ore.snapshot("home", &src);
    // Snapshots are named by the second they were made in.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    std::fs::write(src.join("docs/deep/notes.txt"), b"milk bought\n").unwrap();
    ore.run(&[
        "snapshot",
        "home",
        src.to_str().unwrap(),
        "--comment",
        "after shopping",
    ])
    .expect(0, "second snapshot");
    let every = d.path().join("every");
    std::fs::create_dir(&every).unwrap();
    every_kind(&every);
    ore.snapshot("other", &every);

    let log = ore.run(&["log", "home", "--json"]).expect(0, "log");
    let times: Vec<String> = log
        .stdout
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["time"].as_str().unwrap().replace(' ', "T")
        })
        .collect();
    let out = d.path().join("out");
    let script = format!(
        "ls\ncd home\nls\ncd {old}\ncat docs/deep/notes.txt\ncd ../current\npwd\n\
         cat docs/deep/notes.txt\ncd shortcut\npwd\ncd /home/current/absolute\npwd\n\
         info\nfind *.txt\nget /home/current/docs/big.bin {out}/big.bin\nget /other/current {out}/every\n\
         ls -l /home/current/docs\ncd nowhere\ncat /home\nexit\nls\n",
        old = times[1],
        out = out.display()
    );
    std::fs::create_dir(&out).unwrap();
    let r = explore(&ore, &script);
    assert_eq!(
        r.code, 3,
        "errors make the exit status 3\n{}\n{}",
        r.stdout, r.stderr
    );
    let o = &r.stdout;
    assert!(o.starts_with("home/\nother/\ncurrent/\n"), "{o}");
    assert!(
        o.contains(&format!("{}/\n{}/\n", times[0], times[1])),
        "snapshots newest first:\n{o}"
    );
    assert!(
        o.contains("remember the milk\n"),
        "the older snapshot's file:\n{o}"
    );
    assert!(o.contains("/home/current\nmilk bought\n"), "{o}");
    assert!(
        o.contains("/home/current/docs/deep\n"),
        "cd followed a relative symlink:\n{o}"
    );
    assert!(
        o.contains("/home/current/docs\n"),
        "an absolute symlink starts at the snapshot's root:\n{o}"
    );
    assert!(o.contains("comment   after shopping"), "{o}");
    assert!(o.contains("previous  "), "{o}");
    assert!(
        o.contains("/home/current/docs/deep/notes.txt\n"),
        "find:\n{o}"
    );
    assert!(
        o.contains("-rw-r--r--") && o.contains("big.bin\n"),
        "ls -l:\n{o}"
    );
    // `exit` ended the session: the `ls` after it did not run.
    assert_eq!(o.matches("home/\nother/").count(), 1);
    assert!(
        r.stderr.contains("nowhere: no such file or directory"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("not a file"), "{}", r.stderr);

    assert_eq!(
        std::fs::read(out.join("big.bin")).unwrap(),
        bytes(3, 700_000)
    );
    let a = std::fs::metadata(out.join("big.bin"))
        .unwrap()
        .modified()
        .unwrap();
    let b = std::fs::metadata(src.join("docs/big.bin"))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(a, b, "get keeps metadata");
    assert_same(&every, &out.join("every"));

    // Only one tag, when asked.
    let r = ore
        .cmd(&["explore", "--tag", "other"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut r = r;
    r.stdin.take().unwrap().write_all(b"ls\n").unwrap();
    let o = r.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&o.stdout), "other/\n");
    ore.run(&["explore", "--tag", "nosuch"])
        .expect(1, "unknown tag");
}

/// On a terminal (a pty made by util-linux's `script`), Tab completes names and the session
/// keeps its history.
#[test]
fn on_a_terminal_tab_completes_names_and_history_is_kept() {
    let (ore, d) = Ore::local();
    let src = d.path().join("src");
    std::fs::create_dir_all(src.join("documents")).unwrap();
    std::fs::write(src.join("documents/letter.txt"), b"dear ore\n").unwrap();
    ore.snapshot("home", &src);
    let cmd = format!(
        "{} -a {} explore",
        ore_tests::quote(&ore_tests::bin("ore")),
        ore_tests::shell_quote(&ore.archive)
    );
    let mut c = std::process::Command::new("script")
        .args(["-qfec", &cmd, "/dev/null"])
        .env("ORE_PASSPHRASE", &ore.passphrase)
        .env("XDG_CACHE_HOME", &ore.cache)
        .env("TERM", "xterm")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("util-linux `script` runs");
    let mut input = c.stdin.take().unwrap();
    // What the terminal shows, read as it comes; input is typed only once the shell is ready
    // for it (typed earlier, the terminal could drop it when the shell takes it over).
    let seen = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let reader = {
        let seen = seen.clone();
        let mut stdout = c.stdout.take().unwrap();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = std::io::Read::read(&mut stdout, &mut buf) {
                if n == 0 {
                    break;
                }
                seen.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        })
    };
    let wait_for = |what: &str| {
        let started = std::time::Instant::now();
        while !seen.lock().unwrap().contains(what) {
            assert!(
                started.elapsed() < std::time::Duration::from_secs(60),
                "{what:?} never appeared in:\n{}",
                seen.lock().unwrap()
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    };
    wait_for("ore:/> ");
    // "ls /home/cur<Tab>doc<Tab>": completes to /home/current/documents/.
    input.write_all(b"ls /home/cur\t").unwrap();
    wait_for("ls /home/current/");
    input.write_all(b"doc\t").unwrap();
    wait_for("ls /home/current/documents/");
    input.write_all(b"\n").unwrap();
    wait_for("letter.txt");
    input.write_all(b"exit\n").unwrap();
    drop(input);
    let status = c.wait().unwrap();
    reader.join().unwrap();
    assert!(status.success());
    let history = std::fs::read_to_string(ore.cache.join("ore/explore-history")).unwrap();
    assert!(history.contains("ls /home/current/documents/"), "{history}");
}
