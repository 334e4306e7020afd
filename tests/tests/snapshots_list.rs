//! `ore snapshots`: every snapshot of every tag in one list, narrowed by tag, host and path,
//! with times in this machine's zone (or UTC for scripts), and `ore log` showing paths.

use ore_tests::ore::{scratch, Ore, Run};

/// An archive with `home` (two snapshots), its fork `home-old`, and `work` (one): three
/// snapshots in all. Returns the archive and the two source directories.
fn archive(d: &std::path::Path) -> (Ore, std::path::PathBuf, std::path::PathBuf) {
    let o = Ore::new(d.join("arch").display().to_string());
    o.run(&["init"]).expect(0, "init");
    let (a, b) = (d.join("a"), d.join("b"));
    for (dir, byte) in [(&a, b"a"), (&b, b"b")] {
        std::fs::create_dir(dir).expect("mkdir");
        std::fs::write(dir.join("f"), byte).expect("write");
    }
    o.snapshot("home", &a);
    let (sa, sb) = (a.to_str().expect("utf-8"), b.to_str().expect("utf-8"));
    o.run(&["snapshot", "home", sa, sb])
        .expect(0, "second home");
    o.run(&["fork", "home", "home-old"]).expect(0, "fork");
    o.snapshot("work", &b);
    (o, a, b)
}

fn with_tz(o: &Ore, tz: &str, args: &[&str]) -> Run {
    Run::of(o.cmd(args).env("TZ", tz).output().expect("ore runs")).expect(0, &format!("{args:?}"))
}

#[test]
fn every_snapshot_of_every_tag_is_listed_once_oldest_first_with_the_names_that_reach_it() {
    let d = scratch();
    let (o, a, b) = archive(d.path());
    let r = o.run(&["snapshots"]).expect(0, "snapshots");
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", r.stdout);
    assert!(lines[0].contains("home~1,home-old~1"), "{}", r.stdout);
    assert!(lines[1].contains("home~0,home-old~0"), "{}", r.stdout);
    assert!(lines[2].contains("work~0"), "{}", r.stdout);
    let (sa, sb) = (a.display().to_string(), b.display().to_string());
    assert!(
        lines[1].contains(&format!("{sa} {sb}")),
        "both paths shown: {}",
        lines[1]
    );
    // Narrowed by tag, path and host.
    let only = |args: &[&str]| {
        let mut all = vec!["snapshots"];
        all.extend_from_slice(args);
        o.run(&all).expect(0, "snapshots").stdout.lines().count()
    };
    assert_eq!(only(&["--tag", "work"]), 1);
    assert_eq!(only(&["--tag", "work", "--tag", "home"]), 3);
    assert_eq!(
        only(&["--path", &sb]),
        2,
        "the second home and work saved b"
    );
    assert_eq!(only(&["--host", "no-such-host"]), 0);
    let host = o.run(&["snapshots", "--json"]).expect(0, "json").stdout;
    let first: serde_json::Value =
        serde_json::from_str(host.lines().next().expect("a line")).expect("JSON");
    let h = first["host"].as_str().expect("host").to_string();
    assert_eq!(only(&["--host", &h]), 3);
    assert_eq!(first["names"][0], "home~1");
    assert_eq!(first["files"], 1);
    assert_eq!(first["paths"][0], sa.as_str());
}

#[test]
fn times_are_shown_in_the_local_zone_with_its_offset_or_in_utc_when_asked() {
    let d = scratch();
    let (o, _, _) = archive(d.path());
    let tokyo = with_tz(&o, "Asia/Tokyo", &["snapshots", "--tag", "work"]).stdout;
    assert!(tokyo.contains(" +09:00  "), "{tokyo}");
    let utc = with_tz(&o, "Asia/Tokyo", &["snapshots", "--tag", "work", "--utc"]).stdout;
    assert!(utc.contains(" +00:00  "), "{utc}");
    // The same instant: Tokyo is nine hours ahead.
    let json = |args: &[&str]| -> i64 {
        let out = with_tz(&o, "Asia/Tokyo", args).stdout;
        let v: serde_json::Value = serde_json::from_str(out.trim()).expect("JSON");
        let t = v["time"].as_str().expect("time");
        assert_eq!(
            v["time_ns"].as_i64().expect("ns") / 1_000_000_000 % 60,
            t[17..19].parse::<i64>().expect("seconds")
        );
        t[11..13].parse::<i64>().expect("hour")
    };
    let local = json(&["snapshots", "--tag", "work", "--json"]);
    let universal = json(&["snapshots", "--tag", "work", "--json", "--utc"]);
    assert_eq!((universal + 9) % 24, local);
}

