//! An object of `--each` is its file: no directory block is stored for it (format 6), yet
//! every reader shows it as a directory holding the file, gc keeps its data, and dump, load
//! and sync carry it.

use ore_tests::archival::{found, import};
use ore_tests::ore::Ore;
use ore_tests::trees::bytes;
use std::path::Path;

/// A tiny file (kept in a shared chunk), one of a few chunks, and one with a chunk index.
fn files(src: &Path) -> Vec<(&'static str, Vec<u8>)> {
    let files = vec![
        ("tiny.txt", b"a few bytes".to_vec()),
        ("mid.bin", bytes(1, 300 << 10)),
        ("big.bin", bytes(2, 6 << 20)),
    ];
    std::fs::create_dir_all(src.join("sub")).expect("mkdir");
    for (name, data) in &files {
        std::fs::write(src.join("sub").join(name), data).expect("write");
    }
    files
}

/// The number of blocks `ore gc` finds reachable (it runs gc).
fn reachable(ore: &Ore) -> u64 {
    let r = ore.run(&["gc"]).expect(0, "gc");
    let line = r.stdout.lines().find(|l| l.contains(" reachable of "));
    let n = line.and_then(|l| l.split_whitespace().next()?.parse().ok());
    n.unwrap_or_else(|| panic!("no count in {r:?}"))
}

/// Whether every object on `docs` has its file as its root, read with the library (else each
/// has a directory, stored, around its file).
fn roots_are_files(ore: &Ore) -> bool {
    let keys = found(ore, "docs", "size>=0");
    assert!(!keys.is_empty());
    let repo = ore_tests::crafted::open(ore);
    let is_file = |k: &String| {
        let key: protocol::Key = k.parse().expect("a key");
        let o: ore::core::archival::Object = repo
            .get(key, ore::core::block::Kind::Object)
            .expect("an object");
        matches!(o.root.kind, ore::core::entry::EntryKind::File { .. })
    };
    let files = keys.iter().filter(|k| is_file(k)).count();
    assert!(
        files == 0 || files == keys.len(),
        "{files} of {}",
        keys.len()
    );
    files == keys.len()
}

/// Each object restored from `ore` holds its file's bytes, under its name, alone.
fn restores_each(ore: &Ore, dir: &Path, files: &[(&str, Vec<u8>)]) {
    for (name, data) in files {
        let keys = found(ore, "docs", &format!("name={name}"));
        assert_eq!(keys.len(), 1, "{name}");
        let ls = ore.run(&["ls", &keys[0]]).expect(0, "ls").stdout;
        assert_eq!(ls.trim(), *name);
        let out = dir.join(format!("out-{name}"));
        ore.restore(&keys[0], &out).expect(0, "restore");
        assert_eq!(&std::fs::read(out.join(name)).expect("restored"), data);
        assert_eq!(std::fs::read_dir(&out).expect("dest").count(), 1);
        let cat = ore
            .cmd(&["cat", &format!("{}:{name}", keys[0])])
            .output()
            .expect("cat runs");
        assert_eq!(&cat.stdout, data, "cat {name}");
    }
}

#[test]
fn gc_keeps_the_data_of_objects_that_are_their_file_and_a_format_5_archive_stores_their_directory()
{
    let (ore, d) = Ore::local();
    let src = d.path().join("src");
    let files = files(&src);
    import(&ore, &["docs", src.to_str().unwrap(), "--each"]);
    // The source goes: only the objects name the data now, and gc must follow them to it.
    std::fs::remove_dir_all(&src).expect("rm");
    reachable(&ore);
    ore.run(&["check", "--read-data"]).expect(0, "check");
    restores_each(&ore, d.path(), &files);

    // An archive of format 5, which older ores read, gets the directory of each stored.
    let older = Ore::new(d.path().join("older").display().to_string());
    older
        .run(&["init", "--format-version", "5"])
        .expect(0, "init of format 5");
    let src = d.path().join("src5");
    let files = self::files(&src);
    import(&older, &["docs", src.to_str().unwrap(), "--each"]);
    std::fs::remove_dir_all(&src).expect("rm");
    reachable(&older);
    assert!(roots_are_files(&ore) && !roots_are_files(&older));
    older.run(&["check", "--read-data"]).expect(0, "check");
    restores_each(&older, &d.path().join("o5"), &files);
}

#[test]
fn objects_that_are_their_file_sync_and_load_under_the_same_keys_and_into_other_keys() {
    let (ore, d) = Ore::local();
    let src = d.path().join("src");
    let files = files(&src);
    import(&ore, &["docs", src.to_str().unwrap(), "--each"]);
    let keys = |o: &Ore| {
        let mut k = found(o, "docs", "size>=0");
        k.sort();
        k
    };
    let twin = Ore::new(d.path().join("twin").display().to_string());
    twin.run(&["init", "--from", &ore.archive])
        .expect(0, "init --from");
    ore.run(&["sync", "--to", &twin.archive]).expect(0, "sync");
    assert_eq!(keys(&ore).len(), files.len());
    assert_eq!(keys(&twin), keys(&ore), "the same objects, by key");
    twin.run(&["check", "--read-data"]).expect(0, "check");
    restores_each(&twin, &d.path().join("t"), &files);

    let other = Ore::new(d.path().join("other").display().to_string());
    other.run(&["init"]).expect(0, "init");
    let dump = ore.cmd(&["dump", "docs"]).output().expect("dump runs");
    assert!(dump.status.success(), "{dump:?}");
    ore_tests::dumps::load(&other, "docs", &dump.stdout).expect(0, "load");
    assert_eq!(keys(&other).len(), files.len());
    other.run(&["check", "--read-data"]).expect(0, "check");
    reachable(&other);
    restores_each(&other, &d.path().join("x"), &files);
}

