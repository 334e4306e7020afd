//! Archive tags through the archive's upkeep: `ore forget --where`, gc after it, `ore sync`
//! to an archive that shares keys (copied) or not (re-encrypted), and an archive of format 4
//! read as it is and changed only once upgraded.

use ore_tests::ore::Ore;
use std::path::Path;

fn import(ore: &Ore, tag: &str, path: &Path, set: &[&str]) -> String {
    let mut args = vec![tag, path.to_str().expect("utf-8")];
    for s in set {
        args.extend(["--set", s]);
    }
    ore_tests::archival::import(ore, &args)
}

fn found(ore: &Ore, tag: &str, query: &str) -> usize {
    ore_tests::archival::found(ore, tag, query).len()
}

#[test]
fn forget_where_removes_the_matching_objects_and_their_old_versions_and_gc_frees_their_data() {
    let (ore, d) = Ore::local();
    let p = d.path();
    for (name, seed) in [("keep", 1), ("scratch1", 2), ("scratch2", 3)] {
        std::fs::create_dir_all(p.join(name)).expect("mkdir");
        std::fs::write(
            p.join(name).join("data"),
            ore_tests::trees::bytes(seed, 1 << 20),
        )
        .expect("write");
    }
    import(&ore, "work", &p.join("keep"), &["title=Keeper"]);
    let s1 = import(&ore, "work", &p.join("scratch1"), &["tags=scratch"]);
    import(&ore, "work", &p.join("scratch2"), &["tags=scratch,old"]);
    // A newer version of scratch1: forgetting it forgets the version it replaced too.
    ore.run(&["props", &s1, "--set", "comment=v2"])
        .expect(0, "props");
    // By a query only: an archive tag is never forgotten by age.
    let r = ore.run(&["forget", "work", "--keep-last", "1"]);
    assert!(
        r.code == 1 && r.stderr.contains("forget takes --where QUERY"),
        "{}",
        r.stderr
    );
    let r = ore
        .run(&["forget", "work", "--where", "tags:scratch", "--dry-run"])
        .expect(0, "dry run");
    assert_eq!(
        r.stdout
            .lines()
            .filter(|l| l.starts_with("would forget"))
            .count(),
        2,
        "{}",
        r.stdout
    );
    assert_eq!(
        found(&ore, "work", "tags:scratch"),
        2,
        "a dry run changes nothing"
    );
    ore.run(&["forget", "work", "--where", "tags:scratch"])
        .expect(0, "forget");
    assert_eq!(found(&ore, "work", "tags:scratch"), 0);
    assert_eq!(found(&ore, "work", "title=keeper"), 1);
    let tags = ore.run(&["tags"]).expect(0, "tags").stdout;
    assert!(tags.contains("archive tag: 1 object(s)"), "{tags}");
    // A forgotten object, still stored until gc, is named as what it is, not as damage.
    let r = ore.run(&["ls", &s1]).expect(1, "ls of a forgotten object");
    assert!(
        r.stderr.contains("no archive tag lists") && !r.stderr.contains("corrupt"),
        "{}",
        r.stderr
    );
    // gc frees the forgotten objects' data once the reflog lets go of the heads naming them.
    let before = ore_tests::archival::dir_size(Path::new(&ore.archive));
    ore.run(&["gc", "--expire-reflog"]).expect(0, "gc");
    let freed = before.saturating_sub(ore_tests::archival::dir_size(Path::new(&ore.archive)));
    assert!(
        freed > (3 << 20) / 2,
        "the two forgotten trees' 2 MiB (compressed little) are freed: {freed} bytes"
    );
    ore.run(&["check", "--read-data"]).expect(0, "check");
    // A query on a snapshot tag is refused.
    ore.snapshot("home", &p.join("keep"));
    let r = ore.run(&["forget", "home", "--where", "title=x"]);
    assert!(
        r.code == 1 && r.stderr.contains("not an archive tag"),
        "{}",
        r.stderr
    );
}

