//! A catalogue of many disks: `ore import --catalogue-only` records a tree's names, metadata
//! and content ids without its data, and `ore search --file` / `--name` answer "where is this
//! file?" across every catalogued disk and every stored object.

use ore_tests::archival::{import, tree};
use ore_tests::ore::Ore;
use std::io::Write;
use std::path::Path;

/// `ore --json search ARGS...`, parsed: one value per file found.
fn located(ore: &Ore, args: &[&str]) -> Vec<serde_json::Value> {
    let mut all = vec!["--json", "search"];
    all.extend_from_slice(args);
    let r = ore.run(&all).expect(0, &args.join(" "));
    ore_tests::archival::json_lines(&r.stdout)
}

/// `(tag, where it was, stored?)` of each file found, sorted.
fn places(found: &[serde_json::Value]) -> Vec<(String, String, bool)> {
    let mut v: Vec<(String, String, bool)> = found
        .iter()
        .map(|f| {
            (
                f["tag"].as_str().expect("tag").to_string(),
                f["origin"].as_str().expect("origin").to_string(),
                f["stored"].as_bool().expect("stored"),
            )
        })
        .collect();
    v.sort();
    v
}

/// A disk with a file of several chunks, a small file (bundled when stored), an empty file,
/// a sparse file and a hard link.
fn disk(dir: &Path) {
    tree(&dir.join("docs"), &[("Report.TXT", "the yearly report")]);
    std::fs::write(dir.join("big.bin"), ore_tests::trees::bytes(1, 6 << 20)).expect("big");
    std::fs::write(dir.join("docs/empty"), b"").expect("empty");
    let mut sparse = std::fs::File::create(dir.join("sparse.img")).expect("sparse");
    sparse.set_len(8 << 20).expect("set_len");
    sparse.write_all(b"a header").expect("header");
    std::fs::hard_link(dir.join("docs/Report.TXT"), dir.join("docs/again.txt")).expect("link");
}

/// `ore import disks DIR --catalogue-only --volume NAME`: the object's key.
fn catalogue(ore: &Ore, dir: &Path, name: &str) -> String {
    let dir = dir.to_str().unwrap();
    import(ore, &["disks", dir, "--catalogue-only", "--volume", name])
}

#[test]
fn a_catalogued_disk_and_stored_objects_answer_where_a_file_is_by_contents_and_by_name() {
    let (ore, d) = Ore::local();
    let usb = d.path().join("usb");
    disk(&usb);
    let key = catalogue(&ore, &usb, "USB-1 (2016)");
    // The same files, stored: as one directory object and as one object per file. Stored,
    // the small file is a slice of a bundle and the big and sparse ones are file indexes,
    // so their ids come from reading them again; they must match the catalogue's.
    let home = d.path().join("home");
    disk(&home);
    import(&ore, &["home", home.to_str().unwrap()]);
    ore.run(&["import", "each", home.to_str().unwrap(), "--each"])
        .expect(0, "import --each");

    for (file, rel) in [
        ("big.bin", "big.bin"),
        ("docs/Report.TXT", "docs/Report.TXT"),
        ("docs/empty", "docs/empty"),
        ("sparse.img", "sparse.img"),
    ] {
        let found = located(&ore, &["--file", home.join(file).to_str().unwrap()]);
        let mut want = vec![
            (
                "disks".to_string(),
                format!("{}/{rel}", usb.display()),
                false,
            ),
            (
                "each".to_string(),
                format!("{}/{rel}", home.display()),
                true,
            ),
            (
                "home".to_string(),
                format!("{}/{rel}", home.display()),
                true,
            ),
        ];
        if file == "docs/Report.TXT" {
            // The hard link is the same bytes under another name, on every tag.
            for (tag, root, stored) in [
                ("disks", &usb, false),
                ("each", &home, true),
                ("home", &home, true),
            ] {
                want.push((
                    tag.to_string(),
                    format!("{}/docs/again.txt", root.display()),
                    stored,
                ));
            }
            want.sort();
        }
        assert_eq!(places(&found), want, "{file}");
        let on_disk = found.iter().find(|f| f["tag"] == "disks").expect("disks");
        assert_eq!(on_disk["object"], key.as_str());
        assert_eq!(on_disk["volume"]["name"], "USB-1 (2016)");
        assert!(on_disk["volume"]["mount"].as_str().is_some(), "{on_disk}");
    }

    // One tag only, and nothing for bytes stored nowhere.
    let other = d.path().join("other.bin");
    std::fs::write(&other, ore_tests::trees::bytes(9, 1000)).expect("other");
    assert!(located(&ore, &["--file", other.to_str().unwrap()]).is_empty());
    let only = located(
        &ore,
        &["disks", "--file", home.join("big.bin").to_str().unwrap()],
    );
    assert_eq!(only.len(), 1);

    // By name: case folded, and a prefix with `*`.
    let named = located(&ore, &["--name", "report.txt"]);
    assert_eq!(named.len(), 3, "{named:?}");
    assert!(named.iter().all(|f| f["path"]
        .as_str()
        .is_some_and(|p| p.ends_with("Report.TXT"))));
    assert_eq!(located(&ore, &["disks", "--name", "spa*"]).len(), 1);
    assert_eq!(located(&ore, &["disks", "--name", "*"]).len(), 5);
    let text = ore
        .run(&["search", "disks", "--name", "big.bin"])
        .expect(0, "search --name");
    assert!(
        text.stdout.contains("catalogued on USB-1 (2016)"),
        "{}",
        text.stdout
    );
}

