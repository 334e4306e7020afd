//! `ore dump TAG` / `ore load TAG` of an archive tag: every object with its properties, its
//! versions and its tree, carried to an archive of other keys; and what `load` does with a
//! damaged or crafted stream of one.

use ore::commands::dump::archive::{ArchiveHeader, DumpObject, ARCHIVE};
use ore::commands::dump::DumpKind;
use ore::core::archival::{Prop, Value};
use ore::core::entry::encode;
use ore::core::volume::Volume;
use ore_tests::archival::{found, import, props_json, tree};
use ore_tests::dumps::load;
use ore_tests::ore::Ore;

/// `ore dump TAG`: the stream.
fn dump(ore: &Ore, tag: &str) -> Vec<u8> {
    let out = ore.cmd(&["dump", tag]).output().expect("ore dump runs");
    assert!(
        out.status.success(),
        "dump: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// The line `ore tags` shows for `tag`, if any.
fn tag_line(ore: &Ore, tag: &str) -> Option<String> {
    let tags = ore.run(&["tags"]).expect(0, "tags").stdout;
    tags.lines()
        .find(|l| l.split('\t').next() == Some(tag))
        .map(String::from)
}

#[test]
fn an_archive_tag_loaded_into_an_archive_of_other_keys_keeps_its_objects_properties_and_versions() {
    let (src, d) = Ore::local();
    let p = d.path();
    tree(
        &p.join("a"),
        &[("score.txt", "cello suite"), ("notes", "bach")],
    );
    tree(&p.join("b"), &[("score.txt", "nocturne")]);
    let a = import(
        &src,
        &[
            "music",
            p.join("a").to_str().unwrap(),
            "--set",
            "creator=Bach",
            "--set",
            "tags=baroque,cello",
            "--set",
            "rating:int=5",
        ],
    );
    import(
        &src,
        &[
            "music",
            p.join("b").to_str().unwrap(),
            "--set",
            "creator=Chopin",
        ],
    );
    let a2 = src
        .run(&["props", &a, "--set", "comment=the good copy"])
        .expect(0, "a new version")
        .stdout
        .trim()
        .to_string();
    let stream = dump(&src, "music");

    let (dst, d2) = Ore::local();
    let r = load(&dst, "tunes", &stream).expect(0, "load");
    let head = r.stdout.trim();
    assert_eq!(head.len(), 64, "{}", r.stdout);
    assert!(
        tag_line(&dst, "tunes").is_some_and(|l| l.contains("2 object(s) (+1 replaced)")),
        "{:?}",
        tag_line(&dst, "tunes")
    );
    // Found by the same properties; only the newest version of Bach.
    let bach = found(&dst, "tunes", "creator=bach and tags:cello and rating>=5");
    assert_eq!(bach.len(), 1);
    assert_ne!(bach[0], a2, "keys are the destination's own");
    let props = props_json(&dst, &bach[0]);
    assert_eq!(props["props"]["comment"], "the good copy", "{props}");
    assert_eq!(props["props"]["rating"], 5, "{props}");
    // Its parent is the first version, listed but found by no search.
    let parent = props["parent"].as_str().expect("a parent").to_string();
    assert!(found(&dst, "tunes", "comment~good").contains(&bach[0]));
    assert!(!found(&dst, "tunes", "creator=bach").contains(&parent));
    assert_eq!(
        props_json(&dst, &parent)["props"]["creator"],
        "Bach",
        "the old version is there"
    );
    // The data came along, and content ids were made again under the new keys.
    let out = d2.path().join("out");
    dst.restore(&bach[0], &out).expect(0, "restore");
    assert_eq!(
        std::fs::read_to_string(out.join("score.txt")).expect("restored"),
        "cello suite"
    );
    let json = dst
        .run(&[
            "--json",
            "search",
            "--file",
            p.join("a/score.txt").to_str().unwrap(),
        ])
        .expect(0, "search --file")
        .stdout;
    assert!(json.contains(&bach[0]), "{json}");
    // The rating's type came along too.
    let r = dst
        .run(&["search", "tunes", "rating=great"])
        .expect(1, "a text rating");
    assert!(r.stderr.contains("not an integer"), "{}", r.stderr);
    dst.run(&["check", "--read-data"]).expect(0, "check");
}

#[test]
fn a_catalogue_is_loaded_only_where_its_content_ids_mean_something() {
    let (src, d) = Ore::local();
    let usb = d.path().join("usb");
    tree(&usb, &[("photo.jpg", "not really a photo")]);
    import(&src, &["disks", usb.to_str().unwrap(), "--catalogue-only"]);
    let stream = dump(&src, "disks");

    let (other, _d2) = Ore::local();
    let r = load(&other, "disks", &stream).expect(1, "other keys");
    assert!(r.stderr.contains("photo.jpg"), "{}", r.stderr);
    assert!(r.stderr.contains("ore init --from"), "{}", r.stderr);
    assert_eq!(tag_line(&other, "disks"), None, "nothing was filed");

    let shared = Ore::new(d.path().join("shared").display().to_string());
    shared
        .run(&["init", "--from", &src.archive])
        .expect(0, "init --from");
    load(&shared, "disks", &stream).expect(0, "the same keys");
    let json = shared
        .run(&[
            "--json",
            "search",
            "--file",
            usb.join("photo.jpg").to_str().unwrap(),
        ])
        .expect(0, "search --file")
        .stdout;
    assert!(json.contains("\"stored\":false"), "{json}");
    shared.run(&["check", "--read-data"]).expect(0, "check");
}

/// What a crafted file holds: a hole of this many bytes, or a catalogued id.
#[derive(Clone, Copy)]
enum Body {
    Hole(u64),
    Catalogued([u8; 32]),
}

/// A stream of records as `ore dump` writes them, with any content.
struct Stream(Vec<u8>);

impl Stream {
    fn new() -> Stream {
        let mut v = b"ORE-DUMP".to_vec();
        v.push(ARCHIVE);
        Stream(v)
    }

    fn record(&mut self, kind: u8, payload: &[u8]) -> &mut Stream {
        self.0.push(kind);
        self.0
            .extend_from_slice(&(payload.len() as u32).to_le_bytes());
        self.0.extend_from_slice(payload);
        self
    }

    /// An object record, then an empty root directory.
    fn object(&mut self, props: Vec<Prop>, parent: Option<u64>) -> &mut Stream {
        self.object_with(props, parent, None, &[])
    }

    /// An object record (a catalogue when `volume`), then a root directory holding `files`.
    fn object_with(
        &mut self,
        props: Vec<Prop>,
        parent: Option<u64>,
        volume: Option<Volume>,
        files: &[(&str, Body)],
    ) -> &mut Stream {
        let o = DumpObject {
            props,
            imported_ns: 0,
            host: "crafted".into(),
            user: "crafted".into(),
            source: b"/crafted".to_vec(),
            parent,
            size: 0,
            catalogue: volume,
        };
        self.record(8, &encode(&o))
            .record(2, &encode(&ore_tests::dumps::entry(b"", DumpKind::Dir)));
        for (name, body) in files {
            let (size, kind, payload) = match body {
                Body::Hole(len) => (*len, 4u8, len.to_le_bytes().to_vec()),
                Body::Catalogued(id) => (1, 9u8, id.to_vec()),
            };
            // A file's hash: its records' kinds, and a hole's length (FORMAT.md §11).
            let mut h = blake3::Hasher::new();
            h.update(&[kind]);
            h.update(&payload);
            self.record(
                2,
                &encode(&ore_tests::dumps::entry(
                    name.as_bytes(),
                    DumpKind::File { size },
                )),
            )
            .record(kind, &payload)
            .record(5, h.finalize().as_bytes());
        }
        self.record(6, &[])
    }

    /// An object record, then a root that is one regular file, `name`, holding `data` (as
    /// `--each` dumps an object).
    fn file_object(&mut self, name: &[u8], data: &[u8]) -> &mut Stream {
        let o = DumpObject {
            props: vec![text("title", "a letter")],
            imported_ns: 0,
            host: "crafted".into(),
            user: "crafted".into(),
            source: b"/crafted".to_vec(),
            parent: None,
            size: data.len() as u64,
            catalogue: None,
        };
        // A data record's part of the hash: its kind, its length, its bytes (FORMAT.md §11).
        let size = data.len() as u64;
        let mut h = blake3::Hasher::new();
        h.update(&[3]);
        h.update(&size.to_le_bytes());
        h.update(data);
        self.record(8, &encode(&o))
            .record(
                2,
                &encode(&ore_tests::dumps::entry(name, DumpKind::File { size })),
            )
            .record(3, data)
            .record(5, h.finalize().as_bytes())
    }

    fn end(&mut self) -> Vec<u8> {
        let sum = *blake3::hash(&self.0).as_bytes();
        self.record(7, &sum);
        self.0.clone()
    }
}

fn header() -> Vec<u8> {
    header_with(protocol::Key([0; 32]))
}

/// A header whose stream's content ids are those of the archive whose id of no bytes is `ids`.
fn header_with(ids: protocol::Key) -> Vec<u8> {
    encode(&ArchiveHeader {
        tag: "crafted".into(),
        dumped_ns: 0,
        ids,
        objects: 2,
    })
}

fn text(key: &str, v: &str) -> Prop {
    Prop {
        key: key.into(),
        value: Value::Text(v.into()),
    }
}

#[test]
fn a_crafted_or_damaged_archive_stream_is_refused_by_what_is_wrong_and_files_nothing() {
    let (ore, _d) = Ore::local();
    let ok = Stream::new()
        .record(1, &header())
        .object(vec![text("title", "one")], None)
        .object(vec![text("title", "two")], Some(0))
        .end();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "a parent after its child",
            Stream::new()
                .record(1, &header())
                .object(vec![text("title", "one")], Some(0))
                .end(),
            "does not come before it",
        ),
        (
            "two versions of one object",
            Stream::new()
                .record(1, &header())
                .object(vec![], None)
                .object(vec![], Some(0))
                .object(vec![], Some(0))
                .end(),
            "two objects replace one object",
        ),
        (
            "a property that is no property name",
            Stream::new()
                .record(1, &header())
                .object(vec![text("Bad Key", "x")], None)
                .end(),
            "is not a property name",
        ),
        (
            "a date that is text",
            Stream::new()
                .record(1, &header())
                .object(vec![text("date", "yesterday")], None)
                .end(),
            "`date` is not a date",
        ),
        (
            "properties out of order",
            Stream::new()
                .record(1, &header())
                .object(vec![text("title", "a"), text("creator", "b")], None)
                .end(),
            "not sorted",
        ),
        (
            "a byte changed",
            {
                // "two" becomes "twn": every record still reads, the checksum does not.
                let mut s = ok.clone();
                let at = s.windows(3).position(|w| w == b"two").expect("the title");
                s[at + 2] ^= 1;
                s
            },
            "damaged",
        ),
        ("cut short", ok[..ok.len() - 10].to_vec(), "ends early"),
    ];
    for (what, stream, says) in cases {
        let r = load(&ore, "crafted", &stream);
        assert_eq!(r.code, 1, "{what}: {}", r.stderr);
        assert!(r.stderr.contains(says), "{what}: {}", r.stderr);
        assert_eq!(tag_line(&ore, "crafted"), None, "{what}: nothing filed");
    }
    load(&ore, "crafted", &ok).expect(0, "the sound stream");
    assert!(
        tag_line(&ore, "crafted").is_some_and(|l| l.contains("1 object(s) (+1 replaced)")),
        "{:?}",
        tag_line(&ore, "crafted")
    );
    ore.run(&["check"]).expect(0, "check");
}

