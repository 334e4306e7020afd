//! End-to-end tests of `ore` through the built binary: round trips of trees with every kind
//! of entry, the file cache, damage detection, keys, and naming snapshots.

use ore_tests::ore::{scratch, Ore};
use ore_tests::trees::{assert_same, bytes, every_kind, set_mtime};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

#[test]
fn every_kind_of_entry_round_trips() {
    let (ore, d) = Ore::local();
    let src = d.path().join("src");
    std::fs::create_dir(&src).unwrap();
    every_kind(&src);
    let key = ore.snapshot("t", &src);
    assert_eq!(key.len(), 64);
    let dest = d.path().join("dest");
    ore.restore("t", &dest).expect(0, "restore");
    assert_same(&src, &dest);
    // The sparse file came back sparse.
    let md = std::fs::metadata(dest.join("sparse")).unwrap();
    assert_eq!(md.len(), 5 << 20);
    assert!(
        md.blocks() * 512 < 1 << 20,
        "restored sparse file uses {} blocks",
        md.blocks()
    );
    // The hard link is a hard link again.
    let a = std::fs::metadata(dest.join("small.txt")).unwrap();
    let b = std::fs::metadata(dest.join("dir/hardlink")).unwrap();
    assert_eq!(a.ino(), b.ino());
    // A second snapshot of the same tree (through the file cache) restores identically too.
    let key2 = ore.snapshot("t", &src);
    assert_ne!(key, key2);
    let dest2 = d.path().join("dest2");
    ore.restore(&key2[..12], &dest2)
        .expect(0, "restore by key prefix");
    assert_same(&src, &dest2);
    // And --verify re-reads everything it wrote.
    let dest3 = d.path().join("dest3");
    ore.run(&["restore", "t~1", dest3.to_str().unwrap(), "--verify"])
        .expect(0, "restore --verify");
    assert_same(&src, &dest3);
}

/// PATHs are resolved before they are saved: a symlink given on the command line stands for
/// what it points to (saved under that name), while symlinks inside the tree stay symlinks.
#[test]
fn a_path_that_is_a_symlink_is_resolved() {
    let (ore, d) = Ore::local();
    let data = d.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("f"), b"contents").unwrap();
    std::os::unix::fs::symlink("f", data.join("inner")).unwrap();
    let link = d.path().join("link");
    std::os::unix::fs::symlink(&data, &link).unwrap();
    let other = d.path().join("other");
    std::fs::create_dir(&other).unwrap();
    ore.run(&[
        "snapshot",
        "t",
        link.to_str().unwrap(),
        other.to_str().unwrap(),
    ])
    .expect(0, "snapshot");
    let ls = ore.run(&["ls", "t", "-R"]).expect(0, "ls");
    let names: Vec<&str> = ls.stdout.lines().collect();
    assert_eq!(
        names,
        ["data", "data/f", "data/inner", "other"],
        "{}",
        ls.stdout
    );
    assert_eq!(
        ore.run(&["cat", "t:data/f"]).expect(0, "cat").stdout,
        "contents"
    );
    let dest = d.path().join("dest");
    ore.restore("t", &dest).expect(0, "restore");
    assert_eq!(
        std::fs::read_link(dest.join("data/inner")).unwrap(),
        Path::new("f")
    );
}