#[test]
fn restoring_a_catalogue_object_explains_that_the_data_is_not_there_and_names_the_disk() {
    let (ore, d) = Ore::local();
    let usb = d.path().join("usb");
    disk(&usb);
    let key = catalogue(&ore, &usb, "Old USB");
    let dest = d.path().join("out");
    let r = ore.run(&["restore", &key, dest.to_str().unwrap()]);
    let r = r.expect(1, "restore of a catalogue object");
    assert!(r.stderr.contains("catalogue object"), "{}", r.stderr);
    assert!(r.stderr.contains("Old USB"), "{}", r.stderr);
    assert!(r.stderr.contains(usb.to_str().unwrap()), "{}", r.stderr);
    assert!(!dest.exists(), "nothing is restored");
    // Its names and metadata are there; its bytes are not.
    let ls = ore.run(&["ls", &key, "-R"]).expect(0, "ls").stdout;
    for name in ["big.bin", "docs/Report.TXT", "sparse.img"] {
        assert!(ls.contains(name), "{ls}");
    }
    let cat = ore
        .run(&["cat", &format!("{key}:docs/Report.TXT")])
        .expect(1, "cat");
    assert!(cat.stderr.contains("docs/Report.TXT"), "{}", cat.stderr);
    assert!(cat.stderr.contains("not in the archive"), "{}", cat.stderr);
    // An empty file's bytes are known, catalogued or not.
    let empty = ore
        .run(&["cat", &format!("{key}:docs/empty")])
        .expect(0, "cat of an empty catalogued file");
    assert!(empty.stdout.is_empty());
    let props = ore.run(&["props", &key]).expect(0, "props").stdout;
    assert!(props.contains("catalogue Old USB"), "{props}");
    // 14 MiB of files catalogued, a few KiB stored.
    let size = ore_tests::archival::dir_size(&d.path().join("archive"));
    assert!(size < 256 << 10, "the archive holds {size} bytes");
    ore.run(&["check", "--read-data"]).expect(0, "check");
}

#[test]
fn a_replaced_or_forgotten_object_is_no_answer_and_a_long_file_list_outlives_gc() {
    let (ore, d) = Ore::local();
    let usb = d.path().join("usb");
    // More files than an object keeps in its own block: its list is an index of its own.
    let files: Vec<(String, String)> = (0..150)
        .map(|i| (format!("f{i:03}.txt"), format!("file number {i}")))
        .collect();
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(n, t)| (n.as_str(), t.as_str()))
        .collect();
    tree(&usb, &refs);
    let key = import(&ore, &["disks", usb.to_str().unwrap(), "--catalogue-only"]);
    ore.run(&["gc"]).expect(0, "gc");
    ore.run(&["check", "--read-data"])
        .expect(0, "check after gc");
    let one = located(&ore, &["--name", "f149.txt"]);
    assert_eq!(one.len(), 1);
    assert_eq!(one[0]["object"], key.as_str());

    // A new version answers instead of the old one, and shares its list.
    let newer = ore
        .run(&["props", &key, "--set", "comment=the blue stick"])
        .expect(0, "props --set")
        .stdout
        .trim()
        .to_string();
    let by_name = located(&ore, &["--name", "f0*"]);
    assert_eq!(by_name.len(), 100);
    assert!(by_name.iter().all(|f| f["object"] == newer.as_str()));
    let by_content = located(&ore, &["--file", usb.join("f007.txt").to_str().unwrap()]);
    assert_eq!(by_content.len(), 1);
    assert_eq!(by_content[0]["object"], newer.as_str());

    ore.run(&["forget", "disks", "--where", "comment~blue"])
        .expect(0, "forget");
    assert!(located(&ore, &["--name", "f0*"]).is_empty());
    ore.run(&["gc"]).expect(0, "gc");
    ore.run(&["check", "--read-data"])
        .expect(0, "check after forget");
}

