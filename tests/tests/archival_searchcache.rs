//! The search cache (`core::searchcache`) through the real `ore` binary: `ore search` answers
//! from a local copy of the tag's index, and the copy never answers anything the archive's
//! index would not. Each test compares the copy's answers with `--no-cache`, which reads the
//! index alone, after every kind of change the tag can go through, and after the copy is
//! deleted, damaged, or taken from another archive.

use ore_tests::archival::{import, tree};
use ore_tests::ore::Ore;
use std::path::{Path, PathBuf};

/// Queries of every kind: equality, list member, ranges, words, `not`, and an `and` whose
/// last terms are checked on each object.
const QUERIES: &[&str] = &[
    "creator=Bach",
    "creator=Handel or creator=Scarlatti",
    "tags:baroque",
    "date>=1730-01-01",
    "date<1725-01-01 and not tags:organ",
    "title~suite",
    "creator=Bach and date>=1710-01-01 and tags:cello",
    "size>0",
];

/// The keys `ore search --json TAG QUERY` gives (with `extra` flags), sorted, and what the
/// search said on stderr.
fn answer(ore: &Ore, query: &str, extra: &[&str]) -> (Vec<String>, String) {
    let mut args = vec!["--json", "search", "music", query];
    args.extend_from_slice(extra);
    let r = ore
        .cmd(&args)
        .env("ORE_DEBUG", "1")
        .output()
        .expect("ore runs");
    let stderr = String::from_utf8_lossy(&r.stderr).into_owned();
    assert_eq!(r.status.code(), Some(0), "{query}: {stderr}");
    let out = String::from_utf8_lossy(&r.stdout);
    let mut keys: Vec<String> = (ore_tests::archival::json_lines(&out).iter())
        .map(|h| h["key"].as_str().expect("key").to_string())
        .collect();
    keys.sort();
    (keys, stderr)
}

/// Every query answered through the cache equals its answer from the index alone; what the
/// first search said about the cache.
fn same_answers(ore: &Ore, when: &str) -> String {
    let mut said = None;
    for q in QUERIES {
        let (cached, stderr) = answer(ore, q, &[]);
        let (direct, _) = answer(ore, q, &["--no-cache"]);
        assert_eq!(cached, direct, "{when}: `{q}` through the cache");
        said.get_or_insert(stderr);
    }
    said.unwrap_or_default()
}

