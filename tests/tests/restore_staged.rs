//! A directory a restore makes is made under a temporary name (`.ore-partial-` and 16 hex
//! digits of its name's hash), filled in place and renamed when done. What someone else puts
//! at either name meanwhile, or before, is never taken for the restore's own, and never
//! replaced.

use ore_tests::ore::{Ore, Run};
use ore_tests::trees::{assert_same, bytes, is_root, partial_name};
use ore_tests::users::NOBODY;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

/// An archive holding snapshot `t` of `src`: `sub/a` and `sub/deeper/b`, and `top`.
fn snapshot_with_a_subdirectory(d: &Path) -> (Ore, std::path::PathBuf) {
    let src = d.join("src");
    std::fs::create_dir_all(src.join("sub/deeper")).unwrap();
    std::fs::write(src.join("sub/a"), b"a").unwrap();
    std::fs::write(src.join("sub/deeper/b"), b"b").unwrap();
    std::fs::write(src.join("top"), b"top").unwrap();
    let ore = Ore::fs(&d.join("store"));
    ore.snapshot("t", &src);
    (ore, src)
}

#[test]
fn a_directory_at_the_temporary_name_that_no_stopped_restore_left_is_left_alone() {
    let d = ore_tests::ore::scratch();
    let (ore, src) = snapshot_with_a_subdirectory(d.path());
    // Planted at the temporary name: a finished directory of our own, and (where the suite
    // can make one) a directory of another user's, marked as a stopped restore marks its own.
    let mut planted = vec![(0o755, None)];
    if is_root() {
        planted.push((0o1700, Some(NOBODY)));
    }
    for (round, (mode, owner)) in planted.into_iter().enumerate() {
        let dest = d.path().join(format!("dest{round}"));
        let temp = dest.join(partial_name("sub"));
        std::fs::create_dir_all(&temp).unwrap();
        std::fs::write(temp.join("a"), b"planted").unwrap();
        std::fs::set_permissions(&temp, std::fs::Permissions::from_mode(mode)).unwrap();
        if let Some(uid) = owner {
            std::os::unix::fs::chown(&temp, Some(uid), Some(uid)).unwrap();
        }
        let r = ore.restore("t", &dest);
        assert_eq!(r.code, 0, "round {round}: {}", r.stderr);
        assert_eq!(
            std::fs::read(temp.join("a")).unwrap(),
            b"planted",
            "round {round}: what was planted was restored into"
        );
        assert_eq!(
            std::fs::read_dir(&temp).unwrap().count(),
            1,
            "round {round}"
        );
        std::fs::remove_dir_all(&temp).unwrap();
        assert_same(&src, &dest);
    }
}

/// What a stopped run leaves in `dest`: its directory for `sub` under the temporary name,
/// unfinished (ours, sticky, owner only), with `a` cut short, `deeper` unfinished holding `b`
/// cut short, and what the snapshot does not hold there (`old`, cut short, and `gone/x`).
fn stopped_run_left(dest: &Path) -> std::path::PathBuf {
    let temp = dest.join(partial_name("sub"));
    std::fs::create_dir_all(temp.join("deeper")).unwrap();
    std::fs::create_dir_all(temp.join("gone")).unwrap();
    for f in ["a", "deeper/b", "old", "gone/x"] {
        std::fs::write(temp.join(f), b"").unwrap();
    }
    for dir in ["deeper", "gone", ""] {
        std::fs::set_permissions(temp.join(dir), std::fs::Permissions::from_mode(0o1700)).unwrap();
    }
    temp
}

#[test]
fn a_stopped_restores_directory_is_taken_up_and_a_file_cut_short_in_it_is_rewritten() {
    let d = ore_tests::ore::scratch();
    let (ore, src) = snapshot_with_a_subdirectory(d.path());
    let dest = d.path().join("dest");
    let temp = stopped_run_left(&dest);
    // The default `--overwrite never`: files a stopped restore left are its own to finish,
    // and what the snapshot does not hold there goes with them.
    let r = ore.restore("t", &dest);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        !temp.exists(),
        "the stopped run's directory was not put in place"
    );
    assert_same(&src, &dest);
}

