//! `ore stats` (issue 26, item 5): restored, deduplicated and stored sizes, block counts, and
//! what each tag (or each snapshot named) holds that nothing else does, as text and JSON.

use ore_tests::ore::{scratch, Ore};
use std::path::Path;

/// Bytes that neither compress nor repeat: `seed` makes each file's its own.
fn noise(path: &Path, len: usize, seed: u64) {
    let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ seed.wrapping_mul(0x2545_f491_4f6c_dd1d);
    let bytes: Vec<u8> = (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(path, bytes).expect("write");
}

fn json(o: &Ore, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["--json", "stats"];
    all.extend_from_slice(args);
    let r = o.run(&all).expect(0, "stats");
    serde_json::from_str(r.stdout.trim()).expect("JSON")
}

fn group<'a>(v: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    v["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .find(|g| g["name"] == name)
        .unwrap_or_else(|| panic!("{name} in {v}"))
}

#[test]
fn each_tag_is_counted_with_what_only_it_holds_and_shared_data_counts_once() {
    let d = scratch();
    let o = Ore::new(d.path().join("arch").display().to_string());
    o.run(&["init"]).expect(0, "init");
    let (home, work) = (d.path().join("home"), d.path().join("work"));
    std::fs::create_dir(&home).expect("mkdir");
    std::fs::create_dir(&work).expect("mkdir");
    noise(&home.join("a"), 300_000, 1);
    noise(&home.join("shared"), 200_000, 2);
    o.snapshot("home", &home);
    noise(&home.join("c"), 100_000, 3);
    o.snapshot("home", &home);
    std::fs::copy(home.join("shared"), work.join("shared")).expect("copy");
    noise(&work.join("d"), 50_000, 4);
    o.snapshot("work", &work);

    let v = json(&o, &[]);
    assert_eq!(v["by"], "tag");
    assert_eq!(v["snapshots"], 3);
    assert_eq!(
        v["restored_bytes"],
        500_000 + 600_000 + 250_000,
        "each snapshot's files, in all: {v}"
    );
    assert_eq!(
        v["deduplicated"]["chunk_bytes"], 650_000,
        "a, shared, c and d, each once: {v}"
    );
    let h = group(&v, "home");
    assert_eq!(h["snapshots"], 2);
    assert_eq!(h["reached"]["chunk_bytes"], 600_000, "{h}");
    assert_eq!(
        h["unique"]["chunk_bytes"], 400_000,
        "a and c, not shared: {h}"
    );
    let w = group(&v, "work");
    assert_eq!(w["unique"]["chunk_bytes"], 50_000, "d: {w}");
    assert!(v["archive_bytes"].as_u64().expect("a local archive counts") > 650_000);

    // Two snapshots of one tag: what each adds to the other.
    let v = json(&o, &["home~1", "home"]);
    assert_eq!(v["by"], "snapshot");
    assert_eq!(group(&v, "home~1")["unique"]["chunk_bytes"], 0);
    assert_eq!(
        group(&v, "home")["unique"]["chunk_bytes"],
        100_000,
        "c: {v}"
    );
    assert_eq!(v["restored_bytes"], 1_100_000);

    // A snapshot named twice counts once (found by attacking `stats`).
    let v = json(&o, &["home", "home"]);
    assert_eq!(v["snapshots"], 1, "{v}");
    assert_eq!(v["restored_bytes"], 600_000, "{v}");

    let text = o.run(&["stats"]).expect(0, "stats").stdout;
    assert!(
        text.contains("3 snapshot(s)") && text.contains("by tag"),
        "{text}"
    );
    let r = o.run(&["stats", "nosuch"]).expect(1, "an unknown name");
    assert!(r.stderr.contains("nosuch"), "{}", r.stderr);
}

