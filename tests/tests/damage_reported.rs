//! Issue 22, finding 6 (the frontend's half): damage is reported block by block, naming the
//! block, what the backend said about it (from splitlog: its log and offset) and every
//! `SNAPSHOT:PATH` that reaches it; `check` goes on with the rest, and a restore restores
//! everything else, lists each damaged file and exits 1.
//!
//! A backend that could not read one block (an I/O error on its file, a log cut short) used to
//! answer with an error that stopped `check` and the restore at the first such block, with no
//! list of damaged blocks and no paths.

use ore_tests::ore::{block_file, scratch, Ore};
use ore_tests::trees::bytes;
use std::path::Path;

/// The key `ore ls --json` gives `path` in snapshot `t` (its data chunk, file index or tree).
fn key_of(ore: &Ore, path: &str, field: &str) -> String {
    let r = ore.run(&["--json", "ls", "-l", "t"]).expect(0, "ls");
    for l in r.stdout.lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        if v["path"] == path {
            return v[field].as_str().expect(field).to_string();
        }
    }
    panic!("{path} not listed: {}", r.stdout)
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

/// The lines of a check's report about `key`: the block line and the paths below it.
fn report_of<'a>(stdout: &'a str, key: &str) -> Vec<&'a str> {
    let mut out = Vec::new();
    let mut inside = false;
    for l in stdout.lines() {
        if l.starts_with("block ") {
            inside = l.contains(key);
        }
        if inside {
            out.push(l);
        }
    }
    out
}

#[test]
fn every_damaged_block_of_every_kind_is_reported_with_its_paths_and_the_restore_goes_on() {
    let d = scratch();
    let fsdir = d.path().join("fs");
    let ore = Ore::fs(&fsdir);
    let src = d.path().join("src");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    std::fs::write(src.join("flipped"), bytes(1, 100_000)).unwrap();
    std::fs::write(src.join("gone"), bytes(2, 100_000)).unwrap();
    std::fs::write(src.join("unreadable"), bytes(3, 100_000)).unwrap();
    // Big enough for several chunks, so that it has a file index.
    std::fs::write(src.join("big"), bytes(4, 3_000_000)).unwrap();
    std::fs::write(src.join("sub/inside"), b"below a damaged directory").unwrap();
    std::fs::write(src.join("fine"), b"untouched").unwrap();
    ore.snapshot("t", &src);
    let flipped = key_of(&ore, "flipped", "chunk");
    let gone = key_of(&ore, "gone", "chunk");
    let unreadable = key_of(&ore, "unreadable", "chunk");
    let index = key_of(&ore, "big", "index");
    let tree = key_of(&ore, "sub", "tree");
    flip_byte_in(&block_file(&fsdir, &flipped), 500);
    flip_byte_in(&block_file(&fsdir, &index), 40);
    std::fs::remove_file(block_file(&fsdir, &gone)).unwrap();
    // A block the backend cannot read (its own I/O error, answered for that one block): a
    // directory where its file should be.
    for key in [&unreadable, &tree] {
        std::fs::remove_file(block_file(&fsdir, key)).unwrap();
        std::fs::create_dir(block_file(&fsdir, key)).unwrap();
    }
    let r = ore.run(&["check", "--read-data"]);
    assert_eq!(r.code, 1, "check: {}\n{}", r.stdout, r.stderr);
    for (key, kind, why, path) in [
        (&flipped, "file data", "corrupt", "t~0:/flipped"),
        (&gone, "file data", "missing", "t~0:/gone"),
        (
            &unreadable,
            "file data",
            "Is a directory",
            "t~0:/unreadable",
        ),
        (&index, "file index", "corrupt", "t~0:/big"),
        (&tree, "directory", "Is a directory", "t~0:/sub"),
    ] {
        let lines = report_of(&r.stdout, key);
        let text = lines.join("\n");
        assert!(
            lines
                .first()
                .is_some_and(|l| l.contains(kind) && l.contains(why)),
            "block {key} is reported as {kind}, {why}: {text}\nwhole report:\n{}\n{}",
            r.stdout,
            r.stderr
        );
        assert!(
            lines.iter().any(|l| l.trim() == path),
            "{path} is named for {key}: {text}"
        );
    }
    assert!(
        r.stderr.contains("5 missing or damaged block(s)"),
        "{}",
        r.stderr
    );

    let dest = d.path().join("dest");
    let r = ore.restore("t", &dest);
    assert_eq!(r.code, 1, "restore: {}", r.stderr);
    for name in ["flipped", "gone", "unreadable", "big", "sub"] {
        assert!(
            r.stderr
                .lines()
                .any(|l| l.contains(&format!("dest/{name}")) && l.contains("not fully restored")),
            "{name} is listed as damaged: {}",
            r.stderr
        );
    }
    assert!(r.stderr.contains("INCOMPLETE"), "{}", r.stderr);
    // And once more together at the end, each once, sorted: the list of what to look at.
    let listed: Vec<&str> = r
        .stderr
        .lines()
        .skip_while(|l| !l.contains("left 5 entries incomplete"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .map(|l| l.trim().rsplit('/').next().unwrap())
        .collect();
    assert_eq!(
        listed,
        ["big", "flipped", "gone", "sub", "unreadable"],
        "{}",
        r.stderr
    );
    assert_eq!(std::fs::read(dest.join("fine")).unwrap(), b"untouched");
    let json = ore.run(&[
        "--json",
        "restore",
        "t",
        d.path().join("again").to_str().unwrap(),
    ]);
    assert_eq!(json.code, 1);
    let v: serde_json::Value = serde_json::from_str(json.stdout.trim()).unwrap();
    assert_eq!(v["restored"]["damaged"].as_array().unwrap().len(), 5, "{v}");
}

#[test]
fn a_truncated_splitlog_log_is_reported_block_by_block_naming_the_log_and_offset() {
    let (ore, d) = Ore::local();
    let src = d.path().join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("a"), bytes(7, 400_000)).unwrap();
    ore.snapshot("t", &src);
    let log = d.path().join("archive/log-000001");
    // Cut the log inside the data: the snapshot's record and the reflog's after it are gone.
    let len = std::fs::metadata(&log).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&log)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    let r = ore.run(&["check", "--read-data"]);
    assert_eq!(r.code, 1, "check: {}\n{}", r.stdout, r.stderr);
    let blocks: Vec<&str> = r
        .stdout
        .lines()
        .filter(|l| l.starts_with("block "))
        .collect();
    assert!(
        blocks.len() >= 2,
        "the snapshot and the reflog are reported, each on its own: {}\n{}",
        r.stdout,
        r.stderr
    );
    for l in &blocks {
        assert!(
            l.contains("log-000001") && l.contains("offset"),
            "each names its log and offset: {l}"
        );
    }
    assert!(
        r.stdout.contains("(snapshot or chain link)")
            && r.stdout.contains("t~0 (the snapshot itself)"),
        "{}",
        r.stdout
    );
    let r = ore.restore("t", &d.path().join("dest"));
    assert_eq!(r.code, 1, "restore: {}", r.stderr);
    assert!(
        r.stderr.contains("log-000001") && r.stderr.contains("snapshot"),
        "{}",
        r.stderr
    );
}

