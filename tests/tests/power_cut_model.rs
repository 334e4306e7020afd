//! The power-cut file system itself (`ore_tests::powercut`): what it keeps at a cut and what it
//! loses, operation by operation, so the archive tests in `power_cut.rs` rest on a model that
//! is known to lose what a crash may lose — and to keep what was synced.

use ore_tests::powercut::{syncfs_shim, Disk};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;

fn sync(p: &Path) {
    File::open(p).unwrap().sync_all().unwrap();
}

fn write_synced(p: &Path, data: &[u8]) {
    let mut f = File::create(p).unwrap();
    f.write_all(data).unwrap();
    f.sync_all().unwrap();
}

fn read(p: &Path) -> Option<Vec<u8>> {
    std::fs::read(p).ok()
}

#[test]
fn a_power_cut_loses_unsynced_data_and_names_and_keeps_synced_ones() {
    let mut disk = Disk::new();
    let m = disk.mnt.clone();
    // Durable: a file synced, named in a synced directory, in a synced subdirectory.
    std::fs::create_dir(m.join("d")).unwrap();
    write_synced(&m.join("d/kept"), b"0123456789");
    write_synced(&m.join("d/moved"), b"moved");
    write_synced(&m.join("d/unlinked"), b"unlinked");
    write_synced(&m.join("d/grown"), b"grown");
    sync(&m.join("d"));
    sync(&m);
    // Unsynced: an overwrite and a truncation of durable bytes, an append, a new file, a
    // rename, an unlink, a new directory.
    let f = OpenOptions::new()
        .write(true)
        .open(m.join("d/kept"))
        .unwrap();
    f.write_all_at(b"XY", 3).unwrap();
    f.set_len(6).unwrap();
    drop(f);
    OpenOptions::new()
        .append(true)
        .open(m.join("d/grown"))
        .unwrap()
        .write_all(b" and more")
        .unwrap();
    // Synced data whose name is not: lost with its name.
    write_synced(&m.join("d/new"), b"new");
    std::fs::rename(m.join("d/moved"), m.join("moved-out")).unwrap();
    std::fs::remove_file(m.join("d/unlinked")).unwrap();
    std::fs::create_dir(m.join("e")).unwrap();
    assert_eq!(read(&m.join("d/kept")).unwrap(), b"012XY5");
    disk.cut();
    disk.mount();
    assert_eq!(read(&m.join("d/kept")).unwrap(), b"0123456789");
    assert_eq!(read(&m.join("d/grown")).unwrap(), b"grown");
    assert_eq!(read(&m.join("d/new")), None);
    assert_eq!(read(&m.join("d/moved")).unwrap(), b"moved");
    assert_eq!(read(&m.join("moved-out")), None);
    assert_eq!(read(&m.join("d/unlinked")).unwrap(), b"unlinked");
    assert!(!m.join("e").exists());
}

#[test]
fn a_file_named_in_a_synced_directory_comes_back_with_only_its_synced_data() {
    let mut disk = Disk::new();
    let m = disk.mnt.clone();
    let mut f = File::create(m.join("a")).unwrap();
    f.write_all(b"synced").unwrap();
    f.sync_data().unwrap();
    f.write_all(b" not synced").unwrap();
    drop(f);
    File::create(m.join("empty"))
        .unwrap()
        .write_all(b"never synced")
        .unwrap();
    sync(&m);
    disk.cut();
    disk.mount();
    assert_eq!(read(&m.join("a")).unwrap(), b"synced");
    assert_eq!(read(&m.join("empty")).unwrap(), b"");
}

#[test]
fn syncfs_through_the_shim_and_a_clean_unmount_keep_everything() {
    let mut disk = Disk::new();
    let m = disk.mnt.clone();
    std::fs::create_dir(m.join("d")).unwrap();
    std::fs::write(m.join("d/a"), b"a").unwrap();
    // `syncfs` from a program run with the shim, as the archive's programs are.
    let status = std::process::Command::new("sync")
        .arg("-f")
        .arg(m.join("d"))
        .env("LD_PRELOAD", syncfs_shim())
        .status()
        .expect("sync(1) runs");
    assert!(status.success());
    std::fs::write(m.join("d/b"), b"b").unwrap();
    disk.cut();
    disk.mount();
    assert_eq!(read(&m.join("d/a")).unwrap(), b"a");
    assert_eq!(read(&m.join("d/b")), None);
    std::fs::write(m.join("c"), b"c").unwrap();
    disk.unmount();
    disk.mount();
    assert_eq!(read(&m.join("c")).unwrap(), b"c");
}
