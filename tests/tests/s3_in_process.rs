//! An identifier whose first word is an `s3://` URL opens the archive in `ore`'s own process,
//! with backend-s3's options (connect/src/s3.rs): no program is started, and the same
//! options mean the same things.

use ore_tests::ore::{scratch, Ore, Run};
use ore_tests::seaweed::{Cluster, BUCKET};
use std::path::Path;

/// The in-process identifier of an archive under `prefix` on `c`, with `extra` options.
fn in_process(c: &Cluster, prefix: &str, extra: &str) -> String {
    format!(
        "s3://{BUCKET}/{prefix} --endpoint {} --credentials-file {} --profile ore {extra}",
        c.endpoint(),
        ore_tests::quote(&c.credentials_file())
    )
}

/// `ore` copied alone into `dir`, run with a PATH that holds no Ore program: a run that needed
/// `backend-s3` could not find it.
fn lone_ore(o: &Ore, dir: &Path, args: &[&str]) -> Run {
    let lone = dir.join("ore");
    if !lone.exists() {
        std::fs::copy(ore_tests::bin("ore"), &lone).expect("copy ore");
    }
    let mut cmd = o.cmd(args);
    cmd.env("PATH", "/usr/bin:/bin");
    let mut c = std::process::Command::new(&lone);
    c.args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    Run::of(
        c.stdin(std::process::Stdio::null())
            .output()
            .expect("ore runs"),
    )
}

#[test]
fn an_s3_identifier_is_served_in_process_without_any_backend_program() {
    let c = Cluster::start();
    let d = scratch();
    let src = d.path().join("src");
    ore_tests::trees::grid(&src, 4, 20, 3000);
    let bin = d.path().join("bin");
    std::fs::create_dir(&bin).expect("mkdir");
    let o = Ore::new(in_process(&c, "inproc", ""));
    lone_ore(&o, &bin, &["init"]).expect(0, "init");
    let path = src.to_str().expect("utf-8");
    lone_ore(&o, &bin, &["snapshot", "home", path]).expect(0, "snapshot");
    let dest = d.path().join("restored");
    lone_ore(
        &o,
        &bin,
        &["restore", "home", dest.to_str().expect("utf-8")],
    )
    .expect(0, "restore");
    ore_tests::trees::assert_same(&src, &dest);
    lone_ore(&o, &bin, &["check", "--read-data"]).expect(0, "check");
    // The same archive through the program reads what the process wrote.
    let spawned = Ore::new(c.archive("inproc", ""));
    let mut s = spawned;
    s.passphrase = o.passphrase.clone();
    s.run(&["check", "--read-data"])
        .expect(0, "check through backend-s3");
}

#[test]
fn options_of_an_in_process_archive_are_backend_s3s_and_read_only_is_enforced() {
    let c = Cluster::start();
    let d = scratch();
    let src = d.path().join("src");
    std::fs::create_dir(&src).expect("mkdir");
    std::fs::write(src.join("a"), b"one").expect("write");
    let o = Ore::new(in_process(&c, "opts", ""));
    o.run(&["init"]).expect(0, "init");
    o.run(&["snapshot", "t", src.to_str().expect("utf-8")])
        .expect(0, "snapshot");
    let mut ro = Ore::new(in_process(&c, "opts", "--read-only"));
    ro.passphrase = o.passphrase.clone();
    ro.cache = o.cache.clone();
    let r = ro.run(&["snapshot", "t", src.to_str().expect("utf-8")]);
    assert_ne!(
        r.code, 0,
        "a read-only archive took a snapshot: {}",
        r.stderr
    );
    ro.run(&["ls", "t"])
        .expect(0, "a read-only archive is read");
    // A mistyped option is backend-s3's own message, naming the archive.
    let bad = Ore::new(in_process(&c, "opts", "--no-such-option"));
    let r = bad.run(&["tags"]);
    assert_ne!(r.code, 0);
    assert!(
        r.stderr.contains("--no-such-option") && r.stderr.contains("s3://"),
        "{}",
        r.stderr
    );
}

#[test]
fn an_in_process_run_counts_its_requests_like_the_program() {
    let c = Cluster::start();
    let d = scratch();
    let o = Ore::new(in_process(&c, "counted", ""));
    o.run(&["init"]).expect(0, "init");
    let counts = d.path().join("requests.jsonl");
    Run::of(
        o.cmd(&["tags"])
            .env("ORE_S3_REQUESTS", &counts)
            .output()
            .expect("ore runs"),
    )
    .expect(0, "tags");
    let text = std::fs::read_to_string(&counts).expect("the counts were written");
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.contains("\"LIST\""), "{text}");
}

/// The snapshot defers its questions only to a backend whose `exists` waits
/// (`Backend::exists_waits`). backend-s3 in process answers from its index in memory, so a
/// snapshot into it reads no further ahead than into a local archive (deferring there held
/// 109–120 MB at the peak against 81–85 MB without); through its program every `exists` is a
/// round trip to another process, and is deferred.
#[test]
fn an_in_process_s3_archive_answers_exists_at_once_and_its_program_does_not() {
    let c = Cluster::start();
    let inproc = connect::open(&in_process(&c, "waits", "")).expect("open in process");
    assert!(inproc.pipelines(), "gets and exists still run concurrently");
    assert!(
        !inproc.exists_waits(),
        "in process, exists is answered from memory"
    );
    let program = connect::open(&c.archive("waits", "")).expect("open the program");
    assert!(program.pipelines());
    assert!(program.exists_waits(), "through the program, exists waits");
}