#[test]
fn subtree_and_single_file_restore() {
    let (ore, d) = Ore::local();
    let src = d.path().join("src");
    std::fs::create_dir(&src).unwrap();
    every_kind(&src);
    ore.snapshot("t", &src);
    let sub = d.path().join("sub");
    ore.restore("t:dir", &sub).expect(0, "subtree");
    // Regression: `dir/hardlink` and `dir/sub/hardlink-3` are names of `small.txt`, outside
    // the subtree; each got its own copy of the contents, so two names of one file inside
    // `dir` came back as two files. assert_same compares hard link groups.
    assert_same(&src.join("dir"), &sub);
    let one = d.path().join("one.txt");
    ore.restore("t:dir/text", &one).expect(0, "one file");
    assert_eq!(
        std::fs::read(&one).unwrap(),
        std::fs::read(src.join("dir/text")).unwrap()
    );
    let cat = ore.cmd(&["cat", "t:dir/random-3M"]).output().unwrap();
    assert!(cat.status.success());
    assert_eq!(cat.stdout, bytes(7, 3 << 20));
    let sparse = ore.cmd(&["cat", "t:sparse"]).output().unwrap();
    assert_eq!(sparse.stdout, std::fs::read(src.join("sparse")).unwrap());
    let missing = ore.restore("t:no/such/file", &d.path().join("x"));
    assert_eq!(missing.code, 1);
    assert!(
        missing.stderr.contains("no/such/file"),
        "{}",
        missing.stderr
    );
}

#[test]
fn existing_files_are_left_alone_unless_asked() {
    let (ore, d) = Ore::local();
    let src = d.path().join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("a"), b"from the snapshot").unwrap();
    ore.snapshot("t", &src);
    let dest = d.path().join("dest");
    std::fs::create_dir(&dest).unwrap();
    std::fs::write(dest.join("a"), b"local edit").unwrap();
    let r = ore
        .restore("t", &dest)
        .expect(3, "never overwrite: warnings");
    assert!(
        r.stderr.contains("1 existing file left alone")
            && r.stderr.contains("--overwrite if-changed"),
        "{}",
        r.stderr
    );
    assert_eq!(std::fs::read(dest.join("a")).unwrap(), b"local edit");
    ore.run(&[
        "restore",
        "t",
        dest.to_str().unwrap(),
        "--overwrite",
        "if-changed",
    ])
    .expect(0, "if-changed");
    assert_eq!(std::fs::read(dest.join("a")).unwrap(), b"from the snapshot");
    // Restored again, hard links included: each existing name is left alone (one warning
    // counts them), and a link that is already there is not a link that failed.
    std::fs::hard_link(src.join("a"), src.join("a-link")).unwrap();
    ore.snapshot("t", &src);
    let again = d.path().join("again");
    ore.restore("t", &again).expect(0, "first restore");
    let r = ore.restore("t", &again).expect(3, "again: warnings only");
    assert!(
        r.stderr.contains("2 existing files left alone"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("not made"), "{}", r.stderr);
    // A whole snapshot onto a file: said plainly (it was "File exists (os error 17)"), and the
    // file is untouched.
    let file = dest.join("a");
    let r = ore.restore("t", &file).expect(1, "a directory onto a file");
    assert!(
        r.stderr.contains("exists and is not a directory"),
        "{}",
        r.stderr
    );
    assert_eq!(std::fs::read(&file).unwrap(), b"from the snapshot");
}

#[test]
fn file_cache_notices_a_change_that_keeps_size_and_mtime() {
    let (ore, d) = Ore::local();
    let src = d.path().join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("f"), b"AAAA version one").unwrap();
    set_mtime(&src.join("f"), 1_600_000_000_000_000_000);
    ore.snapshot("t", &src);
    // Same size, same mtime (put back), different contents: only ctime tells.
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::write(src.join("f"), b"BBBB version two").unwrap();
    set_mtime(&src.join("f"), 1_600_000_000_000_000_000);
    let r = ore
        .run(&["snapshot", "t", src.to_str().unwrap(), "--json"])
        .expect(0, "second snapshot");
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(
        v["stats"]["files_read"], 1,
        "the changed file was read again: {}",
        r.stdout
    );
    let out = ore.cmd(&["cat", "t:f"]).output().unwrap();
    assert_eq!(out.stdout, b"BBBB version two");
    // Unchanged: nothing is read.
    let r = ore
        .run(&["snapshot", "t", src.to_str().unwrap(), "--json"])
        .expect(0, "third snapshot");
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["stats"]["files_read"], 0, "{}", r.stdout);
}