#[test]
fn a_crafted_snapshot_with_a_catalogued_file_restores_the_rest_and_names_that_file() {
    use ore::core::entry::{Content, EntryKind};
    let (ore, d) = Ore::local();
    ore.run(&[
        "snapshot",
        "seed",
        d.path().join("archive").to_str().unwrap(),
    ])
    .expect(0, "a first snapshot");
    let repo = ore_tests::crafted::open(&ore);
    let ghost = ore_tests::crafted::entry(
        b"ghost",
        EntryKind::File {
            size: 5,
            content: Content::Catalogued {
                id: Some(protocol::Key([7; 32])),
            },
        },
    );
    let real = ore_tests::crafted::file(&repo, b"real", b"real bytes");
    let root = ore_tests::crafted::dir(&repo, b"root", vec![ghost, real]);
    ore_tests::crafted::snapshot(&repo, "crafted", root);
    drop(repo);
    let dest = d.path().join("out");
    let r = ore.run(&["restore", "crafted", dest.to_str().unwrap()]);
    assert_ne!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("ghost"), "{}", r.stderr);
    assert!(r.stderr.contains("not in the archive"), "{}", r.stderr);
    assert_eq!(
        std::fs::read(dest.join("real")).expect("the rest is restored"),
        b"real bytes"
    );
}

/// `ore search --file DIR`: each regular file under DIR with its copies, stored or
/// catalogued, or that it has none (it was refused; a newcomer asked what of a directory was
/// kept before deleting it). Symlinks are not followed; a file whose id is not computed is
/// named, and the run ends with warnings.
#[test]
fn search_file_of_a_directory_says_which_of_its_files_are_kept_and_which_are_not() {
    let (ore, d) = Ore::local();
    let kept = d.path().join("kept");
    tree(&kept, &[("a.txt", "alpha"), ("b.txt", "beta")]);
    let usb = d.path().join("usb");
    tree(&usb, &[("c.txt", "gamma")]);
    ore.run(&["import", "docs", kept.to_str().unwrap(), "--each"])
        .expect(0, "import");
    import(
        &ore,
        &[
            "disks",
            usb.to_str().unwrap(),
            "--catalogue-only",
            "--volume",
            "USB",
        ],
    );
    let probe = d.path().join("probe");
    tree(
        &probe,
        &[("a-copy.txt", "alpha"), ("new.txt", "kept nowhere")],
    );
    tree(&probe.join("deep"), &[("c.txt", "gamma")]);
    std::os::unix::fs::symlink(&kept, probe.join("link")).expect("symlink");
    let p = probe.to_str().unwrap();

    let files: Vec<serde_json::Value> = located(&ore, &["--file", p]);
    let name = |f: &serde_json::Value| f["file"].as_str().expect("file").to_string();
    let names: Vec<String> = files.iter().map(name).collect();
    let under = |n: &str| probe.join(n).display().to_string();
    assert_eq!(
        names,
        [under("a-copy.txt"), under("deep/c.txt"), under("new.txt")]
    );
    let copies = |i: usize| files[i]["copies"].as_array().expect("copies").clone();
    assert_eq!(copies(0).len(), 1);
    assert_eq!(copies(0)[0]["tag"], "docs");
    assert_eq!(copies(0)[0]["stored"], true);
    assert_eq!(
        copies(0)[0]["origin"],
        kept.join("a.txt").display().to_string()
    );
    assert_eq!(copies(1)[0]["tag"], "disks");
    assert_eq!(copies(1)[0]["volume"]["name"], "USB");
    assert!(copies(2).is_empty());

    let r = ore.run(&["search", "--file", p]).expect(0, "as text");
    assert!(
        r.stdout
            .lines()
            .any(|l| l == format!("{}  -  no stored or catalogued copy", under("new.txt"))),
        "{}",
        r.stdout
    );
    assert!(r.stderr.contains("2 of 3 file(s) under"), "{}", r.stderr);
    // On one tag only.
    let r = ore
        .run(&["--json", "search", "docs", "--file", p])
        .expect(0, "one tag");
    let files = ore_tests::archival::json_lines(&r.stdout);
    assert_eq!(
        files[1]["copies"].as_array().map(Vec::len),
        Some(0),
        "{}",
        r.stdout
    );

    // A file with more holes than are hashed is named, not looked up.
    let holes = std::fs::File::create(probe.join("holes")).expect("create");
    holes.set_len(3 << 30).expect("set_len");
    let r = ore
        .run(&["search", "--file", p])
        .expect(3, "a file not looked up");
    assert!(
        r.stdout
            .contains(&format!("{}  -  not looked up:", under("holes")))
            && r.stdout.contains("holes"),
        "{}",
        r.stdout
    );
}

