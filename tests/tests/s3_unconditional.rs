//! An archive on a store that ignores conditional writes keeps its tags as immutable records
//! (LAYOUT.md, "Tags without conditional writes"): tested on the real SeaweedFS cluster through
//! `--assume-unconditional`, which makes backend-s3 act as if its start-up probe had failed.

use connect::Client;
use ore_tests::ore::{scratch, Ore};
use ore_tests::seaweed::Cluster;
use ore_tests::trees::{assert_same, every_kind};
use protocol::{Backend, CasOutcome};

const SWITCH: &str = "--assume-unconditional";

#[test]
fn processes_moving_one_tag_at_once_lose_no_move_where_conditional_writes_are_ignored() {
    let c = Cluster::start();
    let id = c.archive("records", SWITCH);
    let first = Client::connect(&id).expect("create the archive");
    let info = first.admin("info", &[]).expect("info").text;
    assert!(
        info.contains("IGNORED") && info.contains("tag-log/"),
        "info says how tags are kept: {info}"
    );
    // Twelve moves: each waits out the store's clock (about 1.5 s), so thirty took 49 s.
    let (writers, each) = (3, 4);
    ore_tests::s3objects::count_up_together(&id, writers, each);
    assert_eq!(
        first.get_tag("counter").expect("get").as_deref(),
        Some((writers * each).to_string().as_bytes()),
        "every move answered Done took effect exactly once"
    );
    // Removal and setting again, and the list, follow the records too.
    assert_eq!(
        first.remove_tag("counter", Some(b"12")).expect("remove"),
        CasOutcome::Done
    );
    assert_eq!(first.get_tag("counter").expect("get"), None);
    assert_eq!(
        first.set_tag("counter", None, b"again").expect("set"),
        CasOutcome::Done
    );
    assert_eq!(
        first.list_tags().expect("list"),
        vec![("counter".to_string(), b"again".to_vec())]
    );
    let history = first
        .admin("tag-history", &["counter".to_string()])
        .expect("history")
        .text;
    for v in ["1", "6", "12", "again"] {
        assert!(
            history
                .lines()
                .any(|l| l.split_whitespace().any(|w| w == v)),
            "value {v} is kept in the history: {history}"
        );
    }
}

#[test]
fn ore_snapshots_restores_and_checks_an_archive_whose_tags_are_records() {
    let c = Cluster::start();
    let d = scratch();
    let src = d.path().join("src");
    every_kind(&src);
    let o = Ore::new(c.archive("records-ore", SWITCH));
    o.run(&["init"]).expect(0, "init");
    o.snapshot("home", &src);
    std::fs::write(src.join("added"), b"a second snapshot").expect("write");
    o.snapshot("home", &src);
    let dest = d.path().join("dest");
    o.restore("home", &dest).expect(0, "restore");
    assert_same(&src, &dest);
    let log = o.run(&["log", "home"]).expect(0, "log");
    assert!(
        log.stdout.contains("home~0") && log.stdout.contains("home~1"),
        "both snapshots are on the chain: {}",
        log.stdout
    );
    o.run(&["gc"]).expect(0, "gc");
    o.run(&["check", "--read-data"])
        .expect(0, "check --read-data");
}
