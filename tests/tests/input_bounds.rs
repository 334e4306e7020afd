//! Inputs from outside `ore` that never end or do not fit: a passphrase command that prints
//! for ever (`yes`), a passphrase file or config file that is `/dev/zero`, durations of 1e30
//! seconds, counts below zero, tag names of ten kilobytes, exclude rules that hold nothing, a
//! sync from an archive to itself. Each is an error that names what was wrong, at once, with
//! bounded memory — never a panic, a wait, or gigabytes read.

use ore_tests::measure::run_measured;
use ore_tests::ore::{scratch, Ore, Run};
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

/// Peak resident memory an `ore` run that refused a bad input may have used.
const MODEST_KIB: u64 = 100 << 10;

/// Runs `ore ARGS` (without `ORE_PASSPHRASE`), which must fail saying `says` in modest memory.
fn refused_in_modest_memory(o: &Ore, args: &[&str], says: &str) {
    let mut cmd = o.cmd(args);
    cmd.env_remove("ORE_PASSPHRASE");
    let m = run_measured(cmd, Duration::from_secs(60));
    assert_eq!(m.run.code, 1, "{args:?}: {}", m.run.stderr);
    assert!(m.run.stderr.contains(says), "{args:?}: {}", m.run.stderr);
    assert!(m.peak_kib < MODEST_KIB, "{args:?}: peak {} KiB", m.peak_kib);
}

#[test]
fn a_passphrase_command_that_never_stops_printing_is_stopped_with_bounded_memory() {
    let (o, _d) = Ore::local();
    refused_in_modest_memory(
        &o,
        &["--passphrase-command", "yes", "tags"],
        "passphrase command `yes` printed more than",
    );
}

#[test]
fn a_passphrase_file_or_config_file_that_never_ends_is_refused_naming_it() {
    let (o, _d) = Ore::local();
    refused_in_modest_memory(
        &o,
        &["--passphrase-file", "/dev/zero", "tags"],
        "passphrase file /dev/zero: its first line is longer than 4096 bytes",
    );
    refused_in_modest_memory(
        &o,
        &["--config", "/dev/zero", "tags"],
        "config file /dev/zero: larger than 1024 KiB",
    );
}

#[test]
fn timeouts_and_lease_times_of_1e30_seconds_are_errors_naming_the_limit_not_panics() {
    let (o, _d) = Ore::local();
    type Case<'a> = (&'a [&'a str], Option<(&'a str, &'a str)>);
    let cases: [Case; 4] = [
        (&["--timeout", "1e30", "tags"], None),
        (&["--timeout", "18446744073709551615", "tags"], None),
        (&["tags"], Some(("ORE_TIMEOUT", "1e300"))),
        (&["tags"], Some(("ORE_LEASE_TTL", "1e30"))),
    ];
    for (args, env) in cases {
        let mut cmd = o.cmd(args);
        if let Some((k, v)) = env {
            cmd.env(k, v);
        }
        let r = Run::of(cmd.output().unwrap());
        assert_eq!(r.code, 1, "{args:?} {env:?}: {}", r.stderr);
        assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
        assert!(
            r.stderr.contains("too long") && r.stderr.contains("at most 10years"),
            "{}",
            r.stderr
        );
        let named = env.map_or("--timeout", |(k, _)| k);
        assert!(r.stderr.contains(named), "{}", r.stderr);
    }
    // Both forms of the setting still work.
    o.run(&["--timeout", "5m", "tags"])
        .expect(0, "--timeout 5m");
    o.run(&["--timeout", "0.5", "tags"])
        .expect(0, "--timeout 0.5");
}

#[test]
fn an_empty_and_or_or_exclude_rule_is_refused_naming_it() {
    let (o, d) = Ore::local();
    let data = d.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("f"), b"x").unwrap();
    for rule in ["{ and = [] }", "{ not = { or = [] } }"] {
        let config = d.path().join("config.toml");
        std::fs::write(
            &config,
            format!("exclude = [ {{ name = \"*.o\" }}, {rule} ]\n"),
        )
        .unwrap();
        let r = o
            .run(&[
                "--config",
                config.to_str().unwrap(),
                "snapshot",
                "t",
                data.to_str().unwrap(),
            ])
            .expect(1, rule);
        assert!(
            r.stderr.contains("exclude rule 2 in the config"),
            "{}",
            r.stderr
        );
        assert!(r.stderr.contains("with no rules inside"), "{}", r.stderr);
    }
    o.run(&["log", "t"]).expect(1, "no snapshot was made");
}

#[test]
fn a_sync_to_the_same_archive_is_refused_at_once() {
    let (o, d) = Ore::local();
    let same = d.path().join("archive");
    let other_spelling = d.path().join(".").join("archive");
    let fs_spelling = format!("backend-splitlog {}", same.display());
    for to in [
        same.to_str().unwrap(),
        other_spelling.to_str().unwrap(),
        &fs_spelling,
    ] {
        let started = Instant::now();
        let r = o.run(&["sync", "--to", to]).expect(1, to);
        assert!(r.stderr.contains("are the same archive"), "{}", r.stderr);
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{:?}",
            started.elapsed()
        );
    }
}

#[test]
fn a_negative_count_of_snapshots_to_keep_is_explained() {
    let (o, _d) = Ore::local();
    let r = o
        .run(&["forget", "t", "--keep-last", "-1"])
        .expect(1, "forget");
    assert!(r.stderr.contains("--keep-last"), "{}", r.stderr);
    assert!(r.stderr.contains("cannot be negative"), "{}", r.stderr);
}

