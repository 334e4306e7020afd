//! Crafted archives and dump streams, as an attacker would write them: entry names that are
//! paths (`/tmp/x/pwned`), `.` and `..`, hard links that point out of the snapshot, names out
//! of order or twice, and a tiny dump that claims a hole of 2^62 bytes. Every reader refuses
//! them with an error naming the snapshot and the path: `ore load` before it makes a snapshot,
//! `ore check` as damage, `ls`, `restore` and the rest when they meet them. Snapshots are
//! crafted by writing blocks with the `ore` library itself, as a compromised writer could;
//! dumps by writing the stream's records (FORMAT.md §11) from here.

use ore::commands::dump::{DumpKind, Header};
use ore::core::entry::{encode, EntryKind, SnapshotStats};
use ore_tests::crafted::{dir, entry, file, nested, open, snapshot};
use ore_tests::dumps::load;
use ore_tests::fuse::{mount, tool, Unmount};
use ore_tests::ore::Ore;
use std::time::{Duration, Instant};

// ---- dump streams ----

/// A dump stream being written record by record; `finish` adds a correct trailer, so that
/// only what the records say can make `load` refuse it.
struct Stream(Vec<u8>);

impl Stream {
    /// A stream of version 1 (the rules below hold for every version).
    fn new() -> Stream {
        Stream::of_version(1)
    }

    fn of_version(version: u8) -> Stream {
        let mut s = Stream(b"ORE-DUMP".to_vec());
        s.0.push(version);
        let header = Header {
            time: 0,
            host: "crafted".into(),
            user: "crafted".into(),
            tag: "crafted".into(),
            paths: Vec::new(),
            comment: String::new(),
            stats: SnapshotStats::default(),
            warnings: Vec::new(),
            warnings_total: 0,
        };
        s.record(1, &encode(&header));
        s
    }

    fn record(&mut self, kind: u8, payload: &[u8]) -> &mut Stream {
        self.0.push(kind);
        self.0
            .extend_from_slice(&(payload.len() as u32).to_le_bytes());
        self.0.extend_from_slice(payload);
        self
    }

    fn entry(&mut self, name: &[u8], kind: DumpKind) -> &mut Stream {
        self.record(2, &encode(&ore_tests::dumps::entry(name, kind)))
    }

    /// An empty file entry, ended.
    fn empty_file(&mut self, name: &[u8]) -> &mut Stream {
        self.entry(name, DumpKind::File { size: 0 });
        self.record(5, blake3::hash(b"").as_bytes())
    }

    fn dir_end(&mut self) -> &mut Stream {
        self.record(6, &[])
    }

    fn finish(&mut self) -> Vec<u8> {
        let sum = *blake3::hash(&self.0).as_bytes();
        self.record(7, &sum);
        self.0.clone()
    }
}

/// Loads `stream` into a fresh archive and checks that it is refused (exit 1) with an error
/// containing each of `says`, and that no snapshot was made.
fn refused(stream: &[u8], says: &[&str]) {
    let (ore, _d) = Ore::local();
    let r = load(&ore, "crafted", stream);
    assert_eq!(r.code, 1, "load must refuse it: {}", r.stderr);
    for s in says {
        assert!(r.stderr.contains(s), "the error names {s:?}: {}", r.stderr);
    }
    let tags = ore.run(&["tags"]).expect(0, "tags").stdout;
    assert!(!tags.contains("crafted"), "no snapshot was made: {tags}");
}

#[test]
fn a_dump_whose_root_is_named_like_a_path_is_refused_by_load() {
    let stream = Stream::new()
        .entry(b"/tmp/x/pwned", DumpKind::Dir)
        .empty_file(b"payload")
        .dir_end()
        .finish();
    refused(&stream, &["/tmp/x/pwned", "root", "contains '/'"]);
    let stream = Stream::new().entry(b"..", DumpKind::Dir).dir_end().finish();
    refused(&stream, &["\"..\"", "root"]);
}

#[test]
fn a_dump_with_names_that_leave_their_directory_is_refused_by_load() {
    for (name, says) in [
        (&b".."[..], "is \"..\""),
        (b".", "is \".\""),
        (b"a/b", "contains '/'"),
        (b"", "is empty"),
        (b"nul\0byte", "NUL"),
    ] {
        let stream = Stream::new()
            .entry(b"home", DumpKind::Dir)
            .entry(b"d", DumpKind::Dir)
            .empty_file(name)
            .dir_end()
            .dir_end()
            .finish();
        refused(&stream, &[says, "near d/"]);
    }
}

