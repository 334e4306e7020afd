//! Attacks on a restore's destination, each reproduced against the real binaries: a user who
//! swaps directories for symlinks while a root restore runs, and crafted snapshots whose hard
//! links or names point outside the destination. Each test is named after its attack, and
//! checks that nothing outside the destination was written, linked, chmodded or chowned.
//!
//! The race needs root (a restore that can write where its attacker cannot) and the `nobody`
//! user (uid 65534) for the attacker, run with `setpriv`.

use ore::commands::dump::{DumpEntry, DumpKind};
use ore::core::entry::EntryKind;
use ore_tests::crafted;
use ore_tests::ore::{Ore, Run};
use ore_tests::trees::{grid, is_root};
use ore_tests::users::{archive_for_an_attacked_restore, as_nobody, chown_tree, NOBODY};
use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Every entry under `root` (and `root` itself): mode, owner, size, links — what an attack
/// that escapes into `root` would change.
fn state(root: &Path) -> BTreeMap<PathBuf, (u32, u32, u32, u64, u64)> {
    let mut out = BTreeMap::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(p) = todo.pop() {
        let md = std::fs::symlink_metadata(&p).unwrap();
        out.insert(
            p.clone(),
            (md.mode(), md.uid(), md.gid(), md.size(), md.nlink()),
        );
        if md.is_dir() {
            for e in std::fs::read_dir(&p).unwrap() {
                todo.push(e.unwrap().path());
            }
        }
    }
    out
}

/// A root-only directory with one secret file in it: where the attacks aim.
fn outside(at: &Path) -> PathBuf {
    let out = at.join("outside");
    std::fs::create_dir(&out).unwrap();
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::write(out.join("victim"), b"secret").unwrap();
    std::fs::set_permissions(out.join("victim"), std::fs::Permissions::from_mode(0o600)).unwrap();
    out
}