#[test]
fn file_cache_distrusts_a_rolled_back_archive() {
    let (ore, d) = Ore::local();
    let arch = d.path().join("archive");
    let src = d.path().join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("f"), b"one").unwrap();
    ore.snapshot("t", &src);
    let copy = d.path().join("copy");
    copy_dir(&arch, &copy);
    std::fs::write(src.join("f"), b"two, longer").unwrap();
    ore.snapshot("t", &src);
    // Roll the archive back: it no longer has "two", which the file cache remembers.
    std::fs::remove_dir_all(&arch).unwrap();
    std::fs::rename(&copy, &arch).unwrap();
    let r = ore
        .run(&["snapshot", "t", src.to_str().unwrap(), "--json"])
        .expect(0, "snapshot after the rollback");
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["stats"]["files_read"], 1, "{}", r.stdout);
    let dest = d.path().join("dest");
    ore.restore("t", &dest).expect(0, "restore");
    assert_eq!(std::fs::read(dest.join("f")).unwrap(), b"two, longer");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

#[test]
fn wrong_passphrase_is_told_apart_from_damage() {
    let (ore, _d) = Ore::local();
    let mut bad = ore.cmd(&["tags"]);
    bad.env("ORE_PASSPHRASE", "not it");
    let out = bad.output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("wrong passphrase"), "{err}");
    let not_init = Ore::new(scratch().path().join("nothing").display().to_string());
    let r = not_init.run(&["tags"]);
    assert_eq!(r.code, 1);
    assert!(
        !r.stderr.contains("wrong passphrase") && r.stderr.contains("ore init"),
        "{}",
        r.stderr
    );
}

#[test]
fn key_management() {
    let (ore, d) = Ore::local();
    let src = d.path().join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("f"), b"x").unwrap();
    ore.snapshot("t", &src);
    let list = ore.run(&["key", "list", "--json"]).expect(0, "list");
    assert_eq!(list.stdout.lines().count(), 1);
    let mut add = ore.cmd(&["key", "add"]);
    add.env("ORE_NEW_PASSPHRASE", "second one");
    assert!(add.status().unwrap().success());
    let mut second = ore.cmd(&["key", "list", "--json"]);
    second.env("ORE_PASSPHRASE", "second one");
    let out = second.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let slots: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(slots.len(), 2);
    let first_id = slots.iter().find(|s| s["current"] == false).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    // Remove the first passphrase using the second.
    let mut rm = ore.cmd(&["key", "remove", &first_id]);
    rm.env("ORE_PASSPHRASE", "second one");
    assert!(rm.status().unwrap().success());
    assert_eq!(
        ore.run(&["tags"]).code,
        1,
        "the removed passphrase no longer opens the archive"
    );
    // Change the second one.
    let mut pw = ore.cmd(&["key", "passwd"]);
    pw.env("ORE_PASSPHRASE", "second one")
        .env("ORE_NEW_PASSPHRASE", "third");
    assert!(pw.status().unwrap().success());
    let mut third = ore.cmd(&["cat", "t:f"]);
    third.env("ORE_PASSPHRASE", "third");
    assert_eq!(third.output().unwrap().stdout, b"x");
    // The last slot cannot be removed.
    let mut last = ore.cmd(&["key", "list", "--json"]);
    last.env("ORE_PASSPHRASE", "third");
    let out = last.output().unwrap();
    let id: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().next().unwrap()).unwrap();
    let mut rm_last = ore.cmd(&["key", "remove", id["id"].as_str().unwrap()]);
    rm_last.env("ORE_PASSPHRASE", "third");
    let out = rm_last.output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("last"));
}

