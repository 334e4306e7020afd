//! `ore import --each`: one object per regular file of a directory, from one stored tree,
//! filed at once.

use ore_tests::archival::{dir_size, found, import, json_lines, props_json, tree};
use ore_tests::ore::{Ore, Run};
use ore_tests::trees::bytes;

#[test]
fn each_regular_file_becomes_an_object_of_its_own_found_restored_and_checked() {
    let (ore, d) = Ore::local();
    let src = d.path().join("photos");
    tree(&src.join("2019/summer"), &[("notes.txt", "sea and sand")]);
    tree(&src, &[("index.txt", "an index")]);
    let jpeg = ore_tests::media::jpeg("2019:07:01 10:00:00", "Acme", "One", [1, 0, 0], [2, 0, 0]);
    std::fs::write(src.join("2019/summer/beach.jpg"), &jpeg).expect("write");
    // A hard link is the file it names; a symlink is no regular file.
    std::fs::hard_link(src.join("index.txt"), src.join("2019/again.txt")).expect("link");
    std::os::unix::fs::symlink("index.txt", src.join("link")).expect("symlink");
    let r = ore
        .run(&[
            "import",
            "pics",
            src.to_str().unwrap(),
            "--each",
            "--set",
            "tags=trip",
        ])
        .expect(0, "import --each");
    let keys: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(keys.len(), 4, "{}", r.stdout);
    assert_eq!(found(&ore, "pics", "tags:trip").len(), 4);
    let beach = found(&ore, "pics", "camera=\"Acme One\"");
    assert_eq!(beach.len(), 1);
    let props = props_json(&ore, &beach[0]);
    assert_eq!(props["props"]["name"], "beach.jpg", "{props}");
    assert_eq!(props["props"]["type"], "image/jpeg", "{props}");
    assert_eq!(props["props"]["size"], jpeg.len() as u64, "{props}");
    assert!(
        props["source"]
            .as_str()
            .expect("source")
            .ends_with("photos/2019/summer/beach.jpg"),
        "{props}"
    );
    // An object is its file, alone (shown as a directory holding it).
    let ls = ore.run(&["ls", &beach[0]]).expect(0, "ls").stdout;
    assert_eq!(ls.trim(), "beach.jpg");
    let again = found(&ore, "pics", "name=again.txt");
    let out = d.path().join("out");
    ore.restore(&again[0], &out).expect(0, "restore");
    assert_eq!(
        std::fs::read(out.join("again.txt")).expect("restored"),
        b"an index"
    );
    assert!(ore
        .run(&["tags"])
        .expect(0, "tags")
        .stdout
        .contains("archive tag: 4 object(s)\n"));
    ore.run(&["check", "--read-data"]).expect(0, "check");
    // The same tree again: new objects, the same data.
    let before = dir_size(std::path::Path::new(&ore.archive));
    import(&ore, &["pics", src.to_str().unwrap(), "--each"]);
    let grew = dir_size(std::path::Path::new(&ore.archive)) - before;
    assert!(grew < 64 << 10, "a second import stored {grew} bytes");
    assert_eq!(found(&ore, "pics", "name=beach.jpg").len(), 2);
    let r = ore.run(&[
        "import",
        "pics",
        src.to_str().unwrap(),
        "--each",
        "--replace",
        keys[0],
    ]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("--replace makes one object, and --each many"),
        "{}",
        r.stderr
    );
    // A directory without a regular file: a warning, no object, no new head.
    std::fs::create_dir_all(d.path().join("empty/sub")).expect("mkdir");
    let head = ore.run(&["tags"]).expect(0, "tags").stdout;
    let r = ore.run(&[
        "import",
        "pics",
        d.path().join("empty").to_str().unwrap(),
        "--each",
    ]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("no PATH holds a regular file"),
        "{}",
        r.stderr
    );
    assert_eq!(ore.run(&["tags"]).expect(0, "tags").stdout, head);
}

/// `ore --json search TAG --file PATH`: the `(object, path)` of each file found.
fn by_contents(ore: &Ore, tag: &str, file: &std::path::Path) -> Vec<(String, String)> {
    let r = (ore.run(&["--json", "search", tag, "--file", file.to_str().unwrap()]))
        .expect(0, "search --file");
    let mut out: Vec<(String, String)> = (json_lines(&r.stdout).iter())
        .map(|f| {
            let s = |k: &str| f[k].as_str().expect(k).to_string();
            (s("object"), s("path"))
        })
        .collect();
    out.sort();
    out
}