#[test]
fn sync_copies_archive_tags_as_stored_between_archives_sharing_keys_and_re_encrypted_otherwise() {
    let (ore, d) = Ore::local();
    let p = d.path();
    std::fs::create_dir_all(p.join("doc")).expect("mkdir");
    std::fs::write(p.join("doc/a.txt"), "a document").expect("write");
    import(&ore, "docs", &p.join("doc"), &["title=A document"]);
    ore.snapshot("home", &p.join("doc"));
    let twin = Ore::new(p.join("twin").display().to_string());
    twin.run(&["init", "--from", &ore.archive])
        .expect(0, "init --from");
    let r = ore.run(&["sync", "--to", &twin.archive]).expect(0, "sync");
    assert!(
        r.stdout.contains("created  docs") && r.stdout.contains("created  home"),
        "{}",
        r.stdout
    );
    assert_eq!(found(&twin, "docs", "title~document"), 1);
    twin.run(&["check", "--read-data"]).expect(0, "check");
    // A second import follows on the next sync.
    import(&ore, "docs", &p.join("doc"), &["title=Another"]);
    let r = ore
        .run(&["sync", "--to", &twin.archive])
        .expect(0, "sync again");
    assert!(r.stdout.contains("moved  docs"), "{}", r.stdout);
    assert_eq!(found(&twin, "docs", "title~another"), 1);
    // Another archive's keys: the archive tag is re-encrypted object by object.
    let other = Ore::new(p.join("other").display().to_string());
    other.run(&["init"]).expect(0, "init");
    let r = ore
        .run(&["sync", "--to", &other.archive])
        .expect(0, "sync to other keys");
    assert!(
        r.stdout.contains("created  home") && r.stdout.contains("created  docs"),
        "{}",
        r.stdout
    );
    assert_eq!(found(&other, "docs", "title~document"), 1);
    assert_eq!(found(&other, "docs", "title~another"), 1);
    other.run(&["check", "--read-data"]).expect(0, "check");
    // Nothing new: the tag stays; a new version on the source follows, and replaces there.
    let r = ore
        .run(&["sync", "--to", &other.archive])
        .expect(0, "sync again");
    assert!(r.stdout.contains("unchanged  docs"), "{}", r.stdout);
    let key = ore
        .run(&["--json", "search", "docs", "title~another"])
        .expect(0, "search")
        .stdout;
    let v = ore_tests::archival::json_lines(&key);
    let key = v[0]["key"].as_str().expect("key").to_string();
    ore.run(&["props", &key, "--set", "title=Renamed"])
        .expect(0, "a new version");
    let r = ore
        .run(&["sync", "--to", &other.archive])
        .expect(0, "sync the new version");
    assert!(r.stdout.contains("moved  docs"), "{}", r.stdout);
    assert_eq!(found(&other, "docs", "title~renamed"), 1);
    assert_eq!(
        found(&other, "docs", "title~another"),
        0,
        "the old version left the searches"
    );
    let tags = other.run(&["tags"]).expect(0, "tags").stdout;
    assert!(tags.contains("2 object(s) (+1 replaced)"), "{tags}");
    other.run(&["check", "--read-data"]).expect(0, "check");
    // A catalogue cannot be carried: reported, the rest copied.
    std::fs::create_dir_all(p.join("usb")).expect("mkdir");
    std::fs::write(p.join("usb/x"), "x").expect("write");
    ore.run(&[
        "import",
        "disks",
        p.join("usb").to_str().unwrap(),
        "--catalogue-only",
    ])
    .expect(0, "catalogue");
    let r = ore
        .run(&["sync", "--to", &other.archive])
        .expect(3, "a catalogue to other keys");
    assert!(r.stdout.contains("skipped  disks"), "{}", r.stdout);
    assert!(!other
        .run(&["tags"])
        .expect(0, "tags")
        .stdout
        .contains("disks"));
}