/// The search cache files under the ore cache directory of `ore`.
fn search_caches(ore: &Ore) -> Vec<PathBuf> {
    let dir = ore.cache.join("ore");
    let mut out: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    let n = p.file_name().unwrap_or_default().to_string_lossy();
                    n.starts_with("search-") && n.ends_with(".db")
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// Imports one object of work `name` by `creator` onto tag `music`; its key.
fn piece(ore: &Ore, p: &Path, name: &str, creator: &str, date: &str, tags: &str) -> String {
    let dir = p.join(name);
    tree(&dir, &[("score.txt", name)]);
    import(
        ore,
        &[
            "music",
            dir.to_str().expect("utf-8"),
            "--set",
            &format!("title={name}"),
            "--set",
            &format!("creator={creator}"),
            "--set",
            &format!("date={date}"),
            "--set",
            &format!("tags={tags}"),
        ],
    )
}

fn music(ore: &Ore, p: &Path) -> Vec<String> {
    vec![
        piece(
            ore,
            p,
            "Cello Suite 1",
            "Bach",
            "1720-01-01",
            "baroque,cello",
        ),
        piece(ore, p, "Toccata", "Bach", "1708-01-01", "baroque,organ"),
        piece(
            ore,
            p,
            "Messiah",
            "Handel",
            "1741-09-14",
            "baroque,oratorio",
        ),
        piece(
            ore,
            p,
            "Sonata K 380",
            "Scarlatti",
            "1754-01-01",
            "keyboard",
        ),
        piece(ore, p, "French Suite", "Bach", "1722-01-01", "keyboard"),
    ]
}

#[test]
fn the_search_cache_gives_the_index_answers_through_imports_replacements_forgets_and_deletion() {
    let (ore, d) = Ore::local();
    let p = d.path();
    let keys = music(&ore, p);
    let said = same_answers(&ore, "first search");
    assert!(said.contains("search cache of music: made again"), "{said}");
    assert_eq!(
        search_caches(&ore).len(),
        1,
        "one search cache for the archive"
    );
    // Once current, it is used as it is.
    let (_, said) = answer(&ore, "creator=Bach", &[]);
    assert!(said.contains("search cache of music: current"), "{said}");

    // Another import: brought up to date from the root it holds, not made again.
    piece(
        &ore,
        p,
        "Water Music",
        "Handel",
        "1717-07-17",
        "baroque,suite",
    );
    let said = same_answers(&ore, "after one more import");
    assert!(said.contains("brought up to date"), "{said}");
    assert!(!said.contains("made again"), "{said}");

    // A new version of an object: the old one leaves the answers.
    ore.run(&["props", &keys[0], "--set", "creator=J. S. Bach"])
        .expect(0, "props --set");
    same_answers(&ore, "after a replacement");

    // Objects forgotten by a query.
    ore.run(&["forget", "music", "--where", "tags:keyboard"])
        .expect(0, "forget");
    same_answers(&ore, "after a forget");
    let (left, _) = answer(&ore, "tags:keyboard", &[]);
    assert!(left.is_empty(), "forgotten objects are not found: {left:?}");

    // A deleted cache is made again, with the same answers.
    for f in search_caches(&ore) {
        std::fs::remove_file(&f).expect("remove the search cache");
    }
    let said = same_answers(&ore, "after the cache was deleted");
    assert!(said.contains("made again"), "{said}");

    // `ore cache list` names it as a search cache, and --no-cache leaves it alone.
    let list = ore.run(&["cache", "list"]).expect(0, "cache list").stdout;
    assert!(list.lines().any(|l| l.contains(" search ")), "{list}");
    let before = std::fs::read(&search_caches(&ore)[0]).expect("read");
    piece(&ore, p, "Brandenburg 3", "Bach", "1721-03-24", "baroque");
    answer(&ore, "creator=Bach", &["--no-cache"]);
    assert_eq!(
        std::fs::read(&search_caches(&ore)[0]).expect("read"),
        before,
        "--no-cache does not touch the cache"
    );
}

#[test]
fn a_search_cache_copied_from_another_archive_is_not_believed() {
    let (a, da) = Ore::local();
    music(&a, da.path());
    let (mut b, db) = Ore::local();
    b.cache = a.cache.clone();
    piece(&b, db.path(), "Other", "Telemann", "1730-01-01", "baroque");
    let (from_b, _) = answer(&b, "tags:baroque", &[]);
    let b_file = search_caches(&b).pop().expect("b's search cache");
    let (from_a, _) = answer(&a, "tags:baroque", &[]);
    assert_ne!(from_a, from_b);
    let a_file = search_caches(&a)
        .into_iter()
        .find(|f| *f != b_file)
        .expect("a's search cache");
    // a's copy of its tag `music` in the place of b's: b must not answer with a's objects.
    std::fs::copy(&a_file, &b_file).expect("plant a's cache as b's");
    let (again, said) = answer(&b, "tags:baroque", &[]);
    assert_eq!(again, from_b, "b's answers, not a's");
    assert!(said.contains("made again"), "{said}");
}

#[test]
fn a_search_cache_whose_root_is_gone_or_whose_rows_disagree_is_made_again() {
    let (ore, d) = Ore::local();
    let p = d.path();
    let keys = music(&ore, p);
    same_answers(&ore, "first search");
    let file = search_caches(&ore).pop().expect("a search cache");
    let db = || rusqlite::Connection::open(&file).expect("open the search cache");

    // A root whose nodes the archive does not have (as after a gc of an old index): the copy
    // cannot be compared with the new one, so it is made again.
    db().execute("UPDATE tags SET node = ?1", [vec![7u8; 32]])
        .expect("plant a root");
    let said = same_answers(&ore, "after a root the archive lacks");
    assert!(said.contains("made again"), "{said}");
    // A root that does not read as one: made again, not a failed search.
    db().execute("UPDATE tags SET node = x'0102'", [])
        .expect("plant a short root");
    let said = same_answers(&ore, "after a root that does not read");
    assert!(said.contains("made again"), "{said}");
    // A count that cannot be the copy's (here, fewer entries than the change removes):
    // made again, never an arithmetic overflow.
    db().execute("UPDATE tags SET count = 0", [])
        .expect("plant a count");
    ore.run(&["forget", "music", "--where", "title=messiah"])
        .expect(0, "forget");
    let said = same_answers(&ore, "after a count of nothing");
    assert!(said.contains("made again"), "{said}");

    // A row missing from the copy (the summary of an object about to be replaced): the
    // change that rewrites it finds the copy is not what its root holds, and the copy is made
    // again rather than carry the hole on.
    let key: protocol::Key = keys[1].parse().expect("a key");
    let gone = db()
        .execute(
            "DELETE FROM entries WHERE k = ?1",
            [ore::core::archival::object_entry(&key)],
        )
        .expect("remove a row");
    assert_eq!(gone, 1);
    ore.run(&["props", &keys[1], "--set", "comment=early"])
        .expect(0, "props --set");
    let said = same_answers(&ore, "after a row went missing and the tag moved");
    assert!(said.contains("made again"), "{said}");
}