#[test]
fn snapshot_names_tags_log_and_fork() {
    let (ore, d) = Ore::local();
    let src = d.path().join("src");
    std::fs::create_dir(&src).unwrap();
    let mut keys = Vec::new();
    for i in 0..3 {
        std::fs::write(src.join("f"), format!("version {i}")).unwrap();
        keys.push(ore.snapshot("home", &src));
    }
    let cat = |spec: &str| {
        String::from_utf8(
            ore.cmd(&["cat", &format!("{spec}:f")])
                .output()
                .unwrap()
                .stdout,
        )
        .unwrap()
    };
    assert_eq!(cat("home"), "version 2");
    assert_eq!(cat("home~1"), "version 1");
    assert_eq!(cat("home~2"), "version 0");
    assert_eq!(cat(&keys[0][..10]), "version 0");
    assert_eq!(cat("home@2000-01-01").len(), 0, "nothing that old");
    assert_eq!(cat("home@2200-01-01"), "version 2");
    // A date with a time: its colons are not the path's (regression: split at the first).
    assert_eq!(cat("home@2200-01-01T10:30:00"), "version 2");
    assert_eq!(cat("home@2200-01-01T10:30"), "version 2");
    assert_eq!(cat("home@2000-01-01T10:30:00").len(), 0, "nothing that old");
    let log = ore.run(&["log", "home"]).expect(0, "log");
    assert_eq!(log.stdout.lines().count(), 3);
    assert!(log.stdout.contains(&keys[2][..12]));
    ore.run(&["fork", "home", "other"]).expect(0, "fork");
    ore.run(&["fork", "home", "other"])
        .expect(1, "fork onto an existing tag");
    let tags = ore.run(&["tags"]).expect(0, "tags");
    assert!(
        tags.stdout.contains("home")
            && tags.stdout.contains("other")
            && !tags.stdout.contains("ore:format"),
        "{}",
        tags.stdout
    );
    ore.run(&["snapshot", "bad:name", src.to_str().unwrap()])
        .expect(1, "tag with a colon");
    let ls = ore.run(&["ls", "home", "-l"]).expect(0, "ls");
    assert!(
        ls.stdout.contains(" f\n") || ls.stdout.ends_with(" f\n"),
        "{}",
        ls.stdout
    );
}

#[test]
fn excludes_oreignore_and_config_rules() {
    let (ore, d) = Ore::local();
    let src = d.path().join("src");
    for p in ["keep", "build", "a/build", "logs"] {
        std::fs::create_dir_all(src.join(p)).unwrap();
    }
    for f in [
        "keep/x.o",
        "keep/x.c",
        "build/out",
        "a/build/out",
        "logs/big.log",
        "logs/small.log",
        "logs/important.tmp",
    ] {
        std::fs::write(
            src.join(f),
            if f.contains("big") {
                vec![0u8; 20_000]
            } else {
                b"x".to_vec()
            },
        )
        .unwrap();
    }
    std::fs::write(src.join(".oreignore"), "build/\n*.tmp\n").unwrap();
    std::fs::write(src.join("logs/.oreignore"), "!important.tmp\n").unwrap();
    let config = d.path().join("config.toml");
    std::fs::write(
        &config,
        "exclude = [ { and = [ { name = \"*.log\" }, { larger_than = \"10k\" } ] } ]\n",
    )
    .unwrap();
    ore.run(&[
        "--config",
        config.to_str().unwrap(),
        "snapshot",
        "t",
        src.to_str().unwrap(),
        "--exclude",
        "*.o",
    ])
    .expect(0, "snapshot");
    let ls = ore.run(&["ls", "t", "-R"]).expect(0, "ls");
    let names: Vec<&str> = ls.stdout.lines().collect();
    for present in [
        "keep/x.c",
        "logs/small.log",
        "logs/important.tmp",
        ".oreignore",
        "a",
    ] {
        assert!(names.contains(&present), "{present} missing: {names:?}");
    }
    for absent in ["keep/x.o", "build", "a/build", "logs/big.log"] {
        assert!(!names.contains(&absent), "{absent} not excluded: {names:?}");
    }
}