#[test]
fn a_stream_declaring_a_gib_of_holes_in_each_of_many_files_loads_without_hashing_them_all() {
    // Each file's content id hashes its holes as zeros: 64 files of 1 GiB of holes each was
    // half a minute of hashing for a stream of 6 KB, before the stream's budget.
    let (ore, _d) = Ore::local();
    let names: Vec<String> = (0..64).map(|i| format!("f{i:02}")).collect();
    let refs: Vec<(&str, Body)> = names
        .iter()
        .map(|n| (n.as_str(), Body::Hole(1 << 30)))
        .collect();
    let stream = Stream::new()
        .record(1, &header())
        .object_with(vec![text("title", "holes")], None, None, &refs)
        .end();
    assert!(stream.len() < 10_000, "{}", stream.len());
    let started = std::time::Instant::now();
    load(&ore, "holes", &stream).expect(0, "load");
    let took = started.elapsed();
    assert!(took < std::time::Duration::from_secs(15), "took {took:?}");
    // Every file is listed by name, with or without an id.
    let r = ore
        .run(&["--json", "search", "holes", "--name", "f*"])
        .expect(0, "search --name");
    let v = ore_tests::archival::json_lines(&r.stdout);
    assert_eq!(v.len(), 64, "{}", r.stdout);
}

