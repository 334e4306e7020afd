//! gc gives the space of removed blocks back on an archive in SeaweedFS: packs whose dead
//! share passes the threshold are repacked (LAYOUT.md, "Repacking"), beside running snapshots,
//! and nothing reachable is lost.

use connect::Client;
use ore_tests::ore::{scratch, Ore, Run};
use ore_tests::seaweed::Cluster;
use ore_tests::trees::{assert_same, bytes};
use protocol::Backend;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// `n` distinct files of `size` bytes that do not compress, seeded by `seed`.
fn files(dir: &Path, seed: u64, n: u64, size: usize) {
    std::fs::create_dir_all(dir).expect("mkdir");
    for i in 0..n {
        std::fs::write(dir.join(format!("f{i:03}")), bytes(seed + i, size)).expect("write");
    }
}

/// The objects under `dir` (`packs/`, `index/`) of the archive at `prefix`, with their sizes.
fn objects(c: &Cluster, prefix: &str, dir: &str) -> Vec<(String, u64)> {
    let op = opendal::Operator::new(
        opendal::services::S3::default()
            .bucket(ore_tests::seaweed::BUCKET)
            .root(&format!("/{prefix}"))
            .region("us-east-1")
            .endpoint(&c.endpoint())
            .access_key_id(ore_tests::seaweed::ACCESS_KEY)
            .secret_access_key(ore_tests::seaweed::SECRET_KEY)
            .disable_config_load()
            .disable_ec2_metadata(),
    )
    .expect("operator")
    .finish();
    ore_tests::seaweed::runtime().block_on(async {
        let mut out = Vec::new();
        for e in op.list(dir).await.expect("list") {
            if !e.path().ends_with('/') {
                let len = op.stat(e.path()).await.expect("stat").content_length();
                out.push((e.path().to_string(), len));
            }
        }
        out
    })
}

/// The bytes the archive's packs take in the store (their listing's sizes).
fn stored_bytes(c: &Cluster, prefix: &str) -> u64 {
    objects(c, prefix, "packs/").iter().map(|(_, n)| n).sum()
}

