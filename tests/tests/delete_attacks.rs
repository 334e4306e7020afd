//! Attacks on `ore restore --delete` found by trying to make it remove what it must not
//! (issue 26, item 6). Each one removed the user's data before it was fixed:
//!
//! - a directory whose listing in the archive is damaged was emptied (its names looked like
//!   strays);
//! - the archive being read, behind a cache proxy's nested identifier, was removed mid-restore;
//! - another Ore archive, named in no identifier, was removed as a stray;
//! - a file system mounted inside the destination was emptied;
//! - a stray directory was removed whole with a name `--exclude` was given to keep;
//! - ore's own file cache inside the destination was removed.

use ore_tests::bin;
use ore_tests::ore::{block_file, scratch, Ore};
use ore_tests::trees::write_file as write;
use std::path::Path;
use std::process::Command;

/// A source tree: `precious/doc1..3` and `top.txt`.
fn source(d: &Path) -> std::path::PathBuf {
    let src = d.join("src");
    for i in 1..=3 {
        write(
            &src.join(format!("precious/doc{i}")),
            format!("doc {i}").as_bytes(),
        );
    }
    write(&src.join("top.txt"), b"t");
    src
}

/// A copy of `src` at `dest`, as a user's live directory.
fn copy(src: &Path, dest: &Path) {
    let st = Command::new("cp")
        .arg("-a")
        .arg(src)
        .arg(dest)
        .status()
        .expect("cp");
    assert!(st.success());
}

#[test]
fn a_directory_whose_listing_is_damaged_keeps_every_name_it_has() {
    let d = scratch();
    let fsdir = d.path().join("fs");
    let o = Ore::fs(&fsdir);
    let src = source(d.path());
    o.snapshot("t", &src);
    let tree = o.key_of("t", "precious", "tree");
    std::fs::remove_file(block_file(&fsdir, &tree)).expect("remove the block");
    let dest = d.path().join("dest");
    copy(&src, &dest);
    write(&dest.join("precious/newer"), b"n");
    let to = dest.to_str().expect("UTF-8");
    let r = o.run(&["restore", "t", to, "--delete"]).expect(1, "damage");
    assert!(
        r.stderr
            .contains("nothing removed in it: its listing in the archive is damaged"),
        "{}",
        r.stderr
    );
    for n in ["doc1", "doc2", "doc3", "newer"] {
        assert!(
            dest.join("precious").join(n).exists(),
            "{n} kept: {}",
            r.stderr
        );
    }
}

#[test]
fn the_archive_behind_a_cache_proxy_inside_the_destination_is_refused() {
    let d = scratch();
    let dest = d.path().join("dest");
    std::fs::create_dir(&dest).expect("mkdir");
    let id = format!(
        "{} {} '{} {}'",
        bin("backend-cache").display(),
        dest.join("c.db").display(),
        bin("backend-fs").display(),
        dest.join("arch").display()
    );
    let o = Ore::new(id);
    o.run(&["init"]).expect(0, "init");
    let src = source(d.path());
    o.snapshot("t", &src);
    let r = o
        .run(&["restore", "t", dest.to_str().expect("UTF-8"), "--delete"])
        .expect(1, "refused");
    assert!(r.stderr.contains("--delete: the archive"), "{}", r.stderr);
    o.run(&["check", "--read-data"])
        .expect(0, "the archive is whole");
}

#[test]
fn another_archive_and_ores_own_cache_inside_the_destination_are_kept() {
    let d = scratch();
    let o = Ore::new(d.path().join("arch").display().to_string());
    o.run(&["init"]).expect(0, "init");
    let src = source(d.path());
    o.snapshot("t", &src);
    let dest = d.path().join("dest");
    std::fs::create_dir(&dest).expect("mkdir");
    // An archive the identifier does not name (a replicated proxy's member, say).
    let other = Ore::new(dest.join("other-archive").display().to_string());
    other.run(&["init"]).expect(0, "init");
    other.snapshot("x", &src);
    let fs_member = Ore::fs(&dest.join("fs-member"));
    fs_member.snapshot("x", &src);
    let cache = dest.join("cache");
    let r = ore_tests::ore::Run::of(
        o.cmd(&["restore", "t", dest.to_str().expect("UTF-8"), "--delete"])
            .env("XDG_CACHE_HOME", &cache)
            .output()
            .expect("ore runs"),
    );
    assert_eq!(r.code, 3, "kept with warnings: {}", r.stderr);
    assert!(r.stderr.contains("holds an Ore archive"), "{}", r.stderr);
    other
        .run(&["check", "--read-data"])
        .expect(0, "the other archive is whole");
    fs_member
        .run(&["check", "--read-data"])
        .expect(0, "the fs archive is whole");
    assert!(dest.join("top.txt").exists());
    // Ore's own cache directory, there before the run.
    std::fs::create_dir_all(cache.join("ore")).expect("mkdir");
    std::fs::write(cache.join("ore/keep"), b"k").expect("write");
    let r = ore_tests::ore::Run::of(
        o.cmd(&["restore", "t", dest.to_str().expect("UTF-8"), "--delete"])
            .env("XDG_CACHE_HOME", &cache)
            .output()
            .expect("ore runs"),
    );
    assert!(r.stderr.contains("ore's own cache"), "{}", r.stderr);
    assert!(cache.join("ore/keep").exists());
}

