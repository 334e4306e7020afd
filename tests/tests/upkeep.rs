//! End-to-end tests of keeping an archive healthy, through the `ore` binary: check (missing and
//! corrupt blocks named with their paths, read-data slices, compare), forget on a synthetic
//! two-year history, reset and the reflog, and gc — alone, racing three snapshots, and after
//! runs that crashed holding a lease or mid-sweep.

use ore_tests::ore::{scratch, Ore, Run};
use ore_tests::trees::{assert_same, bytes};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

fn json_lines(r: &Run) -> Vec<Value> {
    r.stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// Where backend-fs keeps a block.
fn fs_block(dir: &Path, key: &str) -> PathBuf {
    dir.join("blocks")
        .join(&key[..2])
        .join(&key[2..4])
        .join(key)
}

/// The key of the block holding a one-chunk file's contents.
fn chunk_of(ore: &Ore, file: &str) -> String {
    let r = ore.run(&["ls", file, "--json"]).expect(0, "ls");
    json_lines(&r)[0]["chunk"]
        .as_str()
        .unwrap_or_else(|| panic!("{file} is not one chunk: {}", r.stdout))
        .to_string()
}

#[test]
fn check_names_missing_and_corrupt_blocks_with_their_paths() {
    let d = scratch();
    let ore = Ore::fs(&d.path().join("fs"));
    let src = d.path().join("src");
    std::fs::create_dir_all(src.join("docs")).unwrap();
    std::fs::write(src.join("docs/shared"), bytes(1, 50_000)).unwrap();
    std::fs::write(src.join("copy"), bytes(1, 50_000)).unwrap();
    std::fs::write(src.join("victim"), bytes(2, 60_000)).unwrap();
    std::fs::write(src.join("fine"), bytes(3, 70_000)).unwrap();
    ore.snapshot("home", &src);
    std::fs::write(src.join("new"), bytes(4, 10_000)).unwrap();
    ore.snapshot("home", &src);
    ore.run(&["check"])
        .expect(0, "a sound archive checks clean");
    ore.run(&["check", "--read-data"])
        .expect(0, "and reads clean");

    let shared = chunk_of(&ore, "home:docs/shared");
    let victim = chunk_of(&ore, "home:victim");
    std::fs::remove_file(fs_block(&d.path().join("fs"), &shared)).unwrap();
    let vpath = fs_block(&d.path().join("fs"), &victim);
    let mut b = std::fs::read(&vpath).unwrap();
    let mid = b.len() / 2;
    b[mid] ^= 0x40;
    std::fs::write(&vpath, b).unwrap();

    // Without reading data, the missing block is found; the corrupt one looks present.
    let r = ore
        .run(&["check"])
        .expect(1, "check finds the missing block");
    assert!(
        r.stdout
            .contains(&format!("block {shared} (file data): missing")),
        "{}",
        r.stdout
    );
    for p in [
        "home~0:/docs/shared",
        "home~0:/copy",
        "home~1:/docs/shared",
        "home~1:/copy",
    ] {
        assert!(r.stdout.contains(p), "{p} not named:\n{}", r.stdout);
    }
    assert!(!r.stdout.contains(&victim), "{}", r.stdout);

    // Reading data finds both, each with its paths.
    let r = ore
        .run(&["check", "--read-data", "--json"])
        .expect(1, "read-data");
    let report = &json_lines(&r)[0];
    let problems = report["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 2, "{report}");
    let corrupt = problems
        .iter()
        .find(|p| p["key"] == victim.as_str())
        .unwrap();
    assert!(
        corrupt["error"].as_str().unwrap().contains("corrupt"),
        "{corrupt}"
    );
    assert_eq!(corrupt["kind"], "file data");
    let paths: Vec<&str> = corrupt["paths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert_eq!(paths, vec!["home~0:/victim", "home~1:/victim"]);

    // One snapshot only, and slices: the N/M slices together read every block exactly once.
    let r = ore
        .run(&["check", "home~1", "--json"])
        .expect(1, "one snapshot");
    assert_eq!(json_lines(&r)[0]["snapshots"], 1);
    let mut read = 0;
    let mut found = 0;
    for n in 1..=3 {
        let r = ore.run(&["check", &format!("--read-data={n}/3"), "--json"]);
        let v = &json_lines(&r)[0];
        read += v["chunks_read"].as_u64().unwrap();
        found += v["problems"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["key"] == victim.as_str())
            .count();
    }
    let all = json_lines(&ore.run(&["check", "--json"]))[0]["chunks"]
        .as_u64()
        .unwrap();
    assert_eq!(read, all, "slices cover every chunk once");
    assert_eq!(found, 1, "the corrupt chunk is in exactly one slice");
    let r = ore
        .run(&["check", "--read-data=7/3"])
        .expect(1, "bad slice");
    assert!(r.stderr.contains("--read-data=7/3"), "{}", r.stderr);

    // A tag that names no block is one more problem, not the end of the check; gc refuses.
    let backend = ore::core::archive::open_existing(&ore.archive).unwrap();
    backend.set_tag("broken", None, b"not a key").unwrap();
    drop(backend);
    let r = ore.run(&["check"]).expect(1, "check with a bad tag");
    assert!(
        r.stdout.contains("tag broken does not hold a block key"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains(&shared),
        "the rest was still checked: {}",
        r.stdout
    );
    let r = ore.run(&["gc"]).expect(1, "gc refuses");
    assert!(
        r.stderr.contains("tag broken") && r.stderr.contains("fix or remove it first"),
        "{}",
        r.stderr
    );
    let backend = ore::core::archive::open_existing(&ore.archive).unwrap();
    backend.remove_tag("broken", None).unwrap();
    drop(backend);

    // The restore of an undamaged subtree still works, and --compare sees what differs.
    let out = d.path().join("out");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("fine"), bytes(3, 70_000)).unwrap();
    let r = ore.run(&[
        "check",
        "home:fine",
        "--compare",
        out.join("fine").to_str().unwrap(),
    ]);
    // The entry compared is the file itself; its metadata (mtime) differs, its bytes do not.
    assert!(
        r.stdout.contains("mtime") && !r.stdout.contains("content"),
        "{}",
        r.stdout
    );
}

#[test]
fn compare_finds_every_kind_of_difference() {
    let (ore, d) = Ore::local();
    let src = d.path().join("src");
    std::fs::create_dir_all(src.join("dir")).unwrap();
    std::fs::write(src.join("a"), b"one").unwrap();
    std::fs::write(src.join("dir/b"), bytes(5, 300_000)).unwrap();
    std::os::unix::fs::symlink("a", src.join("link")).unwrap();
    ore.snapshot("t", &src);
    ore.run(&["check", "t", "--compare", src.to_str().unwrap()])
        .expect(0, "identical");
    // Same size, other bytes, same mtime: only reading tells.
    let mt = std::fs::metadata(src.join("dir/b"))
        .unwrap()
        .modified()
        .unwrap();
    let mut b = bytes(5, 300_000);
    b[200_000] ^= 1;
    std::fs::write(src.join("dir/b"), b).unwrap();
    std::fs::File::options()
        .write(true)
        .open(src.join("dir/b"))
        .unwrap()
        .set_modified(mt)
        .unwrap();
    std::fs::remove_file(src.join("a")).unwrap();
    std::fs::write(src.join("extra"), b"x").unwrap();
    std::fs::remove_file(src.join("link")).unwrap();
    std::os::unix::fs::symlink("elsewhere", src.join("link")).unwrap();
    let r = ore
        .run(&["check", "t", "--compare", src.to_str().unwrap()])
        .expect(1, "differences");
    assert!(r.stdout.contains("dir/b: content"), "{}", r.stdout);
    assert!(r.stdout.contains("a: missing on disk"), "{}", r.stdout);
    assert!(r.stdout.contains("extra: only on disk"), "{}", r.stdout);
    assert!(r.stdout.contains("link: target"), "{}", r.stdout);
}

const HOUR: i64 = 3_600_000_000_000;

/// (year, month, day, hour, weekday 0 = Monday) of a time in ns, UTC.
fn civil(ns: i64) -> (i64, u32, u32, u32, u32) {
    let secs = ns.div_euclid(1_000_000_000);
    let days = secs.div_euclid(86_400);
    let hour = (secs.rem_euclid(86_400) / 3600) as u32;
    let weekday = ((days + 3).rem_euclid(7)) as u32;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d, hour, weekday)
}

fn last_day(y: i64, m: u32) -> u32 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Builds a history of two years of hourly snapshots on tag `h`, ending 2026-11-20 23:00 UTC,
/// through the library (17,520 runs of the binary would take an hour).
fn two_years_hourly(ore: &Ore) -> i64 {
    let backend = ore::core::archive::open_existing(&ore.archive).unwrap();
    let pass = ore.passphrase.clone();
    let repo = ore::Repo::open(backend, &ore.archive, &|_| Ok(pass.as_bytes().to_vec())).unwrap();
    let first = repo.tag("h").unwrap().unwrap();
    let template = repo.snapshot(first).unwrap();
    let end = ore::core::util::parse_time("2026-11-20T23:00").unwrap();
    let n = 2 * 365 * 24;
    let mut prev = None;
    for i in (0..n).rev() {
        let mut s = template.clone();
        s.time = end - i * HOUR;
        s.comment = format!("hour {i}");
        let c = repo.chained(&s, prev.into_iter().collect());
        repo.put_chained(&c).unwrap();
        prev = Some(c.node);
    }
    repo.backend().flush().unwrap();
    assert!(repo
        .move_tag("h", Some(first), prev.unwrap(), "test")
        .unwrap());
    end
}

/// The times kept by a dry-run forget with `policy`, newest first.
fn kept(ore: &Ore, policy: &[&str]) -> Vec<i64> {
    let mut args = vec!["forget", "h", "--dry-run", "--json"];
    args.extend_from_slice(policy);
    let r = ore.run(&args).expect(0, "forget --dry-run");
    let v = &json_lines(&r)[0];
    let d = v["decisions"].as_array().unwrap();
    assert_eq!(d.len(), 2 * 365 * 24);
    d.iter()
        .filter(|d| d["keep"].as_bool().unwrap())
        .map(|d| d["time"].as_i64().unwrap())
        .collect()
}

#[test]
fn forget_every_policy_on_two_years_of_hourly_snapshots() {
    let (ore, d) = Ore::local();
    let src = d.path().join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("f"), b"x").unwrap();
    ore.snapshot("h", &src);
    let end = two_years_hourly(&ore);
    let back = |k: &[i64]| -> Vec<i64> { k.iter().map(|t| (end - t) / HOUR).collect() };

    assert_eq!(
        back(&kept(&ore, &["--keep-last", "5"])),
        vec![0, 1, 2, 3, 4]
    );
    assert_eq!(
        back(&kept(&ore, &["--keep-hourly", "48"])),
        (0..48).collect::<Vec<_>>()
    );
    assert_eq!(
        back(&kept(&ore, &["--keep-within", "2d"])),
        (0..=48).collect::<Vec<_>>()
    );
    assert_eq!(
        back(&kept(&ore, &["--keep-daily", "30"])),
        (0..30).map(|i| i * 24).collect::<Vec<_>>()
    );
    // 2026-11-20 is a Friday: the newest, then every Sunday 23:00 before it.
    let w = kept(&ore, &["--keep-weekly", "8"]);
    assert_eq!(w.len(), 8);
    assert_eq!(w[0], end);
    for (i, t) in w[1..].iter().enumerate() {
        assert_eq!(
            (civil(*t).3, civil(*t).4),
            (23, 6),
            "weekly {i} is a Sunday 23:00"
        );
        assert_eq!((end - t) / HOUR, 5 * 24 + i as i64 * 7 * 24);
    }
    let m = kept(&ore, &["--keep-monthly", "12"]);
    assert_eq!(m.len(), 12);
    let (mut y, mut mo) = (2026, 10);
    for t in &m[1..] {
        let (ty, tm, td, th, _) = civil(*t);
        assert_eq!((ty, tm, td, th), (y, mo, last_day(y, mo), 23), "monthly");
        (y, mo) = if mo == 1 { (y - 1, 12) } else { (y, mo - 1) };
    }
    let yearly = kept(&ore, &["--keep-yearly", "5"]);
    let years: Vec<_> = yearly
        .iter()
        .map(|t| civil(*t))
        .map(|c| (c.0, c.1, c.2, c.3))
        .collect();
    // Only three years have snapshots (the history starts 2024-11-21).
    assert_eq!(
        years,
        vec![(2026, 11, 20, 23), (2025, 12, 31, 23), (2024, 12, 31, 23)]
    );

    // The real thing: combined rules, the chain rewritten and walkable, the move in the reflog.
    let policy = [
        "--keep-daily",
        "7",
        "--keep-weekly",
        "4",
        "--keep-monthly",
        "6",
        "--keep-last",
        "2",
    ];
    let want = kept(&ore, &policy);
    let mut args = vec!["forget", "h"];
    args.extend_from_slice(&policy);
    let r = ore.run(&args).expect(0, "forget");
    assert!(
        r.stdout.lines().filter(|l| l.starts_with("drop")).count() == 2 * 365 * 24 - want.len()
    );
    let log = json_lines(&ore.run(&["log", "h", "--json"]).expect(0, "log"));
    let times: Vec<i64> = log.iter().map(|s| s["time_ns"].as_i64().unwrap()).collect();
    assert_eq!(
        times, want,
        "the rewritten chain holds exactly the kept snapshots, in order"
    );
    let reflog = ore.run(&["reflog", "h"]).expect(0, "reflog");
    assert!(
        reflog.stdout.lines().next().unwrap().contains("forget"),
        "{}",
        reflog.stdout
    );

    // Forgotten snapshots stay until the reflog lets go of them; then gc frees them.
    // (A gc now removes only the reflog's own superseded blocks; the old head still reads.)
    let old_head = json_lines(&ore.run(&["reflog", "h", "--json"]))[0]["old"]
        .as_str()
        .unwrap()
        .to_string();
    let before = json_lines(&ore.run(&["gc", "--json"]).expect(0, "gc"))[0]["removed"]
        .as_u64()
        .unwrap();
    assert!(
        before < 10,
        "the reflog still reaches the old chain, yet {before} blocks went"
    );
    ore.run(&["check", &old_head])
        .expect(0, "the forgotten head is intact");
    ore.run(&["log", "h", "--json"]).expect(0, "log");
    ore.run(&["reflog", "expire", "--older-than", "0s"])
        .expect(0, "expire");
    let g = json_lines(&ore.run(&["gc", "--json"]).expect(0, "gc"))[0].clone();
    assert!(
        g["removed"].as_u64().unwrap() >= (2 * 365 * 24 - want.len()) as u64,
        "{g}"
    );
    ore.run(&["check", "--read-data"])
        .expect(0, "clean after gc");
    ore.restore("h", &d.path().join("out")).expect(0, "restore");
    assert_same(&src, &d.path().join("out"));
    ore.run(&["forget", "h"]).expect(1, "no policy is refused");
}

#[test]
fn reset_rolls_back_and_the_reflog_keeps_the_way_back() {
    let (ore, d) = Ore::local();
    let src = d.path().join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("f"), b"first").unwrap();
    let first = ore.snapshot("t", &src);
    std::fs::write(src.join("f"), b"second").unwrap();
    let second = ore.snapshot("t", &src);
    ore.run(&["reset", "t", "t~1"]).expect(0, "reset");
    assert_eq!(ore.run(&["log", "t"]).stdout.lines().count(), 1);
    let r = ore.run(&["reflog", "t", "--json"]).expect(0, "reflog");
    let entries = json_lines(&r);
    assert_eq!(entries.len(), 3);
    assert_eq!(entries[0]["action"], "reset");
    assert_eq!(entries[0]["old"], second.as_str());
    assert_eq!(entries[0]["new"], first.as_str());
    // gc keeps the superseded snapshot: it can still be restored by key, and reset back to.
    ore.run(&["gc"]).expect(0, "gc");
    ore.restore(&second, &d.path().join("back"))
        .expect(0, "restore by key");
    assert_eq!(std::fs::read(d.path().join("back/f")).unwrap(), b"second");
    ore.run(&["reset", "t", &second]).expect(0, "reset forward");
    assert_eq!(ore.run(&["log", "t"]).stdout.lines().count(), 2);
    ore.run(&["reset", "t", "nosuch"])
        .expect(1, "unknown snapshot");

    // Forgetting on one tag leaves what another tag reaches, and says so.
    ore.run(&["fork", "t~1", "keeper"]).expect(0, "fork");
    let r = ore
        .run(&["forget", "t", "--keep-last", "1"])
        .expect(0, "forget");
    assert!(r.stdout.contains("still on tag keeper"), "{}", r.stdout);
    ore.run(&["reflog", "expire", "--older-than", "0s"])
        .expect(0, "expire");
    ore.run(&["gc"]).expect(0, "gc");
    ore.restore("keeper", &d.path().join("kept"))
        .expect(0, "the other tag's snapshot");
    assert_eq!(std::fs::read(d.path().join("kept/f")).unwrap(), b"first");
}

