//! backend-s3's admin commands beside the processes they share an archive with, on a real
//! SeaweedFS cluster: `reindex` leaves alone the packs a running writer has not indexed yet
//! (LAYOUT.md, "Blocks: packs, index, removal records"), and of repacks that take over a stale
//! `repack.lock` at once exactly one proceeds ("Repacking").

use connect::Client;
use opendal::Operator;
use ore_tests::ore::Run;
use ore_tests::seaweed::{Cluster, ACCESS_KEY, BUCKET, SECRET_KEY};
use protocol::Backend;
use std::process::Command;
use std::time::{Duration, Instant};
use testkit::conformance::{test_data, test_key};

fn operator(c: &Cluster, root: &str) -> Operator {
    Operator::new(
        opendal::services::S3::default()
            .bucket(BUCKET)
            .root(&format!("/{root}"))
            .region("us-east-1")
            .endpoint(&c.endpoint())
            .access_key_id(ACCESS_KEY)
            .secret_access_key(SECRET_KEY)
            .disable_config_load()
            .disable_ec2_metadata(),
    )
    .expect("operator")
    .finish()
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime")
}

/// The names of the objects under `dir` (e.g. `packs/`).
fn objects(op: &Operator, dir: &str) -> Vec<String> {
    rt().block_on(op.list(dir))
        .expect("list")
        .into_iter()
        .map(|e| e.path().to_string())
        .filter(|p| !p.ends_with('/'))
        .collect()
}

fn admin(id: &str, args: &[&str]) -> Run {
    Run::of(
        Command::new(ore_tests::bin("ore-admin"))
            .arg(id)
            .args(args)
            .output()
            .expect("ore-admin runs"),
    )
}

/// A writer that stored a pack and was killed before its flush: the pack is in the store and
/// no index object covers it. Returns the pack's name.
fn pack_of_a_killed_writer(c: &Cluster, id: &str, prefix: &str) -> String {
    let op = operator(c, prefix);
    let writer = Client::connect(id).expect("a writer");
    // Blocks of 1 MiB: the 16th closes the first pack (15 of them and its header), which the
    // writer stores at once and would index only at its flush.
    for i in 0..20 {
        writer
            .put(test_key(i), &test_data(i, 1 << 20))
            .expect("put");
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    // Polled: the store sends no notice of a stored object.
    let packs = loop {
        let packs = objects(&op, "packs/");
        if !packs.is_empty() {
            break packs;
        }
        assert!(Instant::now() < deadline, "the writer stored no pack");
        std::thread::sleep(Duration::from_millis(20));
    };
    let pid = writer.pid().expect("the writer is a process");
    // SAFETY: kill(2) on the pid of a child this test started and has not reaped.
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGKILL) }, 0);
    drop(writer);
    assert_eq!(packs.len(), 1, "{packs:?}");
    assert!(
        objects(&op, "index/").is_empty(),
        "the writer never flushed"
    );
    packs[0].clone()
}

#[test]
fn reindex_leaves_a_young_unindexed_pack_to_its_writer_until_told_to_take_it() {
    let c = Cluster::start();
    let id = c.archive("young", "");
    let pack = pack_of_a_killed_writer(&c, &id, "young");
    let op = operator(&c, "young");

    let r = admin(&id, &["reindex"]).expect(0, "reindex");
    assert!(
        r.stdout.contains("reindexed 0 pack(s)") && r.stdout.contains("left alone 1 pack(s)"),
        "a pack stored a moment ago may be a running writer's: {}",
        r.stdout
    );
    assert!(
        objects(&op, "index/").is_empty(),
        "no index object was written for {pack}"
    );
    assert!(
        objects(&op, "clock/").is_empty(),
        "the clock's scratch object is deleted"
    );

    let r = admin(&id, &["reindex", "--grace", "0s"]).expect(0, "reindex --grace 0s");
    assert!(r.stdout.contains("reindexed 1 pack(s)"), "{}", r.stdout);
    let reader = Client::connect(&id).expect("a reader");
    for i in [0, 14] {
        assert_eq!(
            reader.get(test_key(i)).expect("get"),
            Some(test_data(i, 1 << 20)),
            "block {i} of the reindexed pack"
        );
    }
    let help = admin(&id, &["help"]).expect(0, "help");
    assert!(
        help.stdout.contains("reindex [--grace DURATION]"),
        "{}",
        help.stdout
    );
    let bad = admin(&id, &["reindex", "--grace", "soon"]);
    assert_ne!(bad.code, 0);
    assert!(bad.stderr.contains("--grace"), "{}", bad.stderr);
}