/// Flips one byte in the middle of a backend-fs block file.
fn flip_block_file(fsdir: &std::path::Path, key: &str) {
    let path = fsdir
        .join("blocks")
        .join(&key[..2])
        .join(&key[2..4])
        .join(key);
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x10;
    std::fs::write(&path, &bytes).unwrap();
}

/// Bug: a snapshot named by its whole key whose block was damaged was reported as "no tag or
/// snapshot called KEY", sending the user looking for a typo instead of at the damage.
#[test]
fn a_damaged_snapshot_named_by_its_key_is_reported_as_damaged_not_as_unknown() {
    let d = ore_tests::ore::scratch();
    let fsdir = d.path().join("fs");
    let ore = ore_tests::ore::Ore::fs(&fsdir);
    let src = d.path().join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("a"), b"hello").unwrap();
    let key = ore.snapshot("t", &src);
    flip_block_file(&fsdir, &key);
    let r = ore.restore(&key, &d.path().join("out"));
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        !r.stderr.contains("no tag or snapshot called")
            && r.stderr.contains("cannot be read as a snapshot")
            && r.stderr.contains(&key),
        "{}",
        r.stderr
    );
}

/// The format record holds the key slots: its loss is named as such, with the way back, not
/// as a bare damaged block. (Here this machine has no copy of it either: see below.)
#[test]
fn a_damaged_format_record_is_named_as_the_loss_of_the_archives_keys() {
    let d = ore_tests::ore::scratch();
    let fsdir = d.path().join("fs");
    let ore = ore_tests::ore::Ore::fs(&fsdir);
    let src = d.path().join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("a"), b"hello").unwrap();
    ore.snapshot("t", &src);
    let format = std::fs::read_to_string(fsdir.join("tags/ore:format")).unwrap();
    let format = format.trim();
    flip_block_file(&fsdir, format);
    std::fs::remove_dir_all(ore.cache.join("ore/format")).unwrap();
    let r = ore.run(&["check"]);
    assert_eq!(r.code, 1, "{r:?}");
    for what in ["its format record", format, "key slots", "from a copy"] {
        assert!(r.stderr.contains(what), "{what:?} in: {}", r.stderr);
    }
}