#[test]
fn encrypted_archive_reveals_neither_contents_nor_plain_hashes() {
    let (ore, d) = Ore::local();
    let src = d.path().join("src");
    std::fs::create_dir(&src).unwrap();
    let known = b"This is a well-known document that an attacker might look for. ".repeat(40);
    std::fs::write(src.join("known.txt"), &known).unwrap();
    let random = bytes(11, 100_000);
    std::fs::write(src.join("random.bin"), &random).unwrap();
    ore.snapshot("t", &src);
    let mut stored = Vec::new();
    for e in std::fs::read_dir(d.path().join("archive")).unwrap() {
        stored.extend(std::fs::read(e.unwrap().path()).unwrap());
    }
    let needles: Vec<Vec<u8>> = vec![
        known[..32].to_vec(),
        random[..32].to_vec(),
        random[50_000..50_032].to_vec(),
        blake3::hash(&known).as_bytes().to_vec(),
        blake3::hash(&random).as_bytes().to_vec(),
        blake3::hash(&known).to_hex().as_bytes().to_vec(),
        b"known.txt".to_vec(),
    ];
    for n in needles {
        assert!(
            !stored.windows(n.len()).any(|w| w == n.as_slice()),
            "found {:?} in the archive",
            String::from_utf8_lossy(&n)
        );
    }
}

fn flip_byte_in(path: &Path, at: u64) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut b = [0u8];
    f.read_exact_at(&mut b, at).unwrap();
    b[0] ^= 0x55;
    f.write_all_at(&b, at).unwrap();
}

#[test]
fn tampered_block_is_detected_and_named() {
    // backend-fs keeps blocks as files and checks nothing itself: the frontend's
    // authentication must catch the change.
    let d = scratch();
    let fsdir = d.path().join("fsarchive");
    let ore = Ore::fs(&fsdir);
    let src = d.path().join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("victim"), bytes(5, 200_000)).unwrap();
    // The same contents under another name share the block: both paths are named.
    std::fs::create_dir(src.join("sub")).unwrap();
    std::fs::write(src.join("sub/twin"), bytes(5, 200_000)).unwrap();
    std::fs::write(src.join("bystander"), b"fine").unwrap();
    ore.snapshot("t", &src);
    // Find the victim's block: the one file of about 200 KB.
    let mut victim = None;
    for e in walk(&fsdir.join("blocks")) {
        if std::fs::metadata(&e).unwrap().len() > 150_000 {
            victim = Some(e);
        }
    }
    let victim = victim.expect("the victim's block");
    let key = victim.file_name().unwrap().to_str().unwrap().to_string();
    flip_byte_in(&victim, 1000);
    let dest = d.path().join("dest");
    let r = ore.restore("t", &dest);
    assert_eq!(r.code, 1, "an incomplete restore fails: {}", r.stderr);
    assert!(r.stderr.contains(&key), "the block is named: {}", r.stderr);
    for path in ["victim", "sub/twin"] {
        assert!(
            r.stderr.contains(path),
            "the path {path} is named: {}",
            r.stderr
        );
    }
    assert_eq!(
        std::fs::read(dest.join("bystander")).unwrap(),
        b"fine",
        "the rest was restored"
    );
}

