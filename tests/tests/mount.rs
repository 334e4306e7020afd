//! `ore mount` for real: a FUSE mount read with ordinary tools (`cmp`, `find`, `stat`,
//! `readlink`) and compared with the source tree, then left with `fusermount3 -u` and with
//! Ctrl-C. Needs fuse3 (`.ci/run` installs it); a missing `fusermount3` fails the test.

use ore_tests::fuse::{mount, mounted, tool, wait_exit, Unmount};
use ore_tests::ore::Ore;
use ore_tests::trees::{assert_same, bytes, every_kind};
use std::path::Path;
use std::time::Duration;

#[test]
fn a_mounted_archive_reads_like_the_tree_it_saved() {
    assert!(
        tool(&["fusermount3", "-V"]).code == 0,
        "fusermount3 is missing: install fuse3 (apt-get install fuse3)"
    );
    let (ore, d) = Ore::local();
    let src = d.path().join("src");
    std::fs::create_dir(&src).unwrap();
    every_kind(&src);
    std::fs::write(src.join("big"), bytes(9, 5_000_000)).unwrap();
    ore.snapshot("home", &src);
    std::thread::sleep(Duration::from_millis(1100));
    let before = std::fs::read(src.join("small.txt")).unwrap();
    std::fs::write(src.join("small.txt"), b"changed after the first snapshot\n").unwrap();
    ore.snapshot("home", &src);
    ore.snapshot("other", &src.join("dir"));

    let mnt = d.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let _guard = Unmount(&mnt);
    let child = mount(&ore, &mnt, &[]);
    let current = mnt.join("home/current");
    let listing = tool(&["ls", mnt.join("home").to_str().unwrap()]).stdout;
    let names: Vec<&str> = listing.lines().collect();
    assert_eq!(names.len(), 3, "{listing}");
    assert!(names.contains(&"current"));
    let newest = tool(&["readlink", current.to_str().unwrap()])
        .stdout
        .trim()
        .to_string();
    assert!(names.contains(&newest.as_str()), "current -> {newest}");
    let older = names
        .iter()
        .find(|n| **n != "current" && **n != newest)
        .unwrap();

    // Everything, metadata and hard links included, as the source.
    assert_same(&src, &current);
    assert_eq!(
        tool(&[
            "cmp",
            src.join("big").to_str().unwrap(),
            current.join("big").to_str().unwrap()
        ])
        .code,
        0
    );
    assert_eq!(
        std::fs::read(mnt.join("home").join(older).join("small.txt")).unwrap(),
        before
    );
    // (-H: `current` itself is a symlink.)
    let count = |p: &Path| {
        tool(&["find", "-H", p.to_str().unwrap()])
            .stdout
            .lines()
            .count()
    };
    assert_eq!(count(&src), count(&current));
    let st = |p: &Path| tool(&["stat", "-c", "%s %Y %a %u %g %F", p.to_str().unwrap()]).stdout;
    assert_eq!(
        st(&src.join("dir/random-3M")),
        st(&current.join("dir/random-3M"))
    );
    // Random reads in the middle of a many-chunk file.
    let f = std::fs::File::open(current.join("big")).unwrap();
    let mut buf = vec![0u8; 10_000];
    std::os::unix::fs::FileExt::read_exact_at(&f, &mut buf, 3_333_333).unwrap();
    assert_eq!(buf, bytes(9, 5_000_000)[3_333_333..3_343_333]);
    drop(f);
    // Read-only.
    assert!(std::fs::write(current.join("new"), b"x").is_err());
    assert!(std::fs::remove_file(current.join("big")).is_err());
    assert!(std::fs::metadata(mnt.join("other/current/text")).is_ok());

    let r = tool(&["fusermount3", "-u", mnt.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    wait_exit(child, "after fusermount3 -u");

    // One tag, then Ctrl-C.
    let child = mount(&ore, &mnt, &["--tag", "other"]);
    assert_eq!(tool(&["ls", mnt.to_str().unwrap()]).stdout, "other\n");
    // SAFETY: sending a signal to our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    wait_exit(child, "after Ctrl-C");
    assert!(!mounted(&mnt), "Ctrl-C left the mount behind");
}
