//! Hostile and awkward input to archival mode: files whose contents would keep a tag reader
//! busy, and properties outside the vocabulary whose values differ in type from object to
//! object.

use ore_tests::archival::{found, import, props_json};
use ore_tests::ore::Ore;

#[test]
fn a_crafted_audio_file_that_would_keep_the_tag_reader_busy_is_imported_without_its_tags() {
    let (ore, d) = Ore::local();
    // An ID3 header (so it reads as MP3), then 16 MiB of false frame starts: the tag reader
    // looks for a real frame at each one (200 MB of them took 88 s when unbounded).
    let song = d.path().join("crafted.mp3");
    let mut bytes = b"ID3\x04\x00\x00\x00\x00\x00\x00".to_vec();
    bytes.extend(b"\xff\xfb\x00\x00".repeat(4 << 20));
    std::fs::write(&song, &bytes).expect("write");
    let r = ore.run(&["import", "music", song.to_str().unwrap()]);
    assert_eq!(r.code, 3, "imported, with a warning: {}", r.stderr);
    assert!(
        r.stderr
            .contains("crafted.mp3: its audio tags were not read: reading them took over 2 s"),
        "{}",
        r.stderr
    );
    let key = r.stdout.trim();
    let props = props_json(&ore, key);
    assert_eq!(props["props"]["type"], "audio/mpeg", "{props}");
    assert_eq!(props["props"]["size"], bytes.len() as u64, "{props}");
    assert_eq!(
        found(&ore, "music", "name=crafted.mp3"),
        vec![key.to_string()]
    );
}

#[test]
fn a_key_outside_the_vocabulary_keeps_on_its_tag_the_type_it_was_first_filed_with() {
    let (ore, d) = Ore::local();
    let p = d.path();
    let dir = |name: &str| {
        std::fs::create_dir_all(p.join(name)).expect("mkdir");
        std::fs::write(p.join(name).join("f"), name).expect("write");
        p.join(name).to_str().unwrap().to_string()
    };
    let a = import(&ore, &["rated", &dir("a"), "--set", "rating:int=5"]);
    // Given without a type, a value takes the one the tag records.
    let b = import(&ore, &["rated", &dir("b"), "--set", "rating=1"]);
    assert_eq!(props_json(&ore, &b)["props"]["rating"], 1, "an integer");
    for (set, says) in [
        (
            "rating:text=great",
            "`rating` is an int property on archive tag rated",
        ),
        ("rating=great", "`great` is not an integer"),
    ] {
        let r = ore
            .run(&["import", "rated", &dir("c"), "--set", set])
            .expect(1, set);
        assert!(r.stderr.contains(says), "{set}: {}", r.stderr);
    }
    let r = ore
        .run(&["props", &a, "--set", "rating:date=2019-01-01"])
        .expect(1, "a new version of another type");
    assert!(r.stderr.contains("not date"), "{}", r.stderr);
    let tags = ore.run(&["tags"]).expect(0, "tags").stdout;
    assert!(tags.contains("2 object(s)"), "nothing half-filed: {tags}");
    assert_eq!(found(&ore, "rated", "rating>=3"), vec![a.clone()]);
    assert_eq!(found(&ore, "rated", "rating<3"), vec![b.clone()]);
    assert_eq!(found(&ore, "rated", "rating=5"), vec![a]);
    // Another tag decides for itself. "éééé" is eight bytes, the length of an encoded
    // number, and a text bound compares texts only.
    let e = import(&ore, &["other", &dir("e"), "--set", "rating=éééé"]);
    assert_eq!(found(&ore, "other", "rating>=a"), vec![e.clone()]);
    assert_eq!(found(&ore, "other", "rating=éééé"), vec![e]);
}

#[test]
fn a_property_called_key_is_refused_since_by_key_lists_every_object() {
    let (ore, d) = Ore::local();
    std::fs::write(d.path().join("f"), "x").expect("write");
    let r = ore.run(&[
        "import",
        "t",
        d.path().join("f").to_str().unwrap(),
        "--set",
        "Key=x",
    ]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("`by-key/` lists every object"),
        "{}",
        r.stderr
    );
}

#[test]
fn an_and_that_checks_its_last_terms_object_by_object_agrees_with_the_index_term_by_term() {
    // An `and` scans the index for its first terms and checks the rest on each object left;
    // each term alone is always answered from the index. The two must agree.
    let (ore, d) = Ore::local();
    let p = d.path();
    let objects = [
        (
            "a",
            vec![
                "title=Sonata in A",
                "date=1720-05-01",
                "tags=baroque,keys",
                "rating:int=5",
            ],
        ),
        (
            "b",
            vec![
                "title=Partita",
                "date=1731-01-01",
                "tags=baroque",
                "rating=5",
            ],
        ),
        (
            "c",
            vec![
                "title=Nocturne in C",
                "date=1835-06-01",
                "tags=romantic,keys",
                "rating:int=3",
            ],
        ),
        ("d", vec!["title=Etude", "date=1833-01-01", "tags=romantic"]),
    ];
    for (name, sets) in &objects {
        std::fs::create_dir_all(p.join(name)).expect("mkdir");
        std::fs::write(p.join(name).join("f"), name).expect("write");
        let mut args = vec!["t".to_string(), p.join(name).to_str().unwrap().to_string()];
        for s in sets {
            args.push("--set".into());
            args.push(s.to_string());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        import(&ore, &args);
    }
    let terms = [
        "tags:keys",
        "date>=1730-01-01",
        "rating>=4",
        "rating=5",
        "rating!=5",
        "title~in",
        "not tags:romantic",
        "(title~etude or rating=3)",
    ];
    let alone: Vec<Vec<String>> = terms.iter().map(|t| found(&ore, "t", t)).collect();
    for (a, fa) in terms.iter().zip(&alone) {
        for (b, fb) in terms.iter().zip(&alone) {
            let both: Vec<String> = fa.iter().filter(|k| fb.contains(k)).cloned().collect();
            assert_eq!(
                found(&ore, "t", &format!("{a} and {b}")),
                both,
                "{a} and {b}"
            );
        }
    }
    // A bad term is refused even when the terms before it leave nothing.
    let r = ore.run(&["search", "t", "title=nothing and date>=notadate"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("not a date"), "{}", r.stderr);
}
