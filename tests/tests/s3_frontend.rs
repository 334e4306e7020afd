//! Ore's frontend on an archive in a real SeaweedFS cluster, through backend-s3: snapshot,
//! restore, check; a cache in front; a replicated archive with an S3 member; sync to and from
//! S3 and `init --from`; several processes moving one tag; append-only enforced in the backend
//! program.

use connect::Client;
use ore_tests::ore::{scratch, Ore};
use ore_tests::seaweed::Cluster;
use ore_tests::shell_quote;
use ore_tests::trees::{assert_same, bytes, every_kind};
use protocol::{Backend, CasOutcome, ErrorCode};
use std::path::Path;
use std::process::Command;
use testkit::conformance::test_key;

fn tree(root: &Path, files: u64) {
    every_kind(root);
    let many = root.join("many");
    std::fs::create_dir_all(&many).expect("mkdir");
    for i in 0..files {
        std::fs::write(many.join(format!("f{i:04}")), bytes(7000 + i, 5000)).expect("write");
    }
}

#[test]
fn ore_snapshots_restores_and_checks_an_archive_kept_in_seaweedfs() {
    let c = Cluster::shared();
    let d = scratch();
    let src = d.path().join("src");
    tree(&src, 80);
    let o = Ore::new(c.archive("frontend", ""));
    o.run(&["init"]).expect(0, "init");
    o.snapshot("home", &src);
    let dest = d.path().join("dest");
    o.restore("home", &dest).expect(0, "restore");
    assert_same(&src, &dest);
    std::fs::write(src.join("many/f0000"), b"changed").expect("change a file");
    o.snapshot("home", &src);
    o.run(&["check", "--read-data"])
        .expect(0, "check --read-data");
    let info = Command::new(ore_tests::bin("ore-admin"))
        .args([&o.archive, "info"])
        .output()
        .expect("ore-admin runs");
    let text = String::from_utf8_lossy(&info.stdout);
    assert!(info.status.success(), "ore-admin info: {text}");
    assert!(
        text.contains("If-None-Match: * honoured, If-Match: ETAG honoured"),
        "ore-admin info reports the probe: {text}"
    );
}

#[test]
fn a_cache_in_front_of_an_s3_archive_serves_snapshot_and_restore() {
    let c = Cluster::shared();
    let d = scratch();
    let src = d.path().join("src");
    tree(&src, 40);
    let id = format!(
        "backend-cache {} {}",
        ore_tests::quote(&d.path().join("cache.db")),
        shell_quote(&c.archive("cached", ""))
    );
    let o = Ore::new(id);
    o.run(&["init"]).expect(0, "init");
    o.snapshot("t", &src);
    let dest = d.path().join("dest");
    o.restore("t", &dest).expect(0, "restore");
    assert_same(&src, &dest);
    // The archive behind the cache has what the cache acknowledged.
    let direct = Ore::new(c.archive("cached", ""));
    direct
        .run(&["check", "--read-data"])
        .expect(0, "check behind the cache");
}

#[test]
fn processes_moving_one_tag_at_once_lose_no_move() {
    let c = Cluster::shared();
    let id = c.archive("race", "");
    Client::connect(&id).expect("create the archive");
    let (writers, each) = (3, 15);
    ore_tests::s3objects::count_up_together(&id, writers, each);
    let b = Client::connect(&id).expect("connect");
    assert_eq!(
        b.get_tag("counter").expect("get").as_deref(),
        Some((writers * each).to_string().as_bytes()),
        "every compare-and-swap of every process took effect exactly once"
    );
}

#[test]
fn append_only_backend_s3_stores_and_moves_tags_but_refuses_removals() {
    let c = Cluster::shared();
    let full = Client::connect(&c.archive("ao", "")).expect("connect");
    full.put(test_key(1), b"owner's").expect("put");
    let (v1, v2) = (test_key(11).to_hex(), test_key(12).to_hex());
    full.set_tag("home", None, v1.as_bytes()).expect("set");
    let ao = Client::connect(&c.archive("ao", "--append-only")).expect("append-only");
    ao.put(test_key(2), b"new").expect("an append-only put");
    assert_eq!(
        ao.set_tag("home", Some(v1.as_bytes()), v2.as_bytes())
            .expect("a move"),
        CasOutcome::Done
    );
    let refused = ao.remove(&[test_key(1)]).expect_err("removal refused");
    assert_eq!(refused.code(), ErrorCode::ReadOnly, "{refused}");
    assert!(ao.remove_tag("home", None).is_err(), "tag removal refused");
    assert_eq!(
        full.get(test_key(1)).expect("get").as_deref(),
        Some(&b"owner's"[..])
    );
    assert_eq!(
        full.get_tag("home").expect("get").as_deref(),
        Some(v2.as_bytes())
    );
    let unvouched = full.admin("unvouched", &[]).expect("unvouched").text;
    assert!(
        unvouched.contains(&test_key(2).to_hex()),
        "the append-only connection's new block is recorded: {unvouched}"
    );
}