#[test]
fn a_crafted_object_whose_file_is_named_out_of_its_directory_is_refused_by_every_reader() {
    use ore::core::archival::{Object, Prop, Value};
    let (ore, d) = Ore::local();
    let repo = ore_tests::crafted::open(&ore);
    let mut keys = Vec::new();
    for name in [&b"../evil"[..], b"a/b", b".."] {
        let object = Object {
            root: ore_tests::crafted::file(&repo, name, b"payload"),
            props: vec![Prop {
                key: "title".into(),
                value: Value::Text("crafted".into()),
            }],
            imported_ns: 1,
            host: "crafted".into(),
            user: "crafted".into(),
            source: b"/crafted".to_vec(),
            parent: None,
            size: 7,
            files: Default::default(),
            catalogue: None,
        };
        let plain = ore::core::entry::encode(&object);
        let (key, _) = repo
            .put_block(ore::core::block::Kind::Object, &plain)
            .expect("put");
        ore::commands::import::file(&repo, "bad", &[(key, object)]).expect("filed");
        keys.push(key.to_hex());
    }
    drop(repo);
    let dest = d.path().join("in/out");
    for key in &keys {
        let r = ore.restore(key, &dest);
        assert_ne!(r.code, 0, "{r:?}");
        assert!(r.stderr.contains("corrupt"), "{}", r.stderr);
        for args in [vec!["ls", key], vec!["cat", key]] {
            let r = ore.run(&args);
            assert_ne!(r.code, 0, "{args:?}: {r:?}");
        }
    }
    // `ore check` names each crafted object, as it would the directory block it replaces.
    let r = ore.run(&["check"]);
    assert_ne!(r.code, 0, "{r:?}");
    for key in &keys {
        assert!(
            r.stdout.contains(key) || r.stderr.contains(key),
            "{key}: {r:?}"
        );
    }
    assert!(!d.path().join("in/evil").exists(), "written outside");
    assert!(!d.path().join("evil").exists(), "written outside");
}

#[test]
fn objects_that_are_their_file_synced_or_loaded_into_a_format_5_archive_get_their_directory() {
    let (ore, d) = Ore::local();
    let src = d.path().join("src");
    let files = files(&src);
    import(&ore, &["docs", src.to_str().unwrap(), "--each"]);
    let dump = ore.cmd(&["dump", "docs"]).output().expect("dump runs");
    assert!(dump.status.success(), "{dump:?}");
    for (how, name) in [("load", "loaded"), ("sync", "synced")] {
        let older = Ore::new(d.path().join(name).display().to_string());
        older
            .run(&["init", "--format-version", "5"])
            .expect(0, "init of format 5");
        match how {
            "load" => ore_tests::dumps::load(&older, "docs", &dump.stdout).expect(0, "load"),
            _ => ore.run(&["sync", "--to", &older.archive]).expect(0, "sync"),
        };
        // An ore of format 5 reaches the data of these objects: their directories are stored.
        assert!(!roots_are_files(&older), "{how}");
        reachable(&older);
        older.run(&["check", "--read-data"]).expect(0, "check");
        restores_each(&older, &d.path().join(format!("out-{name}")), &files);
    }
}

#[test]
fn an_unchanged_file_is_not_filed_again_whatever_metadata_its_stored_directory_has() {
    // Objects of `--each` made by an ore of format 5 had their parent directory's metadata
    // on the directory stored around each file; this ore makes that directory up. A file
    // that did not change was filed beside its object again when the two modes differed.
    use ore::core::archival::Object;
    use ore::core::entry::EntryKind;
    let d = tempfile::tempdir().expect("tempdir");
    let older = Ore::new(d.path().join("older").display().to_string());
    older
        .run(&["init", "--format-version", "5"])
        .expect(0, "init of format 5");
    let src = d.path().join("src");
    files(&src);
    import(&older, &["made", src.to_str().unwrap(), "--each"]);
    let keys = found(&older, "made", "size>=0");
    let repo = ore_tests::crafted::open(&older);
    let mut aged = Vec::new();
    for k in &keys {
        let key: protocol::Key = k.parse().expect("a key");
        let mut o: Object = repo
            .get(key, ore::core::block::Kind::Object)
            .expect("an object");
        assert!(matches!(o.root.kind, EntryKind::Dir { .. }));
        o.root.mode = 0o750;
        let plain = ore::core::entry::encode(&o);
        let (key, _) = repo
            .put_block(ore::core::block::Kind::Object, &plain)
            .expect("put");
        aged.push((key, o));
    }
    ore::commands::import::file(&repo, "docs", &aged).expect("filed");
    drop(repo);
    // A new small file beside the tiny one puts it in another bundle: its object's directory
    // differs, and the files themselves are compared.
    std::fs::write(src.join("sub/aa-new.txt"), "new").expect("write");
    let r = older
        .run(&["import", "docs", src.to_str().unwrap(), "--each"])
        .expect(0, "the tree again, one file more");
    assert_eq!(r.stdout.lines().count(), 1, "one new object: {r:?}");
    assert!(!r.stderr.contains("beside"), "{}", r.stderr);
    assert_eq!(
        r.stderr.matches("unchanged").count(),
        keys.len(),
        "{}",
        r.stderr
    );
}
