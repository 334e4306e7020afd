//! Which blocks restricted connections stored, in splitlog: the record survives compaction and
//! a reindex after it, and the owner's vouching does too (issue 21, dedup poisoning: the
//! owner's routine compaction or a rebuilt index must not hide planted blocks from
//! `ore check --unverified`).

use backend_splitlog::{SplitlogBackend, SplitlogOptions};
use protocol::provenance::{parse_page, UNVOUCHED, VOUCH};
use protocol::{Access, Backend, Restricted};
use std::sync::Arc;
use testkit::conformance::{test_data, test_key};

fn unvouched(b: &dyn Backend) -> Vec<protocol::Key> {
    let out = b.admin(UNVOUCHED, &[]).unwrap();
    parse_page(&out.json).unwrap().0
}

#[test]
fn the_record_of_restricted_puts_survives_compaction_and_reindex_and_so_does_vouching() {
    let t = tempfile::tempdir().unwrap();
    let b =
        Arc::new(SplitlogBackend::open(t.path().join("a"), SplitlogOptions::default()).unwrap());
    b.admin("set-max-log-size", &["1048576".into()]).unwrap();
    let laptop = Restricted::new(b.clone(), Access::AppendOnly);
    let (owners, planted, vouched) = (test_key(1), test_key(2), test_key(3));
    b.put(owners, &test_data(1, 100)).unwrap();
    laptop.put(owners, b"garbage").unwrap();
    for k in [planted, vouched] {
        laptop.put(k, b"garbage").unwrap();
    }
    // Dead data around them, so compaction rewrites the logs that hold the records.
    for j in 0..60 {
        let k = test_key(1000 + j);
        b.put(k, &test_data(j, 50_000)).unwrap();
        b.remove(&[k]).unwrap();
    }
    b.admin(VOUCH, &[vouched.to_hex()]).unwrap();
    b.flush().unwrap();
    assert_eq!(unvouched(&*b), vec![planted]);
    assert_eq!(b.get(owners).unwrap(), Some(test_data(1, 100)));
    let out = b.admin("compact", &["0.1".into()]).unwrap().text;
    assert!(!out.contains("compacted 0 log"), "{out}");
    assert_eq!(unvouched(&*b), vec![planted], "after compaction");
    b.admin("reindex", &[]).unwrap();
    assert_eq!(unvouched(&*b), vec![planted], "after a reindex");
    b.admin("compact", &["0.0".into()]).unwrap();
    b.admin("reindex", &[]).unwrap();
    assert_eq!(unvouched(&*b), vec![planted], "after a second compaction");
    b.remove(&[planted]).unwrap();
    b.admin("compact", &["0.0".into()]).unwrap();
    b.admin("reindex", &[]).unwrap();
    assert_eq!(
        unvouched(&*b),
        vec![],
        "a removed block's record goes with it"
    );
}