/// The number of packs a repack's report says it repacked.
fn repacked(report: &str) -> u64 {
    report
        .split("repacked ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn admin(o: &Ore, args: &[&str]) -> Run {
    Run::of(
        Command::new(ore_tests::bin("ore-admin"))
            .arg(&o.archive)
            .args(args)
            .output()
            .expect("ore-admin runs"),
    )
}

/// Snapshots `keep/` and `junk/`, then `keep/` alone, and forgets the first snapshot: the
/// junk is unreachable and shares a pack with the kept files.
fn archive_with_garbage(o: &Ore, src: &Path) {
    o.run(&["init"]).expect(0, "init");
    files(&src.join("keep"), 1_000, 20, 50_000);
    files(&src.join("junk"), 2_000, 6, 1 << 20);
    o.snapshot("home", src);
    std::fs::remove_dir_all(src.join("junk")).expect("remove the junk");
    o.snapshot("home", src);
    o.run(&["forget", "home", "--keep-last", "1"])
        .expect(0, "forget");
    o.run(&["reflog", "expire", "--older-than", "0s"])
        .expect(0, "reflog expire");
}

#[test]
fn forget_and_gc_shrink_the_packs_in_the_store_and_check_stays_clean() {
    let c = Cluster::shared();
    let d = scratch();
    let src = d.path().join("src");
    let o = Ore::new(c.archive("shrink", ""));
    archive_with_garbage(&o, &src);
    let before = stored_bytes(c, "shrink");
    let gc = o.run(&["gc"]).expect(0, "gc");
    let after = stored_bytes(c, "shrink");
    eprintln!(
        "{}packs: {before} bytes before gc, {after} after",
        gc.stdout
    );
    assert!(
        repacked(&gc.stdout) >= 1,
        "gc repacked the pack holding the junk: {}",
        gc.stdout
    );
    assert!(
        after + (5 << 20) < before,
        "the junk's 6 MiB left the store: {before} -> {after}"
    );
    o.run(&["check", "--read-data"])
        .expect(0, "check --read-data after the repack");
    let dest = d.path().join("dest");
    o.restore("home", &dest).expect(0, "restore");
    assert_same(&src, &dest);
    let packs = admin(&o, &["packs"]).expect(0, "ore-admin packs");
    assert!(
        packs.stdout.contains(" 0 duplicate, 0 removed"),
        "no dead copies are left: {}",
        packs.stdout
    );
}

#[test]
fn a_gc_and_a_repack_beside_a_running_snapshot_remove_nothing_reachable() {
    let c = Cluster::shared();
    let d = scratch();
    let src = d.path().join("src");
    let o = Ore::new(c.archive("beside", ""));
    archive_with_garbage(&o, &src);
    // The junk's blocks are removed, their bytes left in the pack the kept files share.
    o.run(&["gc", "--no-compact"])
        .expect(0, "gc without compaction");
    let before = stored_bytes(c, "beside");
    // A snapshot of the kept files (found unchanged through the file cache, so it refers to
    // their blocks in that pack without asking) and 48 MiB of new data, three packs' worth.
    files(&src.join("new"), 3_000, 48, 1 << 20);
    let watcher = Client::connect(&o.archive).expect("a watching connection");
    let baseline = watcher.list(None, 100_000).expect("list").0.len();
    let snapshot = o
        .cmd(&["snapshot", "home", src.to_str().expect("utf-8")])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ore snapshot starts");
    let deadline = Instant::now() + Duration::from_secs(120);
    // Polled: the store sends no notice of progress; a first pack stored means under way.
    while watcher.list(None, 100_000).expect("list").0.len() <= baseline {
        assert!(Instant::now() < deadline, "the snapshot stored no pack");
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(watcher);
    let gc = std::thread::scope(|s| {
        let gc = s.spawn(|| o.run(&["gc"]));
        let repack = admin(&o, &["compact", "0.25"]).expect(0, "a repack while writing");
        eprintln!("repack beside the snapshot: {}", repack.stdout);
        assert!(repacked(&repack.stdout) >= 1, "{}", repack.stdout);
        gc.join().expect("gc thread")
    });
    let snapshot = Run::of(snapshot.wait_with_output().expect("the snapshot ends"));
    snapshot.expect(0, "the snapshot beside gc and the repack");
    gc.expect(0, "gc beside the snapshot");
    assert!(
        stored_bytes(c, "beside") < before + (48 << 20),
        "the junk's bytes are gone"
    );
    o.run(&["check", "--read-data"])
        .expect(0, "check --read-data");
    let dest = d.path().join("dest");
    o.restore("home", &dest).expect(0, "restore");
    assert_same(&src, &dest);
}

/// `o`'s archive opened by a process with no local copies of anything: `check --read-data`
/// is clean, and `home` restores to `dest` as `src`. That process's `Ore`.
fn whole_from_a_fresh_cache(o: &Ore, src: &Path, dest: &Path) -> Ore {
    let mut fresh = Ore::new(o.archive.clone());
    fresh.passphrase = o.passphrase.clone();
    fresh
        .run(&["check", "--read-data"])
        .expect(0, "check --read-data from a fresh cache");
    fresh.restore("home", dest).expect(0, "restore");
    assert_same(src, dest);
    fresh
}

/// One index object covers the packs of a flush; a repack that deletes some of them replaces
/// the objects that named them, so that a process with no local copies finds every block
/// that stayed, and nothing that went.
#[test]
fn a_repack_replaces_the_index_objects_naming_the_packs_it_deletes() {
    let c = Cluster::shared();
    let d = scratch();
    let src = d.path().join("src");
    let o = Ore::new(c.archive("cover", ""));
    o.run(&["init"]).expect(0, "init");
    // 40 MiB of junk beside the kept files: three packs stored by one flush.
    files(&src.join("keep"), 1_000, 20, 50_000);
    files(&src.join("junk"), 2_000, 40, 1 << 20);
    let before = objects(c, "cover", "index/").len();
    o.snapshot("home", &src);
    let packs = objects(c, "cover", "packs/").len();
    let indexes = objects(c, "cover", "index/");
    eprintln!("{packs} packs, {} index objects", indexes.len());
    assert!(
        indexes.len() - before <= 2 && packs >= indexes.len() + 2,
        "an index object per flush, not per pack: {packs} packs, {indexes:?}"
    );
    std::fs::remove_dir_all(src.join("junk")).expect("remove the junk");
    o.snapshot("home", &src);
    o.run(&["forget", "home", "--keep-last", "1"])
        .expect(0, "forget");
    o.run(&["reflog", "expire", "--older-than", "0s"])
        .expect(0, "reflog expire");
    let gc = o.run(&["gc"]).expect(0, "gc");
    assert!(repacked(&gc.stdout) >= 1, "{}", gc.stdout);
    let after = objects(c, "cover", "index/");
    assert!(
        indexes.iter().any(|i| !after.contains(i)),
        "an object that named a repacked pack was replaced: {indexes:?} -> {after:?}\nGC: {}\n{}",
        gc.stdout,
        gc.stderr
    );
    // A process that starts with no copies of the index: every block that stayed is found,
    // and reindex finds no pack that no object covers.
    let fresh = whole_from_a_fresh_cache(&o, &src, &d.path().join("dest"));
    let r = admin(&fresh, &["reindex"]).expect(0, "reindex");
    assert!(r.stdout.contains("reindexed 0 pack(s)"), "{}", r.stdout);
}

/// Many flushes leave many index objects, each a GET for a process that starts without local
/// copies; gc's repack merges them once there are more than 32.
#[test]
fn gc_merges_many_small_index_objects_into_few() {
    let c = Cluster::shared();
    let d = scratch();
    let src = d.path().join("src");
    let o = Ore::new(c.archive("merge", ""));
    o.run(&["init"]).expect(0, "init");
    // One index object per snapshot (its blocks and its reflog block go under one flush).
    for round in 0..34 {
        files(&src.join(format!("r{round}")), 10_000 * round, 2, 1_000);
        o.snapshot("home", &src);
    }
    let before = objects(c, "merge", "index/").len();
    assert!(before > 32, "enough index objects to merge: {before}");
    o.run(&["gc"]).expect(0, "gc");
    let after = objects(c, "merge", "index/").len();
    eprintln!("index objects: {before} before gc, {after} after");
    assert!(after <= 2, "merged: {before} -> {after}");
    whole_from_a_fresh_cache(&o, &src, &d.path().join("dest"));
}
