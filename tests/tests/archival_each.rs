//! `ore import --each`: one object per regular file of a directory, from one stored tree,
//! filed at once.

use ore_tests::archival::{dir_size, found, import, props_json, tree};
use ore_tests::ore::Ore;

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
    // An object is its file, alone, under its directory's metadata.
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