#[test]
fn a_dump_whose_hard_links_point_out_of_the_snapshot_is_refused_by_load() {
    for target in [
        &b"../../outside/victim"[..],
        b"/etc/passwd",
        b"a/./b",
        b"a//b",
        b"",
    ] {
        let stream = Stream::new()
            .entry(b"home", DumpKind::Dir)
            .empty_file(b"a")
            .entry(b"link", DumpKind::Hardlink(target.to_vec()))
            .dir_end()
            .finish();
        refused(&stream, &["hard link \"link\"", "its target", "near link"]);
    }
}

#[test]
fn a_dump_with_symlinks_or_attributes_that_cannot_exist_is_refused_by_load() {
    let stream = Stream::new()
        .entry(b"home", DumpKind::Dir)
        .entry(b"s", DumpKind::Symlink(b"a\0b".to_vec()))
        .dir_end()
        .finish();
    refused(&stream, &["symlink \"s\"", "NUL", "near s"]);
}

#[test]
fn a_dump_nested_deeper_than_any_file_system_is_refused_by_load() {
    let mut s = Stream::new();
    for _ in 0..5000 {
        s.entry(b"d", DumpKind::Dir);
    }
    for _ in 0..5000 {
        s.dir_end();
    }
    refused(&s.finish(), &["nested more than 4096 deep"]);
}

#[test]
fn a_dump_with_a_name_twice_or_out_of_order_is_refused_by_load() {
    let twice = Stream::new()
        .entry(b"home", DumpKind::Dir)
        .empty_file(b"same")
        .empty_file(b"same")
        .dir_end()
        .finish();
    refused(&twice, &["\"same\" follows \"same\""]);
    let backwards = Stream::new()
        .entry(b"home", DumpKind::Dir)
        .empty_file(b"b")
        .empty_file(b"a")
        .dir_end()
        .finish();
    refused(&backwards, &["\"a\" follows \"b\""]);
}

#[test]
fn a_tiny_dump_claiming_a_hole_of_two_to_the_62_bytes_is_refused_at_once() {
    let mut s = Stream::new();
    s.entry(b"home", DumpKind::Dir)
        .entry(b"sparse", DumpKind::File { size: 5 })
        .record(4, &(1u64 << 62).to_le_bytes())
        .record(5, &[0; 32])
        .dir_end();
    let stream = s.finish();
    assert!(stream.len() < 300, "{} bytes", stream.len());
    let started = Instant::now();
    refused(
        &stream,
        &["sparse", "more than the 5 bytes its entry declares"],
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "refused at once, not after hashing the hole: {:?}",
        started.elapsed()
    );
    // Data beyond the declared size is refused the same way, and so are holes that would
    // overflow the count of bytes.
    let mut s = Stream::new();
    s.entry(b"home", DumpKind::Dir)
        .entry(b"f", DumpKind::File { size: 3 })
        .record(3, b"four")
        .record(5, &[0; 32])
        .dir_end();
    refused(&s.finish(), &["near f", "more than the 3 bytes"]);
    let mut s = Stream::new();
    s.entry(b"home", DumpKind::Dir)
        .entry(b"f", DumpKind::File { size: 10 })
        .record(4, &8u64.to_le_bytes())
        .record(4, &u64::MAX.to_le_bytes())
        .record(5, &[0; 32])
        .dir_end();
    refused(&s.finish(), &["near f", "more than the 10 bytes"]);
}

#[test]
fn a_tiny_dump_declaring_an_exabyte_sparse_file_loads_at_once() {
    // Version 2 hashes a hole's length, not its zeros: a hole costs nothing however large.
    let hole = 1u64 << 62;
    let mut file_hash = vec![4u8];
    file_hash.extend_from_slice(&hole.to_le_bytes());
    let mut s = Stream::of_version(2);
    s.entry(b"home", DumpKind::Dir)
        .entry(b"sparse", DumpKind::File { size: hole })
        .record(4, &hole.to_le_bytes())
        .record(5, blake3::hash(&file_hash).as_bytes())
        .dir_end();
    let stream = s.finish();
    assert!(stream.len() < 300, "{} bytes", stream.len());
    let (ore, _d) = Ore::local();
    let started = Instant::now();
    load(&ore, "sparse", &stream).expect(0, "load");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "loaded at once, not after hashing the hole: {:?}",
        started.elapsed()
    );
    let ls = ore.run(&["ls", "-l", "sparse"]).expect(0, "ls").stdout;
    assert!(ls.contains("sparse"), "{ls}");
    ore.run(&["check"]).expect(0, "check");
}