/// A tmpfs mounted at `at` until dropped.
#[test]
fn a_file_system_mounted_inside_the_destination_is_never_entered() {
    let d = scratch();
    let o = Ore::new(d.path().join("arch").display().to_string());
    o.run(&["init"]).expect(0, "init");
    let src = source(d.path());
    o.snapshot("t", &src);
    let dest = d.path().join("dest");
    let usb = dest.join("media/usb");
    std::fs::create_dir_all(&usb).expect("mkdir");
    let _m = ore_tests::tmpfs::Tmpfs::mount_at(&usb, 4);
    std::fs::write(usb.join("photo"), b"p").expect("write");
    let r = o
        .run(&["restore", "t", dest.to_str().expect("UTF-8"), "--delete"])
        .expect(3, "kept with a warning");
    assert!(
        r.stderr.contains("is on another file system"),
        "{}",
        r.stderr
    );
    assert!(usb.join("photo").exists(), "{}", r.stderr);
}

#[test]
fn a_stray_directory_holding_a_name_exclude_keeps_is_kept_whole() {
    let d = scratch();
    let o = Ore::new(d.path().join("arch").display().to_string());
    o.run(&["init"]).expect(0, "init");
    let src = source(d.path());
    o.snapshot("t", &src);
    let dest = d.path().join("dest");
    write(&dest.join("olddir/sub/thesis.keep"), b"years of work");
    write(&dest.join("keepme/x"), b"x");
    write(&dest.join("gone/y"), b"y");
    let to = dest.to_str().expect("UTF-8");
    let r = o
        .run(&[
            "restore",
            "t",
            to,
            "--delete",
            "--exclude",
            "*.keep",
            "--exclude",
            "keepme/",
        ])
        .expect(3, "kept with a warning");
    assert!(r.stderr.contains("which --exclude keeps"), "{}", r.stderr);
    assert!(dest.join("olddir/sub/thesis.keep").exists());
    assert!(
        dest.join("keepme/x").exists(),
        "a trailing / names a directory"
    );
    assert!(!dest.join("gone").exists(), "{}", r.stderr);
}

/// `--delete` implies `--overwrite if-changed`: a file whose data block the archive lost must
/// not replace the good copy already in the destination (it was replaced by a file of zeros).
#[test]
fn a_damaged_copy_in_the_archive_never_replaces_the_file_already_there() {
    let d = scratch();
    let fsdir = d.path().join("fs");
    let o = Ore::fs(&fsdir);
    let src = d.path().join("src");
    write(&src.join("photo.raw"), b"the only good copy of the photo");
    o.snapshot("t", &src);
    let chunk = o.key_of("t", "photo.raw", "chunk");
    std::fs::remove_file(block_file(&fsdir, &chunk)).expect("remove the block");
    let dest = d.path().join("dest");
    write(&dest.join("photo.raw"), b"the only good copy of the photo");
    // Another mtime than the snapshot's: if-changed would replace it.
    let st = Command::new("touch")
        .args(["-d", "2001-01-01"])
        .arg(dest.join("photo.raw"))
        .status()
        .expect("touch");
    assert!(st.success());
    let r = o
        .run(&["restore", "t", dest.to_str().expect("UTF-8"), "--delete"])
        .expect(1, "damage");
    assert!(
        r.stderr.contains("the file already there was kept"),
        "{}",
        r.stderr
    );
    assert_eq!(
        std::fs::read(dest.join("photo.raw")).expect("read"),
        b"the only good copy of the photo"
    );
}
