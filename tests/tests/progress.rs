//! Progress on a terminal (a pty made by util-linux's `script`), JSON lines with `--json`, and
//! none anywhere else.
//!
//! The archive is behind `delay-link` (every round trip 200 ms), so that a run lasts long
//! enough for the progress line, drawn every 200 ms, to be drawn a few times.

use ore_tests::ore::{scratch, Ore};
use ore_tests::{bin, quote, shell_quote};
use std::process::Command;

/// Runs `ore ARGS` on a pty and returns everything the terminal showed.
fn on_a_terminal(ore: &Ore, args: &str) -> String {
    let cmd = format!(
        "{} -a {} {args}",
        quote(&bin("ore")),
        shell_quote(&ore.archive)
    );
    let out = Command::new("script")
        .args(["-qfec", &cmd, "/dev/null"])
        .env("ORE_PASSPHRASE", &ore.passphrase)
        .env("XDG_CACHE_HOME", &ore.cache)
        .env("TERM", "xterm")
        .output()
        .expect("util-linux `script` runs");
    let shown = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "ore {args} failed on a terminal:\n{shown}"
    );
    shown
}

#[test]
fn a_first_snapshot_shows_its_total_on_a_terminal_and_nothing_elsewhere() {
    let d = scratch();
    let src = d.path().join("src");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    std::fs::write(src.join("a"), vec![7u8; 2 << 20]).unwrap();
    std::fs::write(src.join("sub/b"), vec![9u8; 1 << 20]).unwrap();
    std::fs::write(src.join("skipped.tmp"), vec![1u8; 5 << 20]).unwrap();
    let ore = Ore::new(format!(
        "{} 100 {} {}",
        quote(&bin("delay-link")),
        quote(&bin("backend-splitlog")),
        quote(&d.path().join("archive"))
    ));
    ore.run(&["init"]).expect(0, "init");
    let src_arg = src.to_str().unwrap();
    // A first snapshot: the total comes from the estimating walk, which keeps to the rules
    // (3 MiB, not the 8 MiB the excluded file would make it).
    let shown = on_a_terminal(
        &ore,
        &format!("snapshot t {} --exclude '*.tmp'", shell_quote(src_arg)),
    );
    assert!(shown.contains("files, "), "no progress line:\n{shown}");
    assert!(shown.contains(" of 3.00 MiB"), "no total:\n{shown}");
    assert!(shown.contains("ETA"), "no ETA:\n{shown}");
    assert!(
        shown.contains("\x1b[2K"),
        "the line is not redrawn:\n{shown}"
    );
    // Not on a terminal: the summary alone, no progress line.
    let r = ore
        .run(&["snapshot", "t", src_arg, "--exclude", "*.tmp"])
        .expect(0, "snapshot");
    assert!(!r.stderr.contains("/s)"), "{}", r.stderr);
    assert!(!r.stderr.contains('\x1b'), "{:?}", r.stderr);
    assert!(r.stderr.contains("3.0 MiB"), "{}", r.stderr);
    // -q on a terminal: nothing but the key.
    let shown = on_a_terminal(&ore, &format!("snapshot -q t {}", shell_quote(src_arg)));
    assert!(!shown.contains("/s)"), "{shown}");
    assert_eq!(shown.trim().len(), 64, "{shown:?}");
}

#[test]
fn with_json_the_progress_comes_as_json_lines_on_stderr_ending_with_the_totals() {
    let d = scratch();
    let src = d.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("a"), vec![7u8; 2 << 20]).unwrap();
    std::fs::write(src.join("b"), vec![9u8; 1 << 20]).unwrap();
    let ore = Ore::new(format!(
        "{} 100 {} {}",
        quote(&bin("delay-link")),
        quote(&bin("backend-splitlog")),
        quote(&d.path().join("archive"))
    ));
    ore.run(&["init"]).expect(0, "init");
    let r = ore
        .run(&["--json", "snapshot", "t", src.to_str().unwrap()])
        .expect(0, "snapshot");
    let lines: Vec<serde_json::Value> = r
        .stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect();
    assert!(
        lines.len() >= 2,
        "a line a second and one at the end: {}",
        r.stderr
    );
    let last = &lines.last().unwrap()["progress"];
    assert_eq!(last["unit"], "files");
    assert_eq!(last["done"], 2, "{last}");
    assert_eq!(last["bytes"], 3 << 20, "{last}");
    // The result itself stays on stdout, one JSON document.
    let v: serde_json::Value = serde_json::from_str(r.stdout.trim()).unwrap();
    assert_eq!(v["stats"]["files"], 2);
    // -q: no progress at all.
    let r = ore
        .run(&["--json", "-q", "snapshot", "t", src.to_str().unwrap()])
        .expect(0, "snapshot");
    assert!(!r.stderr.contains("progress"), "{}", r.stderr);
}