/// Commands that name a snapshot read its tag and block while the archive is unlocked, before
/// the keys exist to check the block; the block is checked all the same once they do. And what
/// is read ahead names the same snapshots as reading afterwards (`TAG`, `TAG~N`, `TAG@DATE`).
#[test]
fn a_snapshot_block_read_ahead_of_the_keys_is_checked_all_the_same() {
    let d = scratch();
    let fsdir = d.path().join("fsarchive");
    let ore = Ore::fs(&fsdir);
    let src = d.path().join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("old"), b"first").unwrap();
    ore.snapshot("t", &src);
    std::fs::write(src.join("new"), b"second").unwrap();
    let newest = ore.snapshot("t", &src);
    let names = |what: &str| ore.run(&["ls", what]).expect(0, what).stdout;
    assert_eq!(names("t"), "new\nold\n");
    assert_eq!(names("t~1"), "old\n");
    assert_eq!(names("t@2999-01-01"), "new\nold\n");
    assert_eq!(ore.run(&["cat", "t:new"]).expect(0, "cat").stdout, "second");
    let r = ore.run(&["ls", "nosuchtag"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("nosuchtag"), "{}", r.stderr);
    // Damage the newest snapshot's block.
    let block = walk(&fsdir.join("blocks"))
        .into_iter()
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_str() == Some(newest.as_str()))
        })
        .expect("the snapshot's block");
    flip_byte_in(&block, 40);
    for args in [
        vec!["ls", "t"],
        vec!["cat", "t:new"],
        vec!["restore", "t", d.path().join("dest").to_str().unwrap()],
    ] {
        let r = ore.run(&args);
        assert_eq!(r.code, 1, "{args:?}: {}", r.stdout);
        assert!(
            r.stderr.contains(&newest),
            "{args:?} names the block: {}",
            r.stderr
        );
    }
    assert!(!d.path().join("dest").join("new").exists());
}

#[test]
fn tampered_splitlog_record_is_detected_and_named() {
    let (ore, d) = Ore::local();
    let src = d.path().join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("victim"), bytes(6, 300_000)).unwrap();
    ore.snapshot("t", &src);
    let log = d.path().join("archive/log-000001");
    // The big record is the victim's; damage its middle.
    flip_byte_in(&log, std::fs::metadata(&log).unwrap().len() / 2);
    let r = ore.restore("t", &d.path().join("dest"));
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("victim") && r.stderr.contains("corrupt"),
        "{}",
        r.stderr
    );
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn file_cache_after_deletions_renames_and_additions() {
    let (ore, d) = Ore::local();
    let src = d.path().join("src");
    for p in ["a/b/c", "gone/deep", "keep"] {
        std::fs::create_dir_all(src.join(p)).unwrap();
    }
    for (i, f) in ["a/b/c/one", "gone/deep/two", "keep/three", "keep/four"]
        .iter()
        .enumerate()
    {
        std::fs::write(src.join(f), bytes(i as u64, 1000 + i)).unwrap();
    }
    ore.snapshot("t", &src);
    std::fs::remove_dir_all(src.join("gone")).unwrap();
    std::fs::rename(src.join("keep/three"), src.join("keep/three-renamed")).unwrap();
    std::fs::write(src.join("a/b/c/new"), b"new file").unwrap();
    let r = ore
        .run(&["snapshot", "t", src.to_str().unwrap(), "--json"])
        .expect(0, "second");
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(
        v["stats"]["files_read"], 2,
        "the renamed and the new file: {}",
        r.stdout
    );
    let dest = d.path().join("dest");
    ore.restore("t", &dest).expect(0, "restore");
    assert_same(&src, &dest);
    // The subtree comes back: its files are read again (the cache forgot them with it).
    std::fs::create_dir_all(src.join("gone/deep")).unwrap();
    std::fs::write(src.join("gone/deep/two"), bytes(1, 1001)).unwrap();
    let r = ore
        .run(&["snapshot", "t", src.to_str().unwrap(), "--json"])
        .expect(0, "third");
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["stats"]["files_read"], 1, "{}", r.stdout);
    let r = ore
        .run(&["snapshot", "t", src.to_str().unwrap(), "--json"])
        .expect(0, "fourth");
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["stats"]["files_read"], 0, "{}", r.stdout);
    let dest2 = d.path().join("dest2");
    ore.restore("t", &dest2).expect(0, "restore");
    assert_same(&src, &dest2);
}

