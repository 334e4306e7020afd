//! A snapshot takes back the lease slot this machine's last run left free, with one
//! compare-and-swap and no listing of the tags (`core/lease/hint.rs`).
//!
//! Taking a lease used to list every tag on every run, which backend-s3 answers with a request
//! per tag. The hint beside the file cache names the slot and the exact value the last run
//! left there; the store accepts the move back exactly when nobody took the slot since, so a
//! hint that no longer holds costs a listing, never a lease held twice.

use ore_tests::ore::{scratch, Ore};
use std::path::Path;

/// The archive in `fsdir` through a backend that refuses every listing of tags, sharing
/// `ore`'s cache (and so its lease hint).
fn without_tag_listings(ore: &Ore, fsdir: &Path) -> Ore {
    let mut o = Ore::new(format!(
        "env ORE_FAULT=error,op=list-tags,after=0 {} {}",
        ore_tests::quote(&ore_tests::bin("backend-fs")),
        ore_tests::quote(fsdir)
    ));
    o.cache = ore.cache.clone();
    o
}

#[test]
fn a_second_snapshot_takes_back_its_machines_lease_slot_without_listing_the_tags() {
    let d = scratch();
    let (ore, fsdir, src) = ore_tests::ore::fs_with_one_snapshot(d.path());
    std::fs::write(src.join("a"), b"second").unwrap();
    let blind = without_tag_listings(&ore, &fsdir);
    let r = blind.run(&["snapshot", "t", src.to_str().unwrap()]);
    r.expect(0, "a snapshot that needs no listing of tags");
    // And again: each run leaves the hint for the next.
    std::fs::write(src.join("a"), b"third").unwrap();
    blind
        .run(&["snapshot", "t", src.to_str().unwrap()])
        .expect(0, "the third snapshot");
    let slots: Vec<_> = std::fs::read_dir(fsdir.join("tags"))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("lease"))
        .collect();
    assert_eq!(slots.len(), 1, "one slot, taken back each time: {slots:?}");
    ore.run(&["check", "--read-data"]).expect(0, "check");
}

#[test]
fn a_hint_another_run_made_stale_is_refused_by_the_store_and_the_slots_are_listed() {
    let d = scratch();
    let (ore, fsdir, src) = ore_tests::ore::fs_with_one_snapshot(d.path());
    // A run without the cache takes and frees the same slot: the hint's value is gone.
    std::fs::write(src.join("a"), b"second").unwrap();
    ore.run(&["snapshot", "--no-cache", "t", src.to_str().unwrap()])
        .expect(0, "a snapshot without the cache");
    // The stale hint is tried, refused, and the run falls back to listing the slots — which
    // this backend refuses, so the run fails before moving anything.
    std::fs::write(src.join("a"), b"third").unwrap();
    let before = std::fs::read_to_string(fsdir.join("tags/t")).unwrap();
    let r = without_tag_listings(&ore, &fsdir).run(&["snapshot", "t", src.to_str().unwrap()]);
    assert_ne!(r.code, 0, "a stale hint was taken as a lease: {}", r.stderr);
    assert_eq!(
        std::fs::read_to_string(fsdir.join("tags/t")).unwrap(),
        before,
        "the tag did not move"
    );
    // Without the fault, the listing finds the slot and the run completes.
    ore.run(&["snapshot", "t", src.to_str().unwrap()])
        .expect(0, "a snapshot that lists the slots");
    ore.run(&["check", "--read-data"]).expect(0, "check");
}

#[test]
fn the_first_snapshot_after_init_creates_slot_zero_without_listing_the_tags() {
    let d = scratch();
    let fsdir = d.path().join("fs");
    let ore = Ore::fs(&fsdir);
    let src = d.path().join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("a"), b"first").unwrap();
    // `init` left word that the archive has no lease slot yet.
    without_tag_listings(&ore, &fsdir)
        .run(&["snapshot", "t", src.to_str().unwrap()])
        .expect(0, "a first snapshot that needs no listing of tags");
    // A machine with a cache of its own has no such word: it lists, as before.
    let mut elsewhere = without_tag_listings(&ore, &fsdir);
    elsewhere.cache = d.path().join("other-cache");
    std::fs::write(src.join("a"), b"second").unwrap();
    let r = elsewhere.run(&["snapshot", "t", src.to_str().unwrap()]);
    assert_ne!(r.code, 0, "a run without a hint took a lease unlisted");
    ore.run(&["check", "--read-data"]).expect(0, "check");
}