#[test]
fn a_snapshot_onto_an_archive_tag_is_refused_before_it_reads_anything() {
    let (ore, d) = Ore::local();
    let p = d.path();
    std::fs::create_dir_all(p.join("doc")).expect("mkdir");
    std::fs::write(p.join("doc/a.txt"), "a document").expect("write");
    import(&ore, "docs", &p.join("doc"), &["title=A document"]);
    let tags = ore.run(&["tags"]).expect(0, "tags").stdout;
    let r = ore.run(&["snapshot", "docs", p.join("doc").to_str().unwrap()]);
    assert!(
        r.code == 1 && r.stderr.contains("docs is an archive tag"),
        "{}",
        r.stderr
    );
    assert_eq!(
        ore.run(&["tags"]).expect(0, "tags").stdout,
        tags,
        "the tag did not move"
    );
    assert_eq!(found(&ore, "docs", "title~document"), 1);
}

#[test]
fn long_tag_values_a_file_s_own_mtime_and_a_browsable_archive_beside_an_archive_tag() {
    let (ore, d) = Ore::local();
    let p = d.path();
    // A song whose title is longer than any index entry: imported, found by its words.
    let long = format!("TITLE={} prelude", "x".repeat(2000));
    let song = p.join("long.flac");
    std::fs::write(&song, ore_tests::media::flac(&[&long, "ARTIST=Bach"])).expect("write");
    let key = import(&ore, "music", &song, &[]);
    assert_eq!(found(&ore, "music", "title~prelude"), 1, "{key}");
    let r = ore.run(&[
        "import",
        "music",
        song.to_str().unwrap(),
        "--set",
        &format!("title={}", "y".repeat(5000)),
    ]);
    assert!(
        r.code == 1 && r.stderr.contains("at most 4096"),
        "{}",
        r.stderr
    );
    // A single file's mtime property is the file's own.
    let old = p.join("old.txt");
    std::fs::write(&old, "old").expect("write");
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(981_173_106); // 2001-02-03
    std::fs::File::options()
        .write(true)
        .open(&old)
        .expect("open")
        .set_modified(t)
        .expect("set mtime");
    import(&ore, "files", &old, &[]);
    assert_eq!(found(&ore, "files", "mtime<2002-01-01"), 1);
    // Two PATHs in one import: two objects, each filed.
    std::fs::create_dir_all(p.join("a")).expect("mkdir");
    std::fs::create_dir_all(p.join("b")).expect("mkdir");
    let two = ore
        .run(&[
            "import",
            "pair",
            p.join("a").to_str().unwrap(),
            p.join("b").to_str().unwrap(),
        ])
        .expect(0, "import two");
    assert_eq!(two.stdout.lines().count(), 2, "{}", two.stdout);
    assert_eq!(found(&ore, "pair", "not name=zzz"), 2);
    // Browsing still reaches the snapshot tags.
    ore.snapshot("home", &p.join("a"));
    let r = ore.explore("ls /\ncd /home\nls\n", None);
    assert!(
        r.stdout.contains("home") && r.stdout.contains("current"),
        "{}\n{}",
        r.stdout,
        r.stderr
    );
}

#[test]
fn an_object_prefix_shorter_than_six_digits_is_refused_whether_it_names_one_object_or_two() {
    let (ore, d) = Ore::local();
    let p = d.path();
    std::fs::create_dir_all(p.join("x")).expect("mkdir");
    // Seventeen objects over two tags: two of them share their first hex digit.
    let mut keys = Vec::new();
    for i in 0..17 {
        let tag = if i % 2 == 0 { "even" } else { "odd" };
        keys.push(import(&ore, tag, &p.join("x"), &[&format!("title=n{i}")]));
    }
    let shared = (keys.iter())
        .find(|k| keys.iter().filter(|o| o[..1] == k[..1]).count() > 1)
        .map(|k| k[..1].to_string())
        .expect("pigeonholes");
    // Regression: `ore props` took two digits, and named whichever object came first.
    let five = keys[0][..5].to_string();
    for args in [
        vec!["props", &shared],
        vec!["props", &shared, "--set", "comment=x"],
        vec!["props", &five],
        vec!["props", &five, "--set", "comment=x"],
    ] {
        let r = ore.run(&args);
        assert!(
            r.code == 1 && r.stderr.contains("give 6 or more"),
            "{args:?}: {}",
            r.stderr
        );
    }
    let tags = ore.run(&["tags"]).expect(0, "tags").stdout;
    assert!(
        tags.contains("archive tag: 9 object(s)") && tags.contains("archive tag: 8 object(s)"),
        "{tags}"
    );
    let shown = ore.run(&["props", &keys[0][..6]]).expect(0, "props").stdout;
    assert!(shown.contains(&keys[0]), "{shown}");
}