#[test]
fn dry_run_stores_nothing_and_options_change_what_is_kept() {
    let (ore, d) = Ore::local();
    let src = d.path().join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("f"), bytes(3, 500_000)).unwrap();
    let log = d.path().join("archive/log-000001");
    let before = std::fs::metadata(&log).unwrap().len();
    let r = ore
        .run(&[
            "snapshot",
            "t",
            src.to_str().unwrap(),
            "--dry-run",
            "--json",
        ])
        .expect(0, "dry run");
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert!(
        v["key"].is_null() && v["stats"]["new_bytes"].as_u64().unwrap() >= 500_000,
        "{}",
        r.stdout
    );
    assert_eq!(
        std::fs::metadata(&log).unwrap().len(),
        before,
        "a dry run writes nothing"
    );
    assert!(!ore.run(&["tags"]).stdout.contains('t'), "and moves no tag");
    // --atime and --ctime are kept only when asked for.
    ore.run(&["snapshot", "t", src.to_str().unwrap(), "--atime", "--ctime"])
        .expect(0, "with times");
    let ls = ore.run(&["ls", "t", "--json"]).expect(0, "ls");
    assert!(ls.stdout.contains("\"name\":\"f\""), "{}", ls.stdout);
    let json: serde_json::Value = serde_json::from_str(ls.stdout.lines().next().unwrap()).unwrap();
    assert!(json["mtime_ns"].as_i64().unwrap() > 0);
}

