//! This machine's copies of the format record and of the newest reflog block, beside the file
//! cache: a run reads them instead of the store when they are exactly the blocks the archive's
//! tags name, and never trusts one that is not (`core/formatcopy.rs`, `core/reflog/copy.rs`).
//! The request counts they save on an object store are pinned by `s3_request_budget`.

use ore_tests::ore::{block_file, scratch, Ore, Run};
use std::path::{Path, PathBuf};

fn tag(fsdir: &Path, name: &str) -> String {
    std::fs::read_to_string(fsdir.join("tags").join(name))
        .expect("the tag")
        .trim()
        .to_string()
}

/// The reflog's entries as `ore reflog` lists them (one line each).
fn reflog_lines(ore: &Ore) -> usize {
    ore.run(&["reflog"])
        .expect(0, "reflog")
        .stdout
        .lines()
        .count()
}

fn archive_with_two_snapshots(d: &Path) -> (Ore, PathBuf, PathBuf) {
    let (ore, fsdir, src) = ore_tests::ore::fs_with_one_snapshot(d);
    std::fs::write(src.join("a"), b"two").expect("write");
    ore.snapshot("t", &src);
    (ore, fsdir, src)
}

#[test]
fn a_snapshot_adds_its_move_to_this_machines_copy_of_the_newest_reflog_block() {
    let d = scratch();
    let (ore, fsdir, src) = archive_with_two_snapshots(d.path());
    let before = reflog_lines(&ore);
    // The store's copy of the newest reflog block is gone: only this machine's copy can give
    // the entries the next block must carry on (the old code read the store and failed).
    let head = tag(&fsdir, "ore:reflog");
    std::fs::remove_file(block_file(&fsdir, &head)).expect("remove the head block");
    std::fs::write(src.join("a"), b"three").expect("write");
    let r = ore
        .run(&["snapshot", "t", src.to_str().expect("utf-8")])
        .expect(0, "snapshot");
    assert!(!r.stderr.contains("reflog"), "{r:?}");
    assert_ne!(tag(&fsdir, "ore:reflog"), head, "the reflog moved on");
    assert_eq!(
        reflog_lines(&ore),
        before + 1,
        "every earlier entry is kept"
    );
}

#[test]
fn a_copy_of_the_reflog_head_that_does_not_hash_to_its_key_is_not_used() {
    let d = scratch();
    let (ore, fsdir, src) = archive_with_two_snapshots(d.path());
    let before = reflog_lines(&ore);
    let format = tag(&fsdir, "ore:format");
    let copy = ore.cache.join("ore/reflog").join(&format);
    let mut bytes = std::fs::read(&copy).expect("this machine's copy of the reflog head");
    assert_eq!(
        bytes[..32]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>(),
        tag(&fsdir, "ore:reflog"),
        "the copy is of the head"
    );
    // Same key, other entries: forged, or damaged on this disk.
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    std::fs::write(&copy, &bytes).expect("damage the copy");
    std::fs::write(src.join("a"), b"three").expect("write");
    ore.run(&["snapshot", "t", src.to_str().expect("utf-8")])
        .expect(0, "snapshot");
    assert_eq!(
        reflog_lines(&ore),
        before + 1,
        "read from the store instead"
    );
    ore.run(&["check"]).expect(0, "check");
}

#[test]
fn a_damaged_copy_of_the_format_record_is_passed_over_and_replaced() {
    let d = scratch();
    let (ore, fsdir, _) = archive_with_two_snapshots(d.path());
    let format = tag(&fsdir, "ore:format");
    let copy = ore.cache.join("ore/format").join(&format);
    let stored = std::fs::read(block_file(&fsdir, &format)).expect("the format block");
    assert_eq!(std::fs::read(&copy).expect("the copy"), stored);
    let mut bytes = stored.clone();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x10;
    std::fs::write(&copy, &bytes).expect("damage the copy");
    let r = ore.run(&["ls", "t"]).expect(0, "ls");
    assert!(!r.stderr.contains("format record"), "{r:?}");
    assert_eq!(
        std::fs::read(&copy).expect("the copy"),
        stored,
        "the copy was replaced by the archive's record"
    );
}

/// An archive whose format record's block file is gone (this machine keeps its copy): the
/// archive, where the block file was, and the bytes it held.
fn format_record_lost(d: &Path) -> (Ore, PathBuf, Vec<u8>) {
    let (ore, fsdir, _) = archive_with_two_snapshots(d);
    let format = tag(&fsdir, "ore:format");
    let file = block_file(&fsdir, &format);
    let stored = std::fs::read(&file).expect("the format block");
    std::fs::remove_file(&file).expect("lose the record");
    (ore, file, stored)
}

#[test]
fn a_format_record_missing_from_the_archive_is_stored_again_from_this_machines_copy() {
    let d = scratch();
    let (ore, file, stored) = format_record_lost(d.path());
    let r = ore.run(&["ls", "t"]).expect(0, "ls");
    assert!(
        r.stderr.contains("using this machine's copy")
            && r.stderr.contains("stored in the archive again"),
        "{r:?}"
    );
    assert_eq!(std::fs::read(&file).expect("stored again"), stored);
}

/// The presence of the format record is checked while the passphrase's key is derived; a
/// run that then stops at a wrong passphrase still stores a missing record again, as it did
/// when the check came first.
#[test]
fn a_format_record_missing_from_the_archive_is_stored_again_though_the_passphrase_is_wrong() {
    let d = scratch();
    let (ore, file, stored) = format_record_lost(d.path());
    let r = Run::of(
        (ore.cmd(&["tags"])
            .env("ORE_PASSPHRASE", "not the passphrase"))
        .output()
        .expect("ore runs"),
    );
    assert_ne!(r.code, 0, "a wrong passphrase opens nothing: {r:?}");
    assert!(r.stderr.contains("stored in the archive again"), "{r:?}");
    assert_eq!(std::fs::read(&file).expect("stored again"), stored);
}

#[test]
fn check_reads_the_archives_format_record_though_this_machine_has_a_good_copy() {
    let d = scratch();
    let (ore, fsdir, _) = archive_with_two_snapshots(d.path());
    let format = tag(&fsdir, "ore:format");
    let file = block_file(&fsdir, &format);
    let mut bytes = std::fs::read(&file).expect("the format block");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x10;
    std::fs::write(&file, &bytes).expect("damage the archive's record");
    // Commands go on from the copy; check names the damage in the archive.
    ore.run(&["ls", "t"]).expect(0, "ls");
    let r = ore.run(&["check"]).expect(1, "check");
    assert!(
        r.stdout.contains(&format) && r.stdout.contains("format record"),
        "{r:?}"
    );
}
