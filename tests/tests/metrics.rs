//! Monitoring (issue 26, item 15): `--metrics-file` writes a run's outcome in the Prometheus
//! text format, keeping the samples of the other commands and tags in the file, and a failed
//! run keeps the time of the last success; `ore-admin ARCHIVE metrics` gives a backend's
//! counters the same way, and `ore_backend_up 0` when it cannot be reached.

use ore_tests::bin;
use ore_tests::ore::{scratch, Ore};
use std::collections::HashMap;
use std::path::Path;

/// The samples of a metrics file, by `name{labels}`, after checking every line's form.
fn samples(text: &str) -> HashMap<String, f64> {
    let mut out = HashMap::new();
    let mut typed = std::collections::HashSet::new();
    for l in text.lines() {
        if let Some(rest) = l.strip_prefix("# TYPE ") {
            let name = rest.split(' ').next().expect("a name");
            assert!(
                typed.insert(name.to_string()),
                "one TYPE line per metric: {text}"
            );
            continue;
        }
        if l.starts_with("# HELP ") {
            continue;
        }
        let (series, value) = l.rsplit_once(' ').expect("`series value`");
        let name = series.split('{').next().expect("a name");
        assert!(
            name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') && series.ends_with('}'),
            "a sample line: {l}"
        );
        assert!(typed.contains(name), "TYPE before the samples: {text}");
        out.insert(series.to_string(), value.parse().expect("a number"));
    }
    out
}

fn snap(o: &Ore, file: &Path, tag: &str, path: &str) -> i32 {
    let f = file.to_str().expect("UTF-8");
    o.run(&["--metrics-file", f, "snapshot", tag, path]).code
}

#[test]
fn each_run_writes_its_samples_and_keeps_the_others_and_a_failure_keeps_the_last_success() {
    let d = scratch();
    let o = Ore::new(d.path().join("arch").display().to_string());
    o.run(&["init"]).expect(0, "init");
    let (a, b) = (d.path().join("a"), d.path().join("b"));
    for p in [&a, &b] {
        std::fs::create_dir(p).expect("mkdir");
        std::fs::write(p.join("f"), vec![7u8; 10_000]).expect("write");
    }
    let file = d.path().join("ore.prom");
    assert_eq!(snap(&o, &file, "home", a.to_str().expect("UTF-8")), 0);
    assert_eq!(snap(&o, &file, "etc", b.to_str().expect("UTF-8")), 0);
    let s = samples(&std::fs::read_to_string(&file).expect("the file"));
    let home = |m: &str| s[&format!("{m}{{command=\"snapshot\",tag=\"home\"}}")];
    assert_eq!(home("ore_exit_status"), 0.0);
    assert_eq!(home("ore_snapshot_files"), 1.0);
    assert_eq!(home("ore_snapshot_bytes"), 10_000.0);
    assert!(home("ore_snapshot_new_blocks") >= 1.0);
    assert_eq!(
        s["ore_snapshot_files{command=\"snapshot\",tag=\"etc\"}"],
        1.0
    );
    let success = home("ore_last_success_timestamp_seconds");
    assert!(success > 1.7e9, "{success}");
    // A run that fails: its status, and the last success kept.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let missing = d.path().join("missing");
    assert_eq!(snap(&o, &file, "home", missing.to_str().expect("UTF-8")), 1);
    let s = samples(&std::fs::read_to_string(&file).expect("the file"));
    let home = |m: &str| s[&format!("{m}{{command=\"snapshot\",tag=\"home\"}}")];
    assert_eq!(home("ore_exit_status"), 1.0);
    assert_eq!(home("ore_last_success_timestamp_seconds"), success);
    assert!(home("ore_last_run_timestamp_seconds") > success);
    assert!(
        !s.contains_key("ore_snapshot_files{command=\"snapshot\",tag=\"home\"}"),
        "no counters from a run that stored nothing"
    );
    assert_eq!(s["ore_exit_status{command=\"snapshot\",tag=\"etc\"}"], 0.0);
    // Another command, its own labels.
    let f = file.to_str().expect("UTF-8");
    o.run(&["--metrics-file", f, "check"]).expect(0, "check");
    let s = samples(&std::fs::read_to_string(&file).expect("the file"));
    assert_eq!(s["ore_exit_status{command=\"check\",tag=\"\"}"], 0.0);
    assert!(s.contains_key("ore_exit_status{command=\"snapshot\",tag=\"etc\"}"));
}