#[test]
fn a_version_1_dump_declaring_more_than_a_tebibyte_of_holes_is_refused_at_once() {
    // Version 1 hashed a hole's zeros: a 210-byte stream declaring 2^62 bytes of them, with a
    // file size to match, kept load hashing for years.
    let hole = 1u64 << 62;
    let mut s = Stream::new();
    s.entry(b"home", DumpKind::Dir)
        .entry(b"sparse", DumpKind::File { size: hole })
        .record(4, &hole.to_le_bytes())
        .record(5, &[0; 32])
        .dir_end();
    let stream = s.finish();
    assert!(stream.len() < 300, "{} bytes", stream.len());
    let started = Instant::now();
    refused(
        &stream,
        &["sparse", "more than 1.0 TiB of holes", "dump it again"],
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "refused at once: {:?}",
        started.elapsed()
    );
}

// ---- crafted snapshots in an archive ----

#[test]
fn a_crafted_snapshot_whose_names_leave_their_directory_is_damage_to_every_reader() {
    let (ore, d) = Ore::local();
    let repo = open(&ore);
    let ok = file(&repo, b"ok", b"fine\n");
    let bad = dir(
        &repo,
        b"d",
        vec![
            file(&repo, b"..", b"escaped\n"),
            entry(
                b"link",
                EntryKind::Hardlink {
                    target: b"../../outside/victim".to_vec(),
                },
            ),
        ],
    );
    let root = dir(&repo, b"home", vec![bad, ok]);
    let snap = snapshot(&repo, "dots", root).to_hex();
    let pwned = dir(&repo, b"/tmp/x/pwned", vec![file(&repo, b"f", b"x\n")]);
    let pwned = snapshot(&repo, "pwned", pwned).to_hex();
    drop(repo);

    // check: damaged, naming the snapshot and the directory that holds the bad entry.
    let r = ore.run(&["check"]);
    assert_eq!(r.code, 1, "check finds damage: {}\n{}", r.stdout, r.stderr);
    let all = format!("{}{}", r.stdout, r.stderr);
    assert!(all.contains("an entry's name \"..\" is \"..\""), "{all}");
    assert!(all.contains(":/d"), "names the directory's path: {all}");
    assert!(all.contains(&pwned[..8]) || all.contains(&pwned), "{all}");
    assert!(all.contains("/tmp/x/pwned"), "{all}");
    let _ = snap;

    // Readers refuse the directory, and the snapshot whose root has a path for a name.
    let r = ore.run(&["ls", "dots:d"]);
    assert_eq!(r.code, 1, "ls refuses: {}", r.stdout);
    assert!(r.stderr.contains("\"..\""), "{}", r.stderr);
    let out = d.path().join("out");
    let r = ore.restore("dots", &out);
    assert_ne!(r.code, 0, "restore does not succeed: {}", r.stderr);
    assert!(r.stderr.contains("\"..\""), "{}", r.stderr);
    assert!(!d.path().join("escaped").exists() && !d.path().join("outside").exists());
    let r = ore.run(&["ls", "pwned"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(r.stderr.contains("/tmp/x/pwned"), "{}", r.stderr);
    let r = ore.restore("pwned", &d.path().join("out2"));
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("its root's name"), "{}", r.stderr);
    let r = ore.run(&["dump", "pwned"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
}

#[test]
fn a_crafted_directory_with_a_name_twice_or_out_of_order_is_damage() {
    let (ore, _d) = Ore::local();
    let repo = open(&ore);
    let twice = dir(
        &repo,
        b"twice",
        vec![file(&repo, b"a", b"1\n"), file(&repo, b"a", b"2\n")],
    );
    let backwards = dir(
        &repo,
        b"backwards",
        vec![file(&repo, b"b", b"1\n"), file(&repo, b"a", b"2\n")],
    );
    snapshot(&repo, "home", dir(&repo, b"home", vec![backwards, twice]));
    drop(repo);
    let r = ore.run(&["check"]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    let all = format!("{}{}", r.stdout, r.stderr);
    assert!(all.contains("the name \"a\" appears twice"), "{all}");
    assert!(all.contains("\"b\" and \"a\" are out of order"), "{all}");
    assert!(
        all.contains(":/twice") && all.contains(":/backwards"),
        "{all}"
    );
}

// ---- the mount ----

#[test]
fn a_mounted_directory_with_a_broken_hard_link_lists_its_other_entries() {
    let (ore, d) = Ore::local();
    let repo = open(&ore);
    let inner = dir(
        &repo,
        b"d",
        vec![
            file(&repo, b"a", b"first\n"),
            entry(
                b"broken",
                EntryKind::Hardlink {
                    target: b"no/such/file".to_vec(),
                },
            ),
            file(&repo, b"z", b"last\n"),
        ],
    );
    snapshot(&repo, "home", dir(&repo, b"home", vec![inner]));
    drop(repo);
    let mnt = d.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let child = mount(&ore, &mnt, &[]);
    let _guard = Unmount(&mnt);
    let d = mnt.join("home/current/d");
    let r = tool(&["ls", d.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout, "a\nbroken\nz\n");
    assert_eq!(std::fs::read(d.join("a")).unwrap(), b"first\n");
    assert_eq!(std::fs::read(d.join("z")).unwrap(), b"last\n");
    let e = std::fs::read(d.join("broken")).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EIO), "{e}");
    drop(_guard);
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("/d/broken: a hard link to \"no/such/file\""),
        "the broken link is reported: {err}"
    );
}

#[test]
fn a_mounted_directory_with_entries_named_dot_and_dot_dot_is_an_error_not_a_listing() {
    let (ore, d) = Ore::local();
    let repo = open(&ore);
    let bad = dir(
        &repo,
        b"bad",
        vec![
            dir(&repo, b".", Vec::new()),
            dir(&repo, b"..", Vec::new()),
            file(&repo, b"x", b"x\n"),
        ],
    );
    let good = dir(&repo, b"good", vec![file(&repo, b"y", b"y\n")]);
    snapshot(&repo, "home", dir(&repo, b"home", vec![bad, good]));
    drop(repo);
    let mnt = d.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let child = mount(&ore, &mnt, &[]);
    let guard = Unmount(&mnt);
    let snap = mnt.join("home/current");
    let r = tool(&["ls", snap.join("bad").to_str().unwrap()]);
    assert_ne!(r.code, 0, "the directory is not listed: {}", r.stdout);
    assert!(r.stderr.contains("Input/output error"), "{}", r.stderr);
    assert_eq!(r.stdout, "");
    let r = tool(&["ls", snap.join("good").to_str().unwrap()]);
    assert_eq!((r.code, r.stdout.as_str()), (0, "y\n"), "{}", r.stderr);
    drop(guard);
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("/bad: block") && err.contains("an entry's name \".\""),
        "the damage is reported: {err}"
    );
}

#[test]
fn a_crafted_snapshot_nested_a_hundred_thousand_deep_is_refused_by_dump_not_a_crash() {
    let (ore, _d) = Ore::local();
    let repo = open(&ore);
    snapshot(&repo, "deep", nested(&repo, 100_000, b"x\n"));
    drop(repo);
    let r = ore.run(&["dump", "deep"]);
    assert_eq!(r.code, 1, "an error, not a crash: {}", r.stderr);
    assert!(r.stderr.contains("nested more than 4096"), "{}", r.stderr);
    // At the depth load accepts, dump works (and the stream loads back).
    let repo = open(&ore);
    snapshot(&repo, "deep-enough", nested(&repo, 4000, b"x\n"));
    drop(repo);
    let o = ore.cmd(&["dump", "deep-enough"]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    load(&ore, "loaded", &o.stdout).expect(0, "load");
}

#[test]
fn a_crafted_directory_deep_in_a_snapshot_is_named_by_its_path_when_listed() {
    let (ore, _d) = Ore::local();
    let repo = open(&ore);
    let bad = dir(&repo, b"bad", vec![file(&repo, b"..", b"escaped\n")]);
    let b = dir(&repo, b"b", vec![bad]);
    snapshot(
        &repo,
        "dots",
        dir(&repo, b"home", vec![dir(&repo, b"a", vec![b])]),
    );
    let b = dir(&repo, b"b", Vec::new());
    snapshot(
        &repo,
        "good",
        dir(&repo, b"home", vec![dir(&repo, b"a", vec![b])]),
    );
    drop(repo);
    let r = ore.run(&["ls", "-R", "dots"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(
        r.stderr
            .contains("listing dots: reading directory `a/b/bad`: block")
            && r.stderr.contains("\"..\""),
        "names the snapshot, the path and the block: {}",
        r.stderr
    );
    let r = ore.run(&["diff", "good", "dots"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(
        r.stderr.contains("comparing good with dots: block"),
        "{}",
        r.stderr
    );
}
