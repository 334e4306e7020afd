//! Importing what an archive tag holds already (`import::again`): the same thing from the
//! same place is not filed twice, and a changed one is filed beside the earlier object, which
//! the import names. Before, running one import twice left two current objects of every file,
//! each found twice by every search, and nothing said so (a newcomer's report).

use ore_tests::archival::{found, import, json_lines, tree};
use ore_tests::ore::Ore;

fn import_json(ore: &Ore, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["--json", "import"];
    all.extend_from_slice(args);
    let r = ore.run(&all).expect(0, "import");
    serde_json::from_str(r.stdout.trim()).expect("JSON")
}

#[test]
fn a_path_imported_again_unchanged_is_not_filed_twice_and_its_object_is_named() {
    let (ore, d) = Ore::local();
    let src = d.path().join("docs");
    tree(&src, &[("report.txt", "the first report")]);
    let file = src.join("report.txt").display().to_string();
    let first = import(&ore, &["docs", &file]);

    let r = ore
        .run(&["import", "docs", &file])
        .expect(0, "the same import again");
    assert_eq!(
        r.stdout.trim(),
        "",
        "nothing filed, so no key: {}",
        r.stdout
    );
    assert!(
        r.stderr
            .contains(&format!("on docs already, unchanged, as object {first}")),
        "{}",
        r.stderr
    );
    assert_eq!(found(&ore, "docs", "name=report.txt"), vec![first.clone()]);
    let v = import_json(&ore, &["docs", &file]);
    assert_eq!(v["unchanged"][0]["key"], first.as_str(), "{v}");
    assert_eq!(v["objects"].as_array().map(Vec::len), Some(0), "{v}");

    // A directory PATH, twice.
    let dir = import(&ore, &["docs", &src.display().to_string()]);
    let r =
        (ore.run(&["import", "docs", &src.display().to_string()])).expect(0, "the directory again");
    assert!(
        r.stderr.contains(&format!("as object {dir}")),
        "{}",
        r.stderr
    );
    let all = ore.run(&["--json", "search", "docs"]).expect(0, "search");
    assert_eq!(
        json_lines(&all.stdout).len(),
        2,
        "the file and the directory, once each"
    );

    // Other properties make another object; so does another host.
    let other = import(&ore, &["docs", &file, "--set", "title=Report"]);
    assert_ne!(other, first);
    let elsewhere = import(&ore, &["docs", &file, "--host", "laptop"]);
    assert_ne!(elsewhere, first);
    assert_eq!(found(&ore, "docs", "name=report.txt").len(), 3);
    ore.run(&["check"]).expect(0, "check");
}

#[test]
fn a_changed_path_is_filed_beside_its_earlier_object_which_is_named_with_replace() {
    let (ore, d) = Ore::local();
    let src = d.path().join("docs");
    tree(&src, &[("report.txt", "the first report")]);
    let file = src.join("report.txt").display().to_string();
    let first = import(&ore, &["docs", &file]);
    std::fs::write(src.join("report.txt"), "the second report, longer").expect("write");

    let r = ore
        .run(&["import", "docs", &file])
        .expect(0, "a changed file");
    let second = r.stdout.trim().to_string();
    assert_eq!(second.len(), 64, "{}", r.stdout);
    assert!(
        r.stderr
            .contains(&format!("was on docs already, as object {first}"))
            && r.stderr.contains(&format!("--replace {first}")),
        "{}",
        r.stderr
    );
    let mut both = vec![first.clone(), second.clone()];
    both.sort();
    assert_eq!(found(&ore, "docs", "name=report.txt"), both);

    // What the note suggests: a new version, which is no duplicate of the one it replaces
    // even with the same bytes.
    let third = import(&ore, &["docs", &file, "--replace", &second]);
    assert!(!third.is_empty() && third != second);
    let mut now = vec![first, third];
    now.sort();
    assert_eq!(found(&ore, "docs", "name=report.txt"), now);
}

#[test]
fn each_again_files_only_new_and_changed_files_though_a_new_neighbour_moves_small_ones_to_another_bundle(
) {
    let (ore, d) = Ore::local();
    let src = d.path().join("tree");
    tree(&src, &[("a.txt", "alpha"), ("b.txt", "beta")]);
    tree(&src.join("sub"), &[("c.txt", "gamma")]);
    let path = src.display().to_string();
    let first = ore
        .run(&["import", "t", &path, "--each"])
        .expect(0, "import");
    assert_eq!(first.stdout.lines().count(), 3);

    // A new file beside a.txt and b.txt: the small files of the directory are stored in a new
    // bundle, and a.txt and b.txt are still the same files.
    std::fs::write(src.join("d.txt"), "delta").expect("write");
    // A file whose mode alone changed is another file.
    let b = src.join("b.txt");
    let mut perm = std::fs::metadata(&b).expect("stat").permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o600);
    std::fs::set_permissions(&b, perm).expect("chmod");
    let v = import_json(&ore, &["t", &path, "--each"]);
    let sources = |list: &serde_json::Value| -> Vec<String> {
        let mut s: Vec<String> = (list.as_array().expect("list").iter())
            .map(|x| x["source"].as_str().expect("source").to_string())
            .collect();
        s.sort();
        s
    };
    let under = |names: &[&str]| -> Vec<String> {
        names
            .iter()
            .map(|n| src.join(n).display().to_string())
            .collect()
    };
    assert_eq!(sources(&v["objects"]), under(&["b.txt", "d.txt"]), "{v}");
    assert_eq!(
        sources(&v["unchanged"]),
        under(&["a.txt", "sub/c.txt"]),
        "{v}"
    );
    assert_eq!(sources(&v["beside"]), under(&["b.txt"]), "{v}");

    // Nothing changed: nothing filed, the tag stays where it was.
    let before = ore.run(&["tags"]).expect(0, "tags").stdout;
    let r = ore
        .run(&["import", "t", &path, "--each"])
        .expect(0, "again");
    assert_eq!(r.stdout.trim(), "", "{}", r.stdout);
    let named = r
        .stderr
        .lines()
        .filter(|l| l.ends_with("not imported again"));
    assert_eq!(named.count(), 4, "a, b, c and d: {}", r.stderr);
    assert_eq!(ore.run(&["tags"]).expect(0, "tags").stdout, before);
    let all = ore.run(&["--json", "search", "t"]).expect(0, "search");
    assert_eq!(json_lines(&all.stdout).len(), 5, "a, b twice, c, d");

    // Files a snapshot put in the file cache are not read again by an import, so their ids
    // come from what is stored, and they are still known.
    ore.snapshot("s", &src);
    let v = import_json(&ore, &["t", &path, "--each"]);
    assert_eq!(v["files_read"], 0, "{v}");
    assert_eq!(v["objects"].as_array().map(Vec::len), Some(0), "{v}");
    assert_eq!(v["unchanged"].as_array().map(Vec::len), Some(4), "{v}");
    ore.run(&["check"]).expect(0, "check");
}