#[test]
fn a_ten_kilobyte_tag_name_is_refused_without_being_echoed_whole() {
    let (o, d) = Ore::local();
    let name = "n".repeat(10_000);
    let dir = d.path().to_str().unwrap();
    for args in [
        vec!["log", name.as_str()],
        vec!["snapshot", name.as_str(), dir],
        vec!["fork", "x", name.as_str()],
        vec!["restore", name.as_str(), dir],
    ] {
        let r = o.run(&args).expect(1, args[0]);
        assert!(
            r.stderr.len() < 1000,
            "{}: {} bytes",
            args[0],
            r.stderr.len()
        );
        assert!(
            r.stderr.contains("(10000 bytes)"),
            "{}: {}",
            args[0],
            r.stderr
        );
    }
}

fn mode(p: &std::path::Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn file_caches_are_private_and_those_of_vanished_archives_can_be_pruned() {
    // The usual umask, which leaves new files readable by all: the modes below are ore's doing.
    // SAFETY: umask only sets this process's file-creation mask; it cannot fail.
    unsafe { libc::umask(0o022) };
    let d = scratch();
    let data = d.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("f"), b"x").unwrap();
    let gone = Ore::new(d.path().join("gone").display().to_string());
    let mut kept = Ore::new(d.path().join("kept").display().to_string());
    kept.cache = gone.cache.clone();
    for o in [&gone, &kept] {
        o.run(&["init"]).expect(0, "init");
        o.snapshot("t", &data);
    }
    let dir = gone.cache.join("ore");
    let caches: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "db"))
        .collect();
    assert_eq!(caches.len(), 2, "{caches:?}");
    assert_eq!(mode(&dir), 0o700);
    for c in &caches {
        assert_eq!(mode(c), 0o600, "{}", c.display());
    }
    // Every file there, the databases' write-ahead logs and format-record copies too.
    for f in std::fs::read_dir(&dir).unwrap().flatten() {
        if f.file_type().unwrap().is_file() {
            assert_eq!(mode(&f.path()), 0o600, "{}", f.path().display());
        }
    }
    // Caches made open by an older version are closed on the next use.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    for c in &caches {
        std::fs::set_permissions(c, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    kept.snapshot("t", &data);
    assert_eq!(mode(&dir), 0o700);

    let list = gone.run(&["cache", "list"]).expect(0, "cache list");
    assert!(
        list.stdout.contains(&gone.archive) && list.stdout.contains(&kept.archive),
        "{}",
        list.stdout
    );
    std::fs::remove_dir_all(&gone.archive).unwrap();
    let dry = gone
        .run(&["cache", "prune", "--dry-run"])
        .expect(0, "dry run");
    assert!(dry.stdout.contains("no longer exists"), "{}", dry.stdout);
    assert_eq!(
        std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "db"))
            .count(),
        2
    );
    let r = gone.run(&["cache", "prune"]).expect(0, "prune");
    assert!(
        r.stdout.contains("kept (the archive is there)"),
        "{}",
        r.stdout
    );
    let left: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "db"))
        .collect();
    assert_eq!(left.len(), 1, "{left:?}");
    for c in &left {
        assert_eq!(mode(c), 0o600, "{}", c.display());
    }
    kept.run(&["ls", "t"])
        .expect(0, "the kept archive still works");
}

#[test]
fn explore_fed_a_line_that_never_ends_is_refused_with_bounded_memory() {
    let (o, _d) = Ore::local();
    let mut cmd = o.cmd(&["explore"]);
    cmd.stdin(std::fs::File::open("/dev/zero").unwrap());
    let m = run_measured(cmd, Duration::from_secs(60));
    assert_eq!(m.run.code, 1, "{}", m.run.stderr);
    assert!(
        m.run
            .stderr
            .contains("standard input, line 1: a line longer than 65536 bytes"),
        "{}",
        m.run.stderr
    );
    assert!(m.peak_kib < MODEST_KIB, "peak {} KiB", m.peak_kib);
}

/// Regression (attack review): with chunks of up to 16 MiB, a file of more than 8 MiB with no
/// cut in its first 8 MiB (zeros) was read again and again for ever — the read window held no
/// chunk that ended before it — by `ore snapshot` and `ore import` alike, at full CPU.
#[test]
fn a_file_with_no_cut_in_a_read_window_smaller_than_the_largest_chunk_is_stored_not_read_for_ever()
{
    let d = scratch();
    let o = Ore::new(d.path().join("archive").to_str().unwrap());
    (o.run(&[
        "init",
        "--chunk-min",
        "1M",
        "--chunk-avg",
        "4M",
        "--chunk-max",
        "16M",
    ]))
    .expect(0, "init");
    let src = d.path().join("src");
    std::fs::create_dir(&src).expect("mkdir");
    // Zeros past a window, and past the largest chunk; random bytes for the rest.
    std::fs::write(src.join("zeros"), vec![0u8; (8 << 20) + 1]).expect("write");
    std::fs::write(src.join("more-zeros"), vec![0u8; (40 << 20) + 3]).expect("write");
    for args in [
        &["snapshot", "t", src.to_str().unwrap()][..],
        &["import", "docs", src.to_str().unwrap(), "--each"],
    ] {
        let m = run_measured(o.cmd(args), Duration::from_secs(120));
        assert_eq!(m.run.code, 0, "{args:?} ({:?}): {}", m.took, m.run.stderr);
    }
    let out = d.path().join("out");
    o.restore("t", &out).expect(0, "restore");
    for name in ["zeros", "more-zeros"] {
        let a = std::fs::read(src.join(name)).expect("source");
        assert!(
            a == std::fs::read(out.join(name)).expect("restored"),
            "{name}"
        );
    }
    o.run(&["check", "--read-data"]).expect(0, "check");
}
