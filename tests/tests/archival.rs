//! Archival mode through the real `ore` binary: `ore import` files trees as objects with
//! properties on an archive tag, `ore search` finds them from the tag's index, and the rest of
//! the archive's life (gc, check, tags, snapshots, racing imports) knows archive tags.

use ore_tests::archival::{found, import, tree};
use ore_tests::ore::{Ore, Run};

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
