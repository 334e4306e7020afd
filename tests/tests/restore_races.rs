//! Races against a root restore by an unprivileged user who can write in its destination,
//! each on one step of the restore, run with the real binaries and a real attacker process
//! (`nobody`, through `setpriv`). Each test is named after its attack, and checks that nothing
//! outside the destination was changed.
//!
//! The attack on `restore_attacks.rs` swaps directories for symlinks; these swap what the
//! restore makes for things the attacker owns, in the moment between two system calls.

use ore_tests::users::{archive_for_an_attacked_restore, as_nobody, chown_tree, NOBODY};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A root-owned file that anyone may read and write (so `nobody` may hard-link it), in a
/// directory `nobody` may pass through but not list or change, with an old mtime.
fn linkable_victim(at: &Path) -> PathBuf {
    let out = at.join("outside");
    std::fs::create_dir(&out).unwrap();
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o711)).unwrap();
    let v = out.join("victim");
    std::fs::write(&v, b"secret").unwrap();
    std::fs::set_permissions(&v, std::fs::Permissions::from_mode(0o666)).unwrap();
    ore_tests::trees::set_mtime(&v, 1_000_000_000_000_000_000);
    v
}

/// What an attack that reaches `victim` would change: owner, group, mode, mtime, contents.
fn victim_state(victim: &Path) -> (u32, u32, u32, i64, Vec<u8>) {
    let md = std::fs::symlink_metadata(victim).unwrap();
    (
        md.uid(),
        md.gid(),
        md.mode(),
        md.mtime(),
        std::fs::read(victim).unwrap(),
    )
}

/// A destination `nobody` owns (so it may rename and make things in it), in `at`.
fn open_dest(at: &Path, name: &str) -> PathBuf {
    let dest = at.join(name);
    std::fs::create_dir(&dest).unwrap();
    std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::chown(&dest, Some(NOBODY), Some(NOBODY)).unwrap();
    dest
}