#[test]
fn snapshots_sync_to_an_s3_archive_and_back_and_an_archive_is_initialised_from_one() {
    let c = Cluster::shared();
    let (local, d) = Ore::local();
    let src = d.path().join("src");
    tree(&src, 30);
    local.snapshot("home", &src);
    let s3 = Ore::new(c.archive("synced", ""));
    s3.run(&["init", "--from", &local.archive])
        .expect(0, "init --from a local archive");
    local
        .run(&["sync", "--to", &s3.archive])
        .expect(0, "sync to the S3 archive");
    let dest = d.path().join("from-s3");
    s3.restore("home", &dest).expect(0, "restore from S3");
    assert_same(&src, &dest);
    let back = Ore::new(d.path().join("back").display().to_string());
    back.run(&["init", "--from", &s3.archive])
        .expect(0, "init --from the S3 archive");
    s3.run(&["sync", "--to", &back.archive])
        .expect(0, "sync back from S3");
    let dest = d.path().join("back-restored");
    back.restore("home", &dest).expect(0, "restore");
    assert_same(&src, &dest);
}

#[test]
fn a_replicated_archive_keeps_every_block_on_an_s3_member_and_a_local_splitlog_member() {
    let c = Cluster::shared();
    let d = scratch();
    let state = d.path().join("state.db");
    let id = format!("backend-replicated {}", ore_tests::quote(&state));
    let local = format!(
        "{} {}",
        ore_tests::bin("backend-splitlog").display(),
        ore_tests::quote(&d.path().join("local"))
    );
    for member in [c.archive("member", ""), local.clone()] {
        let out = Command::new(ore_tests::bin("ore-admin"))
            .args([&id, "add", &member, "--trust", "50"])
            .output()
            .expect("ore-admin runs");
        assert!(
            out.status.success(),
            "adding member {member}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let o = Ore::new(id);
    o.run(&["init"]).expect(0, "init");
    let src = d.path().join("src");
    tree(&src, 30);
    o.snapshot("home", &src);
    // Each member alone is a complete archive.
    for (i, alone) in [c.archive("member", ""), local].into_iter().enumerate() {
        let dest = d.path().join(format!("dest-{i}"));
        Ore::new(alone.clone())
            .restore("home", &dest)
            .expect(0, "restore from one member alone");
        assert_same(&src, &dest);
    }
}

#[test]
fn three_writers_beside_a_gc_store_each_shared_block_once_after_the_next_gc() {
    let c = Cluster::shared();
    let d = scratch();
    let first = Ore::new(c.archive("writers", ""));
    first.run(&["init"]).expect(0, "init");
    let shared = d.path().join("shared");
    tree(&shared, 40);
    let writers: Vec<(Ore, std::path::PathBuf)> = (0..3)
        .map(|w| {
            // Each writer is its own host: its own cache directory.
            let o = Ore::new(first.archive.clone());
            let src = d.path().join(format!("src{w}"));
            std::fs::create_dir_all(&src).expect("mkdir");
            for i in 0..40 {
                std::fs::write(
                    src.join(format!("own{i}")),
                    bytes(50_000 * (w + 1) + i, 4000),
                )
                .expect("write");
            }
            for e in std::fs::read_dir(shared.join("many")).expect("shared") {
                let e = e.expect("entry");
                std::fs::copy(e.path(), src.join(e.file_name())).expect("copy a shared file");
            }
            (o, src)
        })
        .collect();
    // A gc beside the writers: it waits for their leases, then removes nothing they reach.
    let gc = std::thread::scope(|s| {
        for (w, (o, src)) in writers.iter().enumerate() {
            s.spawn(move || o.snapshot(&format!("host{w}"), src));
        }
        first.run(&["gc"])
    });
    gc.expect(0, "gc beside three writers");
    for (w, (o, src)) in writers.iter().enumerate() {
        let dest = d.path().join(format!("dest{w}"));
        o.restore(&format!("host{w}"), &dest).expect(0, "restore");
        assert_same(src, &dest);
    }
    let admin = |args: &[&str]| {
        ore_tests::ore::Run::of(
            Command::new(ore_tests::bin("ore-admin"))
                .arg(&first.archive)
                .args(args)
                .output()
                .expect("ore-admin runs"),
        )
        .expect(0, "ore-admin")
        .stdout
    };
    eprintln!("after three writers: {}", admin(&["packs"]));
    // The next gc's repack keeps one copy of each shared block, in every pack it repacks. By
    // default it repacks only packs a quarter dead or more, and a pack of mostly live blocks
    // may keep a few duplicates (3 copies, once, with the machine under load): so this gc runs
    // asking for every pack with a dead byte, through a backend whose floor allows it (its
    // threshold is the larger of the two: LAYOUT.md, "Repacking"). (With small files in
    // bundles a duplicate can be under a tenth of its pack, which the default 0.1 keeps.)
    let mut thorough = Ore::new(c.archive("writers", "--repack-threshold 0"));
    thorough.cache = first.cache.clone();
    let gc = thorough
        .run(&["gc", "--compact-threshold", "0"])
        .expect(0, "gc after the writers");
    let packs = admin(&["packs"]);
    eprintln!("{}after gc: {packs}", gc.stdout);
    // Removed copies may stay where they are a small share of a live pack (below the repack
    // threshold): a snapshot stores the reflog block recording its move beside its own blocks,
    // and a writer that lost the race for `ore:reflog` leaves that block dead there.
    assert!(
        packs.contains(" 0 duplicate,"),
        "every shared block is stored once: {packs}"
    );
    for (w, (o, src)) in writers.iter().enumerate() {
        let dest = d.path().join(format!("again{w}"));
        o.restore(&format!("host{w}"), &dest).expect(0, "restore");
        assert_same(src, &dest);
    }
    first
        .run(&["check", "--read-data"])
        .expect(0, "check --read-data after three writers");
}
