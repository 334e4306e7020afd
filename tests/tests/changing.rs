//! Files that change or vanish while a snapshot runs become warnings stored in the snapshot,
//! never a failed run.
//!
//! The moments are made exact with inotify: the test watches the source directory, and the
//! instant ore opens the big file `a` to read it, the test appends to `a` and deletes `b`.
//! The walk has already stat'ed both, and reads them in name order in one task, so `a` is seen
//! to grow while it is read and `b` is gone when its turn comes.

use ore_tests::ore::Ore;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Blocks until the inotify descriptor `fd` (see [`watch`]) reports that a file named `name`
/// was opened, then runs `act`.
fn on_open(fd: i32, name: &str, act: impl FnOnce()) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        // SAFETY: `buf` is valid for writes of its length; `fd` is an inotify descriptor.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        assert!(n > 0, "reading inotify events failed");
        let mut at = 0usize;
        while at < n as usize {
            // struct inotify_event: wd i32, mask u32, cookie u32, len u32, then len name bytes.
            let field = |i: usize| u32::from_ne_bytes(buf[at + i..at + i + 4].try_into().unwrap());
            let len = field(12) as usize;
            let raw = &buf[at + 16..at + 16 + len];
            let got = &raw[..raw.iter().position(|&b| b == 0).unwrap_or(len)];
            if got == name.as_bytes() {
                act();
                return;
            }
            at += 16 + len;
        }
    }
}

/// An inotify descriptor reporting every open of a file in `dir`.
fn watch(dir: &Path) -> i32 {
    // SAFETY: plain system calls; the path is a valid C string.
    unsafe {
        let fd = libc::inotify_init1(libc::IN_CLOEXEC);
        assert!(fd >= 0, "inotify_init1 failed");
        let path = CString::new(dir.as_os_str().as_bytes()).unwrap();
        assert!(libc::inotify_add_watch(fd, path.as_ptr(), libc::IN_OPEN) >= 0);
        fd
    }
}

#[test]
fn a_file_that_grows_while_read_and_one_that_vanishes_are_warnings() {
    let (ore, d) = Ore::local();
    let src = d.path().join("src");
    std::fs::create_dir(&src).unwrap();
    // Data that does not compress, so that reading and storing `a` takes a while.
    let big = ore_tests::trees::bytes(7, 32 << 20);
    std::fs::write(src.join("a"), &big).unwrap();
    std::fs::write(src.join("b"), b"soon gone").unwrap();
    std::fs::write(src.join("c"), b"stays").unwrap();
    let fd = watch(&src);
    let meddler = {
        let src = src.clone();
        std::thread::spawn(move || {
            on_open(fd, "a", || {
                use std::io::Write;
                let mut f = std::fs::OpenOptions::new()
                    .append(true)
                    .open(src.join("a"))
                    .unwrap();
                f.write_all(b"appended while ore read the file").unwrap();
                std::fs::remove_file(src.join("b")).unwrap();
            });
            // SAFETY: the descriptor is ours and used no more.
            unsafe { libc::close(fd) };
        })
    };
    let r = ore.run(&["snapshot", "t", src.to_str().unwrap(), "--json"]);
    meddler.join().unwrap();
    let r = r.expect(3, "snapshot completed with warnings");
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["warnings_total"], 2, "{v}");
    let said = |path: &str| -> String {
        v["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|w| w["path"] == path)
            .map(|w| w["message"].as_str().unwrap_or_default().to_string())
            .unwrap_or_else(|| panic!("no warning for {path}: {v}"))
    };
    assert!(said("a").contains("changed while"), "{v}");
    assert!(said("b").contains("vanished"), "{v}");
    // The warnings are stored with the snapshot.
    let log = ore.run(&["log", "t"]).expect(0, "log");
    assert!(log.stdout.contains("2 warning(s)"), "{}", log.stdout);
    // What was read is what is restored: `a` as it was when the walk saw it, no `b`.
    let dest = d.path().join("dest");
    ore.restore("t", &dest).expect(0, "restore");
    assert!(
        std::fs::read(dest.join("a")).unwrap() == big,
        "a is not as read"
    );
    assert!(!dest.join("b").exists());
    assert_eq!(std::fs::read(dest.join("c")).unwrap(), b"stays");
    // The next snapshot reads `a` again (what was saved did not match its stamp) and is clean.
    let r = ore
        .run(&["snapshot", "t", src.to_str().unwrap(), "--json"])
        .expect(0, "the next snapshot");
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["warnings_total"], 0, "{v}");
    assert_eq!(v["stats"]["files_read"], 1, "{v}");
}