/// Runs the helper `bin ARGS` as `nobody`, its stdout (one line per success) to `log`.
fn attacker(bin: &str, args: &[&Path], log: &Path) -> std::process::Child {
    let mut c = Command::new(ore_tests::bin(bin));
    c.args(args);
    as_nobody(&c)
        .stdout(std::fs::File::create(log).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .expect("setpriv runs the attacker")
}

#[test]
fn a_directory_swapped_in_between_mkdir_and_open_is_not_taken_for_the_empty_one_made() {
    let (ore, d) =
        archive_for_an_attacked_restore("a root restore attacked by an unprivileged user");
    // Many directories, each with symlinks whose owner (nobody) the restore sets.
    let src = d.path().join("src");
    for i in 0..600 {
        let sub = src.join(format!("d{i:04}"));
        std::fs::create_dir_all(&sub).unwrap();
        std::os::unix::fs::symlink("/nowhere", sub.join("l1")).unwrap();
        std::os::unix::fs::symlink("/nowhere", sub.join("l2")).unwrap();
        std::fs::write(sub.join("f"), b"x").unwrap();
    }
    chown_tree(&src, NOBODY);
    ore.snapshot("t", &src);
    let victim = linkable_victim(d.path());
    let before = victim_state(&victim);
    let mut swapped = 0;
    for round in 0..3 {
        let dest = open_dest(d.path(), &format!("dest{round}"));
        let log = d.path().join(format!("attack{round}.log"));
        let mut a = attacker("swap-fresh", &[&dest, &victim], &log);
        // The attacker watches before the restore begins.
        std::thread::sleep(std::time::Duration::from_millis(300));
        let r = ore.restore("t", &dest);
        a.kill().unwrap();
        a.wait().unwrap();
        let said = std::fs::read_to_string(&log).unwrap();
        let won = said.lines().filter(|l| l.starts_with("swapped")).count();
        swapped += won;
        assert_eq!(
            victim_state(&victim),
            before,
            "round {round}: the restore changed a file outside its destination (the \
             attacker replaced {} symlinks with links to it)\n{}",
            said.lines().filter(|l| l.starts_with("replaced")).count(),
            r.stderr.lines().take(10).collect::<Vec<_>>().join("\n")
        );
        assert!(
            [0, 1, 3].contains(&r.code),
            "round {round}: exit {}\n{}",
            r.code,
            r.stderr
        );
        // The attacker's links to the victim go with the destination.
        std::fs::remove_dir_all(&dest).unwrap();
    }
    assert!(swapped > 0, "the attacker never swapped a directory");
    eprintln!("{swapped} directories swapped between mkdir and open in 3 rounds");
}

#[test]
fn a_file_swapped_by_the_owner_of_its_directory_does_not_become_a_hard_link_target() {
    let (ore, d) =
        archive_for_an_attacked_restore("a root restore attacked by an unprivileged user");
    // A home that the restore gives back to its owner (nobody), holding a root-owned file that
    // a root-only name elsewhere is a hard link to; many directories after it, so that the
    // home is done long before the links are made.
    let src = d.path().join("src");
    std::fs::create_dir_all(src.join("a-home")).unwrap();
    std::fs::write(src.join("a-home/shared"), b"trusted").unwrap();
    for i in 0..500 {
        let sub = src.join(format!("z-etc/p{i:03}"));
        std::fs::create_dir_all(&sub).unwrap();
        std::fs::write(sub.join("x"), b"x").unwrap();
    }
    std::fs::hard_link(src.join("a-home/shared"), src.join("z-etc/conf")).unwrap();
    std::os::unix::fs::chown(src.join("a-home"), Some(NOBODY), Some(NOBODY)).unwrap();
    ore.snapshot("t", &src);
    let mut swapped = 0;
    for round in 0..4 {
        let dest = d.path().join(format!("dest{round}"));
        std::fs::create_dir(&dest).unwrap();
        let log = d.path().join(format!("attack{round}.log"));
        let mut a = attacker("swap-in", &[&dest.join("a-home/shared")], &log);
        let r = ore.restore("t", &dest);
        a.kill().unwrap();
        a.wait().unwrap();
        let conf = dest.join("z-etc/conf");
        if let Ok(md) = std::fs::symlink_metadata(&conf) {
            assert_eq!(
                (md.uid(), std::fs::read(&conf).unwrap()),
                (0, b"trusted".to_vec()),
                "round {round}: a root-only name became a link to the attacker's file\n{}",
                r.stderr
            );
        }
        if !std::fs::read_to_string(&log).unwrap().is_empty() {
            swapped += 1;
            if !conf.exists() {
                assert_eq!(r.code, 1, "a link not made fails the restore\n{}", r.stderr);
                assert!(r.stderr.contains("was replaced after"), "{}", r.stderr);
            }
        }
    }
    assert!(swapped > 0, "the attacker never swapped the file");
}

#[test]
fn a_directory_renamed_into_place_before_the_hard_links_gets_neither_links_nor_metadata() {
    let (ore, d) =
        archive_for_an_attacked_restore("a root restore attacked by an unprivileged user");
    // A root-owned directory holding hard links (so its metadata waits for them) inside a
    // home the restore gives back to its owner (nobody) first; many directories after it.
    let src = d.path().join("src");
    std::fs::create_dir_all(src.join("a-home/hl")).unwrap();
    std::fs::write(src.join("a-home/hl/f"), b"f").unwrap();
    std::fs::hard_link(src.join("a-home/hl/f"), src.join("a-home/hl/g")).unwrap();
    for i in 0..500 {
        let sub = src.join(format!("z/p{i:03}"));
        std::fs::create_dir_all(&sub).unwrap();
        std::fs::write(sub.join("x"), b"x").unwrap();
    }
    std::os::unix::fs::chown(src.join("a-home"), Some(NOBODY), Some(NOBODY)).unwrap();
    ore.snapshot("t", &src);
    let mut swapped = 0;
    for round in 0..4 {
        let dest = d.path().join(format!("dest{round}"));
        std::fs::create_dir(&dest).unwrap();
        let log = d.path().join(format!("attack{round}.log"));
        let hl = dest.join("a-home/hl");
        let mut a = attacker("swap-in", &[Path::new("--dir"), &hl], &log);
        let r = ore.restore("t", &dest);
        a.kill().unwrap();
        a.wait().unwrap();
        if std::fs::read_to_string(&log).unwrap().is_empty() {
            continue;
        }
        swapped += 1;
        // The attacker's directory is still theirs, with nothing of the restore's in it.
        let md = std::fs::symlink_metadata(&hl).unwrap();
        assert_eq!(
            (md.uid(), md.mode() & 0o7777),
            (NOBODY, 0o755),
            "round {round}: the attacker's directory got the metadata of the one it \
             replaced\n{}",
            r.stderr
        );
        let names: Vec<_> = std::fs::read_dir(&hl)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["planted"], "round {round}: links made in it");
        assert_eq!(r.code, 1, "a link not made fails the restore\n{}", r.stderr);
        assert!(r.stderr.contains("put in its place"), "{}", r.stderr);
    }
    assert!(swapped > 0, "the attacker never swapped the directory");
}

#[test]
fn a_destination_swapped_for_a_symlink_as_the_restore_makes_it_is_not_followed() {
    let (ore, d) =
        archive_for_an_attacked_restore("a root restore into a directory others may write to");
    let src = d.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("f"), b"restored").unwrap();
    ore.snapshot("t", &src);
    // A root-only directory the attacker points the destination at, the moment it is made
    // in a directory anyone may write to.
    let out = d.path().join("outside");
    std::fs::create_dir(&out).unwrap();
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o700)).unwrap();
    let shared = d.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
    let log = d.path().join("attack.log");
    let mut a = attacker("swap-fresh", &[Path::new("--symlink"), &shared, &out], &log);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let mut caught = 0;
    for round in 0..60 {
        let r = ore.restore("t", &shared.join(format!("d{round}")));
        assert_eq!(
            std::fs::read_dir(&out).unwrap().count(),
            0,
            "round {round}: the restore wrote through the symlink\n{}",
            r.stderr
        );
        if r.code != 0 {
            assert!(r.stderr.contains("as the restore made it"), "{}", r.stderr);
            caught += 1;
        }
    }
    a.kill().unwrap();
    a.wait().unwrap();
    let linked = std::fs::read_to_string(&log).unwrap().lines().count();
    assert!(
        caught > 0,
        "the attacker never won the race ({linked} swaps)"
    );
}