#[test]
fn a_file_cut_short_by_a_stopped_restore_is_not_put_in_place_when_the_rerun_skips_its_name() {
    // The re-run does not write `sub/a` again (excluded): the copy the stopped run cut short
    // must not be renamed into place with the directory.
    let d = ore_tests::ore::scratch();
    let (ore, _) = snapshot_with_a_subdirectory(d.path());
    let dest = d.path().join("dest");
    stopped_run_left(&dest);
    let to = dest.to_str().unwrap();
    let r = ore.run(&["restore", "t", to, "--exclude", "sub/a"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        !dest.join("sub/a").exists(),
        "a file cut short was put in place"
    );
    assert!(!dest.join("sub/old").exists() && !dest.join("sub/gone").exists());
    assert_eq!(std::fs::read(dest.join("sub/deeper/b")).unwrap(), b"b");
}

#[test]
fn a_file_system_mounted_in_a_stopped_restores_directory_is_not_emptied() {
    // Mounted (by root) inside what a stopped run left, at a name the snapshot does not hold:
    // clearing the directory for the re-run must not reach into it.
    let d = ore_tests::ore::scratch();
    let (ore, _) = snapshot_with_a_subdirectory(d.path());
    let dest = d.path().join("dest");
    let temp = stopped_run_left(&dest);
    std::fs::create_dir(temp.join("usb")).unwrap();
    let mut usb = ore_tests::tmpfs::Tmpfs::mount_at(&temp.join("usb"), 4);
    std::fs::write(usb.at.join("photo"), b"p").unwrap();
    let r = ore.restore("t", &dest);
    // The mount went with the directory, renamed into place.
    usb.at = dest.join("sub/usb");
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("another file system is mounted there; not removed"),
        "{}",
        r.stderr
    );
    assert_eq!(std::fs::read(usb.at.join("photo")).unwrap(), b"p");
    // Cut short beside it, and not held by the snapshot: gone all the same.
    assert_eq!(std::fs::read(dest.join("sub/a")).unwrap(), b"a");
    assert!(!dest.join("sub/old").exists());
}

#[test]
fn a_directory_put_at_its_name_while_it_was_restored_is_not_replaced() {
    let d = ore_tests::ore::scratch();
    let store = d.path().join("store");
    let ore = Ore::fs(&store);
    let src = d.path().join("src");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    let big = bytes(3, 48 << 20);
    std::fs::write(src.join("sub/big"), &big).unwrap();
    ore.snapshot("t", &src);
    // The same archive through a backend slow enough to act while `sub` is restored.
    let slow = ore.fs_serially_slowed(&store, 15);
    let dest = d.path().join("dest");
    let mut cmd = slow.cmd(&["restore", "t", dest.to_str().unwrap()]);
    cmd.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = cmd.spawn().unwrap();
    let temp = dest.join(partial_name("sub"));
    let started = Instant::now();
    while !temp.exists() {
        assert!(started.elapsed() < Duration::from_secs(60), "never made");
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(!dest.join("sub").exists(), "shown before it is done");
    // An empty directory: the one thing a plain rename would replace.
    std::fs::create_dir(dest.join("sub")).unwrap();
    let r = Run::of(child.wait_with_output().unwrap());
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(
        r.stderr.contains("restored, but not put in place")
            && r.stderr.contains("something was put at its name")
            && r.stderr.contains(&partial_name("sub")),
        "{}",
        r.stderr
    );
    assert_eq!(
        std::fs::read_dir(dest.join("sub")).unwrap().count(),
        0,
        "what was put there was replaced"
    );
    assert_eq!(std::fs::read(temp.join("big")).unwrap(), big);
}