#[test]
fn each_object_has_the_id_and_type_its_file_read_alone_gives_whether_seen_by_the_store_or_opened_again(
) {
    let (ore, d) = Ore::local();
    let src = d.path().join("mixed");
    std::fs::create_dir_all(&src).expect("mkdir");
    // Bundled small files (two with the same bytes), an empty file, a file of one chunk, one
    // of several in one of the store's read windows and one across windows, compressed and
    // image formats.
    let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    png.extend(bytes(9, 300));
    let mut gz = vec![0x1f, 0x8b, 8, 0];
    gz.extend(bytes(8, 40_000));
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("a.txt", b"the same words\n".to_vec()),
        ("b.txt", b"the same words\n".to_vec()),
        (
            "notes.md",
            "# Notes\n\nplain text, ünïcode too\n".as_bytes().to_vec(),
        ),
        ("empty", Vec::new()),
        ("one-chunk.bin", bytes(1, 100 << 10)),
        ("some-chunks.bin", bytes(4, 3 << 20)),
        ("many-chunks.bin", bytes(2, 12 << 20)),
        ("picture.png", png),
        ("packed.gz", gz),
    ];
    for (name, bytes) in &files {
        std::fs::write(src.join(name), bytes).expect("write");
    }
    // A file with a hole, and a second name for a file: both opened again after the store.
    let sparse = src.join("sparse.img");
    {
        use std::io::{Seek, Write};
        let mut f = std::fs::File::create(&sparse).expect("create");
        f.seek(std::io::SeekFrom::Start(4 << 20)).expect("seek");
        f.write_all(&bytes(3, 64 << 10)).expect("write");
    }
    std::fs::hard_link(src.join("one-chunk.bin"), src.join("one-chunk.again")).expect("link");
    let holes = {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(&sparse).expect("stat");
        m.blocks() * 512 < m.len()
    };
    let r = Run::of(
        (ore.cmd(&["import", "mixed", src.to_str().unwrap(), "--each"]))
            .env("ORE_DEBUG", "1")
            .output()
            .expect("ore"),
    )
    .expect(0, "import --each");
    // The picture is opened for its properties, the second name and a file with holes for
    // everything; the rest come from the store's own read.
    let opened = 2 + usize::from(holes);
    assert!(
        r.stderr
            .contains(&format!("import --each: 11 file(s), {opened} opened again")),
        "{}",
        r.stderr
    );
    // Every file found by its bytes (hashed by the search from the file on disk), in its own
    // object, and typed as an import of that file alone (which reads it again) types it.
    let mut names: Vec<String> = files.iter().map(|(n, _)| n.to_string()).collect();
    names.extend(["sparse.img".into(), "one-chunk.again".into()]);
    for name in &names {
        let path = src.join(name);
        let hits = by_contents(&ore, "mixed", &path);
        let expected: &[&str] = match name.as_str() {
            "a.txt" | "b.txt" => &["a.txt", "b.txt"],
            "one-chunk.bin" | "one-chunk.again" => &["one-chunk.again", "one-chunk.bin"],
            other => &[other],
        };
        let mut paths: Vec<&str> = hits.iter().map(|(_, p)| p.as_str()).collect();
        paths.sort();
        assert_eq!(paths, expected, "{name}: {hits:?}");
        let mine = found(&ore, "mixed", &format!("name=\"{name}\""));
        assert_eq!(mine.len(), 1, "{name}");
        assert!(hits.iter().any(|(o, _)| *o == mine[0]), "{name}: {hits:?}");
        let alone = import(&ore, &["alone", path.to_str().unwrap()]);
        assert_eq!(
            props_json(&ore, &mine[0])["props"]["type"],
            props_json(&ore, &alone)["props"]["type"],
            "{name}"
        );
    }
    let types: Vec<String> = ["a.txt", "notes.md", "picture.png", "packed.gz"]
        .iter()
        .map(|n| {
            let k = found(&ore, "mixed", &format!("name=\"{n}\""));
            props_json(&ore, &k[0])["props"]["type"].to_string()
        })
        .collect();
    assert_eq!(
        types,
        [
            "\"text/plain\"",
            "\"text/plain\"",
            "\"image/png\"",
            "\"application/gzip\""
        ]
    );
    ore.run(&["check", "--read-data"]).expect(0, "check");
}