#[test]
fn ore_admin_metrics_gives_the_backends_counters_and_up_zero_when_it_is_unreachable() {
    let d = scratch();
    let arch = d.path().join("arch");
    let o = Ore::new(arch.display().to_string());
    o.run(&["init"]).expect(0, "init");
    let src = d.path().join("src");
    std::fs::create_dir(&src).expect("mkdir");
    std::fs::write(src.join("f"), b"data").expect("write");
    o.snapshot("t", &src);
    let id = arch.display().to_string();
    let r = std::process::Command::new(bin("ore-admin"))
        .args([&id, "metrics"])
        .output()
        .expect("ore-admin runs");
    assert!(r.status.success(), "{r:?}");
    let s = samples(&String::from_utf8_lossy(&r.stdout));
    let label = format!("{{archive=\"{id}\"}}");
    assert_eq!(s[&format!("ore_backend_up{label}")], 1.0);
    assert!(s[&format!("ore_backend_blocks{label}")] >= 3.0);
    assert_eq!(s[&format!("ore_backend_can_remove{label}")], 1.0);
    // Written to a file, whole.
    let file = d.path().join("backend.prom");
    let r = std::process::Command::new(bin("ore-admin"))
        .args([&id, "metrics", file.to_str().expect("UTF-8")])
        .output()
        .expect("ore-admin runs");
    assert!(r.status.success(), "{r:?}");
    assert!(std::fs::read_to_string(&file)
        .expect("written")
        .contains("ore_backend_up"));
    // A backend that cannot be started.
    let gone = "no-such-backend-program /x";
    let r = std::process::Command::new(bin("ore-admin"))
        .args([gone, "metrics"])
        .output()
        .expect("ore-admin runs");
    assert_eq!(r.status.code(), Some(1));
    let s = samples(&String::from_utf8_lossy(&r.stdout));
    assert_eq!(s[&format!("ore_backend_up{{archive=\"{gone}\"}}")], 0.0);
}

/// Found by attacking `--metrics-file`: runs ending together each read the file, added their
/// samples and wrote it back, and the last writer's copy lost the others' (6 of 15 rounds of 7
/// runs lost one or two).
#[test]
fn runs_ending_together_keep_every_ones_samples() {
    let d = scratch();
    let src = d.path().join("src");
    std::fs::create_dir(&src).expect("mkdir");
    std::fs::write(src.join("f"), b"f").expect("write");
    let tags = ["a", "b", "c", "d", "e", "f", "g"];
    let archives: Vec<Ore> = tags
        .iter()
        .map(|t| {
            let o = Ore::new(d.path().join(format!("arch-{t}")).display().to_string());
            o.run(&["init"]).expect(0, "init");
            o
        })
        .collect();
    let file = d.path().join("ore.prom");
    let f = file.to_str().expect("UTF-8");
    for _ in 0..3 {
        let _ = std::fs::remove_file(&file);
        let children: Vec<_> = archives
            .iter()
            .zip(tags)
            .map(|(o, t)| {
                o.cmd(&[
                    "--metrics-file",
                    f,
                    "snapshot",
                    t,
                    src.to_str().expect("UTF-8"),
                ])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("ore starts")
            })
            .collect();
        for mut c in children {
            assert!(c.wait().expect("wait").success());
        }
        let s = samples(&std::fs::read_to_string(&file).expect("the file"));
        let n = s
            .keys()
            .filter(|k| k.starts_with("ore_exit_status{"))
            .count();
        assert_eq!(n, tags.len(), "{s:?}");
    }
    let left: Vec<_> = std::fs::read_dir(d.path())
        .expect("read_dir")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".ore-metrics-"))
        .collect();
    assert!(left.is_empty(), "no temporary file left: {left:?}");
}