#[test]
fn bad_catalogue_and_search_arguments_are_refused_by_name() {
    let (ore, d) = Ore::local();
    let usb = d.path().join("usb");
    tree(&usb, &[("a.txt", "a")]);
    let r = ore
        .run(&["import", "disks", usb.to_str().unwrap(), "--volume", "X"])
        .expect(1, "--volume alone");
    assert!(r.stderr.contains("--catalogue-only"), "{}", r.stderr);
    import(&ore, &["disks", usb.to_str().unwrap(), "--catalogue-only"]);
    let fifo = d.path().join("fifo");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let r = ore
        .run(&["search", "--file", fifo.to_str().unwrap()])
        .expect(1, "--file of a FIFO");
    assert!(r.stderr.contains(fifo.to_str().unwrap()), "{}", r.stderr);
    for name in ["a/b", "*.txt", "a?c"] {
        let r = ore.run(&["search", "--name", name]).expect(1, name);
        assert!(r.stderr.contains(name), "{}", r.stderr);
    }
    let r = ore
        .run(&["search", "nosuch", "--name", "a.txt"])
        .expect(1, "no such tag");
    assert!(r.stderr.contains("nosuch"), "{}", r.stderr);
    // Without a query, every current object; without a tag either, the usage.
    let r = ore.run(&["search", "disks"]).expect(0, "no query");
    assert_eq!(r.stdout.lines().count(), 1, "{}", r.stdout);
    let r = ore.run(&["search"]).expect(1, "no tag");
    assert!(r.stderr.contains("TAG [QUERY]"), "{}", r.stderr);
}

/// The files `ore --json diff A B` says differ by content.
fn content_changes(ore: &Ore, a: &str, b: &str) -> Vec<String> {
    let r = ore.run(&["--json", "diff", a, b]).expect(0, "diff");
    let mut out: Vec<String> = r
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("json"))
        .filter(|c| {
            c["what"]
                .as_array()
                .is_some_and(|w| w.iter().any(|w| w == "content"))
        })
        .map(|c| c["path"].as_str().expect("path").to_string())
        .collect();
    out.sort();
    out
}

#[test]
fn a_catalogue_compared_with_a_stored_copy_of_its_disk_differs_only_where_the_bytes_do() {
    let (ore, d) = Ore::local();
    let usb = d.path().join("usb");
    disk(&usb);
    let cat = catalogue(&ore, &usb, "USB-1");
    // Stored, the small file is a slice of a bundle, the big one several chunks, the sparse
    // one has holes: each compared with its catalogued id by its bytes.
    let stored = import(&ore, &["docs", usb.to_str().unwrap()]);
    assert_eq!(content_changes(&ore, &cat, &stored), Vec::<String>::new());
    assert_eq!(content_changes(&ore, &stored, &cat), Vec::<String>::new());
    // The same sizes, other bytes: those files, and only they, differ by content (the hard
    // link names its file on both sides, and is no file of its own).
    let mut big = ore_tests::trees::bytes(1, 6 << 20);
    big[5 << 20] ^= 1;
    std::fs::write(usb.join("big.bin"), big).expect("big");
    std::fs::write(usb.join("docs/Report.TXT"), "the yearly r3port").expect("report");
    let changed = import(&ore, &["docs", usb.to_str().unwrap()]);
    assert_eq!(
        content_changes(&ore, &cat, &changed),
        ["big.bin", "docs/Report.TXT"]
    );
    // Moved files are paired as renamed by their content ids, a file of several chunks too.
    std::fs::rename(usb.join("sparse.img"), usb.join("moved.img")).expect("mv");
    std::fs::rename(usb.join("docs/empty"), usb.join("docs/none")).expect("mv");
    let moved = import(&ore, &["docs", usb.to_str().unwrap()]);
    let r = ore.run(&["diff", &cat, &moved]).expect(0, "diff");
    assert!(
        r.stdout.lines().any(|l| l == "R sparse.img -> moved.img"),
        "{}",
        r.stdout
    );
}