#[test]
fn passphrase_sources_and_config_archive() {
    let d = scratch();
    let arch = d.path().join("archive");
    let ore = Ore::new(arch.display().to_string());
    ore.run(&["init"]).expect(0, "init");
    let src = d.path().join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("f"), b"x").unwrap();
    ore.snapshot("t", &src);
    let pass_file = d.path().join("pass");
    std::fs::write(
        &pass_file,
        format!("{}\nsecond line ignored\n", ore.passphrase),
    )
    .unwrap();
    let run = |extra: &[&str], env_pass: Option<&str>| {
        let mut c = std::process::Command::new(ore_tests::bin("ore"));
        c.args(extra)
            .env("XDG_CACHE_HOME", &ore.cache)
            .env("XDG_CONFIG_HOME", d.path().join("noconf"));
        c.env_remove("ORE_PASSPHRASE")
            .env_remove("ORE_ARCHIVE")
            .stdin(std::process::Stdio::null());
        if let Some(p) = env_pass {
            c.env("ORE_PASSPHRASE", p);
        }
        c.output().unwrap()
    };
    let a = arch.to_str().unwrap();
    let out = run(
        &[
            "-a",
            a,
            "tags",
            "--passphrase-file",
            pass_file.to_str().unwrap(),
        ],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cmd = format!("echo '{}'", ore.passphrase);
    let out = run(&["-a", a, "tags", "--passphrase-command", &cmd], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // No passphrase and no terminal: a clear error, not a hang.
    let out = run(&["-a", a, "tags"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("ORE_PASSPHRASE"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The archive and the passphrase command from a config file.
    let config = d.path().join("config.toml");
    std::fs::write(
        &config,
        format!("archive = {a:?}\npassphrase_command = {cmd:?}\n"),
    )
    .unwrap();
    let out = run(&["--config", config.to_str().unwrap(), "cat", "t:f"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, b"x");
    // A config file with a typo is an error naming the file.
    std::fs::write(&config, "archiv = \"x\"\n").unwrap();
    let out = run(&["--config", config.to_str().unwrap(), "tags"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("config.toml"));
}

#[test]
fn files_in_compressed_formats_round_trip_and_still_shrink_when_they_can() {
    let (ore, d) = Ore::local();
    let src = d.path().join("src");
    std::fs::create_dir(&src).unwrap();
    // A real gzip file, and one that only starts like one but is 4 MiB of repeated text: it
    // is compressed at zstd's fastest level instead of the configured one, but compressed.
    let text = b"a line of text that repeats, as logs do\n".repeat(1 << 15);
    std::fs::write(src.join("log.txt"), &text).unwrap();
    let gz = std::process::Command::new("gzip")
        .args(["-k", "-9"])
        .arg(src.join("log.txt"))
        .status()
        .expect("gzip (from the OS) runs");
    assert!(gz.success());
    std::fs::remove_file(src.join("log.txt")).unwrap();
    let mut fake = vec![0x1f, 0x8b, 0x08];
    fake.extend_from_slice(&text.repeat(3));
    std::fs::write(src.join("fake.gz"), &fake).unwrap();
    let png = [b"\x89PNG\r\n\x1a\n".as_slice(), &bytes(7, 300_000)].concat();
    std::fs::write(src.join("random.png"), &png).unwrap();
    ore.snapshot("t", &src);
    let stored = ore_tests::logged(Path::new(&ore.archive));
    let gz_len = std::fs::metadata(src.join("log.txt.gz")).unwrap().len();
    // Stored raw, the fake alone would be 3.8 MiB.
    assert!(
        stored < gz_len + png.len() as u64 + 200_000,
        "archive logs hold {stored} bytes"
    );
    let dest = d.path().join("dest");
    ore.restore("t", &dest).expect(0, "restore");
    assert_same(&src, &dest);
    ore.run(&["check", "--read-data"]).expect(0, "check");
}

/// Regression: an I/O error's cause was both in its message and its source, so the printed
/// chain said it twice ("/x: No such file or directory (os error 2): No such file or
/// directory (os error 2)").
#[test]
fn an_io_error_names_the_path_and_says_its_cause_once() {
    let (ore, d) = Ore::local();
    let missing = d.path().join("no-such-dir");
    let r = ore_tests::ore::Run::of(
        ore.cmd(&["snapshot", "t", missing.to_str().unwrap()])
            .output()
            .unwrap(),
    )
    .expect(1, "snapshot of a missing path");
    let line = format!(
        "ore: error: {}: No such file or directory",
        missing.display()
    );
    assert!(r.stderr.contains(&line), "{}", r.stderr);
    assert_eq!(r.stderr.matches("No such file").count(), 1, "{}", r.stderr);
}

/// Every command's `--help` (found from `ore --help`, and for commands with subcommands from
/// theirs) exits 0 and shows examples; a bad command line exits 1 like every other error (not
/// clap's 2) and names what is missing.
#[test]
fn every_command_has_help_with_examples_and_usage_errors_exit_1() {
    let ore = |args: &[&str]| {
        let out = std::process::Command::new(ore_tests::bin("ore"))
            .args(args)
            .output()
            .unwrap();
        ore_tests::ore::Run::of(out)
    };
    let commands = |prefix: &[&str]| -> Vec<String> {
        let mut args = prefix.to_vec();
        args.push("--help");
        let help = ore(&args).expect(0, "--help").stdout;
        help.lines()
            .skip_while(|l| !l.starts_with("Commands:"))
            .skip(1)
            .take_while(|l| l.starts_with("  "))
            .filter_map(|l| l.split_whitespace().next())
            .filter(|c| *c != "help")
            .map(String::from)
            .collect()
    };
    let top = commands(&[]);
    assert!(top.len() >= 20, "{top:?}");
    let mut checked = 0;
    for c in &top {
        for sub in std::iter::once(None).chain(commands(&[c]).into_iter().map(Some)) {
            let mut args = vec![c.as_str()];
            args.extend(sub.as_deref());
            args.push("--help");
            let help = ore(&args).expect(0, "--help").stdout;
            assert!(
                help.lines().any(|l| l.starts_with("Example")),
                "`ore {}` has no examples:\n{help}",
                args.join(" ")
            );
            checked += 1;
        }
    }
    assert!(checked >= 25, "{checked} help texts");
    let r = ore(&["restore", "home"]).expect(1, "a missing argument");
    assert!(r.stderr.contains("<DEST>"), "{}", r.stderr);
    ore(&["no-such-command"]).expect(1, "an unknown command");
    ore(&["snapshot", "t", ".", "--no-such-flag"]).expect(1, "an unknown flag");
    ore(&["--version"]).expect(0, "--version");
}
