//! Browsing an archive tag by property: `ore explore` and a real FUSE mount (`ore mount`,
//! needs fuse3) show `by-key/`, `by-PROP/VALUE/` and narrowing `by-OTHER/` levels, read from
//! the tag's index, beside the snapshot tags.

use ore_tests::archival::{found, import, tree};
use ore_tests::fuse::{mount, tool, wait_exit, Unmount};
use ore_tests::ore::Ore;
use std::path::Path;

/// An archive tag `music` of three objects by two creators, and a snapshot tag `home`.
fn music() -> (Ore, tempfile::TempDir, Vec<String>) {
    let (ore, d) = Ore::local();
    let p = d.path();
    let mut keys = Vec::new();
    for (name, creator, tags) in [
        ("prelude", "Bach", "tags=baroque,keys"),
        ("fugue", "Bach", "tags=baroque"),
        ("nocturne", "Chopin / Frédéric", "tags=romantic,keys"),
    ] {
        tree(&p.join(name), &[("score.txt", name)]);
        let c = format!("creator={creator}");
        keys.push(import(
            &ore,
            &[
                "music",
                p.join(name).to_str().unwrap(),
                "--set",
                &c,
                "--set",
                tags,
            ],
        ));
    }
    ore.snapshot("home", &p.join("prelude"));
    (ore, d, keys)
}

#[test]
fn explore_shows_an_archive_tag_by_key_and_by_property_narrowed_level_by_level() {
    let (ore, _d, keys) = music();
    let r = ore.explore(
        "ls\ncd music\nls\nls by-creator\nls by-creator/bach\nls by-creator/bach/by-tags\nls by-creator/bach/by-tags/keys\nls by-creator/bach/by-creator\n",
        None,
    );
    // One command fails, the last: a property already narrowed by is not one to narrow by
    // again.
    assert_eq!(
        r.stderr.trim(),
        "by-creator: no such file or directory",
        "{}",
        r.stderr
    );
    let out = r.stdout;
    for want in [
        "home/",
        "music/",
        "by-key/",
        "by-creator/",
        "by-tags/",
        "bach/",
        "keys/",
    ] {
        assert!(out.contains(want), "{want} missing from:\n{out}");
    }
    // A `/` in a value is written %2F: a value is one directory.
    assert!(out.contains("chopin %2F frédéric/"), "{out}");
    // Narrowed to Bach and then to keys: the prelude alone (the by-tags level under a
    // value is reached by name; it is not listed, so `find` meets each object once).
    let last = out.rsplit("keys/\n").next().expect("listing");
    assert!(last.contains(&keys[0]) && !last.contains(&keys[1]), "{out}");
    // Into an object: its tree.
    let r = ore.explore(&format!("cd music/by-key/{}\nls\n", keys[2]), None);
    assert!(r.stdout.contains("score.txt"), "{}{}", r.stdout, r.stderr);
    // Listed long, each is an object and counts its files (it said "snapshot", "0 files").
    let r = ore.explore("ls -l music/by-key\n", None);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}{}", r.stdout, r.stderr);
    for line in lines {
        assert!(
            line.starts_with("object ") && line.contains(" 1 files "),
            "{line}"
        );
    }
}

#[test]
fn explore_info_inside_an_object_describes_the_object_not_a_snapshot_made_of_it() {
    let (ore, d, keys) = music();
    // A new version of the nocturne: its info names the version it replaces.
    let newer = import(
        &ore,
        &[
            "music",
            d.path().join("nocturne").to_str().unwrap(),
            "--replace",
            &keys[2],
            "--set",
            "title=Nocturne in E-flat",
        ],
    );
    let r = ore.explore(
        &format!("info music/by-key/{newer}\ninfo music/by-key/{newer}/score.txt\n"),
        None,
    );
    assert_eq!(r.stderr, "", "{}", r.stderr);
    let want = ore.run(&["props", &newer]).expect(0, "props").stdout;
    // The same description as `ore props`, for the object and for a file inside it.
    assert_eq!(r.stdout, format!("{want}{want}"));
    assert!(want.contains(&format!("replaces  {}", keys[2])), "{want}");
    assert!(want.contains("title     Nocturne in E-flat"), "{want}");
    // The tag's own info counts its objects (it said "0 snapshot(s)").
    let r = ore.explore("info music\ninfo music/by-creator\n", None);
    let line = "archive tag music: 3 current object(s), 4 with the versions they replaced\n";
    assert_eq!(r.stdout, line.repeat(2), "{}", r.stderr);
    // A snapshot's info is as before.
    let r = ore.explore("info home/current\n", None);
    assert!(r.stdout.starts_with("snapshot  "), "{}", r.stdout);
}

