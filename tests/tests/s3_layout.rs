//! backend-s3's layouts (LAYOUT.md, "Format object"): an archive is created in layout 2,
//! where removal records lie among the index objects (`index/r-...`) so that one listing
//! finds both, and an archive of layout 1 (removal records in `deleted/`) is still read and
//! written as it is.

use connect::Client;
use ore_tests::s3objects::{objects, operator, put};
use ore_tests::seaweed::Cluster;
use protocol::Backend;
use testkit::conformance::{test_data, test_key};

/// Stores blocks 0..10 and removes 0..3 through one backend process.
fn store_then_remove_three(id: &str) {
    let a = Client::connect(id).expect("connect");
    for i in 0..10 {
        a.put(test_key(i), &test_data(i, 2000)).expect("put");
    }
    a.flush().expect("flush");
    let gone: Vec<_> = (0..3).map(test_key).collect();
    a.remove(&gone).expect("remove");
}

/// What a fresh backend process sees of blocks 0..10, and the LISTs it made to see it.
fn seen_by_a_fresh_process(id: &str) -> (Vec<bool>, u64, String) {
    let b = Client::connect(id).expect("connect");
    let keys: Vec<_> = (0..10).map(test_key).collect();
    let stored = b.exists(&keys).expect("exists");
    for i in 3..10 {
        assert_eq!(b.get(test_key(i)).expect("get"), Some(test_data(i, 2000)));
    }
    let counts: serde_json::Value =
        serde_json::from_str(&b.admin("requests", &[]).expect("requests").json).expect("JSON");
    let lists = counts["LIST"].as_u64().expect("a LIST count");
    let info = b.admin("info", &[]).expect("info").text;
    (stored, lists, info)
}

#[test]
fn removal_records_lie_among_the_index_objects_so_one_listing_finds_both() {
    let c = Cluster::shared();
    let id = c.archive("two", "");
    store_then_remove_three(&id);
    let op = operator(c, "two");
    let index = objects(&op, "index/");
    let removals: Vec<_> = index.iter().filter(|n| n.starts_with("index/r-")).collect();
    assert_eq!(removals.len(), 1, "one removal record among {index:?}");
    assert_eq!(index.len(), 2, "beside one index object: {index:?}");
    assert!(objects(&op, "deleted/").is_empty(), "nothing in deleted/");

    let (stored, lists, info) = seen_by_a_fresh_process(&id);
    let want: Vec<bool> = (0..10).map(|i| i >= 3).collect();
    assert_eq!(
        stored, want,
        "the removed blocks are gone for another process"
    );
    assert_eq!(
        lists, 1,
        "one listing found index objects and removals alike"
    );
    assert!(info.contains("ore-s3-2"), "{info}");
}

#[test]
fn an_archive_of_the_first_layout_keeps_its_removal_records_in_deleted_and_reads_them() {
    let c = Cluster::shared();
    let op = operator(c, "one");
    // The format object as the first layout wrote it, before any process opens the archive.
    put(
        &op,
        "ore-s3.json",
        br#"{"format":"ore-s3-1","max_block_size":16777216,"blocks":"packs (packs/<id>, index/<id>, deleted/)","tags":"objects"}"#.to_vec(),
    );
    let id = c.archive("one", "");
    store_then_remove_three(&id);
    assert_eq!(objects(&op, "deleted/").len(), 1, "the removal record");
    let index = objects(&op, "index/");
    assert!(
        index.iter().all(|n| !n.starts_with("index/r-")),
        "no removal record among the index objects: {index:?}"
    );

    let (stored, lists, info) = seen_by_a_fresh_process(&id);
    let want: Vec<bool> = (0..10).map(|i| i >= 3).collect();
    assert_eq!(
        stored, want,
        "the removed blocks are gone for another process"
    );
    assert_eq!(lists, 2, "index/ and deleted/ are listed apart");
    assert!(info.contains("ore-s3-1"), "{info}");
}

#[test]
fn a_format_object_naming_an_unknown_layout_is_refused_with_both_known_ones_named() {
    let c = Cluster::shared();
    put(
        &operator(c, "nine"),
        "ore-s3.json",
        br#"{"format":"ore-s3-9","max_block_size":16777216,"tags":"objects"}"#.to_vec(),
    );
    // Opened in this process (an `s3://` identifier), so that the error is the backend's own.
    let id = c.archive("nine", "");
    let e = connect::s3::open(id.trim_start_matches("backend-s3 "))
        .map(|_| ())
        .expect_err("an unknown layout");
    let m = e.to_string();
    assert!(
        m.contains("ore-s3-9") && m.contains("ore-s3-2") && m.contains("ore-s3-1"),
        "{m}"
    );
}

/// `tag-history` as (tag, value) lines, time left out.
fn kept(b: &impl Backend, tag: Option<&str>) -> Vec<String> {
    let args: Vec<String> = tag.into_iter().map(String::from).collect();
    let out = b.admin("tag-history", &args).expect("tag-history").text;
    out.lines()
        .filter(|l| !l.contains("no kept history"))
        .map(|l| l.split_once(' ').map_or(l, |(_, rest)| rest).to_string())
        .collect()
}

#[test]
fn moves_made_together_keep_their_values_in_one_object_and_expiry_rewrites_it_without_the_expired()
{
    let c = Cluster::shared();
    let id = c.archive("moves", "");
    let op = operator(c, "moves");
    {
        let a = Client::connect(&id).expect("connect");
        a.set_tag("snap", None, b"one").expect("set");
        a.set_tag("other", None, b"kept").expect("set");
    }
    // Both values in one object, written when the backend ended.
    let shared = objects(&op, "tag-history/");
    assert_eq!(shared.len(), 1, "{shared:?}");
    assert!(shared[0].starts_with("tag-history/moves/"), "{shared:?}");

    let b = Client::connect(&id).expect("connect");
    assert_eq!(kept(&b, Some("snap")), ["snap one"]);
    assert_eq!(kept(&b, None).len(), 2);
    b.set_tag("snap", Some(b"one"), b"two").expect("move");
    // Read in the same process: its own gathered value is written first.
    assert_eq!(kept(&b, Some("snap")), ["snap one", "snap two"]);
    // Every value not held goes: `one` only. `kept` shared its object and stays, in a new one.
    let out = b
        .admin("expire-tag-history", &["0".into()])
        .expect("expire");
    assert!(out.text.contains('1'), "{}", out.text);
    let mut all = kept(&b, None);
    all.sort();
    assert_eq!(all, ["other kept", "snap two"]);
    assert!(
        !objects(&op, "tag-history/").contains(&shared[0]),
        "the object holding an expired value was replaced"
    );
}