#[test]
fn a_catalogued_file_in_an_object_that_is_no_catalogue_is_refused() {
    let (ore, _d) = Ore::local();
    // The stream's ids are this archive's, so only the object's kind is wrong.
    let ids = {
        let repo = ore_tests::crafted::open(&ore);
        repo.keys().key_of(ore::core::block::Kind::Chunk as u8, b"")
    };
    let stream = Stream::new()
        .record(1, &header_with(ids))
        .object_with(
            vec![text("title", "mixed")],
            None,
            None,
            &[("ghost", Body::Catalogued([7; 32]))],
        )
        .end();
    let r = load(&ore, "mixed", &stream).expect(1, "a stored object with no data");
    assert!(r.stderr.contains("no catalogue"), "{}", r.stderr);
    assert_eq!(tag_line(&ore, "mixed"), None);
    // The same file in a catalogue object loads.
    let stream = Stream::new()
        .record(1, &header_with(ids))
        .object_with(
            vec![text("title", "disk")],
            None,
            Some(Volume {
                name: "crafted".into(),
                ..Volume::default()
            }),
            &[("ghost", Body::Catalogued([7; 32]))],
        )
        .end();
    load(&ore, "mixed", &stream).expect(0, "a catalogue");
}

#[test]
fn a_snapshot_stream_loaded_onto_an_archive_tag_is_refused_and_the_tag_stays() {
    let (ore, d) = Ore::local();
    tree(&d.path().join("a"), &[("f", "precious")]);
    import(&ore, &["arc", d.path().join("a").to_str().unwrap()]);
    ore.snapshot("snap", &d.path().join("a"));
    let before = tag_line(&ore, "arc");
    let stream = dump(&ore, "snap");
    let r = load(&ore, "arc", &stream).expect(1, "a snapshot onto an archive tag");
    assert!(r.stderr.contains("arc is an archive tag"), "{}", r.stderr);
    assert_eq!(tag_line(&ore, "arc"), before);
    assert_eq!(found(&ore, "arc", "name=a").len(), 1);
}

