//! `ore find PATTERN`: which snapshots hold a name, with each match's size and time, across
//! every tag or a few, narrowed by the snapshots' time, as text or JSON (issue 26, item 4).

use ore_tests::ore::{block_file, scratch, Ore};
use ore_tests::trees::write_file as write;

/// The JSON lines of `ore find ARGS`, each as (first 12 digits of the snapshot key, its
/// names, the path, its size).
fn found(o: &Ore, args: &[&str]) -> Vec<(String, String, String, u64)> {
    let mut all = vec!["--json", "find"];
    all.extend_from_slice(args);
    let r = o.run(&all).expect(0, "find --json");
    r.stdout
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("JSON");
            (
                v["snapshot"].as_str().expect("key")[..12].to_string(),
                v["names"]
                    .as_array()
                    .expect("names")
                    .iter()
                    .map(|n| n.as_str().expect("a name"))
                    .collect::<Vec<_>>()
                    .join(","),
                v["path"].as_str().expect("path").to_string(),
                v["size"].as_u64().expect("size"),
            )
        })
        .collect()
}

#[test]
fn each_snapshot_that_holds_a_matching_name_is_shown_with_what_the_name_was_there() {
    let d = scratch();
    let o = Ore::new(d.path().join("arch").display().to_string());
    o.run(&["init"]).expect(0, "init");
    let src = d.path().join("src");
    write(&src.join("docs/report.txt"), b"first");
    write(&src.join("docs/notes.md"), b"n");
    o.snapshot("home", &src);
    write(&src.join("docs/report.txt"), b"second, longer");
    write(&src.join("old/Report.TXT"), b"x");
    o.snapshot("home", &src);
    let work = d.path().join("work");
    write(&work.join("report.txt"), b"w");
    o.snapshot("work", &work);

    let hits = found(&o, &["report.txt"]);
    let shown: Vec<(&str, &str, u64)> = hits
        .iter()
        .map(|(_, n, p, s)| (n.as_str(), p.as_str(), *s))
        .collect();
    assert_eq!(
        shown,
        [
            ("home~1", "docs/report.txt", 5),
            ("home~0", "docs/report.txt", 14),
            ("work~0", "report.txt", 1),
        ],
        "oldest snapshot first, each with the size the file had in it"
    );
    let only_work = found(&o, &["report.txt", "--tag", "work"]);
    assert_eq!(only_work.len(), 1, "{only_work:?}");
    let any_case = found(&o, &["-i", "report.txt", "--tag", "home"]);
    assert_eq!(any_case.len(), 3, "Report.TXT too: {any_case:?}");

    // The text form: a line per snapshot, then its matches in long-listing form.
    let r = o.run(&["find", "*.md"]).expect(0, "find");
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{}", r.stdout);
    assert!(lines[0].contains("home~1"), "{}", r.stdout);
    assert!(lines[1].starts_with("  -rw") && lines[1].ends_with(" docs/notes.md"));
    assert!(
        r.stderr.contains("2 match(es) in 2 snapshot(s)"),
        "{}",
        r.stderr
    );
    let none = o.run(&["find", "*.pdf"]).expect(0, "find nothing");
    assert!(none.stdout.is_empty());
    assert!(
        none.stderr
            .contains("no snapshot holds a name matching `*.pdf`"),
        "{}",
        none.stderr
    );
}

#[test]
fn a_pattern_with_a_slash_is_matched_against_the_whole_path_even_where_a_directory_is_shared() {
    let d = scratch();
    let o = Ore::new(d.path().join("arch").display().to_string());
    o.run(&["init"]).expect(0, "init");
    let src = d.path().join("src");
    // Two copies of one directory: one block, found at two paths.
    write(&src.join("x/same/a.txt"), b"a");
    write(&src.join("y/same/a.txt"), b"a");
    o.snapshot("t", &src);
    let by_name: Vec<String> = found(&o, &["a.txt"]).into_iter().map(|h| h.2).collect();
    assert_eq!(by_name, ["x/same/a.txt", "y/same/a.txt"]);
    let whole: Vec<String> = found(&o, &["y/**/a.txt"])
        .into_iter()
        .map(|h| h.2)
        .collect();
    assert_eq!(whole, ["y/same/a.txt"]);
    // `*` stays within one name when the pattern has a `/`.
    assert!(found(&o, &["y/*.txt"]).is_empty());
    // A directory matches too, before what it holds.
    let dirs: Vec<String> = found(&o, &["same"]).into_iter().map(|h| h.2).collect();
    assert_eq!(dirs, ["x/same", "y/same"]);
}

#[test]
fn newer_and_older_keep_the_snapshots_taken_in_that_time_and_a_bad_date_is_named() {
    let d = scratch();
    let o = Ore::new(d.path().join("arch").display().to_string());
    o.run(&["init"]).expect(0, "init");
    let src = d.path().join("src");
    write(&src.join("f"), b"f");
    o.snapshot("t", &src);
    assert_eq!(found(&o, &["f", "--newer", "1h"]).len(), 1);
    assert_eq!(found(&o, &["f", "--older", "1h"]).len(), 0);
    assert_eq!(found(&o, &["f", "--older", "2000-01-01"]).len(), 0);
    assert_eq!(found(&o, &["f", "--newer", "2000-01-01T10:00"]).len(), 1);
    assert_eq!(found(&o, &["f", "--newer", "2999-12-31"]).len(), 0);
    // Today, as a date, counts whole for both.
    let date = std::process::Command::new("date")
        .args(["-u", "+%F"])
        .output();
    let today = String::from_utf8(date.expect("date runs").stdout).expect("UTF-8");
    let today = today.trim();
    assert_eq!(found(&o, &["f", "--newer", today]).len(), 1);
    assert_eq!(found(&o, &["f", "--older", today]).len(), 1);
    let r = o
        .run(&["find", "f", "--older", "last tuesday"])
        .expect(1, "bad date");
    assert!(
        r.stderr.contains("--older last tuesday: not a date"),
        "{}",
        r.stderr
    );
    let r = o.run(&["find", "[oops"]).expect(1, "bad pattern");
    assert!(
        r.stderr.contains("`[oops` is not a pattern"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_missing_directory_block_is_reported_with_the_snapshot_and_the_path_being_read() {
    let d = scratch();
    let fsdir = d.path().join("fs");
    let o = Ore::fs(&fsdir);
    let src = d.path().join("src");
    write(&src.join("keep/deep/f"), b"f");
    o.snapshot("t", &src);
    let tree = o.key_of("t", "keep", "tree");
    std::fs::remove_file(block_file(&fsdir, &tree)).expect("remove the block");
    let r = o.run(&["find", "f"]).expect(1, "find over a missing block");
    assert!(
        r.stderr.contains("reading directory `keep` of snapshot") && r.stderr.contains("(t~0)"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains(&tree), "the block is named: {}", r.stderr);
}