#[test]
fn log_shows_each_snapshots_paths() {
    let d = scratch();
    let (o, a, b) = archive(d.path());
    let r = o.run(&["log", "home"]).expect(0, "log");
    let newest = r.stdout.lines().next().expect("a line");
    assert!(
        newest.contains(&format!("{} {}", a.display(), b.display())),
        "{newest}"
    );
}

#[test]
fn a_snapshot_keeps_the_host_name_it_was_given_and_is_found_by_it() {
    let d = scratch();
    let (o, a, _) = archive(d.path());
    let sa = a.to_str().expect("utf-8");
    o.run(&["snapshot", "nas", sa, "--host", "old-nas"])
        .expect(0, "snapshot --host");
    let r = o
        .run(&["snapshots", "--host", "old-nas"])
        .expect(0, "snapshots");
    assert_eq!(r.stdout.lines().count(), 1, "{r:?}");
    assert!(
        r.stdout.contains("nas~0") && r.stdout.contains("@old-nas"),
        "{r:?}"
    );
    let bad = o.run(&["snapshot", "nas", sa, "--host", ""]);
    assert_eq!(bad.code, 1, "an empty host name is refused: {bad:?}");
    assert!(bad.stderr.contains("not a host name"), "{bad:?}");
}

#[test]
fn log_shows_local_times_with_their_offset_or_utc_when_asked() {
    let d = scratch();
    let (o, _, _) = archive(d.path());
    let tokyo = with_tz(&o, "Asia/Tokyo", &["log", "work"]).stdout;
    assert!(tokyo.contains(" +09:00  work~0"), "{tokyo}");
    let utc = with_tz(&o, "Asia/Tokyo", &["log", "work", "--utc"]).stdout;
    assert!(utc.contains(" +00:00  work~0"), "{utc}");
}

#[test]
fn labels_are_kept_shown_and_matched() {
    let d = scratch();
    let o = Ore::new(d.path().join("arch").display().to_string());
    o.run(&["init"]).expect(0, "init");
    let src = d.path().join("src");
    std::fs::create_dir(&src).expect("mkdir");
    std::fs::write(src.join("f"), b"f").expect("write");
    let s = src.to_str().expect("UTF-8");
    o.run(&[
        "snapshot", "t", s, "--label", "env=prod", "--label", "team=ops",
    ])
    .expect(0, "labelled");
    o.run(&["snapshot", "t", s, "--label", "env=test"])
        .expect(0, "labelled");
    o.run(&["snapshot", "t", s]).expect(0, "plain");
    let all = o.run(&["snapshots"]).expect(0, "snapshots").stdout;
    assert!(all.contains("  env=prod,team=ops"), "{all}");
    let prod = o
        .run(&["snapshots", "--label", "env=prod"])
        .expect(0, "filtered")
        .stdout;
    assert_eq!(prod.lines().count(), 1, "{prod}");
    let json = o
        .run(&["--json", "snapshots", "--label", "env=test"])
        .expect(0, "json")
        .stdout;
    let v: serde_json::Value = serde_json::from_str(json.trim()).expect("JSON");
    assert_eq!(v["labels"]["env"], "test");
    let log = o.run(&["log", "t"]).expect(0, "log").stdout;
    assert!(log.contains("env=test"), "{log}");
    let r = o
        .run(&["snapshot", "t", s, "--label", "bad key=v"])
        .expect(1, "refused");
    assert!(r.stderr.contains("--label"), "{}", r.stderr);
}
