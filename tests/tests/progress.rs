//! Progress on a terminal (a pty made by util-linux's `script`), and none anywhere else.
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
    assert!(shown.contains("% of 3.0 MiB"), "no total:\n{shown}");
    assert!(
        shown.contains("\x1b[K"),
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
