//! What a run costs an object store, in requests of each kind, pinned so that a change that
//! adds requests to every run is seen (backend-s3/LAYOUT.md, "Requests").
//!
//! An unchanged re-snapshot is the run a backup schedule makes most often, and on a paid store
//! each request is a fee and a round trip. Its budget here: seven PUTs (the lease taken and
//! freed, one pack and one index object for the snapshot and reflog blocks under one flush,
//! the tag and `ore:reflog` moves, and one object keeping the values of both moves in the tag
//! history), six GETs (the format object, `ore:format`, the tag, `ore:reflog`, `ore:gc`, and
//! the lease's own slot before the tag moves: the format record's block and the reflog's
//! newest block come from this machine's copies), one LIST (the index objects, removal records
//! among them), and no HEAD or DELETE: 14 requests, as many as restic's unchanged backup on the
//! same store (2 PUT, 3 GET, 1 HEAD, 7 LIST, 1 DELETE). Before the lease hint and the shared
//! flush it was 10 PUT, 12 GET and 3 LIST; before the copies, 8 GETs; before layout 2 and the
//! gathered history values, 8 PUT and 2 LIST.

use ore_tests::seaweed::Cluster;

/// The requests of each kind the backend-s3 processes of one run counted.
fn counted(file: &std::path::Path) -> std::collections::BTreeMap<String, u64> {
    let text = std::fs::read_to_string(file).expect("the request counts were written");
    let mut total = std::collections::BTreeMap::new();
    for l in text.lines() {
        let v: serde_json::Value = serde_json::from_str(l).expect("a JSON line");
        for (k, n) in v["requests"].as_object().expect("counts") {
            *total.entry(k.clone()).or_insert(0) += n.as_u64().unwrap_or(0);
        }
    }
    total
}

#[test]
fn an_unchanged_resnapshot_costs_at_most_seven_puts_six_gets_and_one_list() {
    let c = Cluster::start();
    let d = ore_tests::ore::scratch();
    let src = d.path().join("src");
    std::fs::create_dir_all(src.join("sub")).expect("mkdir");
    for i in 0..200 {
        let dir = if i % 2 == 0 { "sub" } else { "" };
        std::fs::write(
            src.join(dir).join(format!("f{i}")),
            ore_tests::trees::bytes(i, 3000),
        )
        .expect("write");
    }
    let o = ore_tests::ore::Ore::new(c.archive("budget", ""));
    o.run(&["init"]).expect(0, "init");
    let path = src.to_str().expect("utf-8");
    o.run(&["snapshot", "home", path])
        .expect(0, "first snapshot");
    let mut last = Default::default();
    // Twice: the first re-snapshot may still find the store's answers to the first run's
    // writes; the second is the steady state.
    for round in 0..2 {
        let counts = d.path().join(format!("requests-{round}.jsonl"));
        ore_tests::ore::Run::of(
            o.cmd(&["snapshot", "home", path])
                .env("ORE_S3_REQUESTS", &counts)
                .output()
                .expect("ore runs"),
        )
        .expect(0, "unchanged re-snapshot");
        last = counted(&counts);
    }
    eprintln!("an unchanged re-snapshot: {last:?}");
    let n = |k: &str| last.get(k).copied().unwrap_or(0);
    assert!(n("PUT") <= 7, "PUTs: {last:?}");
    assert!(n("GET") <= 6, "GETs: {last:?}");
    assert!(n("LIST") <= 1, "LISTs: {last:?}");
    assert_eq!(n("HEAD") + n("DELETE"), 0, "HEADs or DELETEs: {last:?}");
    o.run(&["check", "--read-data"]).expect(0, "check");
}