/// Runs `ore` in the background.
fn spawn(ore: &Ore, args: &[&str]) -> std::process::Child {
    ore.cmd(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn finish(c: std::process::Child, what: &str) -> Run {
    let o = c.wait_with_output().unwrap();
    let r = Run::of(o);
    r.expect(0, what)
}

#[test]
fn gc_racing_three_snapshots_never_leaves_a_dangling_reference() {
    let d = scratch();
    let ore = Ore::fs(&d.path().join("fs"));
    let mut removed_total = 0;
    for round in 0..6u64 {
        // Garbage that the snapshots below will want again: files stored, then forgotten and
        // let go of by the reflog, so only deduplication can bring them back.
        let old = d.path().join(format!("old{round}"));
        std::fs::create_dir_all(&old).unwrap();
        for i in 0..40 {
            std::fs::write(old.join(format!("f{i}")), bytes(round * 1000 + i, 20_000)).unwrap();
        }
        ore.snapshot("tmp", &old);
        let empty = d.path().join(format!("empty{round}"));
        std::fs::create_dir_all(&empty).unwrap();
        ore.snapshot("tmp", &empty);
        ore.run(&["forget", "tmp", "--keep-last", "1"])
            .expect(0, "forget");
        ore.run(&["reflog", "expire", "--older-than", "0s"])
            .expect(0, "expire");

        let mut runs = Vec::new();
        let mut srcs = Vec::new();
        for t in ["a", "b", "c"] {
            let src = d.path().join(format!("{t}{round}"));
            std::fs::create_dir_all(&src).unwrap();
            for i in 0..40 {
                std::fs::copy(old.join(format!("f{i}")), src.join(format!("f{i}"))).unwrap();
                std::fs::write(src.join(format!("new{i}")), bytes(round * 7 + i + 99, 5000))
                    .unwrap();
            }
            srcs.push((t, src.clone()));
            runs.push(spawn(
                &ore,
                &["snapshot", t, src.to_str().unwrap(), "--no-cache"],
            ));
        }
        let gc = spawn(&ore, &["gc", "--json"]);
        for (r, (t, _)) in runs.into_iter().zip(&srcs) {
            finish(r, &format!("snapshot {t} in round {round}"));
        }
        let g = finish(gc, "gc");
        removed_total += json_lines(&g)[0]["removed"].as_u64().unwrap();
        ore.run(&["check"])
            .expect(0, &format!("no dangling reference after round {round}"));
        for (t, src) in &srcs {
            let out = d.path().join(format!("out-{t}{round}"));
            ore.restore(t, &out).expect(0, "restore");
            assert_same(src, &out);
        }
    }
    assert!(
        removed_total > 0,
        "gc removed nothing in any round: the test tested nothing"
    );
    // With the visited-key set forced onto disk after 50 keys, check and gc give the same
    // answers as in memory.
    let small = |args: &[&str]| {
        let o = ore
            .cmd(args)
            .env("ORE_KEYSET_MEMORY", "50")
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        serde_json::from_slice::<Value>(&o.stdout).unwrap()
    };
    let big = json_lines(
        &ore.run(&["check", "--read-data", "--json"])
            .expect(0, "check"),
    )[0]
    .clone();
    let spilled = small(&["check", "--read-data", "--json"]);
    assert_eq!(
        (&big["trees"], &big["chunks"]),
        (&spilled["trees"], &spilled["chunks"])
    );
    assert!(big["chunks"].as_u64().unwrap() > 50);
    let g = small(&["gc", "--dry-run", "--json"]);
    let h = json_lines(
        &ore.run(&["gc", "--dry-run", "--json"])
            .expect(0, "gc --dry-run"),
    )[0]
    .clone();
    assert_eq!(
        (&g["reachable"], &g["removed"]),
        (&h["reachable"], &h["removed"])
    );
    ore.run(&["check", "--read-data"])
        .expect(0, "everything reads back");
}

#[test]
fn a_crashed_snapshot_or_gc_leaves_nothing_a_human_must_unlock() {
    let d = scratch();
    let fs = d.path().join("fs");
    let ore = Ore::fs(&fs);
    let src = d.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    for i in 0..200 {
        std::fs::write(src.join(format!("f{i}")), bytes(i, 30_000)).unwrap();
    }
    ore.snapshot("t", &src);
    std::fs::write(src.join("f0"), b"changed").unwrap();
    ore.snapshot("t", &src);
    ore.run(&["forget", "t", "--keep-last", "1"])
        .expect(0, "forget");
    ore.run(&["reflog", "expire", "--older-than", "0s"])
        .expect(0, "expire");

    // A snapshot killed while it holds its lease (its backend dies mid-run; the frontend
    // cannot free the lease through a dead backend).
    let crashing = Ore::new(format!(
        "env ORE_FAULT=kill,op=put,after=30 {} {}",
        ore_tests::quote(&ore_tests::bin("backend-fs")),
        ore_tests::quote(&fs)
    ));
    for i in 0..200 {
        std::fs::write(src.join(format!("g{i}")), bytes(i + 1000, 30_000)).unwrap();
    }
    // (Its lease declares a ttl of 2 s: a lease lives for its holder's ttl, not the reader's.)
    let r = ore_tests::ore::Run::of(
        crashing
            .cmd(&["snapshot", "t", src.to_str().unwrap()])
            .env("ORE_LEASE_TTL", "2")
            .output()
            .unwrap(),
    );
    assert_ne!(r.code, 0, "the backend was killed: {}", r.stderr);
    let held = |ore: &Ore| {
        let backend = ore::core::archive::open_existing(&ore.archive).unwrap();
        ore::core::lease::leases(&*backend)
            .unwrap()
            .into_iter()
            .filter(|(_, _, h)| h.is_some())
            .count()
    };
    assert_eq!(
        held(&ore),
        1,
        "the dead run's lease is still there: {}",
        r.stderr
    );
    // gc waits for it only until it expires.
    let started = Instant::now();
    let r = ore
        .cmd(&["gc", "--json"])
        .env("ORE_LEASE_TTL", "2")
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert!(started.elapsed() < Duration::from_secs(30));
    let g: Value = serde_json::from_slice(&r.stdout).unwrap();
    assert!(g["removed"].as_u64().unwrap() > 0, "{g}");
    assert!(
        String::from_utf8_lossy(&r.stderr).is_empty()
            || !String::from_utf8_lossy(&r.stderr).contains("error")
    );

    // A gc killed mid-sweep: the next snapshot waits for its announcement to expire, then
    // goes on; nothing was removed that a tag reaches.
    ore.snapshot("t", &src);
    std::fs::write(src.join("f1"), b"changed again").unwrap();
    ore.snapshot("t", &src);
    ore.run(&["forget", "t", "--keep-last", "1"])
        .expect(0, "forget");
    ore.run(&["reflog", "expire", "--older-than", "0s"])
        .expect(0, "expire");
    let crashing_gc = Ore::new(format!(
        "env ORE_FAULT=kill,op=remove,after=0 {} {}",
        ore_tests::quote(&ore_tests::bin("backend-fs")),
        ore_tests::quote(&fs)
    ));
    // (Its sweep declares a ttl of 2 s: a sweep lives for its gc's ttl.)
    let r = crashing_gc
        .cmd(&["gc"])
        .env("ORE_LEASE_TTL", "2")
        .output()
        .unwrap();
    assert!(!r.status.success(), "the gc's backend was killed");
    std::fs::write(src.join("f2"), b"after the crash").unwrap();
    let started = Instant::now();
    let r = ore
        .cmd(&["snapshot", "t", src.to_str().unwrap()])
        .env("ORE_LEASE_TTL", "2")
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert!(
        String::from_utf8_lossy(&r.stderr).contains("stopped without finishing"),
        "{}",
        String::from_utf8_lossy(&r.stderr)
    );
    assert!(started.elapsed() < Duration::from_secs(30));
    ore.run(&["gc"]).expect(0, "a later gc completes");
    ore.run(&["check", "--read-data"]).expect(0, "clean");
    let out = d.path().join("out");
    ore.restore("t", &out).expect(0, "restore");
    assert_same(&src, &out);
}

/// Starts `ore-admin` holding the local archive of `ore` open, and waits until it does.
fn hold(ore: &Ore) -> std::process::Child {
    let holder = std::process::Command::new(ore_tests::bin("ore-admin"))
        .arg(&ore.archive)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let lock = std::path::PathBuf::from(&ore.archive).join("lock");
    for _ in 0..500 {
        // (The file keeps the pid of earlier holders: wait for this one's.)
        if std::fs::read_to_string(&lock).is_ok_and(|s| s.trim() == holder.id().to_string()) {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    holder
}

/// Regression: a splitlog archive opened in process admits one process at a time, and a
/// second `ore` (a gc while a snapshot runs) used to fail at once with "in use by another
/// process". It now waits for the archive, up to --timeout.
#[test]
fn runs_on_a_local_archive_wait_for_each_other() {
    let (ore, d) = Ore::local();
    let src = d.path().join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("f"), b"x").unwrap();
    let mut holder = hold(&ore);
    let mut waiting = ore
        .cmd(&["snapshot", "t", src.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Let go of the archive only once the snapshot says it is waiting for it.
    let mut err = std::io::BufReader::new(waiting.stderr.take().unwrap());
    let mut said = String::new();
    let started = Instant::now();
    while !said.contains("in use by another process") {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "never waited: {said}"
        );
        let mut line = String::new();
        if std::io::BufRead::read_line(&mut err, &mut line).unwrap() == 0 {
            panic!("the snapshot ended without waiting: {said}");
        }
        said.push_str(&line);
    }
    drop(holder.stdin.take());
    holder.wait().unwrap();
    std::io::Read::read_to_string(&mut err, &mut said).unwrap();
    let status = waiting.wait().unwrap();
    assert!(
        status.success(),
        "the snapshot failed after waiting: {said}"
    );
    // With a limit, it gives up and says why.
    let mut holder = hold(&ore);
    let r = ore.run(&["--timeout", "0.5", "gc"]).expect(1, "gave up");
    assert!(
        r.stderr.contains("in use by another process"),
        "{}",
        r.stderr
    );
    drop(holder.stdin.take());
    holder.wait().unwrap();
}

/// Snapshots `src` to `tag` and returns how many files it read (not found in the file cache).
fn files_read(ore: &Ore, tag: &str, src: &Path) -> u64 {
    let r = ore
        .run(&["snapshot", tag, src.to_str().unwrap(), "--json"])
        .expect(0, "snapshot");
    json_lines(&r)[0]["stats"]["files_read"].as_u64().unwrap()
}

/// Regression: any gc that removed blocks made the next snapshot read every file again, as
/// the file cache was thrown away. After complete sweeps its entries are now checked against
/// the archive instead, and only files whose blocks went are read.
#[test]
fn the_file_cache_survives_gc_and_rereads_only_what_gc_took() {
    let d = scratch();
    let ore = Ore::fs(&d.path().join("fs"));
    let src = d.path().join("src");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    for i in 0..40 {
        std::fs::write(src.join(format!("sub/f{i}")), bytes(i, 20_000)).unwrap();
    }
    std::fs::write(src.join("victim"), b"first version").unwrap();
    assert_eq!(files_read(&ore, "t", &src), 41);
    std::fs::write(src.join("victim"), b"second version, soon gone").unwrap();
    assert_eq!(files_read(&ore, "t", &src), 1);
    // Roll the tag back and let go of the second snapshot: its only new block goes.
    ore.run(&["reset", "t", "t~1"]).expect(0, "reset");
    ore.run(&["reflog", "expire", "--older-than", "0s"])
        .expect(0, "expire");
    let g = json_lines(&ore.run(&["gc", "--json"]).expect(0, "gc"))[0].clone();
    assert!(g["removed"].as_u64().unwrap() >= 2, "{g}");
    // The cache remembers `victim` as the second version, whose block is gone: only it is read.
    assert_eq!(files_read(&ore, "t", &src), 1);
    ore.run(&["check", "--read-data"]).expect(0, "clean");
    let out = d.path().join("out");
    ore.restore("t", &out).expect(0, "restore");
    assert_same(&src, &out);

    // A collection that stopped part way leaves nothing to trust: everything is read.
    let crashing_gc = Ore::new(format!(
        "env ORE_FAULT=kill,op=remove,after=0 {} {}",
        ore_tests::quote(&ore_tests::bin("backend-fs")),
        ore_tests::quote(&d.path().join("fs"))
    ));
    std::fs::write(src.join("victim"), b"third").unwrap();
    assert_eq!(files_read(&ore, "t", &src), 1);
    ore.run(&["reset", "t", "t~1"]).expect(0, "reset");
    ore.run(&["reflog", "expire", "--older-than", "0s"])
        .expect(0, "expire");
    // (Its sweep declares a ttl of 1 s: a sweep lives for its gc's ttl.)
    let r = crashing_gc
        .cmd(&["gc"])
        .env("ORE_LEASE_TTL", "1")
        .output()
        .unwrap();
    assert!(!r.status.success());
    let r = ore
        .cmd(&["snapshot", "t", src.to_str().unwrap(), "--json"])
        .env("ORE_LEASE_TTL", "1")
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&r.stdout).unwrap();
    assert_eq!(
        v["stats"]["files_read"],
        41,
        "{}",
        String::from_utf8_lossy(&r.stderr)
    );
    ore.run(&["check", "--read-data"]).expect(0, "clean");
}

/// Regression: after a run over a slow link, a lane connection it had started could still hold
/// the archive for a moment, and the next run's `backend-splitlog` failed at once with "in use
/// by another process". Started by `ore`, the program now waits for a holder that takes no
/// attachments, as `ore` does for an archive it opens in process (up to --timeout).
#[test]
fn a_backend_program_started_by_ore_waits_for_a_busy_archive() {
    let (ore, _d) = Ore::local();
    let command = Ore::new(format!(
        "backend-splitlog {}",
        ore_tests::quote(Path::new(&ore.archive))
    ));
    let mut holder = hold(&ore);
    let waiting = command
        .cmd(&["tags"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Longer than the program tries to attach (the holder takes no attachments).
    std::thread::sleep(Duration::from_millis(1500));
    drop(holder.stdin.take());
    holder.wait().unwrap();
    let out = waiting.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // With a limit, it gives up and names the holder.
    let mut holder = hold(&ore);
    let r = command
        .run(&["--timeout", "0.5", "tags"])
        .expect(1, "gave up");
    assert!(
        r.stderr
            .contains(&format!("in use by another process, pid {}", holder.id())),
        "{}",
        r.stderr
    );
    drop(holder.stdin.take());
    holder.wait().unwrap();
}