#[test]
fn what_no_content_id_finds_a_fifo_an_empty_directory_and_a_file_of_many_holes_is_not_filed_twice()
{
    // Each was filed again by every run: found by the contents of its files, it had none
    // (a FIFO, an empty directory), or none hashed (more than 1 GiB of holes).
    let (ore, d) = Ore::local();
    let src = d.path().join("tree");
    tree(&src, &[("a.txt", "alpha")]);
    let holes = src.join("disk.img");
    let f = std::fs::File::create(&holes).expect("create");
    f.set_len(2 << 30).expect("a file of 2 GiB of holes");
    std::os::unix::fs::FileExt::write_at(&f, b"boot", 4096).expect("write");
    drop(f);
    let fifo = d.path().join("pipe");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo");
    assert!(made.success());
    let empty = d.path().join("empty");
    std::fs::create_dir(&empty).expect("mkdir");
    let (path, fifo, empty) = (
        src.display().to_string(),
        fifo.display().to_string(),
        empty.display().to_string(),
    );
    // Each run warns that the file of holes is not found by its contents: exit 3.
    let each = || {
        let r = ore.run(&["--json", "import", "t", &path, "--each"]);
        let r = r.expect(3, "import --each, warning of the holes");
        serde_json::from_str::<serde_json::Value>(r.stdout.trim()).expect("JSON")
    };
    assert_eq!(each()["objects"].as_array().map(Vec::len), Some(2));
    let one = [
        import(&ore, &["one", &fifo]),
        import(&ore, &["one", &empty]),
    ];
    let before = ore.run(&["tags"]).expect(0, "tags").stdout;

    let v = each();
    assert_eq!(v["objects"].as_array().map(Vec::len), Some(0), "{v}");
    assert_eq!(v["unchanged"].as_array().map(Vec::len), Some(2), "{v}");
    for (what, earlier) in [&fifo, &empty].into_iter().zip(&one) {
        let r = ore.run(&["import", "one", what]).expect(0, "again");
        assert_eq!(r.stdout.trim(), "", "{what}: {}", r.stdout);
        assert!(
            r.stderr
                .contains(&format!("unchanged, as object {earlier}")),
            "{r:?}"
        );
    }
    assert_eq!(ore.run(&["tags"]).expect(0, "tags").stdout, before);

    // Changed, the file of many holes is another file, filed beside the one it was: its
    // chunks, not a content id, tell.
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&holes)
        .expect("open");
    std::os::unix::fs::FileExt::write_at(&f, b"BOOT", 4096).expect("write");
    drop(f);
    let v = each();
    assert_eq!(v["objects"].as_array().map(Vec::len), Some(1), "{v}");
    assert_eq!(v["beside"].as_array().map(Vec::len), Some(1), "{v}");
    assert_eq!(v["unchanged"].as_array().map(Vec::len), Some(1), "{v}");
    ore.run(&["check"]).expect(0, "check");
}

#[test]
fn a_file_many_objects_hold_alike_is_not_filed_again_and_a_directory_whose_mode_changed_is() {
    // Only the first 64 holders of a content id were read: the 65th copy of a licence
    // file, and each after it, was filed again by every run, with no note.
    let (ore, d) = Ore::local();
    let src = d.path().join("tree");
    for i in 0..70 {
        tree(
            &src.join(format!("p{i:02}")),
            &[("LICENSE", "the same licence text")],
        );
    }
    let path = src.display().to_string();
    assert_eq!(import(&ore, &["t", &path, "--each"]).lines().count(), 70);
    let v = import_json(&ore, &["t", &path, "--each"]);
    assert_eq!(v["objects"].as_array().map(Vec::len), Some(0), "{v}");
    assert_eq!(v["unchanged"].as_array().map(Vec::len), Some(70), "{v}");

    // A directory's own mode is part of it: the same tree under another mode is another
    // object (it was called unchanged, and the new mode was never recorded).
    let dir = d.path().join("box");
    std::fs::create_dir(&dir).expect("mkdir");
    let dir_s = dir.display().to_string();
    let first = import(&ore, &["one", &dir_s]);
    let mut perm = std::fs::metadata(&dir).expect("stat").permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o700);
    std::fs::set_permissions(&dir, perm).expect("chmod");
    let r = ore.run(&["import", "one", &dir_s]).expect(0, "chmod 700");
    assert_eq!(r.stdout.trim().len(), 64, "filed: {r:?}");
    assert!(r.stderr.contains(&format!("as object {first}")), "{r:?}");
    assert!(r.stderr.contains("filed beside"), "{r:?}");
}
