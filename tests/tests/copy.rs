//! Moving snapshots between archives through the binary: `ore sync` (blocks as stored between
//! archives sharing keys, re-encrypted otherwise; idempotent; resumable; tags only forward)
//! and `ore dump | ore load` (identical trees, damage refused).

use ore_tests::dumps::load;
use ore_tests::ore::{scratch, Ore, Run};
use ore_tests::trees::{assert_same, bytes, every_kind};
use serde_json::Value;
use std::path::Path;

fn json(r: &Run) -> Value {
    serde_json::from_str(r.stdout.trim()).unwrap_or_else(|e| panic!("{e}: {}", r.stdout))
}

fn sync(src: &Ore, dst: &Ore, extra: &[&str]) -> Run {
    let mut args = vec!["sync", "--to", &dst.archive, "--json"];
    args.extend_from_slice(extra);
    src.run(&args)
}

fn tree(root: &Path) {
    std::fs::create_dir_all(root).unwrap();
    every_kind(root);
    for i in 0..30 {
        std::fs::write(root.join(format!("n{i}")), bytes(i + 500, 40_000)).unwrap();
    }
}

#[test]
fn sync_as_stored_is_idempotent_and_resumable() {
    let (src, d) = Ore::local();
    let data = d.path().join("data");
    tree(&data);
    src.snapshot("home", &data);
    std::fs::write(data.join("later"), b"second snapshot").unwrap();
    src.snapshot("home", &data);
    src.snapshot("other", &data.join("dir"));

    // The destination shares the keys; it is reached through backend-fs so that it can be
    // made to die in the middle of a sync.
    let fs = d.path().join("dst");
    let dst = Ore::new(format!("backend-fs {}", ore_tests::quote(&fs)));
    dst.run(&["init", "--from", &src.archive])
        .expect(0, "init --from");
    let dying = Ore::new(format!(
        "env ORE_FAULT=kill,op=put,after=25 {} {}",
        ore_tests::quote(&ore_tests::bin("backend-fs")),
        ore_tests::quote(&fs)
    ));
    // A checkpoint after every block: the destination dies at its 26th put, and the blocks
    // it flushed at checkpoints survive it (without checkpoints it could lose them all: a
    // backend keeps accepted blocks only until a flush makes them durable).
    let r = Run::of(
        src.cmd(&["sync", "--to", &dying.archive, "--json"])
            .env("ORE_CHECKPOINT", "1")
            .output()
            .unwrap(),
    );
    assert_ne!(r.code, 0, "the destination died: {}", r.stderr);
    let r = dst.run(&["tags"]).expect(0, "tags");
    assert_eq!(
        r.stdout, "",
        "no tag moved before the blocks were all there"
    );

    let first = json(&sync(&src, &dst, &[]).expect(0, "sync after the interruption"));
    assert_eq!(first["mode"], "as stored");
    let copied = first["copied"].as_u64().unwrap();
    let reached = first["blocks"].as_u64().unwrap();
    // Blocks are copied from parallel threads, so the last few puts before the kill may have
    // been accepted without their checkpoint answered; without checkpoints all 25 could go.
    assert!(
        copied >= reached - 25 && copied <= reached - 15,
        "only what was missing: {first}"
    );
    let statuses: Vec<&str> = first["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, vec!["created", "created"]);

    let again = json(&sync(&src, &dst, &[]).expect(0, "second sync"));
    assert_eq!(again["copied"], 0, "{again}");
    assert!(
        again["tags"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["status"] == "unchanged"),
        "{again}"
    );

    dst.run(&["check", "--read-data"])
        .expect(0, "destination checks clean");
    let out = d.path().join("out");
    dst.restore("home", &out).expect(0, "restore from the copy");
    assert_same(&data, &out);
    assert_eq!(
        src.run(&["log", "home"]).stdout,
        dst.run(&["log", "home"]).stdout,
        "the same snapshots under the same keys"
    );

    // A new snapshot moves the destination's tag forward; one tag only when asked.
    std::fs::write(data.join("third"), b"third").unwrap();
    src.snapshot("home", &data);
    let r = json(&sync(&src, &dst, &["home"]).expect(0, "sync one tag"));
    assert_eq!(r["tags"].as_array().unwrap().len(), 1);
    assert_eq!(r["tags"][0]["status"], "moved");
    sync(&src, &dst, &["nosuch"]).expect(1, "unknown tag");
}

#[test]
fn sync_re_encrypts_for_other_keys_and_never_overwrites_a_tag_that_moved() {
    let (src, d) = Ore::local();
    let data = d.path().join("data");
    tree(&data);
    src.snapshot("home", &data);
    std::fs::write(data.join("later"), b"x").unwrap();
    src.snapshot("home", &data);
    let dst = Ore::new(d.path().join("dst").display().to_string());
    dst.run(&["init"]).expect(0, "init");

    let first = json(&sync(&src, &dst, &[]).expect(0, "sync"));
    assert_eq!(first["mode"], "re-encrypted");
    assert!(first["copied"].as_u64().unwrap() > 0);
    let again = json(&sync(&src, &dst, &[]).expect(0, "sync again"));
    assert_eq!(again["copied"], 0, "{again}");
    assert_eq!(again["tags"][0]["status"], "unchanged");
    let out = d.path().join("out");
    dst.restore("home", &out).expect(0, "restore");
    assert_same(&data, &out);
    assert_eq!(
        dst.run(&["log", "home"]).stdout.lines().count(),
        2,
        "the chain came along"
    );
    dst.run(&["check", "--read-data"]).expect(0, "clean");

    // The destination's tag moves on its own; the next sync reports it and leaves it.
    let elsewhere = d.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    std::fs::write(elsewhere.join("x"), b"mine").unwrap();
    let theirs = dst.snapshot("home", &elsewhere);
    std::fs::write(data.join("third"), b"y").unwrap();
    src.snapshot("home", &data);
    let r = sync(&src, &dst, &[]).expect(3, "conflict is a warning");
    let v = json(&r);
    assert_eq!(v["tags"][0]["status"], "conflict", "{v}");
    let head = dst.run(&["log", "home", "--json"]).stdout;
    assert!(head.lines().next().unwrap().contains(&theirs), "{head}");
    // A wrong destination passphrase is an error naming the problem.
    let pf = d.path().join("wrong");
    std::fs::write(&pf, "not it\n").unwrap();
    let r = sync(&src, &dst, &["--to-passphrase-file", pf.to_str().unwrap()])
        .expect(1, "wrong passphrase");
    assert!(r.stderr.contains("wrong passphrase"), "{}", r.stderr);
}

#[test]
fn dump_load_restore_gives_the_same_tree() {
    let (src, d) = Ore::local();
    let data = d.path().join("data");
    tree(&data);
    src.snapshot("home", &data);
    let dump = src.cmd(&["dump", "home"]).output().unwrap();
    assert!(
        dump.status.success(),
        "{}",
        String::from_utf8_lossy(&dump.stderr)
    );
    let stream = dump.stdout;
    assert!(stream.starts_with(b"ORE-DUMP\x02"));

    // Into an archive with other keys, another backend and other chunk sizes.
    let other = scratch();
    let dst = Ore::fs(&other.path().join("fs"));
    let r = load(&dst, "imported", &stream).expect(0, "load");
    assert_eq!(r.stdout.trim().len(), 64);
    let out = d.path().join("out");
    dst.restore("imported", &out).expect(0, "restore");
    assert_same(&data, &out);
    // The sparse file is still sparse, the hard link still a hard link.
    use std::os::unix::fs::MetadataExt;
    assert!(std::fs::metadata(out.join("sparse")).unwrap().blocks() * 512 < 1 << 20);
    assert_eq!(
        std::fs::metadata(out.join("small.txt")).unwrap().ino(),
        std::fs::metadata(out.join("dir/hardlink")).unwrap().ino()
    );
    // The snapshot kept its time, host and comment.
    let a: Value = serde_json::from_str(
        src.run(&["log", "home", "--json"])
            .stdout
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    let b: Value = serde_json::from_str(
        dst.run(&["log", "imported", "--json"])
            .stdout
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(a["time_ns"], b["time_ns"]);
    assert_eq!(a["host"], b["host"]);
    // Loading it again into the same archive stores nothing new: same trees, same keys.
    load(&dst, "again", &stream).expect(0, "load again");
    let diff = dst.run(&["diff", "imported", "again"]).expect(0, "diff");
    assert_eq!(diff.stdout, "");

    // Damage: a flipped byte in a file's data is named; truncation and foreign input too.
    let mut bad = stream.clone();
    let at = bad.len() / 2;
    bad[at] ^= 0x01;
    let r = load(&dst, "broken", &bad);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("damaged"), "{}", r.stderr);
    let r = load(&dst, "broken", &stream[..stream.len() - 100]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("ends early") || r.stderr.contains("damaged"),
        "{}",
        r.stderr
    );
    let r = load(&dst, "broken", b"GARBAGE-not-a-dump");
    assert!(r.stderr.contains("not an Ore dump"), "{}", r.stderr);
    // Version 4 is an archive tag's stream; 5 is newer than this ore.
    let mut v5 = stream.clone();
    v5[8] = 5;
    let r = load(&dst, "broken", &v5);
    assert!(
        r.stderr.contains("version 5") && r.stderr.contains("reads versions 1 to 4"),
        "{}",
        r.stderr
    );
    // A version-2 stream called version 3 lacks the labels version 3 ends its header with.
    let mut v3 = stream.clone();
    v3[8] = 3;
    let r = load(&dst, "broken", &v3);
    assert!(r.stderr.contains("header's labels"), "{}", r.stderr);
    let tags = dst.run(&["tags"]).stdout;
    assert!(
        !tags.contains("broken"),
        "a damaged stream made no snapshot: {tags}"
    );
    dst.run(&["check"]).expect(0, "and left the archive sound");
}

/// Issue 26: labels went missing through `ore dump | ore load`. A labelled snapshot's stream is
/// version 3, whose header ends with the labels; an unlabelled one stays version 2 (which an
/// ore from before labels loads).
#[test]
fn dump_and_load_keep_a_snapshots_labels() {
    let (src, d) = Ore::local();
    let data = d.path().join("data");
    tree(&data);
    let data = data.to_str().unwrap();
    src.run(&[
        "snapshot", "home", data, "--label", "env=prod", "--label", "team=a=b",
    ])
    .expect(0, "labelled snapshot");
    src.run(&["snapshot", "plain", data]).expect(0, "snapshot");
    let dump = |tag: &str| {
        let o = src.cmd(&["dump", tag]).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        o.stdout
    };
    let labelled = dump("home");
    assert!(labelled.starts_with(b"ORE-DUMP\x03"));
    assert!(dump("plain").starts_with(b"ORE-DUMP\x02"));

    let other = scratch();
    let dst = Ore::fs(&other.path().join("fs"));
    load(&dst, "imported", &labelled).expect(0, "load");
    let r = dst
        .run(&["snapshots", "--json", "--label", "team=a=b"])
        .expect(0, "snapshots");
    let v: Value = serde_json::from_str(r.stdout.lines().next().expect("one")).unwrap();
    assert_eq!(v["labels"]["env"], "prod", "{v}");
    assert_eq!(v["labels"]["team"], "a=b", "{v}");

    // A crafted label is refused like `--label` refuses it, naming the header's labels, and
    // nothing is loaded: the key `env` becomes `e/v`, and the trailer is made to match.
    let mut crafted = labelled.clone();
    let at = crafted
        .windows(4)
        .position(|w| w == b"\x03env")
        .expect("the label key in the header");
    crafted[at + 2] = b'/';
    let body = crafted.len() - 32;
    let sum = *blake3::hash(&crafted[..body - 5]).as_bytes();
    crafted[body..].copy_from_slice(&sum);
    let r = load(&dst, "crafted", &crafted);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("labels"), "{r:?}");
    assert_eq!(dst.run(&["log", "crafted"]).code, 1, "no tag was made");
}