/// `ore --json import disks DIR --catalogue-only --volume NAME`: the object's key (the one
/// the tag holds already when nothing changed) and how many files were read (hashed).
fn catalogue_read(ore: &Ore, dir: &Path, name: &str) -> (String, u64) {
    let dir = dir.to_str().unwrap();
    let r = ore
        .run(&[
            "--json",
            "import",
            "disks",
            dir,
            "--catalogue-only",
            "--volume",
            name,
        ])
        .expect(0, "catalogue");
    let v: serde_json::Value = serde_json::from_str(r.stdout.trim()).expect("json");
    let object = match v["objects"][0].is_null() {
        true => &v["unchanged"][0],
        false => &v["objects"][0],
    };
    let key = object["key"].as_str().expect("key").to_string();
    (key, v["files_read"].as_u64().expect("files_read"))
}

#[test]
fn cataloguing_a_disk_again_hashes_only_the_files_that_changed() {
    let (ore, d) = Ore::local();
    let usb = d.path().join("usb");
    disk(&usb);
    let (_, read) = catalogue_read(&ore, &usb, "USB-1");
    assert_eq!(
        read, 4,
        "every file hashed the first time (the hard link is its file)"
    );
    let (_, read) = catalogue_read(&ore, &usb, "USB-1");
    assert_eq!(read, 0, "nothing changed: nothing hashed again");
    // Listed as whose it is, so that `ore cache prune` can drop it with its archive.
    let list = ore.run(&["cache", "list"]).expect(0, "cache list").stdout;
    assert!(
        list.lines()
            .any(|l| l.contains(" catalogue ") && l.contains(&ore.archive)),
        "{list}"
    );
    // One file changed: only it is hashed, and its new contents are what the catalogue says.
    let mut big = ore_tests::trees::bytes(1, 6 << 20);
    big[1] ^= 1;
    std::fs::write(usb.join("big.bin"), &big).expect("big");
    let (latest, read) = catalogue_read(&ore, &usb, "USB-1");
    assert_eq!(read, 1);
    let probe = d.path().join("probe.bin");
    std::fs::write(&probe, &big).expect("probe");
    let found = located(&ore, &["disks", "--file", probe.to_str().unwrap()]);
    assert!(
        found
            .iter()
            .any(|f| f["object"].as_str() == Some(latest.as_str())),
        "the latest catalogue knows the new contents: {found:?}"
    );
}

#[test]
fn a_catalogue_cache_planted_as_the_file_cache_never_makes_a_snapshot_without_data() {
    let (ore, d) = Ore::local();
    let usb = d.path().join("usb");
    disk(&usb);
    catalogue_read(&ore, &usb, "USB-1");
    // The catalogue's cache, whose entries hold content ids, put where the snapshot's file
    // cache belongs: it is believed as a cache, but none of its entries may stand for a
    // stored file.
    let dir = ore.cache.join("ore");
    let named = |prefix: &str| {
        std::fs::read_dir(&dir)
            .expect("cache dir")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| {
                let n = p.file_name().unwrap_or_default().to_string_lossy();
                n.starts_with(prefix) && n.ends_with(".db")
            })
    };
    let planted = named("catalogue-").expect("a catalogue cache");
    let id = planted.file_name().unwrap().to_string_lossy()["catalogue-".len()..].to_string();
    std::fs::copy(&planted, dir.join(format!("files-{id}"))).expect("plant");
    let snap = ore.snapshot("usb", &usb);
    let out = d.path().join("out");
    ore.run(&["restore", &snap, out.to_str().unwrap()])
        .expect(0, "restore");
    for f in ["big.bin", "docs/Report.TXT", "sparse.img"] {
        assert_eq!(
            std::fs::read(out.join(f)).expect(f),
            std::fs::read(usb.join(f)).expect(f),
            "{f} was stored, not taken from the catalogue's cache"
        );
    }
    ore.run(&["check", "--read-data"]).expect(0, "check");
}