#[test]
fn a_mounted_archive_tag_lists_objects_by_property_and_find_reads_them() {
    assert!(
        tool(&["fusermount3", "-V"]).code == 0,
        "fusermount3 is missing: install fuse3 (apt-get install fuse3)"
    );
    let (ore, d, keys) = music();
    let mnt = d.path().join("mnt");
    std::fs::create_dir(&mnt).expect("mkdir");
    let _guard = Unmount(&mnt);
    let child = mount(&ore, &mnt, &[]);
    // An object by its key, on a fresh mount, before anything lists `by-key/`.
    let nocturne = mnt.join("music/by-key").join(&keys[2]).join("score.txt");
    assert_eq!(std::fs::read(&nocturne).expect("by key"), b"nocturne");
    // The narrowing levels are reached by name through the mount too.
    let narrowed = mnt.join("music/by-creator/bach/by-tags/keys");
    let names: Vec<String> = std::fs::read_dir(&narrowed)
        .expect("a narrowing level is reached")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, [keys[0].clone()]);
    // A link two levels down climbs four, and its size is its target's length.
    let deep = narrowed.join(&keys[0]);
    let target = std::fs::read_link(&deep).expect("a link");
    assert_eq!(target, Path::new("../../../../by-key").join(&keys[0]));
    let meta = std::fs::symlink_metadata(&deep).expect("lstat");
    assert_eq!(meta.len(), target.as_os_str().len() as u64);
    // A link looked up by name before its directory is listed has the inode it is then
    // listed with.
    {
        use std::os::unix::fs::{DirEntryExt, MetadataExt};
        let bach = mnt.join("music/by-creator/bach");
        let looked = std::fs::symlink_metadata(bach.join(&keys[1])).expect("lstat first");
        let listed: Vec<(String, u64)> = std::fs::read_dir(&bach)
            .expect("bach lists")
            .map(|e| {
                let e = e.expect("entry");
                (e.file_name().to_string_lossy().into_owned(), e.ino())
            })
            .collect();
        assert_eq!(listed.len(), 2, "{listed:?}");
        for (name, ino) in &listed {
            let m = std::fs::symlink_metadata(bach.join(name)).expect("lstat");
            assert_eq!(m.ino(), *ino, "{name}: the inode it is listed with");
            assert!(m.file_type().is_symlink(), "{name}");
        }
        assert!(listed
            .iter()
            .any(|(n, ino)| *n == keys[1] && *ino == looked.ino()));
        let r = std::fs::symlink_metadata(bach.join("0".repeat(64)));
        assert!(r.is_err(), "no object of that key below bach");
        // Only the names it lists: the key in capitals is no name there.
        let r = std::fs::symlink_metadata(bach.join(keys[1].to_uppercase()));
        assert!(r.is_err(), "a name bach does not list");
    }
    let by = mnt.join("music/by-creator");
    // Regression: an archive tag's directories showed 1970 as their time; they show when
    // its head was made (this test's imports, moments ago).
    for dir in [mnt.join("music"), by.clone(), mnt.join("music/by-key")] {
        let t = std::fs::metadata(&dir)
            .and_then(|m| m.modified())
            .expect("mtime");
        let age = std::time::SystemTime::now()
            .duration_since(t)
            .expect("not ahead");
        assert!(age.as_secs() < 3600, "{}: {age:?} old", dir.display());
    }
    let mut creators: Vec<String> = std::fs::read_dir(&by)
        .expect("by-creator lists")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    creators.sort();
    assert_eq!(creators, ["bach", "chopin %2F frédéric"]);
    // Each object once, as a link to its place in by-key/: `find` lists them without
    // walking into their trees, and `find -L` reads through them.
    let r = tool(&["find", by.to_str().unwrap(), "-type", "l"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout.lines().count(), 3, "{}", r.stdout);
    let link = std::fs::read_link(by.join("bach").join(&keys[1])).expect("a link");
    assert_eq!(link, Path::new("../../by-key").join(&keys[1]));
    let r = tool(&["find", "-L", by.to_str().unwrap(), "-name", "score.txt"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout.lines().count(), 3, "{}", r.stdout);
    let fugue = by.join("bach").join(&keys[1]).join("score.txt");
    assert_eq!(
        std::fs::read(&fugue).expect("read through the mount"),
        b"fugue"
    );
    // Every object by key; the snapshot tag beside it as before.
    assert_eq!(
        std::fs::read_dir(mnt.join("music/by-key"))
            .expect("by-key")
            .count(),
        3
    );
    assert!(mnt.join("home/current").exists());
    // Read-only, like the rest of the mount.
    assert!(std::fs::write(by.join("bach").join("new"), b"x").is_err());
    let r = tool(&["fusermount3", "-u", mnt.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    wait_exit(child, "after fusermount3 -u");
}

#[test]
fn a_text_that_reads_as_a_number_is_quoted_apart_from_a_number_and_long_values_fit_a_name() {
    let (ore, d) = Ore::local();
    let p = d.path();
    let long = "%".repeat(400);
    let mut keys = Vec::new();
    for (name, set) in [
        ("a", "n:int=5".to_string()),
        ("b", "m:text=5".to_string()),
        ("c", format!("w={long}")),
    ] {
        tree(&p.join(name), &[("f", name)]);
        keys.push(import(
            &ore,
            &["t", p.join(name).to_str().unwrap(), "--set", &set],
        ));
    }
    let r = ore.explore(
        "cd t\nls by-n\nls by-n/5\nls by-m\nls \"by-m/'5'\"\nls by-w\n",
        None,
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let out = r.stdout;
    let after = |marker: &str| out.split(marker).nth(1).unwrap_or_default().to_string();
    assert!(after("5/\n").starts_with(&keys[0]), "the number 5: {out}");
    assert!(
        after("'5'/\n").starts_with(&keys[1]),
        "the text 5, quoted: {out}"
    );
    let long_name = out
        .lines()
        .find(|l| l.starts_with("%25"))
        .expect("the long value is listed");
    assert!(long_name.len() <= 201, "{long_name}");
    let r = ore.explore(
        &format!(
            "cd t/by-w\ncd \"{}\"\nls\n",
            long_name.trim_end_matches('/')
        ),
        None,
    );
    assert!(r.stdout.contains(&keys[2]), "{}{}", r.stdout, r.stderr);
}

/// The object keys each value directory under `by` holds, as `find` lists their links.
fn links_by_value(by: &Path) -> std::collections::BTreeMap<String, Vec<String>> {
    let r = tool(&["find", by.to_str().unwrap(), "-type", "l"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let mut out = std::collections::BTreeMap::<String, Vec<String>>::new();
    for line in r.stdout.lines() {
        let rel = Path::new(line).strip_prefix(by).expect("below");
        let parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into()).collect();
        let [value, key] = parts.as_slice() else {
            panic!("{line}: a link right below a value");
        };
        out.entry(value.clone()).or_default().push(key.clone());
    }
    out.values_mut().for_each(|keys| keys.sort());
    out
}

#[test]
fn values_read_ahead_of_a_find_list_what_a_search_finds_in_any_order_they_are_asked_for() {
    assert!(
        tool(&["fusermount3", "-V"]).code == 0,
        "fusermount3 is missing: install fuse3 (apt-get install fuse3)"
    );
    let (ore, d) = Ore::local();
    // Six creators of eight objects each (one per file, `--each`), three tags among them.
    for c in 0..6 {
        let dir = d.path().join(format!("c{c}"));
        let files: Vec<(String, String)> = (0..8)
            .map(|i| (format!("f{i}"), format!("creator {c}, file {i}")))
            .collect();
        let files: Vec<(&str, &str)> = files.iter().map(|(n, t)| (&n[..], &t[..])).collect();
        tree(&dir, &files);
        let (creator, tags) = (format!("creator=c{c}"), format!("tags=t{},all", c % 3));
        let src = dir.to_str().unwrap();
        let args = [
            "import", "works", src, "--each", "--set", &creator, "--set", &tags,
        ];
        ore.run(&args).expect(0, "import --each");
    }
    // What a search finds, asked before the mount holds the archive.
    let creators: Vec<String> = (0..6).map(|c| format!("c{c}")).collect();
    let by_creator: Vec<Vec<String>> = (creators.iter())
        .map(|c| found(&ore, "works", &format!("creator={c}")))
        .collect();
    let with_t0: Vec<Vec<String>> = ["c0", "c3"]
        .iter()
        .map(|c| found(&ore, "works", &format!("tags:t0 and creator={c}")))
        .collect();
    let mnt = d.path().join("mnt");
    std::fs::create_dir(&mnt).expect("mkdir");
    let _guard = Unmount(&mnt);
    let fresh_mount = || {
        let child = mount(&ore, &mnt, &[]);
        let by = mnt.join("works/by-creator");
        (child, by)
    };
    let unmount = |child| {
        let r = tool(&["fusermount3", "-u", mnt.to_str().unwrap()]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        wait_exit(child, "after fusermount3 -u");
    };
    // `find` walks the values in the order they are listed, as they are read ahead.
    let (child, by) = fresh_mount();
    let listed = links_by_value(&by);
    assert_eq!(
        listed.keys().collect::<Vec<_>>(),
        creators.iter().collect::<Vec<_>>()
    );
    for (keys, expected) in listed.values().zip(&by_creator) {
        assert_eq!(keys.len(), 8);
        assert_eq!(keys, expected);
    }
    // Narrowed first by a tag: the values read ahead are those of its objects alone.
    let narrowed = links_by_value(&mnt.join("works/by-tags/t0/by-creator"));
    assert_eq!(narrowed.keys().collect::<Vec<_>>(), ["c0", "c3"]);
    assert_eq!(narrowed.values().cloned().collect::<Vec<_>>(), with_t0);
    unmount(child);
    // On a fresh mount, the last value first, then the first, then one between: each lists
    // what it listed in order.
    let (child, by) = fresh_mount();
    assert_eq!(std::fs::read_dir(&by).expect("by-creator").count(), 6);
    for value in ["c5", "c0", "c2", "c1"] {
        let mut keys: Vec<String> = std::fs::read_dir(by.join(value))
            .expect("a value lists")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        keys.sort();
        assert_eq!(keys, listed[value], "{value}");
    }
    unmount(child);
}