#[test]
fn an_archive_of_format_4_is_read_as_it_is_and_its_tags_change_only_once_upgraded() {
    let d = ore_tests::ore::scratch();
    let ore = Ore::new(d.path().join("archive").display().to_string());
    ore.run(&["init", "--format-version", "4"])
        .expect(0, "init");
    // A format-4 object, its tree stored by a snapshot, filed as format 4 filed it.
    std::fs::create_dir_all(d.path().join("doc")).expect("mkdir");
    std::fs::write(d.path().join("doc/a.txt"), "an old document").expect("write");
    ore.snapshot("home", &d.path().join("doc"));
    let repo = ore_tests::crafted::open(&ore);
    let (_, snap) = ore::core::spec::resolve(&repo, "home").expect("home");
    let object = ore::core::archival::Object {
        root: snap.root.clone(),
        props: vec![ore::core::archival::Prop {
            key: "title".into(),
            value: ore::core::archival::Value::Text("Old document".into()),
        }],
        imported_ns: snap.time,
        host: "old".into(),
        user: "old".into(),
        source: b"/old/doc".to_vec(),
        parent: None,
        size: 15,
        files: Default::default(),
        catalogue: None,
    };
    // Format 4 ended an object after `size`: here the empty file list (a variant byte and a
    // length byte) and the absent catalogue (one byte) are what format 5 adds.
    let mut plain = ore::core::entry::encode(&object);
    assert!(plain.ends_with(&[0, 0, 0]));
    plain.truncate(plain.len() - 3);
    let (key, _) = repo
        .put_block(ore::core::block::Kind::Object, &plain)
        .expect("put");
    let object: ore::core::archival::Object = repo
        .get(key, ore::core::block::Kind::Object)
        .expect("reads");
    ore::commands::import::file(&repo, "docs", &[(key, object)]).expect("filed");
    drop(repo);

    // Read, listed, restored, checked and kept by gc as it is.
    assert_eq!(found(&ore, "docs", "title~old"), 1);
    let out = d.path().join("out");
    ore.restore(&key.to_hex(), &out).expect(0, "restore");
    assert_eq!(
        std::fs::read_to_string(out.join("a.txt")).expect("restored"),
        "an old document"
    );
    ore.run(&["gc"]).expect(0, "gc");
    ore.run(&["check", "--read-data"]).expect(0, "check");
    // Changing it waits for the upgrade, which an ore of format 4 then refuses.
    let r = ore
        .run(&["props", &key.to_hex(), "--set", "comment=x"])
        .expect(1, "a new version in format 4");
    assert!(r.stderr.contains("run `ore upgrade`"), "{}", r.stderr);
    let r = ore
        .run(&["import", "docs", d.path().join("doc").to_str().unwrap()])
        .expect(1, "an import in format 4");
    assert!(r.stderr.contains("run `ore upgrade`"), "{}", r.stderr);
    ore.run(&["upgrade"]).expect(0, "upgrade");
    let newer = ore
        .run(&["props", &key.to_hex(), "--set", "comment=upgraded"])
        .expect(0, "a new version")
        .stdout
        .trim()
        .to_string();
    import(&ore, "docs", &d.path().join("doc"), &["title=New document"]);
    assert_eq!(found(&ore, "docs", "comment=upgraded"), 1);
    let r = ore
        .run(&["--json", "search", "docs", "--name", "a.txt"])
        .expect(0, "search --name");
    assert!(
        !r.stdout.contains(&newer),
        "a format-4 object lists no files: {}",
        r.stdout
    );
    ore.run(&["check", "--read-data"])
        .expect(0, "check after the upgrade");
}