#[test]
fn a_directory_swapped_for_a_symlink_during_restore_cannot_redirect_writes() {
    let (ore, d) =
        archive_for_an_attacked_restore("a root restore attacked by an unprivileged user");
    let src = d.path().join("src");
    grid(&src.join("a"), 20, 100, 64);
    grid(&src.join("b"), 20, 100, 64);
    // Hard links, so that the links and the directory metadata that waits for them are made
    // under attack too.
    std::fs::hard_link(src.join("a/d01/f0"), src.join("a/d00/link")).unwrap();
    std::fs::hard_link(src.join("a/d02/f1"), src.join("b/link")).unwrap();
    // Owned by the attacker, as in the report: the restore chowns to them.
    chown_tree(&src, NOBODY);
    ore.snapshot("t", &src);
    let out = outside(d.path());
    let before = state(&out);
    let mut swapped = 0;
    // 24 rounds in the suite (about 15 s); ORE_RACE_ROUNDS asks for a longer siege.
    let rounds: usize = std::env::var("ORE_RACE_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(24);
    for round in 0..rounds {
        let dest = d.path().join(format!("dest{round}"));
        std::fs::create_dir(&dest).unwrap();
        std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::chown(&dest, Some(NOBODY), Some(NOBODY)).unwrap();
        let mut swap = Command::new(ore_tests::bin("swap-dirs"));
        swap.arg(&dest).arg(&out);
        let mut attacker = as_nobody(&swap)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("setpriv runs the attacker");
        let r = ore.restore("t", &dest);
        attacker.kill().unwrap();
        attacker.wait().unwrap();
        assert!(
            [0, 1, 3].contains(&r.code),
            "round {round}: exit {}\n{}",
            r.code,
            r.stderr
        );
        assert_eq!(
            state(&out),
            before,
            "round {round}: the restore wrote, chmodded or chowned outside its destination\n{}",
            r.stderr.lines().take(20).collect::<Vec<_>>().join("\n")
        );
        swapped += std::fs::read_dir(&dest)
            .unwrap()
            .filter(|e| {
                let e = e.as_ref().unwrap();
                e.file_name().to_string_lossy().starts_with(".aside-")
            })
            .count();
    }
    // Otherwise the test proved nothing.
    assert!(swapped > 0, "the attacker never swapped a directory");
    eprintln!("{swapped} directories swapped for symlinks in {rounds} rounds");
}

/// `stream` (an `ore dump`) with each entry passed through `f`, lengths and trailer made good.
fn rewrite_dump(stream: &[u8], mut f: impl FnMut(&mut DumpEntry)) -> Vec<u8> {
    let mut out = stream[..9].to_vec();
    let mut at = 9;
    loop {
        let kind = stream[at];
        let len = u32::from_le_bytes(stream[at + 1..at + 5].try_into().unwrap()) as usize;
        let payload = &stream[at + 5..at + 5 + len];
        at += 5 + len;
        if kind == 7 {
            let sum = blake3::hash(&out);
            out.push(7);
            out.extend_from_slice(&32u32.to_le_bytes());
            out.extend_from_slice(sum.as_bytes());
            return out;
        }
        let payload = if kind == 2 {
            let mut e: DumpEntry = ore::core::entry::decode(
                payload,
                &protocol::Key([0; protocol::KEY_LEN]),
                ore::core::block::Kind::Snapshot,
            )
            .unwrap();
            f(&mut e);
            ore::core::entry::encode(&e)
        } else {
            payload.to_vec()
        };
        out.push(kind);
        out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        out.extend_from_slice(&payload);
    }
}

/// Snapshots `src`, rewrites its dump with `f` and loads it as tag `crafted`: the run of
/// `ore load` (which may refuse the crafted entries).
fn crafted(ore: &Ore, src: &Path, f: impl FnMut(&mut DumpEntry)) -> Run {
    ore.snapshot("real", src);
    let dump = ore.cmd(&["dump", "real"]).output().unwrap();
    assert!(dump.status.success(), "dump");
    let stream = rewrite_dump(&dump.stdout, f);
    let mut c = ore
        .cmd(&["load", "crafted"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(&stream).unwrap();
    Run::of(c.wait_with_output().unwrap())
}

/// Retargets the hard link named `name` at `target`.
fn retarget(name: &'static [u8], target: &'static [u8]) -> impl FnMut(&mut DumpEntry) {
    move |e| {
        if e.name == name {
            assert!(matches!(e.kind, DumpKind::Hardlink(_)), "a hard link");
            e.kind = DumpKind::Hardlink(target.to_vec());
        }
    }
}

/// Loads the crafted snapshot and restores it to `dest`; checks that neither made a link to
/// the victim, and that whichever refused named the link's target.
fn refused(ore: &Ore, load: Run, dest: &Path, victim: &Path, target: &str) {
    let said = if load.code == 0 {
        let r = ore.restore("crafted", dest);
        assert_eq!(r.code, 1, "a link not made fails the restore\n{}", r.stderr);
        r.stderr
    } else {
        load.stderr
    };
    assert!(said.contains(target), "the error names {target}: {said}");
    assert_eq!(
        std::fs::metadata(victim).unwrap().nlink(),
        1,
        "no hard link to a file outside the destination"
    );
    assert_eq!(std::fs::read(victim).unwrap(), b"secret");
}

#[test]
fn a_hard_link_target_climbing_out_with_dot_dot_is_refused() {
    let (ore, d) = Ore::local();
    let src = d.path().join("src");
    std::fs::create_dir_all(src.join("in")).unwrap();
    std::fs::write(src.join("in/file"), b"mine").unwrap();
    std::fs::hard_link(src.join("in/file"), src.join("in/link")).unwrap();
    let out = outside(d.path());
    let load = crafted(&ore, &src, retarget(b"link", b"../../outside/victim"));
    let dest = d.path().join("a/b");
    refused(
        &ore,
        load,
        &dest,
        &out.join("victim"),
        "../../outside/victim",
    );
    assert!(!dest.join("in/link").exists());
}

#[test]
fn a_hard_link_target_through_a_restored_symlink_is_refused() {
    let (ore, d) = Ore::local();
    let src = d.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    let out = outside(d.path());
    std::os::unix::fs::symlink(&out, src.join("a")).unwrap();
    std::fs::write(src.join("f"), b"mine").unwrap();
    std::fs::hard_link(src.join("f"), src.join("g")).unwrap();
    let load = crafted(&ore, &src, retarget(b"g", b"a/victim"));
    let dest = d.path().join("dest");
    refused(&ore, load, &dest, &out.join("victim"), "a/victim");
    assert!(!dest.join("g").exists());
    // The rest is restored: the symlink as a symlink, the file.
    assert_eq!(std::fs::read(dest.join("f")).unwrap(), b"mine");
    assert!(std::fs::symlink_metadata(dest.join("a"))
        .unwrap()
        .file_type()
        .is_symlink());
}

#[test]
fn a_hard_link_to_a_file_this_restore_made_is_still_a_hard_link() {
    let (ore, d) = Ore::local();
    let src = d.path().join("src");
    std::fs::create_dir_all(src.join("x/y")).unwrap();
    std::fs::write(src.join("x/y/file"), b"one inode").unwrap();
    std::fs::hard_link(src.join("x/y/file"), src.join("link")).unwrap();
    std::fs::hard_link(src.join("x/y/file"), src.join("x/link2")).unwrap();
    ore.snapshot("t", &src);
    let dest = d.path().join("dest");
    ore.restore("t", &dest).expect(0, "restore");
    ore_tests::trees::assert_same(&src, &dest);
    assert_eq!(std::fs::metadata(dest.join("link")).unwrap().nlink(), 3);
    // And a subtree whose link target lies outside it gets a stand-in.
    let part = d.path().join("part");
    ore.restore("t:x", &part).expect(0, "restore a subtree");
    assert_eq!(std::fs::read(part.join("link2")).unwrap(), b"one inode");
}

#[test]
fn explore_get_refuses_a_crafted_root_name_that_is_a_path_outside() {
    let (ore, d) = Ore::local();
    let src = d.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("f"), b"payload").unwrap();
    let pwned = d.path().join("pwned");
    let name = pwned.to_str().unwrap().as_bytes().to_vec();
    let mut first = true;
    let load = crafted(&ore, &src, |e| {
        if std::mem::take(&mut first) {
            e.name = name.clone();
        }
    });
    let cwd = d.path().join("cwd");
    std::fs::create_dir(&cwd).unwrap();
    if load.code == 0 {
        let r = ore.explore("get /crafted/current\n", Some(&cwd));
        assert!(
            r.stderr.contains("not a plain file name"),
            "get says why: {}",
            r.stderr
        );
    }
    assert!(!pwned.exists(), "get wrote to the path the snapshot named");
    assert_eq!(std::fs::read_dir(&cwd).unwrap().count(), 0);
}

/// The same hard link, written straight into the archive with the library as a compromised
/// writer could, so that no `ore load` stands in the way: restore itself refuses it.
#[test]
fn a_hard_link_climbing_out_with_dot_dot_written_past_load_is_refused_by_restore() {
    let (ore, d) = Ore::local();
    let out = outside(d.path());
    let repo = crafted::open(&ore);
    let inner = crafted::dir(
        &repo,
        b"in",
        vec![
            crafted::file(&repo, b"file", b"mine"),
            crafted::entry(
                b"link",
                EntryKind::Hardlink {
                    target: b"../../outside/victim".to_vec(),
                },
            ),
        ],
    );
    let root = crafted::dir(&repo, b"", vec![inner]);
    crafted::snapshot(&repo, "crafted", root);
    drop(repo);
    let dest = d.path().join("a/b");
    let r = ore.restore("crafted", &dest);
    assert_eq!(r.code, 1, "the restore fails\n{}", r.stderr);
    assert!(
        r.stderr.contains("../../outside/victim"),
        "names the target: {}",
        r.stderr
    );
    assert_eq!(std::fs::metadata(out.join("victim")).unwrap().nlink(), 1);
    assert_eq!(std::fs::read(out.join("victim")).unwrap(), b"secret");
    assert!(!d.path().join("a/outside").exists() && !dest.join("in/link").exists());
}

/// A root named like a path, written straight into the archive (no `ore load` to refuse it):
/// `explore get` of the whole snapshot writes nothing, there or in its working directory.
#[test]
fn explore_get_of_a_root_named_like_a_path_written_past_load_writes_nothing() {
    let (ore, d) = Ore::local();
    let pwned = d.path().join("pwned");
    let repo = crafted::open(&ore);
    let name = pwned.to_str().unwrap().as_bytes().to_vec();
    let root = crafted::dir(&repo, &name, vec![crafted::file(&repo, b"f", b"payload")]);
    crafted::snapshot(&repo, "crafted", root);
    drop(repo);
    let cwd = d.path().join("cwd");
    std::fs::create_dir(&cwd).unwrap();
    let r = ore.explore("get /crafted/current\n", Some(&cwd));
    assert!(
        r.stderr.contains(pwned.to_str().unwrap()),
        "get names the root's name: {}",
        r.stderr
    );
    assert!(!pwned.exists(), "get wrote to the path the snapshot named");
    assert_eq!(std::fs::read_dir(&cwd).unwrap().count(), 0);
}

/// Device nodes in a snapshot are what a system restore needs, and what a hostile snapshot
/// would plant: root's restore makes them as recorded (README, "As root"); the same snapshot
/// restored by an ordinary user makes none, says so, and restores the rest.
#[test]
fn device_nodes_in_a_snapshot_are_made_by_a_root_restore_and_never_by_an_ordinary_user() {
    let (ore, d) = archive_for_an_attacked_restore("a root restore makes device nodes");
    let null = libc::makedev(1, 3);
    let repo = crafted::open(&ore);
    let root = crafted::dir(
        &repo,
        b"",
        vec![
            crafted::entry(
                b"loop",
                EntryKind::BlockDevice {
                    rdev: libc::makedev(7, 0),
                },
            ),
            crafted::entry(b"null", EntryKind::CharDevice { rdev: null }),
            crafted::file(&repo, b"plain", b"kept"),
        ],
    );
    crafted::snapshot(&repo, "devices", root);
    drop(repo);

    let as_root = d.path().join("as-root");
    ore.restore("devices", &as_root).expect(0, "a root restore");
    let md = std::fs::symlink_metadata(as_root.join("null")).unwrap();
    assert!(md.file_type().is_char_device(), "{md:?}");
    assert_eq!(md.rdev(), null);
    assert!(std::fs::symlink_metadata(as_root.join("loop"))
        .unwrap()
        .file_type()
        .is_block_device());

    // The same archive and snapshot, restored by nobody.
    chown_tree(Path::new(&ore.archive), NOBODY);
    let home = d.path().join("nobody");
    let cache = home.join("cache");
    let as_user = home.join("as-user");
    std::fs::create_dir_all(&cache).unwrap();
    std::fs::create_dir(&as_user).unwrap();
    chown_tree(&home, NOBODY);
    let mut restore = ore.cmd(&["restore", "devices", as_user.to_str().unwrap()]);
    restore
        .env("XDG_CACHE_HOME", &cache)
        .env("XDG_CONFIG_HOME", &cache);
    let r = Run::of(as_nobody(&restore).output().unwrap());
    assert_eq!(
        r.code, 3,
        "completed with a warning for each device: {}",
        r.stderr
    );
    assert!(
        r.stderr.contains("as-user/null: not created")
            && r.stderr.contains("as-user/loop: not created"),
        "{}",
        r.stderr
    );
    assert!(!as_user.join("null").exists() && !as_user.join("loop").exists());
    assert_eq!(std::fs::read(as_user.join("plain")).unwrap(), b"kept");
}

#[test]
fn a_symlink_planted_as_the_destination_by_another_user_is_not_followed() {
    assert!(
        is_root(),
        "this test needs root: a root restore into a directory others may write to"
    );
    let (ore, d) = Ore::local();
    let src = d.path().join("src");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    std::fs::write(src.join("sub/f"), b"restored").unwrap();
    ore.snapshot("t", &src);
    let out = outside(d.path());
    let before = state(&out);
    // A directory anyone may write to, where the restore's destination is to be made; the
    // attacker was there first.
    let shared = d.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
    let dest = shared.join("restore");
    let mut ln = Command::new("ln");
    ln.arg("-s").arg(&out).arg(&dest);
    assert!(as_nobody(&ln).status().unwrap().success());
    for what in ["t", "t:sub", "t:sub/f"] {
        let r = ore.restore(what, &dest);
        assert_eq!(r.code, 1, "{what}: refused\n{}", r.stderr);
        assert!(
            r.stderr.contains("symlink that belongs to user 65534"),
            "{what}: says why: {}",
            r.stderr
        );
        assert_eq!(state(&out), before, "{what}: written through the symlink");
    }
    // One of the user's own is followed, as before.
    let mine = d.path().join("mine");
    std::fs::create_dir(&mine).unwrap();
    std::os::unix::fs::symlink(&mine, d.path().join("link")).unwrap();
    ore.restore("t", &d.path().join("link"))
        .expect(0, "restore through one's own symlink");
    assert_eq!(std::fs::read(mine.join("sub/f")).unwrap(), b"restored");
}

#[test]
fn a_file_planted_where_the_restore_keeps_it_does_not_become_a_hard_link_target() {
    assert!(is_root(), "this test needs root: a root restore of owners");
    let (ore, d) = Ore::local();
    let src = d.path().join("src");
    std::fs::create_dir_all(src.join("a-home")).unwrap();
    std::fs::create_dir_all(src.join("z-etc")).unwrap();
    std::fs::write(src.join("a-home/shared"), b"trusted").unwrap();
    std::fs::hard_link(src.join("a-home/shared"), src.join("z-etc/conf")).unwrap();
    std::os::unix::fs::chown(src.join("a-home"), Some(NOBODY), Some(NOBODY)).unwrap();
    ore.snapshot("t", &src);
    // The destination already holds the user's home, and in it a file of theirs where the
    // snapshot has a root-owned one: kept (the restore does not overwrite), never linked to.
    let dest = d.path().join("dest");
    std::fs::create_dir_all(dest.join("a-home")).unwrap();
    std::fs::write(dest.join("a-home/shared"), b"attacker").unwrap();
    chown_tree(&dest.join("a-home"), NOBODY);
    let r = ore.restore("t", &dest);
    assert_eq!(r.code, 1, "a link not made fails the restore\n{}", r.stderr);
    assert!(r.stderr.contains("z-etc/conf"), "{}", r.stderr);
    assert!(
        !dest.join("z-etc/conf").exists(),
        "a root-only name became a link to the planted file"
    );
    assert_eq!(
        std::fs::read(dest.join("a-home/shared")).unwrap(),
        b"attacker"
    );
    // What the restore itself kept on a re-run is still linked to.
    let clean = d.path().join("clean");
    ore.restore("t", &clean).expect(0, "restore");
    std::fs::remove_file(clean.join("z-etc/conf")).unwrap();
    let r = ore.restore("t", &clean);
    assert!([0, 3].contains(&r.code), "re-run: {}", r.stderr);
    assert_eq!(
        std::fs::metadata(clean.join("z-etc/conf")).unwrap().nlink(),
        2
    );
}
