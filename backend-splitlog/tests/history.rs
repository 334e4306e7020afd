//! Tag history in splitlog: every value a tag had survives compaction and a reindex after it,
//! until someone with full access expires it (issue 21: an append-only client moved a tag and
//! the owner's routine compaction erased the history that could have set it back).

use backend_splitlog::{SplitlogBackend, SplitlogOptions};
use protocol::history::{parse, EXPIRE, TAG_HISTORY};
use protocol::{Backend, CasOutcome};
use testkit::conformance::{test_data, test_key};

/// The kept values of `tag`, sorted (a reindex after compaction finds them in the order the
/// logs now hold them, not the order they were set in).
fn kept(b: &dyn Backend, tag: &str) -> Vec<String> {
    let out = b.admin(TAG_HISTORY, &[tag.to_string()]).unwrap();
    let mut v: Vec<String> = parse(&out.json)
        .unwrap()
        .into_iter()
        .map(|e| e.value)
        .collect();
    v.sort();
    v
}

#[test]
fn tag_history_survives_compaction_and_the_reindex_after_it_until_expired() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("a");
    let b = SplitlogBackend::open(&dir, SplitlogOptions::default()).unwrap();
    b.admin("set-max-log-size", &["1048576".into()]).unwrap();
    let values: Vec<String> = (1..=4).map(|n| test_key(n).to_hex()).collect();
    let mut sorted = values.clone();
    sorted.sort();
    let mut expected: Option<Vec<u8>> = None;
    for (i, v) in values.iter().enumerate() {
        // Enough dead data between the moves that each lands in a log compaction rewrites.
        for j in 0..30 {
            let k = test_key(1000 * (i as u64 + 1) + j);
            b.put(k, &test_data(j, 50_000)).unwrap();
            b.remove(&[k]).unwrap();
        }
        assert_eq!(
            b.set_tag("home", expected.as_deref(), v.as_bytes())
                .unwrap(),
            CasOutcome::Done
        );
        expected = Some(v.as_bytes().to_vec());
    }
    b.flush().unwrap();
    assert_eq!(kept(&b, "home"), sorted);
    let out = b.admin("compact", &["0.1".into()]).unwrap().text;
    assert!(!out.contains("compacted 0 log"), "{out}");
    assert_eq!(kept(&b, "home"), sorted, "after compaction");
    b.admin("reindex", &[]).unwrap();
    assert_eq!(kept(&b, "home"), sorted, "after a reindex");
    assert_eq!(
        b.get_tag("home").unwrap().as_deref(),
        Some(values[3].as_bytes())
    );
    // A second compaction carries the kept values on again.
    b.admin("compact", &["0.0".into()]).unwrap();
    b.admin("reindex", &[]).unwrap();
    assert_eq!(kept(&b, "home"), sorted, "after a second compaction");

    // Expired by the owner, they go for good: compaction no longer carries them.
    b.admin(EXPIRE, &["0".into()]).unwrap();
    assert_eq!(kept(&b, "home"), values[3..]);
    b.admin("compact", &["0.0".into()]).unwrap();
    b.admin("reindex", &[]).unwrap();
    assert_eq!(kept(&b, "home"), values[3..], "expired values stay gone");
}