/// An archive tag is counted by its objects: `stats` on an archive holding one said "0
/// snapshot(s)" for it and "0.00x smaller than restored" for the archive (a newcomer's report).
#[test]
fn an_archive_tag_is_counted_by_its_objects_and_no_restored_ratio_is_made_up() {
    let d = scratch();
    let o = Ore::new(d.path().join("arch").display().to_string());
    o.run(&["init"]).expect(0, "init");
    let docs = d.path().join("docs");
    std::fs::create_dir(&docs).expect("mkdir");
    noise(&docs.join("a"), 30_000, 5);
    noise(&docs.join("b"), 20_000, 6);
    let r = o.run(&[
        "import",
        "-q",
        "docs",
        &docs.display().to_string(),
        "--each",
    ]);
    r.expect(0, "import --each");
    let a = o
        .run(&["search", "docs", "name=a", "--json"])
        .expect(0, "search");
    let key = ore_tests::archival::json_lines(&a.stdout)[0]["key"]
        .as_str()
        .expect("key")
        .to_string();
    o.run(&["props", &key, "--set", "title=A"])
        .expect(0, "a new version of a");

    let v = json(&o, &[]);
    assert_eq!(v["snapshots"], 0, "{v}");
    assert_eq!(
        (v["archive_tags"].as_u64(), v["objects"].as_u64()),
        (Some(1), Some(3)),
        "{v}"
    );
    let g = group(&v, "docs");
    assert_eq!(g["objects"]["listed"], 3, "{g}");
    assert_eq!(
        g["objects"]["current"], 2,
        "a's first version is replaced: {g}"
    );
    assert_eq!(g["reached"]["chunk_bytes"], 50_000, "{g}");

    let text = o.run(&["stats"]).expect(0, "stats").stdout;
    assert!(
        text.contains("1 archive tag(s): 3 object(s) listed"),
        "{text}"
    );
    assert!(
        text.contains("docs  archive tag, 3 object(s), 2 current;"),
        "{text}"
    );
    assert!(
        !text.contains("smaller than restored"),
        "no snapshot, no ratio: {text}"
    );
    assert!(text.contains("data compressed about"), "{text}");
}

/// `ore snapshot --stats` (issue 25, the CPU budget): CPU seconds and seconds per GB read for
/// each stage, as JSON and as text. The stages are timed on each thread's own clock, so they
/// cannot add up to more than the process used; a tree of data that must be read, hashed,
/// compressed and encrypted gives each of those stages some time, and a run without the flag
/// reports none.
#[test]
fn snapshot_stats_report_each_stages_cpu_time_within_the_processs_own() {
    let d = scratch();
    let o = Ore::new(d.path().join("arch").display().to_string());
    o.run(&["init"]).expect(0, "init");
    let src = d.path().join("src");
    std::fs::create_dir(&src).expect("mkdir");
    for i in 0..8 {
        // Half noise, half text: compression has work either way.
        noise(&src.join(format!("n{i}")), 3 << 20, i);
        std::fs::write(src.join(format!("t{i}")), "ore ".repeat(200_000)).expect("write");
    }
    let path = src.to_str().expect("utf-8");
    let r = o
        .run(&["--json", "snapshot", "--stats", "s", path])
        .expect(0, "snapshot --stats");
    let v: serde_json::Value = serde_json::from_str(r.stdout.trim()).expect("JSON");
    let cpu = &v["cpu"];
    let read = cpu["bytes_read"].as_u64().expect("bytes_read");
    assert_eq!(
        read,
        8 * (3 << 20) + 8 * 800_000,
        "every byte read is counted once: {cpu}"
    );
    let stage = |s: &str| cpu["stages"][s]["cpu_s"].as_f64().unwrap_or(-1.0);
    let mut total = 0.0;
    for s in [
        "walk", "read", "chunk", "hash", "compress", "encrypt", "store", "index",
    ] {
        assert!(stage(s) >= 0.0, "{s} is reported: {cpu}");
        total += stage(s);
    }
    for s in ["read", "chunk", "hash", "compress", "encrypt"] {
        assert!(stage(s) > 0.0, "{s} took some time: {cpu}");
    }
    let per_gb = cpu["stages"]["hash"]["cpu_s_per_gb"]
        .as_f64()
        .expect("per GB");
    assert!((per_gb - stage("hash") / (read as f64 / 1e9)).abs() < 1e-6);
    let process = cpu["process_cpu_s"].as_f64().expect("process");
    assert!(
        total <= process + 0.01,
        "stages {total} s within the process's {process} s"
    );

    let text = o
        .run(&["snapshot", "--stats", "s", path])
        .expect(0, "snapshot --stats, text");
    for s in ["walk", "compress", "encrypt", "other", "process"] {
        assert!(text.stderr.contains(s), "{s} in: {}", text.stderr);
    }
    assert!(text.stderr.contains("CPU time by stage"), "{}", text.stderr);
    let plain = o
        .run(&["--json", "snapshot", "s", path])
        .expect(0, "snapshot");
    let v: serde_json::Value = serde_json::from_str(plain.stdout.trim()).expect("JSON");
    assert!(v["cpu"].is_null(), "no timing unless asked: {v}");
}
