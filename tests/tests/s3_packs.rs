//! backend-s3 keeps blocks in packs: a few large objects instead of one per block, with an
//! index any process can rebuild from the packs themselves (LAYOUT.md, "Packs").

use opendal::Operator;
use ore_tests::seaweed::{Cluster, ACCESS_KEY, BUCKET, SECRET_KEY};
use protocol::conformance::{test_data, test_key};
use protocol::{Backend, Client};

/// The archive's objects under `dir` (e.g. `packs/`), read with OpenDAL directly.
fn objects(op: &Operator, dir: &str) -> Vec<String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    rt.block_on(op.list(dir))
        .expect("list")
        .into_iter()
        .map(|e| e.path().to_string())
        .filter(|p| !p.ends_with('/'))
        .collect()
}

fn delete(op: &Operator, paths: &[String]) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    for p in paths {
        rt.block_on(op.delete(p)).expect("delete");
    }
}

#[test]
fn blocks_are_packed_into_few_objects_and_a_lost_index_is_rebuilt_from_the_packs() {
    let c = Cluster::start();
    let op = Operator::new(
        opendal::services::S3::default()
            .bucket(BUCKET)
            .root("/packed")
            .region("us-east-1")
            .endpoint(&c.endpoint())
            .access_key_id(ACCESS_KEY)
            .secret_access_key(SECRET_KEY)
            .disable_config_load()
            .disable_ec2_metadata(),
    )
    .expect("operator")
    .finish();
    let a = Client::connect(&c.archive("packed", "")).expect("connect");
    for i in 0..500 {
        a.put(test_key(i), &test_data(i, 3000)).expect("put");
    }
    a.flush().expect("flush");
    drop(a);
    let packs = objects(&op, "packs/");
    assert_eq!(packs.len(), 1, "500 small blocks make one pack: {packs:?}");
    let indexes = objects(&op, "index/");
    assert_eq!(indexes.len(), 1, "and one index object: {indexes:?}");

    delete(&op, &indexes);
    let b = Client::connect(&c.archive("packed", "")).expect("connect");
    assert_eq!(
        b.get(test_key(7)).expect("get"),
        None,
        "without its index the pack is unseen"
    );
    let out = b.admin("reindex", &[]).expect("reindex");
    assert!(out.text.contains("reindexed 1 pack"), "{}", out.text);
    for i in 0..500 {
        assert_eq!(
            b.get(test_key(i)).expect("get"),
            Some(test_data(i, 3000)),
            "block {i} is back"
        );
    }
    assert_eq!(b.list(None, 1000).expect("list").0.len(), 500);
    assert_eq!(
        objects(&op, "index/").len(),
        1,
        "the index object is written again"
    );
}
