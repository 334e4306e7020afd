//! A restore onto a disk that fills up, for real (a tmpfs of 2 MiB; needs root to mount, as
//! CI has). Regression: a file that could not be written was a warning (exit status 3, as if
//! the restore had completed) and what was written of it stayed, cut short and looking like a
//! restored file.

use ore_tests::ore::{scratch, Ore};
use ore_tests::tmpfs::Tmpfs;

#[test]
fn a_restore_that_fills_the_disk_fails_and_leaves_no_file_cut_short() {
    let (ore, d) = Ore::local();
    let src = d.path().join("src");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    std::fs::write(src.join("a-small"), b"fits").unwrap();
    // More than the disk holds, in data that does not compress.
    let big = ore_tests::trees::bytes(11, 3 << 20);
    std::fs::write(src.join("sub/big"), &big).unwrap();
    // A second name of the file that cannot be written is missing too.
    std::fs::hard_link(src.join("sub/big"), src.join("sub/big-link")).unwrap();
    ore.snapshot("t", &src);
    let disk = Tmpfs::mount(2);
    let dest = disk.at.join("dest");
    let r = ore
        .restore("t", &dest)
        .expect(1, "a restore that filled the disk");
    assert!(
        r.stderr.contains("sub/big") && r.stderr.contains("No space left on device"),
        "the file and the cause are named: {}",
        r.stderr
    );
    assert!(
        r.stderr.contains("2 entries could not be restored here"),
        "{}",
        r.stderr
    );
    assert!(!dest.join("sub/big").exists(), "a file cut short was left");
    assert!(r.stderr.contains("big-link: hard link"), "{}", r.stderr);
    assert_eq!(std::fs::read(dest.join("a-small")).unwrap(), b"fits");
    // The same in JSON: the count of files not restored.
    let other = disk.at.join("again");
    let out = ore
        .cmd(&["restore", "t", other.to_str().unwrap(), "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["restored"]["not_restored"], 2, "{v}");
    // With room, the same snapshot restores whole.
    let roomy = scratch();
    ore.restore("t", &roomy.path().join("dest"))
        .expect(0, "a restore with room");
    assert!(std::fs::read(roomy.path().join("dest/sub/big")).unwrap() == big);
}
