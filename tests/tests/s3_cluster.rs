//! The SeaweedFS cluster the object-store tests run on starts, answers S3, and leaves no
//! process behind (tests/src/seaweed.rs).

use ore_tests::seaweed::{alive, http_get, Cluster, Role};

#[test]
fn a_seaweedfs_cluster_starts_answers_s3_and_leaves_no_process_behind() {
    let c = Cluster::start();
    eprintln!("SeaweedFS cluster started in {:.1?}", c.started_in);
    let pids = c.pids();
    assert_eq!(
        pids.len(),
        5,
        "master, three volume servers and the filer run"
    );
    assert!(pids.iter().all(|&p| alive(p)));
    let (code, _) = http_get(c.s3_port, "/").expect("the S3 gateway answers");
    assert_eq!(code, 403, "an unsigned request is refused by the gateway");
    drop(c);
    let left: Vec<u32> = pids.into_iter().filter(|&p| alive(p)).collect();
    assert!(left.is_empty(), "processes left after drop: {left:?}");
}

#[test]
fn a_killed_gateway_stops_answering_and_comes_back_on_restart() {
    let mut c = Cluster::start();
    c.kill(Role::Gateway);
    assert!(
        http_get(c.s3_port, "/").is_none(),
        "a killed gateway does not answer"
    );
    assert_eq!(c.pids().len(), 4);
    c.restart(Role::Gateway);
    assert!(
        http_get(c.s3_port, "/").is_some(),
        "the restarted gateway answers"
    );
}