/// Bug: the format record lived in one place, so deleting the splitlog log that held it (the
/// first) made every snapshot undecryptable, even those whose blocks are all in other logs.
/// Every run keeps a copy on its machine; a run that finds the archive's copy lost checks the
/// local one against the key, uses it, and stores it in the archive again.
#[test]
fn a_lost_format_record_is_replaced_from_this_machines_copy_and_stored_again() {
    let d = ore_tests::ore::scratch();
    let dir = d.path().join("arch");
    let ore = ore_tests::ore::Ore::new(dir.display().to_string());
    ore.run(&["init"]).expect(0, "init");
    // Small logs: each snapshot of a 900 kB file fills one of its own.
    let set = std::process::Command::new(ore_tests::bin("ore-admin"))
        .arg(&dir)
        .args(["set-max-log-size", "1048576"])
        .output()
        .unwrap();
    assert!(set.status.success(), "{set:?}");
    let src = d.path().join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("a"), ore_tests::trees::bytes(1, 900_000)).unwrap();
    ore.snapshot("t", &src);
    std::fs::write(src.join("a"), ore_tests::trees::bytes(2, 900_000)).unwrap();
    let newer = ore.snapshot("t", &src);
    std::fs::remove_file(dir.join("log-000001")).unwrap();
    let out = d.path().join("out");
    let r = ore.restore(&newer, &out);
    assert!(
        r.stderr.contains("using this machine's copy")
            && r.stderr.contains("stored in the archive again"),
        "{r:?}"
    );
    assert_eq!(
        std::fs::read(out.join("a")).unwrap(),
        ore_tests::trees::bytes(2, 900_000)
    );
    // Stored again: a machine without the copy opens the archive too.
    std::fs::remove_dir_all(ore.cache.join("ore/format")).unwrap();
    let r = ore
        .restore(&newer, &d.path().join("out2"))
        .expect(0, "restore without the local copy");
    assert!(!r.stderr.contains("format record"), "{r:?}");
}

/// A large file's chunks are opened on the pool while the chunks before them are written, by
/// one thread, in order: one damaged chunk in the middle of it leaves a hole of exactly its
/// length where it belonged, every other byte lands where it was, and the file is named.
#[test]
fn a_damaged_chunk_inside_a_large_file_leaves_only_its_own_range_empty() {
    let d = scratch();
    let fsdir = d.path().join("fs");
    let ore = Ore::fs(&fsdir);
    let src = d.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    // About 40 chunks: ten batches of them, opened and written in turn.
    let data = bytes(9, 10_000_000);
    std::fs::write(src.join("big"), &data).unwrap();
    ore.snapshot("t", &src);
    let index = key_of(&ore, "big", "index");
    // The chunks are the large blocks other than the index; the one whose name sorts in the
    // middle is damaged (where it lies in the file is found from the restore below).
    let mut chunks: Vec<(String, std::path::PathBuf)> = std::fs::read_dir(fsdir.join("blocks"))
        .unwrap()
        .flat_map(|a| std::fs::read_dir(a.unwrap().path()).unwrap())
        .flat_map(|b| std::fs::read_dir(b.unwrap().path()).unwrap())
        .map(|f| f.unwrap().path())
        .filter(|p| std::fs::metadata(p).unwrap().len() > 100_000)
        .map(|p| (p.file_name().unwrap().to_str().unwrap().to_string(), p))
        .filter(|(k, _)| *k != index)
        .collect();
    chunks.sort();
    assert!(chunks.len() >= 20, "{} chunks", chunks.len());
    flip_byte_in(&chunks[chunks.len() / 2].1, 1000);

    let dest = d.path().join("dest");
    let r = ore.restore("t", &dest);
    assert_eq!(r.code, 1, "restore: {}", r.stderr);
    assert!(
        r.stderr
            .lines()
            .any(|l| l.contains("dest/big") && l.contains("not fully restored")),
        "{}",
        r.stderr
    );
    let got = std::fs::read(dest.join("big")).unwrap();
    assert_eq!(got.len(), data.len());
    let differ: Vec<usize> = (0..data.len()).filter(|&i| got[i] != data[i]).collect();
    let (first, last) = (differ[0], differ[differ.len() - 1]);
    // One chunk's range (128 KiB to 1 MiB), all of it zeros; nothing else touched.
    assert!(
        differ.len() > 100_000 && last - first < 1 << 20,
        "{} bytes differ, from {first} to {last}",
        differ.len()
    );
    assert!(got[first..=last].iter().all(|&b| b == 0));
}