#[test]
fn a_reload_never_brings_back_a_version_replaced_since_as_a_second_current_one() {
    let (ore, d) = Ore::local();
    tree(&d.path().join("a"), &[("f", "alpha")]);
    let first = import(
        &ore,
        &[
            "t",
            d.path().join("a").to_str().unwrap(),
            "--set",
            "title=first",
        ],
    );
    let stream = dump(&ore, "t");
    ore.run(&["props", &first, "--set", "title=second"])
        .expect(0, "a new version");
    load(&ore, "t", &stream).expect(0, "the older stream again");
    assert!(
        found(&ore, "t", "title~first").is_empty(),
        "replaced stays replaced"
    );
    assert_eq!(found(&ore, "t", "title~second").len(), 1);
    let tags = tag_line(&ore, "t").unwrap_or_default();
    assert!(tags.contains("1 object(s) (+1 replaced)"), "{tags}");
    ore.run(&["check"]).expect(0, "check");
}

#[test]
fn a_hard_link_that_comes_before_its_file_in_a_stream_is_listed_after_a_load() {
    // The walk makes `b.txt` the file and `a/x` the link; the stream has `a/` first.
    let (ore, d) = Ore::local();
    let src = d.path().join("s");
    tree(&src, &[("b.txt", "linked")]);
    std::fs::create_dir(src.join("a")).expect("mkdir");
    std::fs::hard_link(src.join("b.txt"), src.join("a/x")).expect("link");
    import(&ore, &["hl", src.to_str().unwrap()]);
    let stream = dump(&ore, "hl");
    let (other, _d2) = Ore::local();
    load(&other, "hl", &stream).expect(0, "load");
    let r = other
        .run(&["--json", "search", "hl", "--name", "x"])
        .expect(0, "search --name");
    assert!(r.stdout.contains("a/x"), "{}", r.stdout);
    let r = other
        .run(&[
            "--json",
            "search",
            "--file",
            src.join("b.txt").to_str().unwrap(),
        ])
        .expect(0, "search --file");
    assert!(
        r.stdout.contains("a/x") && r.stdout.contains("b.txt"),
        "{}",
        r.stdout
    );
}

#[test]
fn an_object_that_is_one_file_loads_but_not_one_named_out_of_its_directory() {
    let (ore, _d) = Ore::local();
    let stream = Stream::new()
        .record(1, &header())
        .file_object(b"letter.txt", b"dear reader")
        .end();
    load(&ore, "one", &stream).expect(0, "an object that is one file");
    let key = found(&ore, "one", "title~letter");
    assert_eq!(key.len(), 1);
    let cat = ore
        .cmd(&["cat", &format!("{}:letter.txt", key[0])])
        .output()
        .expect("cat runs");
    assert_eq!(cat.stdout, b"dear reader");
    for name in [&b"../evil"[..], b"a/b", b"..", b""] {
        let stream = Stream::new()
            .record(1, &header())
            .file_object(name, b"x")
            .end();
        let r = load(&ore, "bad", &stream).expect(1, "a root file named out of its directory");
        assert!(r.stderr.contains("the root file's name"), "{}", r.stderr);
        assert_eq!(tag_line(&ore, "bad"), None, "nothing was filed");
    }
}
