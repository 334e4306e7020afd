//! backend-s3's admin commands beside the processes they share an archive with, on a real
//! SeaweedFS cluster: `reindex` leaves alone the packs a running writer has not indexed yet
//! (LAYOUT.md, "Blocks: packs, index, removal records"), and of repacks that take over a stale
//! `repack.lock` at once exactly one proceeds ("Repacking").

use connect::Client;
use ore_tests::ore::Run;
use ore_tests::s3objects::{objects, operator, rt};
use ore_tests::seaweed::{Cluster, BUCKET};
use protocol::Backend;
use std::process::Command;
use std::time::{Duration, Instant};
use testkit::conformance::{test_data, test_key};

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
    let c = Cluster::shared();
    let id = c.archive("young", "");
    let pack = pack_of_a_killed_writer(c, &id, "young");
    let op = operator(c, "young");

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

fn endpoint(c: &Cluster, prefix: &str) -> backend_s3::Endpoint {
    use backend_s3::config::{from_file, Location};
    backend_s3::Endpoint {
        location: Location::parse(&format!("s3://{BUCKET}/{prefix}")).expect("location"),
        endpoint: Some(c.endpoint()),
        region: "us-east-1".into(),
        credentials: from_file(&c.credentials_file(), "ore").expect("credentials"),
    }
}

/// Repacks that take over a stale lock at the same moment: `takers` processes' worth of
/// backends (in this process, so that a barrier lines them up to the microsecond) each run
/// `compact` at once, for `rounds` rounds; returns each round's answers.
fn takeovers_at_once(c: &Cluster, prefix: &str, takers: usize, rounds: usize) -> Vec<Vec<String>> {
    let op = operator(c, prefix);
    let backends: Vec<backend_s3::S3Backend> = (0..takers)
        .map(|_| {
            backend_s3::S3Backend::open(endpoint(c, prefix), backend_s3::S3Options::default())
                .expect("open")
        })
        .collect();
    let stale = br#"{"by":"a repack that died","heartbeat":0}"#;
    (0..rounds)
        .map(|_| {
            rt().block_on(op.write("repack.lock", &stale[..]))
                .expect("a stale lock");
            let barrier = std::sync::Barrier::new(takers);
            std::thread::scope(|s| {
                let runs: Vec<_> = backends
                    .iter()
                    .map(|b| {
                        let barrier = &barrier;
                        s.spawn(move || {
                            barrier.wait();
                            match b.admin("compact", &[]) {
                                Ok(out) => out.text,
                                Err(e) => format!("error: {e}"),
                            }
                        })
                    })
                    .collect();
                runs.into_iter()
                    .map(|r| r.join().expect("a taker"))
                    .collect()
            })
        })
        .collect()
}

#[test]
fn of_repacks_taking_over_a_stale_lock_at_once_exactly_one_proceeds() {
    // Regression: a taker proceeded as soon as its conditional write succeeded and a read
    // showed its bytes, and one that lost went round again and took the lock once the winner
    // had released it (two to four of four proceeded, one after another). SeaweedFS once let
    // two conditional writes of one ETag sent together both succeed (two of eight, under heavy
    // load), when a read right after the write could show each racer its own bytes. Now a
    // taker reads the lock back only once racing writes have landed (lock.rs).
    let c = Cluster::shared();
    for (round, answers) in takeovers_at_once(c, "lock", 4, 8).iter().enumerate() {
        let proceeded = answers.iter().filter(|a| a.starts_with("repacked")).count();
        let skipped = answers
            .iter()
            .filter(|a| a.starts_with("repack skipped"))
            .count();
        assert!(
            proceeded == 1 && skipped == answers.len() - 1,
            "round {round}: exactly one repack proceeds, the others say the lock is held: {answers:#?}"
        );
    }
    assert!(
        objects(&operator(c, "lock"), "")
            .iter()
            .all(|o| o != "repack.lock"),
        "the winner released the lock"
    );
}
