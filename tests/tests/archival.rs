//! Archival mode through the real `ore` binary: `ore import` files trees as objects with
//! properties on an archive tag, `ore search` finds them from the tag's index, and the rest of
//! the archive's life (gc, check, tags, snapshots, racing imports) knows archive tags.

use ore_tests::archival::{dir_size, found, import, props_json, tree};
use ore_tests::ore::{Ore, Run};
use std::path::Path;

fn sorted(mut v: Vec<&String>) -> Vec<String> {
    v.sort();
    v.into_iter().cloned().collect()
}

#[test]
fn imported_objects_are_found_by_their_properties_and_outlive_gc_and_check() {
    let (ore, d) = Ore::local();
    let p = d.path();
    tree(
        &p.join("suite"),
        &[("prelude.txt", "cello suite no. 1, prelude")],
    );
    tree(
        &p.join("sonata"),
        &[("a.txt", "a sonata in g"), ("b.txt", "and more")],
    );
    tree(&p.join("fugue"), &[("f.txt", "the art of fugue")]);
    let suite = import(
        &ore,
        &[
            "music",
            p.join("suite").to_str().unwrap(),
            "--set",
            "creator=Bach",
            "--set",
            "title=Cello Suite No. 1",
            "--set",
            "date=1720-01-01",
            "--set",
            "tags=baroque,cello",
        ],
    );
    let sonata = import(
        &ore,
        &[
            "music",
            p.join("sonata").to_str().unwrap(),
            "--set",
            "creator=Scarlatti",
            "--set",
            "title=Sonata in G",
            "--set",
            "date=1738-06-01",
            "--set",
            "tags=baroque,keyboard",
        ],
    );
    let fugue = import(
        &ore,
        &[
            "music",
            p.join("fugue").to_str().unwrap(),
            "--set",
            "creator=Bach",
            "--set",
            "title=The Art of Fugue",
            "--set",
            "date=1750-01-01",
            "--set",
            "rating:int=5",
        ],
    );
    assert_eq!(suite.len(), 64, "import prints the object's key: {suite}");

    let check_all = |ore: &Ore| {
        assert_eq!(
            found(ore, "music", "creator=bach"),
            sorted(vec![&suite, &fugue]),
            "equality ignores case"
        );
        assert_eq!(found(ore, "music", "tags:cello"), vec![suite.clone()]);
        assert_eq!(found(ore, "music", "title~sonata"), vec![sonata.clone()]);
        assert_eq!(
            found(ore, "music", r#"title~"art fug""#),
            vec![fugue.clone()],
            "each word starts a word"
        );
        assert_eq!(
            found(ore, "music", "date>=1730-01-01 and date<1750-01-01"),
            vec![sonata.clone()]
        );
        assert_eq!(
            found(ore, "music", "tags:baroque and not creator=bach"),
            vec![sonata.clone()]
        );
        assert_eq!(
            found(
                ore,
                "music",
                "(creator=scarlatti or rating>=5) and date>1700-01-01"
            ),
            sorted(vec![&sonata, &fugue])
        );
        assert_eq!(found(ore, "music", "creator!=bach"), vec![sonata.clone()]);
        // Sizes found in the files: 26, 21 and 16 bytes.
        assert_eq!(
            found(ore, "music", "size>=21 and size<26"),
            vec![sonata.clone()],
            "size is a number"
        );
        assert_eq!(found(ore, "music", "type=inode/directory").len(), 3);
    };
    check_all(&ore);
    // Results show key, title, date, type and size.
    let text = ore
        .run(&["search", "music", "creator=Scarlatti"])
        .expect(0, "search")
        .stdout;
    assert!(
        text.contains(&sonata[..16])
            && text.contains("Sonata in G")
            && text.contains("1738-06-01")
            && text.contains("inode/directory"),
        "{text}"
    );

    // A snapshot in the same archive, and the listings that meet both kinds of tag.
    ore.snapshot("home", &p.join("suite"));
    let tags = ore.run(&["tags"]).expect(0, "tags").stdout;
    assert!(
        tags.lines()
            .any(|l| l.starts_with("music\t") && l.contains("archive tag: 3 object(s)")),
        "{tags}"
    );
    let snaps = ore.run(&["snapshots"]).expect(0, "snapshots").stdout;
    assert!(
        snaps.contains("home~0") && !snaps.contains("music"),
        "{snaps}"
    );
    let log = ore.run(&["log", "music"]);
    assert!(
        log.code == 1 && log.stderr.contains("archive tag"),
        "{}",
        log.stderr
    );

    // gc keeps everything an archive tag reaches, and check reads it all back.
    ore.run(&["gc"]).expect(0, "gc");
    ore.run(&["check", "--read-data"]).expect(0, "check");
    check_all(&ore);
}

#[test]
fn bad_input_to_import_and_search_is_refused_naming_it_and_the_tag_stays_as_it_was() {
    let (ore, d) = Ore::local();
    let p = d.path();
    tree(&p.join("one"), &[("f", "one")]);
    let one = p.join("one");
    let one = one.to_str().unwrap();
    import(&ore, &["docs", one, "--set", "title=first"]);
    ore.snapshot("home", &p.join("one"));
    let tags = ore.run(&["tags"]).expect(0, "tags").stdout;
    let refused = |args: &[&str], says: &str| {
        let r: Run = ore.run(args);
        assert_eq!(r.code, 1, "{args:?}: {}", r.stderr);
        // One error, said as every error is, whether the command line's parser or ore found
        // it (the parser's began `error:`).
        assert!(
            r.stderr.starts_with("ore: error: "),
            "{args:?}: {}",
            r.stderr
        );
        let errors = r.stderr.lines().filter(|l| l.contains("error: ")).count();
        assert_eq!(errors, 1, "{args:?}: {}", r.stderr);
        assert!(
            r.stderr.contains(says),
            "{args:?} says {says:?}: {}",
            r.stderr
        );
    };
    refused(
        &["import", "docs", one, "--set", "title"],
        "expected KEY=VALUE",
    );
    refused(
        &["import", "docs", one, "--set", "rating:float=1.5"],
        "is not a property type",
    );
    refused(
        &["import", "docs", one, "--set", "date=yesterday"],
        "is not a date",
    );
    refused(
        &["import", "docs", one, "--set", "date:int=5"],
        "is a date property, not int",
    );
    refused(
        &["import", "docs", one, "--set", "bad key=1"],
        "is not a property name",
    );
    refused(&["import", "home", one], "is a snapshot tag");
    refused(
        &["import", "docs", one, "--replace", "abcdef"],
        "no object abcdef on archive tag docs",
    );
    refused(
        &["import", "docs", p.join("missing").to_str().unwrap()],
        "missing",
    );
    refused(
        &["search", "docs", "title=first and (date>"],
        "at 22: expected a value after `>`",
    );
    refused(&["search", "docs", "date>=soon"], "is not a date");
    // A value its property cannot have is named at the value, not at the term's start.
    refused(
        &["search", "docs", "title=first and date>=soon"],
        "at 22: `soon` is not a date",
    );
    refused(
        &["search", "docs", "title~\"!!\""],
        "at 6: `!!` has no word",
    );
    refused(
        &["search", "home", "title=first"],
        "home is a snapshot tag, not an archive tag",
    );
    // A list member that is no value: said so, not an empty message (a newcomer's find).
    refused(
        &["search", "docs", "tags:\"\""],
        "at 5: `` is no value `tags` can hold",
    );
    // A date with a time needs no quotes.
    assert_eq!(found(&ore, "docs", "mtime>=1970-01-01T00:00").len(), 1);
    refused(
        &["search", "nothing", "title=first"],
        "there is no archive tag nothing",
    );
    assert_eq!(
        ore.run(&["tags"]).expect(0, "tags").stdout,
        tags,
        "no tag moved"
    );
    assert_eq!(found(&ore, "docs", "title=first").len(), 1);
}

#[test]
fn a_replaced_object_leaves_the_searches_and_its_successor_names_it() {
    let (ore, d) = Ore::local();
    let p = d.path();
    tree(&p.join("v1"), &[("paper.txt", "draft")]);
    tree(&p.join("v2"), &[("paper.txt", "final")]);
    let v1 = import(
        &ore,
        &[
            "papers",
            p.join("v1").to_str().unwrap(),
            "--set",
            "title=The paper",
        ],
    );
    let v2 = import(
        &ore,
        &[
            "papers",
            p.join("v2").to_str().unwrap(),
            "--set",
            "title=The paper",
            "--replace",
            &v1[..10],
        ],
    );
    assert_eq!(found(&ore, "papers", "title~paper"), vec![v2.clone()]);
    // Without a query, every current object: the new version alone, from the index and
    // through the search cache alike.
    let mut other = vec![import(&ore, &["papers", p.join("v1").to_str().unwrap()])];
    other.push(v2.clone());
    other.sort();
    for args in [
        &["search", "papers"][..],
        &["search", "papers", "--no-cache"],
    ] {
        let r = ore
            .run(&[&["--json"][..], args].concat())
            .expect(0, "search");
        let mut keys: Vec<String> = (ore_tests::archival::json_lines(&r.stdout).iter())
            .map(|h| h["key"].as_str().expect("key").to_string())
            .collect();
        keys.sort();
        assert_eq!(keys, other, "{args:?}");
    }
    let tags = ore.run(&["tags"]).expect(0, "tags").stdout;
    assert!(
        tags.contains("archive tag: 2 object(s)"),
        "two current objects: {tags}"
    );
    // The old object is still stored: gc keeps it through the new one's parent link.
    ore.run(&["gc"]).expect(0, "gc");
    ore.run(&["check", "--read-data"]).expect(0, "check");
}

#[test]
fn imports_racing_on_one_tag_are_all_kept() {
    let (ore, d) = Ore::local();
    let p = d.path();
    let n = 4;
    for i in 0..n {
        tree(&p.join(format!("t{i}")), &[("f", &format!("tree {i}"))]);
    }
    // The first makes the tag; then the rest at once, each its own process.
    import(
        &ore,
        &[
            "many",
            p.join("t0").to_str().unwrap(),
            "--set",
            "tags=racing",
        ],
    );
    let runs: Vec<_> = (1..n)
        .map(|i| {
            ore.cmd(&[
                "import",
                "many",
                p.join(format!("t{i}")).to_str().unwrap(),
                "--set",
                "tags=racing",
            ])
            .spawn()
            .expect("ore runs")
        })
        .collect();
    for r in runs {
        let out = r.wait_with_output().expect("ore ends");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(
        found(&ore, "many", "tags:racing").len(),
        n,
        "no import was lost"
    );
    let tags = ore.run(&["tags"]).expect(0, "tags").stdout;
    assert!(
        tags.contains(&format!("archive tag: {n} object(s)")),
        "{tags}"
    );
}

#[test]
fn an_archive_of_format_3_is_asked_to_upgrade_before_its_first_import() {
    let d = ore_tests::ore::scratch();
    let ore = Ore::new(d.path().join("archive").display().to_string());
    ore.run(&["init", "--format-version", "3"])
        .expect(0, "init");
    tree(&d.path().join("x"), &[("f", "x")]);
    let r = ore.run(&["import", "docs", d.path().join("x").to_str().unwrap()]);
    assert!(
        r.code == 1 && r.stderr.contains("run `ore upgrade`"),
        "{}",
        r.stderr
    );
    ore.run(&["upgrade"]).expect(0, "upgrade");
    import(&ore, &["docs", d.path().join("x").to_str().unwrap()]);
}

/// The shapes of `core::index`'s nodes, as a compromised writer would write them: an item
/// (key, value) and a child (first key, count, node), encoded as the structs are.
type Item = (Vec<u8>, Vec<u8>);
struct Child {
    first: Vec<u8>,
    count: u64,
    node: protocol::Key,
}

impl Child {
    fn tuple(self) -> (Vec<u8>, u64, protocol::Key) {
        (self.first, self.count, self.node)
    }
}

#[test]
fn crafted_index_nodes_out_of_order_at_the_wrong_level_or_missing_are_named_by_check() {
    use ore::core::archival::{object_entry, Head};
    use ore::core::block::Kind;
    use ore::core::entry::encode;
    use ore::core::index::Root;
    let (ore, d) = Ore::local();
    tree(&d.path().join("a"), &[("f", "a")]);
    import(&ore, &["docs", d.path().join("a").to_str().unwrap()]);
    ore.run(&["check"]).expect(0, "a sound index checks clean");
    let repo = ore_tests::crafted::open(&ore);
    let put = |kind: Kind, plain: Vec<u8>| repo.put_block(kind, &plain).expect("put").0;
    let o = |n: u8| -> Item { (object_entry(&protocol::Key([n; 32])), Vec::new()) };
    // A leaf whose entries are out of order.
    let disordered = put(Kind::IndexLeaf, encode(&(vec![o(9), o(3)],)));
    // An inner node that claims level 7 under a root of level 2.
    let sound = put(Kind::IndexLeaf, encode(&(vec![o(20)],)));
    let wrong_level = put(
        Kind::IndexInner,
        encode(&(
            7u8,
            vec![Child {
                first: o(20).0,
                count: 1,
                node: sound,
            }
            .tuple()],
        )),
    );
    let missing = protocol::Key([0xee; 32]);
    let level1 = put(
        Kind::IndexInner,
        encode(&(
            1u8,
            vec![
                Child {
                    first: o(9).0,
                    count: 2,
                    node: disordered,
                }
                .tuple(),
                Child {
                    first: o(30).0,
                    count: 1,
                    node: missing,
                }
                .tuple(),
            ],
        )),
    );
    let root = put(
        Kind::IndexInner,
        encode(&(
            2u8,
            vec![
                Child {
                    first: o(9).0,
                    count: 3,
                    node: level1,
                }
                .tuple(),
                Child {
                    first: o(20).0,
                    count: 1,
                    node: wrong_level,
                }
                .tuple(),
            ],
        )),
    );
    let head = Head {
        index: Some(Root {
            node: root,
            level: 2,
            count: 4,
        }),
        objects: 4,
        current: 4,
        previous: None,
        made_ns: 0,
    };
    let head = put(Kind::Head, encode(&head));
    let before = repo.tag("docs").expect("tag").expect("docs");
    let moved = repo
        .backend()
        .set_tag(
            "docs",
            Some(before.to_hex().as_bytes()),
            head.to_hex().as_bytes(),
        )
        .expect("set");
    assert_eq!(moved, protocol::CasOutcome::Done);
    // The embedded archive is held by one process at a time.
    drop(repo);
    let r = ore.run(&["check"]);
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    let all = format!("{}{}", r.stdout, r.stderr);
    for (node, says) in [
        (disordered, "out of order"),
        (wrong_level, "at level 7 where 1 belongs"),
        (missing, "missing"),
    ] {
        assert!(
            all.contains(&node.to_hex()) && all.contains(says),
            "check names {node} ({says}):\n{all}"
        );
    }
    // A search over it ends with an error, not a loop or a panic.
    let s = ore.run(&["search", "docs", "not title=x"]);
    assert_eq!(s.code, 1, "{}", s.stderr);
}

#[test]
fn an_object_is_listed_read_and_restored_by_its_key_as_a_snapshot_of_its_tree() {
    let (ore, d) = Ore::local();
    let p = d.path();
    tree(
        &p.join("album"),
        &[("track1.txt", "first track"), ("notes.txt", "liner notes")],
    );
    let key = import(
        &ore,
        &[
            "music",
            p.join("album").to_str().unwrap(),
            "--set",
            "title=Album",
        ],
    );
    let ls = ore.run(&["ls", &key[..12]]).expect(0, "ls").stdout;
    assert!(
        ls.contains("track1.txt") && ls.contains("notes.txt"),
        "{ls}"
    );
    let cat = ore
        .run(&["cat", &format!("{}:notes.txt", &key[..12])])
        .expect(0, "cat")
        .stdout;
    assert_eq!(cat, "liner notes");
    let dest = p.join("out");
    ore.run(&["restore", &key, dest.to_str().unwrap()])
        .expect(0, "restore");
    assert_eq!(
        std::fs::read_to_string(dest.join("track1.txt")).expect("restored"),
        "first track"
    );
    let r = ore.run(&["ls", "abcdef123456"]);
    assert!(
        r.code == 1 && r.stderr.contains("no tag, snapshot or archive object"),
        "{}",
        r.stderr
    );
}

#[test]
fn props_shows_an_object_and_a_new_version_changes_its_properties_without_storing_the_data_again() {
    let (ore, d) = Ore::local();
    let p = d.path();
    // Incompressible, so the data's share of the archive is plain to see.
    std::fs::create_dir_all(p.join("photo")).expect("mkdir");
    std::fs::write(p.join("photo/big.raw"), ore_tests::trees::bytes(3, 2 << 20)).expect("write");
    let first = import(
        &ore,
        &[
            "photos",
            p.join("photo").to_str().unwrap(),
            "--set",
            "title=Beach",
            "--set",
            "tags=holiday",
        ],
    );
    let shown = ore.run(&["props", &first[..10]]).expect(0, "props").stdout;
    assert!(
        shown.contains("title     Beach")
            && shown.contains("tags      holiday")
            && shown.contains(&first),
        "{shown}"
    );
    let before = dir_size(Path::new(&ore.archive));
    let second = ore
        .run(&[
            "props",
            &first[..10],
            "--set",
            "comment=the good one",
            "--set",
            "tags=holiday,best",
        ])
        .expect(0, "props --set")
        .stdout
        .trim()
        .to_string();
    assert_ne!(second, first);
    let grown = dir_size(Path::new(&ore.archive)) - before;
    assert!(
        grown < 64 * 1024,
        "a new version stores no data again: the archive grew {grown} bytes"
    );
    assert_eq!(found(&ore, "photos", "tags:best"), vec![second.clone()]);
    assert_eq!(
        found(&ore, "photos", "title=beach"),
        vec![second.clone()],
        "the old version left the searches"
    );
    let v: serde_json::Value = props_json(&ore, &second);
    assert_eq!(v["parent"].as_str(), Some(first.as_str()));
    assert_eq!(v["props"]["comment"].as_str(), Some("the good one"));
    // The old version is the parent: a version of it again is refused, naming the newest rule
    // and the newest version, which is the one to replace.
    let r = ore.run(&["props", &first, "--set", "comment=again"]);
    assert!(
        r.code == 1
            && r.stderr.contains("replaced by a newer version")
            && r.stderr.contains(&second),
        "{}",
        r.stderr
    );
    // Two versions on, the first is still refused with the newest one named.
    let third = ore
        .run(&["props", &second, "--set", "comment=the best one"])
        .expect(0, "props --set")
        .stdout
        .trim()
        .to_string();
    let r = ore.run(&["props", &first, "--set", "comment=again"]);
    assert!(
        r.code == 1 && r.stderr.contains(&third) && !r.stderr.contains(&second),
        "{}",
        r.stderr
    );
    let r = ore.run(&["props", "0000000000", "--set", "comment=x"]);
    assert!(
        r.code == 1 && r.stderr.contains("no archive object"),
        "{}",
        r.stderr
    );
    ore.run(&["check", "--read-data"]).expect(0, "check");
}

#[test]
fn a_photo_and_a_song_are_found_by_what_their_exif_and_tags_say_and_set_wins() {
    let (ore, d) = Ore::local();
    let p = d.path();
    let photo = p.join("IMG_0001.jpg");
    std::fs::write(
        &photo,
        ore_tests::media::jpeg(
            "2019:06:01 18:30:05",
            "Canon",
            "EOS 80D",
            [45, 27, 51],
            [9, 11, 24],
        ),
    )
    .expect("write");
    let song = p.join("prelude.flac");
    let comments = [
        "ARTIST=Johann Sebastian Bach",
        "ALBUM=Cello Suites",
        "TITLE=Prelude",
        "DATE=1720",
        "TRACKNUMBER=1",
    ];
    std::fs::write(&song, ore_tests::media::flac(&comments)).expect("write");
    let pic = import(&ore, &["media", photo.to_str().unwrap()]);
    let tune = import(
        &ore,
        &[
            "media",
            song.to_str().unwrap(),
            "--set",
            "title=Suite No. 1: Prelude",
        ],
    );
    let v: serde_json::Value = props_json(&ore, &pic);
    assert_eq!(
        v["props"]["date"].as_str(),
        Some("2019-06-01 18:30:05"),
        "{v}"
    );
    assert_eq!(v["props"]["camera"].as_str(), Some("Canon EOS 80D"), "{v}");
    assert_eq!(
        v["props"]["gps"].as_str(),
        Some("45.464167,9.190000"),
        "{v}"
    );
    assert_eq!(v["props"]["type"].as_str(), Some("image/jpeg"), "{v}");
    let v: serde_json::Value = props_json(&ore, &tune);
    assert_eq!(
        v["props"]["creator"].as_str(),
        Some("Johann Sebastian Bach"),
        "{v}"
    );
    assert_eq!(v["props"]["album"].as_str(), Some("Cello Suites"), "{v}");
    assert_eq!(
        v["props"]["title"].as_str(),
        Some("Suite No. 1: Prelude"),
        "--set wins: {v}"
    );
    assert_eq!(v["props"]["track"].as_i64(), Some(1), "{v}");
    assert_eq!(
        found(&ore, "media", "creator~bach and date<1800-01-01"),
        vec![tune.clone()]
    );
    assert_eq!(
        found(&ore, "media", "camera~canon and date>=2019-06-01"),
        vec![pic.clone()]
    );
    // --no-extract leaves it all out; a file the parsers refuse only gives no property.
    let bare = import(&ore, &["plain", photo.to_str().unwrap(), "--no-extract"]);
    let v: serde_json::Value = props_json(&ore, &bare);
    assert_eq!(v["props"], serde_json::json!({}), "{v}");
    let broken = p.join("broken.jpg");
    let mut bytes =
        ore_tests::media::jpeg("2019:06:01 18:30:05", "Canon", "EOS", [1, 2, 3], [4, 5, 6]);
    bytes.truncate(30);
    std::fs::write(&broken, bytes).expect("write");
    let cut = import(&ore, &["media", broken.to_str().unwrap()]);
    let v: serde_json::Value = props_json(&ore, &cut);
    assert!(
        v["props"]["camera"].is_null() && v["props"]["size"].as_i64() == Some(30),
        "{v}"
    );
}

#[test]
fn a_new_property_key_is_noted_with_the_known_key_it_may_misspell() {
    let (ore, d) = Ore::local();
    tree(&d.path().join("a"), &[("x.txt", "x")]);
    let a = d.path().join("a");
    // `ore import docs a --set S...`, which must succeed.
    let import_setting = |sets: &[&str]| {
        let mut args = vec!["import", "docs", a.to_str().unwrap()];
        for s in sets {
            args.extend(["--set", s]);
        }
        ore.run(&args).expect(0, "import")
    };
    let r = import_setting(&["titel=Draft", "rating=4"]);
    assert!(
        r.stderr
            .contains("`titel` is a new property key on archive tag docs (did you mean `title`?)"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("`rating` is a new property key on archive tag docs\n"),
        "{}",
        r.stderr
    );
    // Known to the tag now: no note for it, and a near miss of it is pointed at it.
    let r = import_setting(&["rating=5", "ratng=1"]);
    assert!(!r.stderr.contains("`rating` is"), "{}", r.stderr);
    assert!(
        r.stderr.contains("(did you mean `rating`?)"),
        "{}",
        r.stderr
    );
    // With `titel` recorded, `titl` is as near to it as to `title`: the vocabulary's key is
    // the guess; and a key given twice is noted once.
    let r = import_setting(&["titl=1", "TITL=2"]);
    assert_eq!(
        r.stderr.matches("`titl` is a new property key").count(),
        1,
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("(did you mean `title`?)"), "{}", r.stderr);
    // `props --set` says so too; the vocabulary's own keys never.
    let key = r.stdout.trim().to_string();
    let r = ore
        .run(&["props", &key, "--set", "title=Final", "--set", "creatr=me"])
        .expect(0, "props");
    assert!(
        r.stderr.contains(
            "`creatr` is a new property key on archive tag docs (did you mean `creator`?)"
        ),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("`title`"), "{}", r.stderr);
}

/// Regression (attack review): a file whose name is not UTF-8, imported alone, was looked up
/// in its stored tree by the name's lossy text, missed, and given the type and time of the
/// directory made around it.
#[test]
fn a_file_whose_name_is_not_utf8_gets_its_own_type_and_time_when_imported_alone() {
    use std::os::unix::ffi::OsStrExt;
    let (ore, d) = Ore::local();
    let file = d
        .path()
        .join(std::ffi::OsStr::from_bytes(b"bad\xff\xfename"));
    std::fs::write(&file, "plain words\n").expect("write");
    let when = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_500_000_000);
    std::fs::File::options()
        .write(true)
        .open(&file)
        .and_then(|f| f.set_modified(when))
        .expect("mtime");
    let r = Run::of(
        ore.cmd(&["import", "odd"])
            .arg(&file)
            .output()
            .expect("ore"),
    );
    let key = r.expect(0, "import").stdout.trim().to_string();
    let p = props_json(&ore, &key);
    assert_eq!(p["props"]["type"], "text/plain", "{p}");
    assert_eq!(p["props"]["mtime"], "2017-07-14 02:40:00", "{p}");
}
